// SPDX-License-Identifier: BSL-1.0
// pgcoro/async.hpp - any pgcoro awaitable (retry(), with_timeout(), circuit_breaker::run(),
// transact(), ...) as an Asio asynchronous operation with any completion token.
#ifndef PGCORO_ASYNC_HPP
#define PGCORO_ASYNC_HPP

#include <pgcoro/detail/async_op.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <utility>

namespace pgcoro
{

/// Runs `op`, one of pgcoro's awaitable operations (the combinators included), as an Asio
/// asynchronous operation completing through `token` (a callback, use_future, deferred,
/// as_tuple, use_awaitable, parallel_group, ...) with `void(T)` for an awaitable<T> (`void()`
/// for awaitable<void>). `op` runs on a strand of `ex`; the handler runs on its associated
/// executor (default: `ex`), never inside this call; its cancellation slot cancels `op`.
/// The pool, connections and pipelines have async_* members built on it.
template <class T, class CompletionToken>
auto async_run(boost::asio::any_io_executor ex, boost::asio::awaitable<T> op,
               CompletionToken&& token)
{
    return detail::async_run(std::move(ex), std::move(op), std::forward<CompletionToken>(token));
}

} // namespace pgcoro

#endif // PGCORO_ASYNC_HPP
