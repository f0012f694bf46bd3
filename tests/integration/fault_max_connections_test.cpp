// Fault scenario 6: the server refuses new sessions with 53300 (too many connections).
//
// A role-level CONNECTION LIMIT is used rather than exhausting max_connections: it answers
// 53300 ("too many connections for role") just the same, involves no superuser reserved slots,
// and does not starve the other tests sharing the cluster. The role connects over TCP with
// trust authentication (scripts/test-cluster.sh pg_hba.conf).
#include <pgcoro/pool.hpp>
#include <pgcoro/retry.hpp>

#include "support/fault_proxy.hpp"
#include "support/oracles.hpp"
#include "support/test_server.hpp"

#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <gtest/gtest.h>

#include <algorithm>

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

// Runs `sql` over `side`, failing the test when it fails.
asio::awaitable<bool> exec(pgcoro::connection& side, const std::string& sql)
{
    auto r = co_await side.query(sql);
    EXPECT_TRUE(r.has_value()) << sql << ": " << r.error();
    co_return r.has_value();
}

// A login role limited to `limit` sessions, dropped first if a crashed run left it behind.
asio::awaitable<bool> create_limited_role(pgcoro::connection& side, const std::string& role,
                                          int limit)
{
    co_await side.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1",
                        std::string_view(role));
    co_await side.query("DROP OWNED BY " + role); // fails harmlessly when the role is absent
    co_await side.query("DROP ROLE IF EXISTS " + role);
    co_return co_await exec(side, "CREATE ROLE " + role + " LOGIN CONNECTION LIMIT " +
                                      std::to_string(limit));
}

// Drops the role once none of its sessions is left (they exit asynchronously).
asio::awaitable<void> drop_role(pgcoro::connection& side, const std::string& role)
{
    for (int i = 0; i < 100; ++i)
    {
        auto r = co_await side.query("SELECT count(*) FROM pg_stat_activity WHERE usename = $1",
                                     std::string_view(role));
        if (r && r->get<std::int64_t>(0, 0).value_or(1) == 0)
            break;
        co_await sleep_for(20ms);
    }
    co_await side.query("DROP OWNED BY " + role);
    co_await exec(side, "DROP ROLE IF EXISTS " + role);
}

} // namespace

// Another client holds every session the role may have. 53300 is recognised as transient,
// the pool retries it with backoff (no reconnect storm: attempts counted at a proxy), waiters
// time out at acquire_timeout with 53300 as the cause, and the pool gets a connection as soon
// as a slot frees up.
TEST(FaultMaxConnections, TooManyConnectionsIsTransientAndRetriedWithoutAStorm)
{
    const std::string app = "pgcoro-fault-53300";
    const std::string role = "pgcoro_fault_limited";
    asio::io_context io;
    fault_proxy proxy;
    lag_probe probe(io.get_executor());
    ledger book("fault_ledger_53300");
    run(
        io,
        [&]() -> asio::awaitable<void>
        {
            probe.start();
            auto side = co_await pgcoro::open_connection(io.get_executor(), side_config());
            PGCORO_CO_ASSERT(side.has_value());
            PGCORO_CO_ASSERT(co_await create_limited_role(*side, role, 2));
            PGCORO_CO_ASSERT((co_await book.create(*side)).has_value());
            PGCORO_CO_ASSERT(
                co_await exec(*side, "GRANT SELECT, INSERT ON " + book.table() + " TO " + role));
            auto as_role = fault_app(app);
            as_role.user = role;
            as_role.password = {};

            // The other client takes both sessions.
            auto hog1 =
                co_await pgcoro::open_connection(io.get_executor(), fault_app("hog", as_role));
            auto hog2 =
                co_await pgcoro::open_connection(io.get_executor(), fault_app("hog", as_role));
            PGCORO_CO_ASSERT(hog1.has_value() && hog2.has_value());
            const int fds = open_fd_count();

            // A direct connect: 53300, transient.
            auto third = co_await pgcoro::open_connection(io.get_executor(), as_role);
            PGCORO_CO_ASSERT(!third.has_value());
            EXPECT_TRUE(third.error().is(errc::connect_failed)) << third.error();
            EXPECT_EQ(third.error().state, "53300") << third.error();
            EXPECT_TRUE(third.error().transient()) << third.error();
            EXPECT_NE(third.error().message.find("too many connections"), std::string::npos)
                << third.error();
            // retry() retries it by default (it proves nothing was done).
            EXPECT_TRUE(pgcoro::is_retryable(pgcoro::retry_policy{}, third.error()));

            {
                auto pcfg = fault_pool(2);
                pcfg.acquire_timeout = 400ms;
                pcfg.refill_backoff_initial = 50ms;
                pcfg.refill_backoff_max = 200ms;
                pgcoro::pool pool(io.get_executor(), proxy.config(as_role), pcfg);

                // Five waiters at once: each times out at acquire_timeout, citing 53300.
                const auto accepted_before = proxy.accepted();
                const auto t0 = clk::now();
                int finished = 0;
                std::vector<pgcoro::error> errors;
                std::vector<clk::duration> waited;
                for (int i = 0; i < 5; ++i)
                    asio::co_spawn(
                        io,
                        [&]() -> asio::awaitable<void>
                        {
                            const auto start = clk::now();
                            auto l = co_await pool.acquire();
                            waited.push_back(clk::now() - start);
                            if (!l)
                                errors.push_back(l.error());
                            ++finished;
                        },
                        asio::detached);
                while (finished < 5 && clk::now() - t0 < 3s)
                    co_await sleep_for(5ms);
                const auto window = clk::now() - t0;
                PGCORO_CO_ASSERT(finished == 5);
                EXPECT_EQ(errors.size(), 5u);
                for (const auto& e : errors)
                {
                    EXPECT_TRUE(e.is(errc::pool_timeout)) << e;
                    EXPECT_NE(e.message.find("last connect error: connect_failed [53300]"),
                              std::string::npos)
                        << e;
                }
                for (auto w : waited)
                {
                    EXPECT_GE(w, pcfg.acquire_timeout);
                    EXPECT_LE(w, pcfg.acquire_timeout + 100ms) << ms(w) << " ms";
                }
                const auto attempts = proxy.accepted() - accepted_before;
                auto s = pool.stats();
                EXPECT_GE(attempts, 3u) << s;                          // retried
                EXPECT_LE(attempts, attempt_bound(pcfg, window)) << s; // but no storm
                EXPECT_EQ(s.opened, 0u) << s;
                EXPECT_EQ(s.timed_out, 5u) << s;
                EXPECT_TRUE(gauges_consistent(s));

                // A slot frees up: the next attempt (within refill_backoff_max) gets it.
                hog1->close();
                const auto freed = clk::now();
                auto l = co_await pool.acquire();
                EXPECT_TRUE(l.has_value()) << l.error();
                EXPECT_LT(clk::now() - freed, pcfg.refill_backoff_max + 300ms);
                l = pgcoro::expected<pgcoro::lease>{};
                for (int i = 0; i < 5; ++i)
                    EXPECT_TRUE((co_await book.insert(pool)).has_value());
                EXPECT_TRUE(connections_conserved(pool.stats()));
                co_await pool.close(1s);
                EXPECT_TRUE(pool_drained(pool.stats()));
            }
            auto v = co_await book.verify(*side);
            EXPECT_TRUE(v.ok()) << v;
            EXPECT_EQ(v.acknowledged, 5u) << v;
            hog2->close();
            EXPECT_TRUE(co_await back_to_baseline(*side, app, fds));
            co_await book.drop(*side);
            co_await drop_role(*side, role);
            probe.stop();
        }(),
        30s);
    expect_loop_responsive(probe);
}

// Pools that hit 53300 together (every instance of a service, after the database restarted)
// must not reconnect in lockstep: the refill backoff needs jitter. A role with CONNECTION
// LIMIT 0 answers every connect with 53300; the proxy timestamps each attempt. Once the delay
// has reached its cap (80 ms, equal jitter: each delay in [40, 80) ms) every gap must lie in
// that band - no tight reconnect loop. The jitter itself is tested deterministically, through
// the pure functions (PoolPolicy.RefillDelayIsCappedExponentialWithEqualJitter,
// PoolMachine.RefillJitterComesFromTheRandomInput): a spread of gaps measured here could come
// from scheduling noise alone (issue 19).
TEST(FaultMaxConnections, ReconnectBackoffIsJittered)
{
    const std::string role = "pgcoro_fault_nologin";
    asio::io_context io;
    fault_proxy proxy;
    lag_probe probe(io.get_executor());
    run(
        io,
        [&]() -> asio::awaitable<void>
        {
            probe.start();
            auto side = co_await pgcoro::open_connection(io.get_executor(), side_config());
            PGCORO_CO_ASSERT(side.has_value());
            PGCORO_CO_ASSERT(co_await create_limited_role(*side, role, 0));
            auto as_role = fault_app("pgcoro-fault-jitter");
            as_role.user = role;
            as_role.password = {};
            {
                auto pcfg = fault_pool(1);
                pcfg.max_concurrent_connects = 1;
                pcfg.refill_backoff_initial = 10ms;
                pcfg.refill_backoff_max = 80ms;
                pcfg.acquire_timeout = 1500ms;
                pgcoro::pool pool(io.get_executor(), proxy.config(as_role), pcfg);
                auto l = co_await pool.acquire();
                PGCORO_CO_ASSERT(!l.has_value());
                EXPECT_NE(l.error().message.find("53300"), std::string::npos) << l.error();
                co_await pool.close(1s);
            }
            auto times = proxy.accept_times();
            // Gaps once the backoff is capped (10, 20, 40, 80: from the 5th attempt on).
            std::vector<long long> gaps;
            for (std::size_t i = 5; i < times.size(); ++i)
                gaps.push_back(
                    std::chrono::duration_cast<std::chrono::microseconds>(times[i] - times[i - 1])
                        .count());
            PGCORO_CO_ASSERT(gaps.size() >= 8);
            auto [lo, hi] = std::minmax_element(gaps.begin(), gaps.end());
            std::string all;
            for (auto g : gaps)
                all += std::to_string(g / 1000) + " ";
            EXPECT_GE(*lo, 39000) << "capped gaps (ms): " << all << "- faster than the backoff";
            EXPECT_LT(*hi, 80000 + 150000) << "capped gaps (ms): " << all;
            co_await drop_role(*side, role);
            probe.stop();
        }(),
        30s);
    expect_loop_responsive(probe);
}
