// SPDX-License-Identifier: BSL-1.0
// pgcoro/detail/resilience_op.hpp - what the resilience combinators share: the shape of an
// operation, a cancellation check, a cancellable sleep.
#ifndef PGCORO_DETAIL_RESILIENCE_OP_HPP
#define PGCORO_DETAIL_RESILIENCE_OP_HPP

#include <pgcoro/error.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <tl/expected.hpp>

#include <chrono>
#include <concepts>
#include <functional>
#include <optional>
#include <type_traits>

namespace pgcoro::detail
{

// An "operation" is a callable taking no arguments and returning
// asio::awaitable<expected<T>>. The combinators call it once per attempt, so a fresh
// coroutine (and, through a pool, a fresh connection) is made each time.
template <class A>
struct awaitable_expected
{
    static constexpr bool value = false;
};

template <class T>
struct awaitable_expected<boost::asio::awaitable<tl::expected<T, error>>>
{
    static constexpr bool value = true;
    using value_type = T;
};

template <class Op>
concept expected_operation = std::invocable<Op&> &&
    awaitable_expected<std::remove_cvref_t<std::invoke_result_t<Op&>>>::value;

// The T of an operation returning awaitable<expected<T>>.
template <class Op>
using operation_value_t =
    typename awaitable_expected<std::remove_cvref_t<std::invoke_result_t<Op&>>>::value_type;

// True when the awaiting coroutine has been asked to stop. Checked right before starting an
// Asio operation: with throw_if_cancelled (the default) Asio would throw on initiation, and
// nothing between this check and the initiation suspends.
inline boost::asio::awaitable<bool> cancellation_requested()
{
    auto cs = co_await boost::asio::this_coro::cancellation_state;
    co_return cs.cancelled() != boost::asio::cancellation_type::none;
}

// The default sleep of retry(): a steady_timer on the awaiting coroutine's executor. A
// cancelled wait is reported as a value, never thrown.
inline boost::asio::awaitable<expected<void>> steady_sleep(std::chrono::milliseconds d)
{
    if (co_await cancellation_requested())
        co_return fail(errc::cancelled, "cancelled before sleeping");
    boost::asio::steady_timer t(co_await boost::asio::this_coro::executor, d);
    auto [ec] = co_await t.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
    if (ec)
        co_return fail(errc::cancelled, "sleep cancelled");
    co_return expected<void>{};
}

// co_spawn hands `T()` to its handler when the coroutine throws, so the spawned result must be
// default-constructible; expected<connection> is not. An optional is, and stays empty then.
template <class T>
boost::asio::awaitable<std::optional<expected<T>>>
as_optional(boost::asio::awaitable<expected<T>> a)
{
    co_return co_await std::move(a);
}
} // namespace pgcoro::detail

#endif // PGCORO_DETAIL_RESILIENCE_OP_HPP
