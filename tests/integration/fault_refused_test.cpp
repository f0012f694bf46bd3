// Fault scenario 3: connections refused - the acquire deadline, the circuit breaker and the
// rate of connect attempts.
#include <pgcoro/circuit_breaker.hpp>
#include <pgcoro/pool.hpp>

#include "support/fault_proxy.hpp"
#include "support/oracles.hpp"
#include "support/test_server.hpp"

#include <boost/asio/io_context.hpp>

#include <gtest/gtest.h>

#include <mutex>

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

} // namespace

// Nothing listens: acquire() fails by its deadline, naming the connect error, and the pool
// retries at a bounded rate meanwhile.
TEST(FaultRefused, AcquireFailsByItsDeadlineWithTheConnectErrorAsCause)
{
    const std::string app = "pgcoro-fault-refused";
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
            const int fds = open_fd_count();
            proxy.stop_listening();
            {
                auto pcfg = fault_pool(2);
                pcfg.acquire_timeout = 600ms;
                pgcoro::pool pool(io.get_executor(), proxy.config(fault_app(app)), pcfg);
                const auto t0 = clk::now();
                auto l = co_await pool.acquire();
                const auto took = clk::now() - t0;
                PGCORO_CO_ASSERT(!l.has_value());
                const auto& e = l.error();
                EXPECT_TRUE(e.is(errc::pool_timeout)) << e;
                EXPECT_TRUE(e.transient());
                EXPECT_NE(e.message.find("last connect error: connect_failed"), std::string::npos)
                    << e;
                EXPECT_NE(e.message.find("refused"), std::string::npos) << e;
                EXPECT_GE(took, pcfg.acquire_timeout);
                EXPECT_LE(took, pcfg.acquire_timeout + 100ms) << ms(took) << " ms";
                auto s = pool.stats();
                EXPECT_GE(s.connect_failures, 2u) << s; // it did retry
                EXPECT_LE(s.connect_failures, attempt_bound(pcfg, took)) << s;
                EXPECT_TRUE(gauges_consistent(s));
                co_await pool.close(1s);
                EXPECT_TRUE(pool_drained(pool.stats()));
            }
            proxy.heal();
            EXPECT_TRUE(co_await back_to_baseline(*side, app, fds));
            probe.stop();
        }(),
        30s);
    expect_loop_responsive(probe);
}

// The proxy accepts and resets every connection. A circuit breaker around the work opens,
// rejects calls while open, half-opens after its cool-down (and reopens while the fault
// lasts), and closes on the first success once the proxy passes again. Connect attempts stay
// at the backoff's rate, counted at the proxy.
TEST(FaultRefused, CircuitBreakerOpensHalfOpensAndClosesWithBoundedConnectRate)
{
    const std::string app = "pgcoro-fault-breaker";
    asio::io_context io;
    fault_proxy proxy;
    lag_probe probe(io.get_executor());
    ledger book("fault_ledger_breaker");

    pgcoro::breaker_config bc;
    bc.failure_threshold = 3;
    bc.window_size = 0; // the consecutive-failure rule only
    bc.open_duration = 400ms;
    pgcoro::circuit_breaker breaker(bc);
    std::mutex m;
    std::vector<std::pair<clk::time_point, pgcoro::breaker_transition>> transitions;
    breaker.on_transition(
        [&](const pgcoro::breaker_transition& t)
        {
            std::lock_guard lock(m);
            transitions.emplace_back(clk::now(), t);
        });
    auto saw = [&](pgcoro::breaker_state from, pgcoro::breaker_state to)
    {
        std::lock_guard lock(m);
        return std::count_if(transitions.begin(), transitions.end(),
                             [&](const auto& t)
                             { return t.second.from == from && t.second.to == to; });
    };
    using bs = pgcoro::breaker_state;

    run(
        io,
        [&]() -> asio::awaitable<void>
        {
            probe.start();
            auto side = co_await pgcoro::open_connection(io.get_executor(), side_config());
            PGCORO_CO_ASSERT(side.has_value());
            PGCORO_CO_ASSERT((co_await book.create(*side)).has_value());
            const int fds = open_fd_count();
            {
                auto pcfg = fault_pool(2);
                pcfg.acquire_timeout = 150ms;
                pcfg.refill_backoff_max = 200ms;
                pgcoro::pool pool(io.get_executor(), proxy.config(fault_app(app)), pcfg);
                auto unit = [&]
                {
                    return breaker.run([&] { return book.insert(pool); });
                };

                proxy.refuse();
                const auto accepted_before = proxy.accepted();
                const auto t0 = clk::now();
                int rejected = 0, failed = 0, calls = 0;
                while (clk::now() - t0 < 1500ms)
                {
                    auto r = co_await unit();
                    ++calls;
                    if (!r && r.error().is(errc::circuit_open))
                        ++rejected;
                    else if (!r)
                        ++failed;
                    else
                        ADD_FAILURE() << "a unit succeeded through a refusing proxy";
                    co_await sleep_for(20ms);
                }
                const auto window = clk::now() - t0;
                const auto attempts = proxy.accepted() - accepted_before;
                EXPECT_EQ(saw(bs::closed, bs::open), 1);
                EXPECT_GE(saw(bs::open, bs::half_open), 1); // cool-down passed at least once
                EXPECT_GE(saw(bs::half_open, bs::open), 1); // the probe failed: open again
                EXPECT_EQ(saw(bs::half_open, bs::closed), 0);
                EXPECT_GT(rejected, failed) << "calls " << calls; // mostly failing fast
                EXPECT_GE(failed, 3);
                // No busy loop: attempts only while a call waits, at most the backoff's rate.
                auto s = pool.stats();
                EXPECT_GE(attempts, 3u);
                EXPECT_LE(attempts, attempt_bound(pcfg, window)) << s;
                // Every attempt the proxy saw failed (one may still be in flight).
                EXPECT_LE(s.connect_failures, attempts) << s;
                EXPECT_GE(s.connect_failures + 1, attempts) << s;
                EXPECT_EQ(s.opened, 0u) << s;
                {
                    std::lock_guard lock(m);
                    // Each half-open came open_duration after the breaker opened.
                    for (std::size_t i = 1; i < transitions.size(); ++i)
                    {
                        if (transitions[i].second.to == bs::half_open)
                        {
                            EXPECT_GE(transitions[i].first - transitions[i - 1].first,
                                      bc.open_duration - 5ms);
                        }
                    }
                }

                proxy.heal();
                const auto healed = clk::now();
                bool closed_again = false;
                while (!closed_again && clk::now() - healed < bc.open_duration + 2s)
                {
                    co_await unit();
                    closed_again = breaker.state() == bs::closed;
                    if (!closed_again)
                        co_await sleep_for(20ms);
                }
                EXPECT_TRUE(closed_again);
                EXPECT_EQ(saw(bs::half_open, bs::closed), 1);
                EXPECT_LT(clk::now() - healed, bc.open_duration + 1s);
                EXPECT_TRUE((co_await unit()).has_value());
                EXPECT_TRUE(connections_conserved(pool.stats()));
                co_await pool.close(1s);
                EXPECT_TRUE(pool_drained(pool.stats()));
            }
            auto v = co_await book.verify(*side);
            EXPECT_TRUE(v.ok()) << v;
            EXPECT_EQ(v.acknowledged, 2u) << v; // the half-open probe and the one after
            EXPECT_GE(v.failed, 3u) << v;
            EXPECT_TRUE(co_await back_to_baseline(*side, app, fds));
            co_await book.drop(*side);
            probe.stop();
        }(),
        30s);
    expect_loop_responsive(probe);
}
