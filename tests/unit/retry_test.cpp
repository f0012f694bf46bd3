// Unit tests for pgcoro/retry.hpp: classification, attempts, delays, deadline and budget.
// Time is a manual clock that only the fake sleep moves; nothing here waits for real.
#include <pgcoro/retry.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <random>
#include <stdexcept>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using pgcoro::errc;
using pgcoro::expected;
using ms = std::chrono::milliseconds;
using time_point = std::chrono::steady_clock::time_point;

namespace
{

// Runs a coroutine on a fresh io_context to completion; rethrows what it threw.
template <class T>
T run(asio::awaitable<T> aw)
{
    asio::io_context io;
    std::optional<T> out;
    std::exception_ptr ex;
    asio::co_spawn(io, std::move(aw),
                   [&](std::exception_ptr e, T v)
                   {
                       ex = e;
                       out.emplace(std::move(v));
                   });
    io.run();
    if (ex)
        std::rethrow_exception(ex);
    return std::move(*out);
}

// A manual clock and a sleep that records each delay and moves the clock by it at once.
struct fake_time
{
    time_point now{std::chrono::hours(1)};
    std::vector<ms> slept;

    pgcoro::retry_hooks hooks(double u = 0.5)
    {
        pgcoro::retry_hooks h;
        h.now = [this]
        {
            return now;
        };
        h.sleep = [this](ms d) -> asio::awaitable<expected<void>>
        {
            slept.push_back(d);
            now += d;
            co_return expected<void>{};
        };
        h.uniform = [u]
        {
            return u;
        };
        return h;
    }
};

pgcoro::error err(errc e, const char* state = "")
{
    return pgcoro::error(e, "injected", pgcoro::sqlstate(state));
}

// An operation that fails with `failures[i]` on call i and succeeds (with the call number)
// after them; counts its calls.
struct scripted_op
{
    std::vector<pgcoro::error> failures;
    int calls = 0;

    auto fn()
    {
        return [this]() -> asio::awaitable<expected<int>>
        {
            ++calls;
            if (static_cast<std::size_t>(calls) <= failures.size())
                co_return tl::unexpected(failures[static_cast<std::size_t>(calls) - 1]);
            co_return calls;
        };
    }
};

pgcoro::retry_policy no_jitter(unsigned attempts = 3)
{
    pgcoro::retry_policy p;
    p.max_attempts = attempts;
    p.backoff.jitter = pgcoro::jitter_kind::none;
    return p;
}

} // namespace

// The default policy is a literal type, so presets can be constexpr.
static_assert(pgcoro::retry_policy{}.max_attempts == 3);
static_assert(pgcoro::retry_policy{}.backoff.initial == 1s);

// circuit_open moved to "not retried" (issue 19: 15aed96 retried it, so while the breaker was
// open each call slept 1.5-3 s of backoff instead of failing fast).
TEST(Retry, DefaultClassificationRetriesOnlyWhatCannotHaveWritten)
{
    pgcoro::retry_policy p;
    // Retried: nothing was done, or the server rolled the statement back.
    for (auto e : {err(errc::connect_failed), err(errc::pool_timeout), err(errc::too_many_waiters),
                   err(errc::query_failed, "40001"), err(errc::query_failed, "40P01"),
                   err(errc::connect_failed, "53300"), err(errc::connect_failed, "57P01"),
                   err(errc::connect_failed, "57P02"), err(errc::connect_failed, "57P03")})
        EXPECT_TRUE(pgcoro::is_retryable(p, e)) << e;
    // Not retried: permanent errors, cancellation, and outcome unknown.
    for (auto e : {err(errc::query_failed, "23505"), err(errc::query_failed, "42601"),
                   err(errc::query_failed, "22012"), err(errc::query_failed, "42501"),
                   err(errc::connect_failed, "28P01"), err(errc::connect_failed, "08P01"),
                   err(errc::cancelled), err(errc::connection_lost), err(errc::circuit_open),
                   err(errc::connection_lost, "57P01"), err(errc::timeout)})
        EXPECT_FALSE(pgcoro::is_retryable(p, e)) << e;
    // Marked idempotent, the outcome-unknown ones are retried too; cancelled still is not.
    p.idempotent = true;
    EXPECT_TRUE(pgcoro::is_retryable(p, err(errc::connection_lost)));
    EXPECT_TRUE(pgcoro::is_retryable(p, err(errc::timeout)));
    EXPECT_FALSE(pgcoro::is_retryable(p, err(errc::cancelled)));
    EXPECT_FALSE(pgcoro::is_retryable(p, err(errc::query_failed, "23505")));
}

TEST(Retry, SucceedsFirstTimeWithoutSleeping)
{
    fake_time t;
    scripted_op op;
    auto r = run(pgcoro::retry(no_jitter(), op.fn(), t.hooks()));
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(*r, 1);
    EXPECT_EQ(op.calls, 1);
    EXPECT_TRUE(t.slept.empty());
}

TEST(Retry, TransientFailuresRetriedWithBackoffSequence)
{
    // Setup: two transient failures, then success.
    fake_time t;
    scripted_op op{{err(errc::connect_failed), err(errc::query_failed, "40001")}};
    std::vector<pgcoro::retry_event> events;
    auto hooks = t.hooks();
    hooks.on_retry = [&](const pgcoro::retry_event& e)
    {
        events.push_back(e);
    };
    // Act
    auto r = run(pgcoro::retry(no_jitter(), op.fn(), hooks));
    // Check: third call succeeds after sleeping 1 s then 2 s.
    ASSERT_TRUE(r.has_value()) << r.error();
    EXPECT_EQ(*r, 3);
    EXPECT_EQ(t.slept, (std::vector<ms>{1s, 2s}));
    ASSERT_EQ(events.size(), 2u);
    EXPECT_EQ(events[0].attempt, 1u);
    EXPECT_EQ(events[0].delay, 1s);
    EXPECT_TRUE(events[0].failure.is(errc::connect_failed));
    EXPECT_EQ(events[1].attempt, 2u);
    EXPECT_EQ(events[1].failure.state, "40001");
}

TEST(Retry, StopsAfterMaxAttemptsWithLastError)
{
    fake_time t;
    scripted_op op{{err(errc::query_failed, "40P01"), err(errc::query_failed, "40P01"),
                    err(errc::query_failed, "40001"), err(errc::query_failed, "40001")}};
    auto r = run(pgcoro::retry(no_jitter(), op.fn(), t.hooks()));
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(op.calls, 3);
    EXPECT_EQ(r.error().state, "40001");
    EXPECT_EQ(t.slept, (std::vector<ms>{1s, 2s})); // no sleep after the last attempt
}

TEST(Retry, UniqueViolationReturnedAtOnce)
{
    fake_time t;
    scripted_op op{{err(errc::query_failed, "23505")}};
    auto r = run(pgcoro::retry(no_jitter(), op.fn(), t.hooks()));
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().state, "23505");
    EXPECT_EQ(op.calls, 1);
    EXPECT_TRUE(t.slept.empty());
}

TEST(Retry, ConnectionLostRetriedOnlyWhenIdempotent)
{
    fake_time t;
    scripted_op op{{err(errc::connection_lost), err(errc::connection_lost)}};
    auto r = run(pgcoro::retry(no_jitter(), op.fn(), t.hooks()));
    EXPECT_FALSE(r.has_value());
    EXPECT_EQ(op.calls, 1); // the INSERT may have committed: not run again

    scripted_op again{{err(errc::connection_lost), err(errc::timeout)}};
    auto p = no_jitter();
    p.idempotent = true;
    auto r2 = run(pgcoro::retry(p, again.fn(), t.hooks()));
    ASSERT_TRUE(r2.has_value());
    EXPECT_EQ(again.calls, 3);
}

TEST(Retry, CustomPredicateReplacesTransientTable)
{
    fake_time t;
    scripted_op op{{err(errc::query_failed, "55000"), err(errc::connect_failed)}};
    auto p = no_jitter();
    p.retry_if = [](const pgcoro::error& e)
    {
        return e.state == "55000";
    };
    auto r = run(pgcoro::retry(p, op.fn(), t.hooks()));
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(op.calls, 2); // 55000 retried; connect_failed is not in the custom predicate
    EXPECT_TRUE(r.error().is(errc::connect_failed));
}

TEST(Retry, JitteredDelaysStayInBounds)
{
    // Setup: seeded randomness, equal jitter (the default): [base/2, base).
    std::mt19937_64 rng(2024);
    fake_time t;
    auto hooks = t.hooks();
    hooks.uniform = [&]
    {
        return pgcoro::detail::uniform01(rng);
    };
    pgcoro::retry_policy p;
    p.max_attempts = 5;
    scripted_op op{{err(errc::pool_timeout), err(errc::pool_timeout), err(errc::pool_timeout),
                    err(errc::pool_timeout), err(errc::pool_timeout)}};
    // Act
    auto r = run(pgcoro::retry(p, op.fn(), hooks));
    // Check
    EXPECT_FALSE(r.has_value());
    ASSERT_EQ(t.slept.size(), 4u);
    for (unsigned a = 1; a <= 4; ++a)
    {
        auto base = pgcoro::backoff_base(p.backoff, a);
        EXPECT_GE(t.slept[a - 1], base / 2);
        EXPECT_LT(t.slept[a - 1], base);
    }
}

TEST(Retry, CapBoundsTheSleeps)
{
    fake_time t;
    auto p = no_jitter(6);
    p.backoff.cap = 3s;
    scripted_op op{std::vector<pgcoro::error>(6, err(errc::connect_failed))};
    auto r = run(pgcoro::retry(p, op.fn(), t.hooks()));
    EXPECT_FALSE(r.has_value());
    EXPECT_EQ(t.slept, (std::vector<ms>{1s, 2s, 3s, 3s, 3s}));
}

TEST(Retry, DeadlineStopsBeforeSleepingPastIt)
{
    // Setup: 2.5 s overall; delays would be 1 s, 2 s, 4 s, ...
    fake_time t;
    auto p = no_jitter(10);
    p.deadline = 2500ms;
    scripted_op op{std::vector<pgcoro::error>(10, err(errc::connect_failed))};
    // Act
    auto r = run(pgcoro::retry(p, op.fn(), t.hooks()));
    // Check: attempt 1 at 0 s, sleep 1 s, attempt 2 at 1 s; a 2 s sleep would end at 3 s.
    EXPECT_FALSE(r.has_value());
    EXPECT_EQ(op.calls, 2);
    EXPECT_EQ(t.slept, (std::vector<ms>{1s}));
}

TEST(Retry, BudgetExhaustedStopsRetrying)
{
    // Setup: a budget of 2 retries per window, no matter the traffic.
    fake_time t;
    auto hooks = t.hooks();
    hooks.budget = std::make_shared<pgcoro::retry_budget>(
        pgcoro::retry_budget_config{.ratio = 0.0, .window = 10s, .min_retries = 2});
    auto p = no_jitter(10);
    p.backoff.initial = 1ms;
    // Act: the first call spends both retries...
    scripted_op first{std::vector<pgcoro::error>(10, err(errc::connect_failed))};
    auto r1 = run(pgcoro::retry(p, first.fn(), hooks));
    // ...so the second gets none.
    scripted_op second{std::vector<pgcoro::error>(10, err(errc::connect_failed))};
    auto r2 = run(pgcoro::retry(p, second.fn(), hooks));
    // Check
    EXPECT_FALSE(r1.has_value());
    EXPECT_EQ(first.calls, 3);
    EXPECT_FALSE(r2.has_value());
    EXPECT_EQ(second.calls, 1);
    // After the window the tokens are back.
    t.now += 11s;
    scripted_op third{{err(errc::connect_failed)}};
    EXPECT_TRUE(run(pgcoro::retry(p, third.fn(), hooks)).has_value());
    EXPECT_EQ(third.calls, 2);
}

TEST(Retry, CancelledSleepEndsWithCancelled)
{
    fake_time t;
    auto hooks = t.hooks();
    hooks.sleep = [](ms) -> asio::awaitable<expected<void>>
    {
        co_return pgcoro::fail(errc::cancelled, "sleep cancelled");
    };
    scripted_op op{{err(errc::connect_failed)}};
    auto r = run(pgcoro::retry(no_jitter(), op.fn(), hooks));
    ASSERT_FALSE(r.has_value());
    EXPECT_TRUE(r.error().is(errc::cancelled));
    EXPECT_EQ(op.calls, 1);
}

TEST(Retry, ExceptionFromOperationPropagates)
{
    fake_time t;
    int calls = 0;
    auto op = [&]() -> asio::awaitable<expected<int>>
    {
        ++calls;
        throw std::runtime_error("user bug");
        co_return 0;
    };
    EXPECT_THROW(run(pgcoro::retry(no_jitter(), op, t.hooks())), std::runtime_error);
    EXPECT_EQ(calls, 1);
}

TEST(Retry, VoidOperationsWork)
{
    fake_time t;
    int calls = 0;
    auto op = [&]() -> asio::awaitable<expected<void>>
    {
        if (++calls == 1)
            co_return pgcoro::fail(errc::connect_failed, "refused");
        co_return expected<void>{};
    };
    auto r = run(pgcoro::retry(no_jitter(), op, t.hooks()));
    EXPECT_TRUE(r.has_value());
    EXPECT_EQ(calls, 2);
}

TEST(RetryBudget, RetriesAreAFractionOfCallsOverTheWindow)
{
    // Setup: 50% of calls, no free retries.
    pgcoro::retry_budget b({.ratio = 0.5, .window = 10s, .min_retries = 0});
    time_point t0{std::chrono::hours(5)};
    EXPECT_FALSE(b.try_withdraw(t0)); // no calls yet, no tokens
    for (int i = 0; i < 4; ++i)
        b.record_call(t0);
    // Act / Check: 4 calls buy 2 retries.
    EXPECT_DOUBLE_EQ(b.available(t0), 2.0);
    EXPECT_TRUE(b.try_withdraw(t0 + 1s));
    EXPECT_TRUE(b.try_withdraw(t0 + 2s));
    EXPECT_FALSE(b.try_withdraw(t0 + 3s));
    // A window later, the calls have expired (and so have the retries).
    EXPECT_DOUBLE_EQ(b.available(t0 + 12s), 0.0);
    b.record_call(t0 + 12s);
    b.record_call(t0 + 12s);
    EXPECT_TRUE(b.try_withdraw(t0 + 12s));
    EXPECT_FALSE(b.try_withdraw(t0 + 12s));
}

TEST(RetryBudget, SafeUnderConcurrentWithdrawals)
{
    pgcoro::retry_budget b({.ratio = 0.0, .window = 10s, .min_retries = 1000});
    time_point t0{std::chrono::hours(5)};
    std::atomic<int> granted{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < 8; ++i)
        threads.emplace_back(
            [&]
            {
                for (int k = 0; k < 500; ++k)
                    if (b.try_withdraw(t0))
                        ++granted;
            });
    for (auto& th : threads)
        th.join();
    EXPECT_EQ(granted.load(), 1000); // exactly the budget, never more
}
