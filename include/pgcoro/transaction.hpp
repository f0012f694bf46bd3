// SPDX-License-Identifier: BSL-1.0
// pgcoro/transaction.hpp - running a transaction body, re-running it whole on conflicts.
#ifndef PGCORO_TRANSACTION_HPP
#define PGCORO_TRANSACTION_HPP

#include <pgcoro/connection.hpp>
#include <pgcoro/error.hpp>
#include <pgcoro/pool.hpp>
#include <pgcoro/retry.hpp>

#include <pgcoro/detail/resilience_op.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <libpq-fe.h>

#include <chrono>
#include <concepts>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace pgcoro
{

/// The isolation level a transaction is started with.
enum class isolation_level
{
    server_default,  ///< plain BEGIN: the session's default_transaction_isolation
    read_committed,  ///< BEGIN ISOLATION LEVEL READ COMMITTED
    repeatable_read, ///< BEGIN ISOLATION LEVEL REPEATABLE READ (may fail with 40001)
    serializable,    ///< BEGIN ISOLATION LEVEL SERIALIZABLE (may fail with 40001)
};

/// A short, stable name for an isolation level ("repeatable_read"), for logs and tests.
constexpr std::string_view to_string(isolation_level l) noexcept
{
    switch (l)
    {
    case isolation_level::server_default:
        return "server_default";
    case isolation_level::read_committed:
        return "read_committed";
    case isolation_level::repeatable_read:
        return "repeatable_read";
    case isolation_level::serializable:
        return "serializable";
    }
    return "unknown";
}

/// True for the failures that re-running the whole transaction resolves: serialization
/// failure (40001) and deadlock detected (40P01). transact()'s default retry predicate.
inline bool is_transaction_conflict(const error& e) noexcept
{
    return e.state == "40001" || e.state == "40P01";
}

/// How transact() starts a transaction and when it runs it again.
struct transaction_options
{
    /// Isolation level of every attempt. Default server_default (plain BEGIN).
    isolation_level isolation = isolation_level::server_default;
    /// BEGIN ... READ ONLY. Default false.
    bool read_only = false;
    /// BEGIN ... DEFERRABLE; only has an effect with serializable and read_only. Default false.
    bool deferrable = false;
    /// When to re-run the whole transaction. Default: up to 5 attempts on 40001/40P01 only,
    /// waiting 10 ms, 20 ms, 40 ms, ... (full jitter, cap 1 s). `connection_lost` (e.g. during
    /// COMMIT) is not retried: the connection is gone and the commit may have happened.
    retry_policy retry{.max_attempts = 5,
                       .backoff = {.initial = std::chrono::milliseconds(10),
                                   .multiplier = 2.0,
                                   .cap = std::chrono::seconds(1),
                                   .jitter = jitter_kind::full},
                       .deadline = std::chrono::milliseconds(0),
                       .attempt_timeout = std::chrono::milliseconds(0),
                       .idempotent = false,
                       .retry_if = &is_transaction_conflict};
};

/// The BEGIN statement for `opts` ("BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY").
inline std::string begin_statement(const transaction_options& opts)
{
    std::string sql = "BEGIN";
    switch (opts.isolation)
    {
    case isolation_level::server_default:
        break;
    case isolation_level::read_committed:
        sql += " ISOLATION LEVEL READ COMMITTED";
        break;
    case isolation_level::repeatable_read:
        sql += " ISOLATION LEVEL REPEATABLE READ";
        break;
    case isolation_level::serializable:
        sql += " ISOLATION LEVEL SERIALIZABLE";
        break;
    }
    if (opts.read_only)
        sql += " READ ONLY";
    if (opts.deferrable)
        sql += " DEFERRABLE";
    return sql;
}

namespace detail
{

template <class Body>
concept transaction_body = std::invocable<Body&, connection&> &&
    awaitable_expected<std::remove_cvref_t<std::invoke_result_t<Body&, connection&>>>::value;

template <class Body>
using transaction_value_t = typename awaitable_expected<
    std::remove_cvref_t<std::invoke_result_t<Body&, connection&>>>::value_type;

// Rolls back whatever transaction is open on `conn`. It runs as its own coroutine with no
// cancellation slot: after the caller was cancelled, its cancellation state stays "cancelled"
// and every statement in it would stop at once; the rollback must still reach the server.
// The connection's query and cancel timeouts bound it. If the connection is still inside a
// transaction afterwards, it is closed: handing it on would run the next user's statements in
// this transaction.
inline boost::asio::awaitable<void> rollback_shielded(connection& conn)
{
    namespace asio = boost::asio;
    auto in_transaction = [&]
    {
        auto st = conn.transaction_status();
        return conn.is_open() && (st == PQTRANS_INTRANS || st == PQTRANS_INERROR);
    };
    if (!in_transaction())
        co_return;
    auto ex = co_await asio::this_coro::executor;
    bool throw_prev = co_await asio::this_coro::throw_if_cancelled();
    co_await asio::this_coro::throw_if_cancelled(false);
    co_await asio::co_spawn(ex, as_optional(conn.query("ROLLBACK")),
                            asio::bind_cancellation_slot(asio::cancellation_slot(),
                                                         asio::as_tuple(asio::use_awaitable)));
    co_await asio::this_coro::throw_if_cancelled(throw_prev);
    if (in_transaction())
        conn.close();
}

// One attempt: BEGIN, body, COMMIT; ROLLBACK when anything in between fails or throws.
template <class T, class Body>
boost::asio::awaitable<expected<T>> transact_once(connection& conn, Body& body,
                                                  const std::string& begin)
{
    if (conn.is_open() && conn.transaction_status() != PQTRANS_IDLE)
        co_return fail(errc::invalid_argument,
                       "transact(): connection is already in a transaction");
    if (auto b = co_await conn.query(begin); !b)
        co_return tl::unexpected(std::move(b.error()));

    std::exception_ptr thrown;
    std::optional<expected<T>> r;
    try
    {
        r.emplace(co_await body(conn));
    }
    catch (...)
    {
        thrown = std::current_exception();
    }
    if (thrown)
    {
        co_await rollback_shielded(conn);
        std::rethrow_exception(thrown);
    }
    if (!*r)
    {
        co_await rollback_shielded(conn);
        co_return std::move(*r);
    }
    // The body succeeded but swallowed a failed statement: COMMIT would quietly roll back
    // (answering "ROLLBACK"), so report the abort instead of a success.
    if (conn.transaction_status() == PQTRANS_INERROR)
    {
        co_await rollback_shielded(conn);
        co_return fail(errc::query_failed, "transaction was aborted by an earlier failed statement",
                       sqlstate("25P02"));
    }
    auto c = co_await conn.query("COMMIT");
    if (!c)
    {
        // Under SERIALIZABLE a COMMIT can fail with 40001; the server has rolled back then.
        co_await rollback_shielded(conn);
        co_return tl::unexpected(std::move(c.error()));
    }
    co_return std::move(*r);
}

} // namespace detail

/// Runs `body` (a callable `(connection&) -> asio::awaitable<expected<T>>`) inside a
/// transaction on `conn`: BEGIN [ISOLATION LEVEL ...], body, COMMIT. When the body fails, the
/// transaction is rolled back; when BEGIN, the body or COMMIT fails with a conflict (40001,
/// 40P01 by default) the *whole* transaction is run again per `opts.retry`, which is safe
/// because the server rolled the failed one back. The body must therefore do nothing outside
/// the database that cannot happen twice.
///
/// Completes with: the body's value, once COMMIT succeeded.
/// Errors: the body's error (after ROLLBACK); COMMIT's error, such as 40001 when retries are
///   exhausted; `query_failed` [25P02] when the body returned a value although a statement
///   failed; `invalid_argument` when `conn` is already in a transaction; `connection_lost`
///   when the connection broke (whether a COMMIT in flight took effect is then unknown).
/// Cancellation: passed to the running statement or backoff sleep; the transaction is then
///   rolled back all the same (the ROLLBACK is shielded from the cancellation and bounded by
///   the connection's timeouts) and `cancelled` is returned.
/// Resumes on: the awaiting coroutine's executor.
/// Lifetime: `conn` must outlive the call and run no other operation meanwhile; `body` is
///   owned by the call and called once per attempt. An exception from `body` is rethrown
///   after the ROLLBACK; a connection still inside a transaction after a failed ROLLBACK is
///   closed.
template <detail::transaction_body Body>
auto transact(connection& conn, Body body, transaction_options opts = {}, retry_hooks hooks = {})
    -> boost::asio::awaitable<expected<detail::transaction_value_t<Body>>>
{
    using T = detail::transaction_value_t<Body>;
    const std::string begin = begin_statement(opts);
    co_return co_await retry(
        opts.retry, [&]() { return detail::transact_once<T>(conn, body, begin); },
        std::move(hooks));
}

/// transact() through a pool: every attempt acquires its own connection, runs the whole
/// transaction on it and returns it, so a conflict or a lost connection never dooms the
/// next attempt. Attempts follow `opts.retry` (by default 40001/40P01 only).
///
/// Completes with: the body's value once a run committed.
/// Errors: acquire()'s errors; the body's error; the last conflict when attempts ran out.
/// Cancellation, Resumes on, Lifetime: as transact(connection&, ...); `target` must outlive it.
template <detail::transaction_body Body>
auto transact(pool& target, Body body, transaction_options opts = {}, retry_hooks hooks = {})
    -> boost::asio::awaitable<expected<detail::transaction_value_t<Body>>>
{
    transaction_options once = opts;
    once.retry.max_attempts = 1; // the outer retry re-runs it, each time on a fresh lease
    co_return co_await retry(
        opts.retry,
        [&]() { return target.run([&](connection& c) { return transact(c, body, once, hooks); }); },
        hooks);
}

} // namespace pgcoro

#endif // PGCORO_TRANSACTION_HPP
