// Unit tests for pgcoro/stats_collector.hpp: counters, rolling window, last failure, threads.
#include <pgcoro/stats_collector.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using pgcoro::acquire_event;
using pgcoro::acquire_outcome;
using pgcoro::breaker_state;
using pgcoro::close_reason;
using pgcoro::errc;
using pgcoro::metrics_snapshot;
using pgcoro::query_event;
using pgcoro::query_outcome;
using pgcoro::stats_collector;

namespace
{

std::chrono::system_clock::time_point fixed_now()
{
    return std::chrono::system_clock::time_point(std::chrono::seconds(1'770'000'000));
}

query_event ok_query(std::chrono::nanoseconds d = 1ms)
{
    query_event e;
    e.elapsed = d;
    return e;
}

// A transient failure: connection lost.
query_event lost_query()
{
    query_event e;
    e.elapsed = 2ms;
    e.outcome = query_outcome::failed;
    e.code = make_error_code(errc::connection_lost);
    e.message = "server closed the connection unexpectedly";
    return e;
}

// A non-transient failure: unique violation, the application's fault.
query_event duplicate_key()
{
    query_event e;
    e.outcome = query_outcome::failed;
    e.code = make_error_code(errc::query_failed);
    e.state = pgcoro::sqlstate("23505");
    e.message = "duplicate key value violates unique constraint";
    return e;
}

} // namespace

TEST(Stats, FreshCollectorIsEmptyAndFullyHealthy)
{
    stats_collector c;
    const metrics_snapshot s = c.snapshot();
    EXPECT_EQ(s.queries_total(), 0u);
    EXPECT_EQ(s.success_rate, 1.0);
    EXPECT_EQ(s.window_outcomes, 0u);
    EXPECT_EQ(s.window_capacity, 100u);
    EXPECT_FALSE(s.last_failure);
    EXPECT_FALSE(s.breaker);
    EXPECT_FALSE(s.pool);
}

TEST(Stats, CountsEveryEventKind)
{
    // Setup / Act: one or more of each event.
    stats_collector c;
    c.on_connect_started({});
    c.on_connect_succeeded({.elapsed = 3ms, .backend_pid = 7});
    c.on_connect_failed({.elapsed = 1ms, .code = make_error_code(errc::connect_failed)});
    c.on_acquire({.outcome = acquire_outcome::immediate});
    c.on_acquire({.outcome = acquire_outcome::waited, .waited = 4ms});
    c.on_acquire({.outcome = acquire_outcome::timed_out, .waited = 5s});
    c.on_acquire({.outcome = acquire_outcome::cancelled, .waited = 1ms});
    c.on_acquire({.outcome = acquire_outcome::rejected});
    c.on_release({});
    c.on_query_finished(ok_query());
    c.on_query_finished(lost_query());
    c.on_query_finished({.outcome = query_outcome::timed_out});
    c.on_query_finished({.outcome = query_outcome::cancelled});
    c.on_slow_query({});
    c.on_retry({});
    c.on_retry({});
    c.on_leak_suspected({});
    c.on_connection_closed({.reason = close_reason::idle_timeout});
    c.on_connection_closed({.reason = close_reason::broken});
    c.on_connection_closed({.reason = close_reason::broken});
    c.on_breaker_transition({breaker_state::closed, breaker_state::open});
    // Check
    const metrics_snapshot s = c.snapshot();
    EXPECT_EQ(s.connects_started, 1u);
    EXPECT_EQ(s.connects_succeeded, 1u);
    EXPECT_EQ(s.connects_failed, 1u);
    EXPECT_EQ(s.connect_time.count, 1u);
    EXPECT_EQ(s.acquired_immediately, 1u);
    EXPECT_EQ(s.acquired_after_wait, 1u);
    EXPECT_EQ(s.acquire_timeouts, 1u);
    EXPECT_EQ(s.acquire_cancelled, 1u);
    EXPECT_EQ(s.acquire_rejected, 1u);
    EXPECT_EQ(s.acquire_wait.count, 4u); // rejected acquires never waited
    EXPECT_EQ(s.acquire_wait.max(), 5s);
    EXPECT_EQ(s.releases, 1u);
    EXPECT_EQ(s.queries_succeeded, 1u);
    EXPECT_EQ(s.queries_failed, 1u);
    EXPECT_EQ(s.queries_timed_out, 1u);
    EXPECT_EQ(s.queries_cancelled, 1u);
    EXPECT_EQ(s.queries_total(), 4u);
    EXPECT_EQ(s.query_duration.count, 4u);
    EXPECT_EQ(s.slow_queries, 1u);
    EXPECT_EQ(s.retries, 2u);
    EXPECT_EQ(s.leaks_suspected, 1u);
    EXPECT_EQ(s.closed_by(close_reason::idle_timeout), 1u);
    EXPECT_EQ(s.closed_by(close_reason::broken), 2u);
    EXPECT_EQ(s.closed_by(close_reason::shutdown), 0u);
    EXPECT_EQ(s.breaker, breaker_state::open);
    EXPECT_EQ(s.breaker_transitions, 1u);
    // Window: success, lost, timed-out query, timed-out and rejected acquire -> 1 of 5.
    EXPECT_EQ(s.window_outcomes, 5u);
    EXPECT_DOUBLE_EQ(s.success_rate, 0.2);
}

TEST(Stats, RollingWindowKeepsOnlyTheLastN)
{
    // Setup: a window of 10.
    stats_collector c({.window = 10});
    // Act: 10 failures, then 10 successes push every failure out.
    for (int i = 0; i < 10; ++i)
        c.on_query_finished(lost_query());
    EXPECT_EQ(c.snapshot().success_rate, 0.0);
    for (int i = 0; i < 10; ++i)
        c.on_query_finished(ok_query());
    EXPECT_EQ(c.snapshot().success_rate, 1.0);
    // Act: 5 more failures replace the 5 oldest successes.
    for (int i = 0; i < 5; ++i)
        c.on_query_finished(lost_query());
    const metrics_snapshot s = c.snapshot();
    EXPECT_EQ(s.window_outcomes, 10u);
    EXPECT_DOUBLE_EQ(s.success_rate, 0.5);
    // Counters are totals, not windowed.
    EXPECT_EQ(s.queries_failed, 15u);
}

TEST(Stats, ApplicationErrorsAndCancellationsStayOutOfTheWindow)
{
    // A unique violation and a cancellation say nothing about the database's health.
    stats_collector c;
    c.on_query_finished(ok_query());
    c.on_query_finished(duplicate_key());
    c.on_query_finished({.outcome = query_outcome::cancelled});
    const metrics_snapshot s = c.snapshot();
    EXPECT_EQ(s.window_outcomes, 1u);
    EXPECT_EQ(s.success_rate, 1.0);
    EXPECT_EQ(s.queries_failed, 1u);
    EXPECT_FALSE(s.last_failure); // not a health failure either
}

TEST(Stats, LastFailureStampsInjectedClockAndRedactedMessage)
{
    stats_collector c({.now = &fixed_now});
    query_event e = lost_query();
    e.state = pgcoro::sqlstate("08006");
    c.on_query_finished(e);
    const metrics_snapshot s = c.snapshot();
    ASSERT_TRUE(s.last_failure);
    EXPECT_EQ(*s.last_failure, fixed_now());
    EXPECT_EQ(s.last_failure_message,
              "connection_lost [08006]: server closed the connection unexpectedly");
}

TEST(Stats, ConnectFailureAndAcquireTimeoutAreLastFailures)
{
    stats_collector c({.now = &fixed_now});
    c.on_connect_failed({.code = make_error_code(errc::connect_failed),
                         .state = pgcoro::sqlstate("28P01"),
                         .message = "password authentication failed for user \"app\""});
    EXPECT_EQ(c.snapshot().last_failure_message,
              "connect_failed [28P01]: password authentication failed for user \"app\"");
    c.on_acquire({.outcome = acquire_outcome::timed_out,
                  .waited = 5s,
                  .code = make_error_code(errc::pool_timeout)});
    EXPECT_EQ(c.snapshot().last_failure_message, "pool_timeout: acquire timed out");
}

TEST(Stats, BreakerStateFollowsTransitions)
{
    stats_collector c;
    c.on_breaker_transition({breaker_state::closed, breaker_state::open});
    c.on_breaker_transition({breaker_state::open, breaker_state::half_open});
    EXPECT_EQ(c.snapshot().breaker, breaker_state::half_open);
    c.on_breaker_transition({breaker_state::half_open, breaker_state::closed});
    const metrics_snapshot s = c.snapshot();
    EXPECT_EQ(s.breaker, breaker_state::closed);
    EXPECT_EQ(s.breaker_transitions, 3u);
}

TEST(Stats, SnapshotEmbedsPoolGauges)
{
    stats_collector c;
    pgcoro::pool_stats g;
    g.size = 5;
    g.idle = 2;
    g.leased = 3;
    g.waiters = 1;
    const metrics_snapshot s = c.snapshot(g);
    ASSERT_TRUE(s.pool);
    EXPECT_EQ(s.pool->leased, 3u);
    EXPECT_EQ(s.pool->waiters, 1u);
}

TEST(Stats, ZeroWindowIsTreatedAsOne)
{
    stats_collector c({.window = 0});
    c.on_query_finished(lost_query());
    c.on_query_finished(ok_query());
    const metrics_snapshot s = c.snapshot();
    EXPECT_EQ(s.window_capacity, 1u);
    EXPECT_EQ(s.success_rate, 1.0);
}

TEST(Stats, ConcurrentRecordersFromSeveralThreads)
{
    // Setup: 4 threads each report 20'000 statements (every 4th a transient failure) and
    // 20'000 acquires, while a fifth thread keeps taking snapshots.
    stats_collector c({.window = 100});
    constexpr int threads = 4;
    constexpr int per_thread = 20'000;
    std::atomic<bool> done{false};
    std::thread reader(
        [&]
        {
            while (!done.load())
            {
                const metrics_snapshot s = c.snapshot();
                EXPECT_GE(s.success_rate, 0.0);
                EXPECT_LE(s.success_rate, 1.0);
                EXPECT_LE(s.window_outcomes, 100u);
            }
        });
    std::vector<std::thread> writers;
    for (int t = 0; t < threads; ++t)
        writers.emplace_back(
            [&]
            {
                for (int i = 0; i < per_thread; ++i)
                {
                    c.on_query_finished(i % 4 == 3 ? lost_query() : ok_query());
                    c.on_acquire({.outcome = acquire_outcome::immediate,
                                  .waited = std::chrono::microseconds(i % 50)});
                }
            });
    for (auto& w : writers)
        w.join();
    done = true;
    reader.join();
    // Check: no event lost; the window is full and three quarters successes (each thread's
    // last 25 pushes follow the same 3:1 pattern, interleaved in some order).
    const metrics_snapshot s = c.snapshot();
    const std::uint64_t n = std::uint64_t{threads} * per_thread;
    EXPECT_EQ(s.queries_succeeded, n * 3 / 4);
    EXPECT_EQ(s.queries_failed, n / 4);
    EXPECT_EQ(s.query_duration.count, n);
    EXPECT_EQ(s.acquired_immediately, n);
    EXPECT_EQ(s.acquire_wait.count, n);
    EXPECT_EQ(s.window_outcomes, 100u);
    EXPECT_NEAR(s.success_rate, 0.75, 0.1);
}
