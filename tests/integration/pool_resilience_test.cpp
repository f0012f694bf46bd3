// Integration tests composing retry, the circuit breaker and the pool through a real outage.
#include <pgcoro/availability.hpp>
#include <pgcoro/circuit_breaker.hpp>
#include <pgcoro/pool.hpp>
#include <pgcoro/retry.hpp>

#include "support/test_server.hpp"

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
