// Unit tests for pgcoro/circuit_breaker.hpp: transitions, windows, probes, what counts.
// Time is a manual clock the tests move by hand.
#include <pgcoro/circuit_breaker.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using pgcoro::breaker_state;
using pgcoro::errc;
using pgcoro::expected;

namespace
{

// A clock that only moves when a test says so.
struct manual_clock
{
    using duration = std::chrono::steady_clock::duration;
    using rep = duration::rep;
    using period = duration::period;
    using time_point = std::chrono::steady_clock::time_point;

    time_point* t;
    time_point now() const { return *t; }
};

using breaker = pgcoro::basic_circuit_breaker<manual_clock>;

pgcoro::error transient()
{
    return pgcoro::error(errc::connect_failed, "refused");
}
pgcoro::error unique_violation()
{
    return pgcoro::error(errc::query_failed, "duplicate key", pgcoro::sqlstate("23505"));
}

// A breaker under test with its clock, its recorded transitions and a synchronous call().
struct fixture
{
    explicit fixture(pgcoro::breaker_config cfg) : b(cfg, manual_clock{&now})
    {
        b.on_transition([this](const pgcoro::breaker_transition& t) { seen.push_back(t); });
    }

    // Runs one call through the breaker whose operation returns `outcome` after `takes`.
    expected<int> call(expected<int> outcome, manual_clock::duration takes = 0s)
    {
        asio::io_context io;
        std::optional<expected<int>> r;
        asio::co_spawn(
            io,
            [&]() -> asio::awaitable<void>
            {
                r = co_await b.run(
                    [&]() -> asio::awaitable<expected<int>>
                    {
                        ++op_calls;
                        now += takes;
                        co_return outcome;
                    });
            },
            asio::detached);
        io.run();
        return std::move(*r);
    }
    expected<int> fail_once() { return call(tl::unexpected(transient())); }
    expected<int> succeed_once() { return call(1); }

    std::vector<std::pair<breaker_state, breaker_state>> transitions() const
    {
        std::vector<std::pair<breaker_state, breaker_state>> out;
        for (auto& t : seen)
            out.emplace_back(t.from, t.to);
        return out;
    }

    manual_clock::time_point now{std::chrono::hours(1)};
    breaker b;
    std::vector<pgcoro::breaker_transition> seen;
    int op_calls = 0;
};

pgcoro::breaker_config consecutive(unsigned n)
{
    pgcoro::breaker_config c;
    c.failure_threshold = n;
    c.failure_rate_threshold = 0.0; // rate rule off
    c.open_duration = 10s;
    return c;
}

using T = std::pair<breaker_state, breaker_state>;
constexpr auto s_closed = breaker_state::closed;
constexpr auto s_open = breaker_state::open;
constexpr auto s_half_open = breaker_state::half_open;

} // namespace

static_assert(pgcoro::breaker_config{}.failure_threshold == 5);

TEST(Breaker, OpensAfterConsecutiveFailuresAndRejectsWithoutCalling)
{
    // Setup
    fixture f(consecutive(3));
    // Act: three transient failures in a row.
    f.fail_once();
    f.fail_once();
    EXPECT_EQ(f.b.state(), s_closed);
    f.fail_once();
    // Check: closed -> open; the next call fails at once and never runs the operation.
    EXPECT_EQ(f.b.state(), s_open);
    auto r = f.succeed_once();
    ASSERT_FALSE(r.has_value());
    EXPECT_TRUE(r.error().is(errc::circuit_open)) << r.error();
    EXPECT_EQ(f.op_calls, 3);
    EXPECT_EQ(f.transitions(), (std::vector<T>{{s_closed, s_open}}));
}

TEST(Breaker, SuccessResetsConsecutiveFailures)
{
    fixture f(consecutive(3));
    f.fail_once();
    f.fail_once();
    f.succeed_once(); // back to zero
    f.fail_once();
    f.fail_once();
    EXPECT_EQ(f.b.state(), s_closed);
}

TEST(Breaker, ClosedOpenHalfOpenClosed)
{
    fixture f(consecutive(1));
    f.fail_once(); // closed -> open
    f.now += 9s;
    EXPECT_EQ(f.b.state(), s_open);
    EXPECT_FALSE(f.succeed_once().has_value()); // still open at 9 s
    f.now += 1s;
    EXPECT_EQ(f.b.state(), s_half_open);       // open -> half-open once open_duration passed
    EXPECT_TRUE(f.succeed_once().has_value()); // the probe succeeds: half-open -> closed
    EXPECT_EQ(f.b.state(), s_closed);
    EXPECT_EQ(f.transitions(),
              (std::vector<T>{{s_closed, s_open}, {s_open, s_half_open}, {s_half_open, s_closed}}));
}

TEST(Breaker, HalfOpenProbeFailureReopensForAnotherOpenDuration)
{
    fixture f(consecutive(1));
    f.fail_once();
    f.now += 10s;
    f.fail_once(); // the probe fails: half-open -> open
    EXPECT_EQ(f.b.state(), s_open);
    f.now += 9s;
    EXPECT_EQ(f.b.state(), s_open); // the open period restarted at the probe's failure
    f.now += 1s;
    EXPECT_EQ(f.b.state(), s_half_open);
    EXPECT_EQ(f.transitions(), (std::vector<T>{{s_closed, s_open},
                                               {s_open, s_half_open},
                                               {s_half_open, s_open},
                                               {s_open, s_half_open}}));
}

TEST(Breaker, HalfOpenAdmitsOnlyTheConfiguredProbes)
{
    // Setup: two probes allowed; they stay in flight until the test releases them.
    auto cfg = consecutive(1);
    cfg.half_open_calls = 2;
    fixture f(cfg);
    f.fail_once();
    f.now += 10s;
    asio::io_context io;
    asio::steady_timer gate(io, std::chrono::hours(1));
    std::vector<expected<int>> results;
    int started = 0;
    auto probe = [&]() -> asio::awaitable<void>
    {
        auto r = co_await f.b.run(
            [&]() -> asio::awaitable<expected<int>>
            {
                ++started;
                co_await gate.async_wait(asio::as_tuple(asio::use_awaitable));
                co_return 1;
            });
        results.push_back(std::move(r));
    };
    // Act: three callers while half-open.
    for (int i = 0; i < 3; ++i)
        asio::co_spawn(io, probe(), asio::detached);
    io.poll();
    // Check: two probes run, the third is rejected at once.
    EXPECT_EQ(started, 2);
    ASSERT_EQ(results.size(), 1u);
    EXPECT_TRUE(results[0].error().is(errc::circuit_open));
    // Both probes succeed: half-open -> closed.
    gate.cancel();
    io.run();
    EXPECT_EQ(results.size(), 3u);
    EXPECT_EQ(f.b.state(), s_closed);
}

TEST(Breaker, FailureRateOpensOnlyWithMinimumCalls)
{
    // Setup: rate rule only: >= 50% of the last 10 calls, at least 4 calls.
    pgcoro::breaker_config cfg;
    cfg.failure_threshold = 0;
    cfg.failure_rate_threshold = 0.5;
    cfg.window_size = 10;
    cfg.minimum_calls = 4;
    fixture f(cfg);
    // Act / Check: F S F is 67% but only 3 calls: stays closed.
    f.fail_once();
    f.succeed_once();
    f.fail_once();
    EXPECT_EQ(f.b.state(), s_closed);
    // A 4th call, a success, makes 2 of 4 = 50%: opens.
    f.succeed_once();
    EXPECT_EQ(f.b.state(), s_open);
}

TEST(Breaker, FailureRateWindowSlides)
{
    // Setup: >= 75% of the last 4 calls.
    pgcoro::breaker_config cfg;
    cfg.failure_threshold = 0;
    cfg.failure_rate_threshold = 0.75;
    cfg.window_size = 4;
    cfg.minimum_calls = 4;
    fixture f(cfg);
    // Act: S S S F F: the full windows are S S S F (25%) and S S F F (50%): stays closed.
    for (int i = 0; i < 3; ++i)
        f.succeed_once();
    f.fail_once();
    f.fail_once();
    EXPECT_EQ(f.b.state(), s_closed);
    // Check: one more failure slides the oldest success out: S F F F = 75%, opens.
    f.fail_once();
    EXPECT_EQ(f.b.state(), s_open);
}

TEST(Breaker, UniqueViolationDoesNotCount)
{
    fixture f(consecutive(1));
    for (int i = 0; i < 5; ++i)
    {
        auto r = f.call(tl::unexpected(unique_violation()));
        EXPECT_EQ(r.error().state, "23505"); // passed through unchanged
    }
    EXPECT_EQ(f.b.state(), s_closed); // the database answered: not a failure
    EXPECT_EQ(f.op_calls, 5);
}

TEST(Breaker, CancelledCallsAreNotCounted)
{
    fixture f(consecutive(2));
    f.fail_once();
    f.call(tl::unexpected(pgcoro::error(errc::cancelled, "cancelled")));
    EXPECT_EQ(f.b.state(), s_closed);
    f.fail_once(); // the cancelled call neither failed nor reset the count
    EXPECT_EQ(f.b.state(), s_open);
}

TEST(Breaker, SlowCallsCountAsFailures)
{
    auto cfg = consecutive(2);
    cfg.slow_call_threshold = 500ms;
    fixture f(cfg);
    EXPECT_TRUE(f.call(1, 600ms).has_value()); // succeeded, but slow
    EXPECT_EQ(f.b.state(), s_closed);
    f.call(1, 100ms); // fast: resets
    f.call(1, 600ms);
    f.call(1, 700ms);
    EXPECT_EQ(f.b.state(), s_open);
}

TEST(Breaker, CustomFailurePredicate)
{
    auto cfg = consecutive(1);
    cfg.counts_as_failure = [](const pgcoro::error& e)
    {
        return e.state == "23505";
    };
    fixture f(cfg);
    f.fail_once(); // connect_failed does not count under this predicate
    EXPECT_EQ(f.b.state(), s_closed);
    f.call(tl::unexpected(unique_violation()));
    EXPECT_EQ(f.b.state(), s_open);
}

TEST(Breaker, LateResultFromBeforeOpeningChangesNothing)
{
    // The pure machine: a call admitted while closed finishes after the breaker opened.
    using machine = pgcoro::detail::breaker_machine<std::chrono::steady_clock::time_point>;
    auto cfg = consecutive(1);
    machine m(cfg);
    std::chrono::steady_clock::time_point t{std::chrono::hours(1)};
    auto slow = m.admit(cfg, t);
    auto fast = m.admit(cfg, t);
    ASSERT_TRUE(slow.admitted && fast.admitted);
    EXPECT_TRUE(m.complete(cfg, fast.generation, pgcoro::detail::call_outcome::failure, t));
    EXPECT_EQ(m.state(), s_open);
    // The late success belongs to the closed period: the breaker stays open.
    EXPECT_FALSE(m.complete(cfg, slow.generation, pgcoro::detail::call_outcome::success, t));
    EXPECT_EQ(m.state(), s_open);
}

TEST(Breaker, ExceptionGivesBackTheProbeSlot)
{
    fixture f(consecutive(1));
    f.fail_once();
    f.now += 10s;
    asio::io_context io;
    std::exception_ptr ex;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void>
        {
            (void)co_await f.b.run(
                []() -> asio::awaitable<expected<int>>
                {
                    throw std::runtime_error("user bug");
                    co_return 0;
                });
        },
        [&](std::exception_ptr e) { ex = e; });
    io.run();
    EXPECT_TRUE(ex);
    EXPECT_EQ(f.b.state(), s_half_open);
    EXPECT_TRUE(f.succeed_once().has_value()); // the slot was freed for this probe
    EXPECT_EQ(f.b.state(), s_closed);
}

// Issue 18, finding 8: the half-open probe slot was never given back when the frame running
// run() was destroyed mid-call (15aed96: the breaker then rejected every call forever).
TEST(Breaker, AProbeWhoseFrameIsDestroyedGivesBackItsSlot)
{
    fixture f(consecutive(1));
    f.fail_once();
    f.now += 10s;
    {
        asio::io_context io;
        bool started = false;
        asio::co_spawn(
            io,
            [&]() -> asio::awaitable<void>
            {
                (void)co_await f.b.run(
                    [&]() -> asio::awaitable<expected<int>>
                    {
                        started = true;
                        asio::steady_timer t(co_await asio::this_coro::executor, 1h);
                        co_await t.async_wait(asio::use_awaitable);
                        co_return 0;
                    });
            },
            asio::detached);
        io.run_one(); // the probe starts and suspends
        io.poll();
        ASSERT_TRUE(started);
        EXPECT_EQ(f.b.state(), s_half_open);
        EXPECT_FALSE(f.succeed_once().has_value()) << "the only probe slot is taken";
    } // io_context destroyed: the probe's frame with it
    EXPECT_TRUE(f.succeed_once().has_value()) << "the slot came back";
    EXPECT_EQ(f.b.state(), s_closed);
}

TEST(Breaker, SharedBetweenThreads)
{
    // Many threads, each running its own io_context, share one breaker on the real clock.
    pgcoro::breaker_config cfg;
    cfg.failure_threshold = 0;
    cfg.failure_rate_threshold = 0.0;
    pgcoro::circuit_breaker b(cfg);
    std::atomic<int> ok{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < 8; ++i)
        threads.emplace_back(
            [&, i]
            {
                asio::io_context io;
                for (int k = 0; k < 200; ++k)
                    asio::co_spawn(
                        io,
                        [&b, &ok, i, k]() -> asio::awaitable<void>
                        {
                            auto r = co_await b.run(
                                [&]() -> asio::awaitable<expected<int>>
                                {
                                    if ((k + i) % 2)
                                        co_return tl::unexpected(transient());
                                    co_return 1;
                                });
                            if (r)
                                ++ok;
                        },
                        asio::detached);
                io.run();
            });
    for (auto& th : threads)
        th.join();
    EXPECT_EQ(ok.load(), 800); // rules disabled: never opens, every success got through
    EXPECT_EQ(b.state(), s_closed);
}

TEST(Breaker, StateToString)
{
    EXPECT_EQ(to_string(breaker_state::closed), "closed");
    EXPECT_EQ(to_string(breaker_state::open), "open");
    EXPECT_EQ(to_string(breaker_state::half_open), "half_open");
}
