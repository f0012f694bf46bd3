// Integration tests composing retry, the circuit breaker and the pool through a real outage.
#include <pgcoro/availability.hpp>
#include <pgcoro/circuit_breaker.hpp>
#include <pgcoro/pool.hpp>
#include <pgcoro/retry.hpp>
#include <pgcoro/transaction.hpp>

#include "support/test_server.hpp"

#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>

#include <gtest/gtest.h>

#include <mutex>
#include <thread>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using pgcoro::test::run;
using pgcoro::test::test_server;

namespace
{
pgcoro::pool_config outage_pool()
{
    pgcoro::pool_config p;
    p.max_size = 2;
    p.acquire_timeout = 400ms;
    p.validate_after_idle = 0ms;
    p.refill_backoff_initial = 50ms;
    p.refill_backoff_max = 200ms;
    return p;
}
} // namespace

TEST(PoolResilience, RetryRidesOutAServerRestartAndTheBreakerOpensAndCloses)
{
    if (!test_server::get().owned())
        GTEST_SKIP() << "external server: cannot restart it";
    asio::io_context io;
    auto ccfg = test_server::get().tcp();
    ccfg.application_name = "pgcoro-outage";
    pgcoro::pool pool(io.get_executor(), ccfg, outage_pool());

    pgcoro::breaker_config bc;
    bc.failure_threshold = 2;
    bc.open_duration = 300ms;
    pgcoro::circuit_breaker breaker(bc);
    std::mutex m;
    std::vector<pgcoro::breaker_transition> transitions;
    breaker.on_transition(
        [&](const pgcoro::breaker_transition& t)
        {
            std::lock_guard lock(m);
            transitions.push_back(t);
        });

    pgcoro::retry_policy policy;
    policy.max_attempts = 40;
    policy.backoff.initial = 100ms;
    policy.backoff.multiplier = 1.5;
    policy.backoff.cap = 300ms;
    policy.deadline = 10s;
    policy.idempotent = true; // a SELECT may be repeated
    // Ride out the outage through the open breaker: since issue 19 retry() fails fast on
    // circuit_open by default, so this test opts in (it relied on the old default).
    policy.retry_if = [](const pgcoro::error& e)
    {
        return e.transient();
    };

    // Setup: a warm pool, then the server goes away for ~1.5 s.
    run(io,
        [&]() -> asio::awaitable<void>
        {
            auto l = co_await pool.acquire();
            PGCORO_CO_ASSERT(l.has_value());
        }());
    ASSERT_EQ(test_server::get().pg_ctl("stop -m immediate"), 0);
    std::thread restart(
        []
        {
            std::this_thread::sleep_for(1500ms);
            EXPECT_EQ(test_server::get().pg_ctl("start"), 0);
        });

    // Act: retry around breaker around pool.run, while the server is down.
    int attempts = 0;
    std::optional<pgcoro::expected<pgcoro::result>> outcome;
    run(io,
        [&]() -> asio::awaitable<void>
        {
            outcome = co_await pgcoro::retry(policy,
                                             [&]()
                                             {
                                                 ++attempts;
                                                 return breaker.run(
                                                     [&]() {
                                                         return pool.run(
                                                             [](pgcoro::connection& c)
                                                             { return c.query("SELECT 42"); });
                                                     });
                                             });
        }());
    restart.join();

    // Check: the caller saw success; the breaker opened during the outage and closed after.
    ASSERT_TRUE(outcome.has_value());
    ASSERT_TRUE(outcome->has_value()) << outcome->error();
    EXPECT_EQ((*outcome)->get<int>(0, 0).value(), 42);
    EXPECT_GT(attempts, 1);
    std::lock_guard lock(m);
    auto saw = [&](pgcoro::breaker_state to)
    {
        return std::any_of(transitions.begin(), transitions.end(),
                           [&](const auto& t) { return t.to == to; });
    };
    EXPECT_TRUE(saw(pgcoro::breaker_state::open));
    EXPECT_TRUE(saw(pgcoro::breaker_state::half_open));
    EXPECT_EQ(breaker.state(), pgcoro::breaker_state::closed);
}

TEST(PoolResilience, AvailabilityCheckFailsOnlyAfterAllAttempts)
{
    asio::io_context io;
    auto ccfg = test_server::get().tcp();
    pgcoro::pool up(io.get_executor(), ccfg, outage_pool());
    ccfg.hosts = {{"127.0.0.1", 1}}; // nothing listens there
    pgcoro::pool down(io.get_executor(), ccfg, outage_pool());

    pgcoro::retry_policy fast = pgcoro::availability_policy;
    fast.backoff.initial = 20ms;
    fast.attempt_timeout = 1s;
    int retries = 0;
    run(io,
        [&]() -> asio::awaitable<void>
        {
            EXPECT_TRUE(co_await pgcoro::is_database_available(up, fast));
            pgcoro::error last;
            auto start = std::chrono::steady_clock::now();
            bool ok = co_await pgcoro::is_database_available(down, fast, &last);
            EXPECT_FALSE(ok);
            EXPECT_TRUE(last.is(pgcoro::errc::pool_timeout)) << last;
            // Three attempts, each waiting the pool's acquire_timeout (400 ms).
            EXPECT_GE(std::chrono::steady_clock::now() - start, 1100ms);
            retries = static_cast<int>(down.stats().timed_out);
        }());
    EXPECT_EQ(retries, 3);
}

TEST(PoolResilience, TransactThroughThePoolReRunsConflictsOnFreshLeases)
{
    asio::io_context io;
    auto cfg = outage_pool();
    cfg.acquire_timeout = 5s;
    pgcoro::pool pool(io.get_executor(), test_server::get().tcp(), cfg);
    pgcoro::transaction_options opts;
    opts.isolation = pgcoro::isolation_level::serializable;
    int runs = 0;
    run(io,
        [&]() -> asio::awaitable<void>
        {
            co_await pool.run(
                [](pgcoro::connection& c) {
                    return c.query(
                        "CREATE TABLE IF NOT EXISTS tx_pool (id int PRIMARY KEY, n int)");
                });
            co_await pool.run(
                [](pgcoro::connection& c) {
                    return c.query(
                        "INSERT INTO tx_pool VALUES (1, 0) ON CONFLICT (id) DO UPDATE SET n = 0");
                });
            // Two increments racing under SERIALIZABLE: one hits 40001 and is re-run whole.
            auto increment = [&](pgcoro::connection& c) -> asio::awaitable<pgcoro::expected<int>>
            {
                ++runs;
                auto r = co_await c.query("SELECT n FROM tx_pool WHERE id = 1");
                if (!r)
                    co_return tl::unexpected(r.error());
                int n = r->get<int>(0, 0).value();
                asio::steady_timer t(co_await asio::this_coro::executor, 50ms); // overlap them
                co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
                auto w = co_await c.query("UPDATE tx_pool SET n = $1 WHERE id = 1", n + 1);
                if (!w)
                    co_return tl::unexpected(w.error());
                co_return n + 1;
            };
            int finished = 0;
            for (int i = 0; i < 2; ++i)
                asio::co_spawn(
                    io,
                    [&]() -> asio::awaitable<void>
                    {
                        auto r = co_await pgcoro::transact(pool, increment, opts);
                        EXPECT_TRUE(r.has_value()) << r.error();
                        ++finished;
                    },
                    asio::detached);
            while (finished < 2)
            {
                asio::steady_timer t(io, 10ms);
                co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
            }
            auto n = co_await pool.run([](pgcoro::connection& c)
                                       { return c.query("SELECT n FROM tx_pool WHERE id = 1"); });
            PGCORO_CO_ASSERT(n.has_value());
            EXPECT_EQ(n->get<int>(0, 0).value(), 2); // both effects, each exactly once
        }());
    EXPECT_GE(runs, 3); // at least one re-run
}
