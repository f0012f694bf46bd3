// SPDX-License-Identifier: BSL-1.0
// pgcoro/with_timeout.hpp - an operation raced against a timer.
#ifndef PGCORO_WITH_TIMEOUT_HPP
#define PGCORO_WITH_TIMEOUT_HPP

#include <pgcoro/error.hpp>
#include <pgcoro/events.hpp>
#include <pgcoro/observer.hpp>

#include <pgcoro/detail/resilience_op.hpp>
#include <pgcoro/detail/spawn_on.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <utility>

namespace pgcoro
{

namespace detail
{
// with_timeout()'s race, run on a strand: a parallel group's launch and its two completions
// must not run concurrently, which they would on a multi-threaded io_context's raw executor.
// (Returns a unique_ptr: co_spawn needs a default-constructible result, T may not be one, and
// with std::optional GCC 12 -O1 -fsanitize=address warns maybe-uninitialized inside co_spawn.)
template <class T>
boost::asio::awaitable<std::unique_ptr<expected<T>>>
race_with_timer(std::chrono::steady_clock::duration d, boost::asio::awaitable<expected<T>> op,
                observer* obs)
{
    namespace asio = boost::asio;
    auto ex = co_await asio::this_coro::executor; // a strand (with_timeout)
    asio::steady_timer timer(ex, d);
    // wait_for_one: the first to finish cancels the other, then the group waits for both.
    auto [order, thrown, result, timer_ec] =
        co_await asio::experimental::make_parallel_group(
            asio::co_spawn(ex, detail::as_optional(std::move(op)), asio::deferred),
            timer.async_wait(asio::deferred))
            .async_wait(asio::experimental::wait_for_one(), asio::use_awaitable);
    if (thrown)
        std::rethrow_exception(thrown);
    // The timer finishing first without an error means it expired. When it finished first with
    // operation_aborted, the caller's cancellation reached it: op's result says what happened.
    if (order[0] == 1 && !timer_ec)
    {
        // The operation's own account of where it was (e.g. an acquire's pool state and last
        // connect error) is kept: "timed out" alone hides why.
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
        std::string msg = "operation timed out after " + std::to_string(ms) + " ms";
        if (result && !*result)
            msg += " (" + result->error().message + ")";
        if (obs)
            obs->on_deadline_expired(deadline_event{d});
        co_return std::make_unique<expected<T>>(fail(errc::timeout, std::move(msg)));
    }
    if (!result)
        co_return std::make_unique<expected<T>>(
            fail(errc::cancelled, "operation did not complete"));
    co_return std::make_unique<expected<T>>(std::move(*result));
}
} // namespace detail

/// Runs `op` against a timer of duration `d` started now; whichever finishes first wins.
///
/// Completes with: `op`'s own result when it finishes first.
/// Errors: `timeout` when the timer wins; its message ends with op's own (usually that it was
///   cancelled, and where it was: an acquire gives the pool's state and last connect error);
///   `cancelled` when the awaiting coroutine was cancelled before the start. Anything `op`
///   returns otherwise is passed through.
/// Cancellation: when the timer wins, `op` receives a terminal cancellation and with_timeout
///   waits for it to finish, so nothing of `op` outlives the call. A pgcoro query cancelled this
///   way is cancelled on the server and its connection drained (see connection::query()).
///   Cancelling the awaiting coroutine forwards the cancellation to `op` and returns its result.
/// Resumes on: the awaiting coroutine's executor; `op` runs as its own coroutine on a strand
///   of that executor (so the race is safe on a multi-threaded io_context without a strand).
/// Lifetime: `op` is owned by the call; whatever it refers to must outlive the call. An
///   exception thrown by `op` is rethrown after the timer has been stopped.
///
/// `obs` (optional) is told when the deadline ends the operation (on_deadline_expired): the
/// operation itself reports only that it was cancelled, which a success rate leaves out, so a
/// stats_collector needs this to count an outage's timeouts as failures.
template <class T>
boost::asio::awaitable<expected<T>> with_timeout(std::chrono::steady_clock::duration d,
                                                 boost::asio::awaitable<expected<T>> op,
                                                 observer* obs = nullptr)
{
    namespace asio = boost::asio;
    if (co_await detail::cancellation_requested())
        co_return fail(errc::cancelled, "cancelled before the operation started");
    auto strand = asio::make_strand(co_await asio::this_coro::executor);
    auto r = co_await detail::spawn_on(strand, detail::race_with_timer(d, std::move(op), obs));
    co_return std::move(*r);
}

/// with_timeout() for a callable `op` returning asio::awaitable<expected<T>>; `op` is called
/// once and kept alive until the race is over, so the coroutine it returns may refer to it.
/// The sections of the overload above apply.
template <detail::expected_operation Op>
auto with_timeout(std::chrono::steady_clock::duration d, Op op, observer* obs = nullptr)
    -> boost::asio::awaitable<expected<detail::operation_value_t<Op>>>
{
    co_return co_await with_timeout(d, op(), obs);
}

} // namespace pgcoro

#endif // PGCORO_WITH_TIMEOUT_HPP
