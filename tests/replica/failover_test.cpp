// Failover under load against a real primary and a synchronous streaming replica (a topology
// of its own: the test destroys it): the primary is killed (pg_ctl stop -m immediate) and the
// replica promoted while writers insert ledger rows through the replica set's read-write pool.
// In-flight work fails as connection_lost, new acquires reach the promoted server within 2 s
// of the promotion, and no acknowledged write is lost.
#include <pgcoro/replica_set.hpp>

#include "replica/replica_env.hpp"
#include "support/oracles.hpp"
#include "support/test_server.hpp"

#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <iostream>
#include <map>
#include <thread>

// GCC 12 at -O2 reports -Wmismatched-new-delete on Asio's coroutine frames (a false positive,
// as in tests/integration/*.cpp).
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

namespace asio = boost::asio;
using namespace std::chrono_literals;
using pgcoro::errc;
using namespace pgcoro::test;
using clk = std::chrono::steady_clock;

namespace
{

long long ms(clk::duration d)
{
    return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

std::vector<pgcoro::connect_config> one_replica(const replica_topology& t)
{
    std::vector<pgcoro::connect_config> v;
    v.push_back(t.config(std::vector<std::uint16_t>(1, t.replica_port(1))));
    return v;
}

pgcoro::connect_config pair_list(const replica_topology& t)
{
    std::vector<std::uint16_t> v;
    v.push_back(t.primary_port());
    v.push_back(t.replica_port(1));
    return t.config(v, "pgcoro-failover");
}

struct topology_guard
{
    std::string state;
    ~topology_guard() { replica_topology::stop(state); }
};

} // namespace

TEST(ReplicaFailover, PromotionUnderLoadLosesNoAcknowledgedWrite)
{
    const std::string state = PGCORO_REPLICA_STATE_DIR "-failover";
    ASSERT_TRUE(replica_topology::start(state, 1, true)) << "could not start the topology";
    topology_guard guard{state};
    replica_topology topo(state);
    ASSERT_TRUE(topo.ok());

    asio::io_context io;
    lag_probe probe(io.get_executor()); // the loop stays responsive through the failover
    ledger book("failover_ledger");
    std::atomic<bool> promoted{false};
    std::atomic<int> stop_rc{-1}, promote_rc{-1};
    clk::time_point stop_at{}, promoted_at{};
    std::thread control;

    run(
        io,
        [&]() -> asio::awaitable<void>
        {
            pgcoro::replica_set_config cfg;
            cfg.primary_pool = fault_pool(6);
            cfg.primary_pool.acquire_timeout = 3s;
            cfg.replica_pool = fault_pool(2);
            cfg.sample_interval = 100ms;
            pgcoro::replica_set set(io.get_executor(), pair_list(topo), one_replica(topo), cfg);
            PGCORO_CO_ASSERT((co_await set.warmup()).has_value());
            probe.start();
            {
                auto l = co_await set.acquire(pgcoro::read_write);
                PGCORO_CO_ASSERT(l.has_value());
                const int port_now = co_await server_port(**l);
                PGCORO_CO_ASSERT(port_now == topo.primary_port());
                PGCORO_CO_ASSERT((co_await book.create(**l)).has_value());
            }

            bool stop = false;
            int running = 0;
            std::map<std::string, int> errors;
            std::vector<clk::time_point> acked_at;
            for (int w = 0; w < 4; ++w)
                asio::co_spawn(
                    io,
                    [&]() -> asio::awaitable<void>
                    {
                        ++running;
                        for (int i = 0; i < 100000 && !stop; ++i)
                        {
                            auto r = co_await book.insert(set.primary(), 20ms);
                            if (r)
                                acked_at.push_back(clk::now());
                            else
                                ++errors[std::string(to_string(r.error().value()))];
                            co_await sleep_for(r ? 2ms : 20ms);
                        }
                        --running;
                    },
                    asio::detached);

            co_await sleep_for(700ms);
            const auto acked_before = book.count(ledger::outcome::acknowledged);
            EXPECT_GT(acked_before, 10u);
            control = std::thread(
                [&]
                {
                    stop_at = clk::now();
                    stop_rc = topo.ctl("primary", "stop -m immediate");
                    promote_rc = topo.ctl("replica1", "promote");
                    promoted_at = clk::now();
                    promoted = true;
                });
            while (!promoted)
                co_await sleep_for(5ms);
            EXPECT_EQ(stop_rc.load(), 0);
            EXPECT_EQ(promote_rc.load(), 0);
            std::cout << "primary stopped and replica promoted in " << ms(promoted_at - stop_at)
                      << " ms\n";

            // A fresh acquire + write, timed from the promotion.
            pgcoro::expected<int> first_after(0);
            clk::time_point first_ok{};
            for (int i = 0; i < 100; ++i)
            {
                first_after = co_await book.insert(set.primary());
                if (first_after)
                {
                    first_ok = clk::now();
                    break;
                }
                co_await sleep_for(10ms);
            }
            EXPECT_TRUE(first_after.has_value());
            const auto recovery = ms(first_ok - promoted_at);
            std::cout << "failover recovery: first acquire + write on the new primary " << recovery
                      << " ms after pg_ctl promote returned\n";
            EXPECT_LE(recovery, 2000);
            {
                auto l = co_await set.acquire(pgcoro::read_write);
                PGCORO_CO_ASSERT(l.has_value());
                {
                    const int port_now = co_await server_port(**l);
                    EXPECT_EQ(port_now, topo.replica_port(1));
                }
            }
            co_await sleep_for(500ms); // the writers carry on on the new primary
            stop = true;
            while (running > 0)
                co_await sleep_for(10ms);

            for (const auto& [code, n] : errors)
                std::cout << "  writer errors " << code << ": " << n << "\n";
            EXPECT_GT(errors["connection_lost"], 0) << "no in-flight work was cut off";
            for (const auto& [code, n] : errors)
                EXPECT_TRUE(code == "connection_lost" || code == "connect_failed" ||
                            code == "pool_timeout")
                    << code << " x" << n;
            const auto st = set.primary().stats();
            std::cout << "primary pool: " << st << "\n";
            EXPECT_GT(st.closed_broken, 0u); // the old primary's connections were discarded
            for (const auto& m : set.members())
                std::cout << m << "\n";

            // The ledger, read on the promoted server: every acknowledged write is there.
            auto side = co_await pgcoro::open_connection(
                io.get_executor(),
                topo.config(std::vector<std::uint16_t>(1, topo.replica_port(1)), "pgcoro-side"));
            PGCORO_CO_ASSERT(side.has_value());
            probe.stop();
            auto v = co_await book.verify(*side);
            std::cout << "ledger: " << v << "\n";
            EXPECT_TRUE(v.ok()) << v;
            EXPECT_EQ(v.lost, 0u);
            EXPECT_GT(v.acknowledged, acked_before);
            co_await set.close(1s);
        }(),
        60s);
    if (control.joinable())
        control.join();
    expect_loop_responsive(probe);
}
