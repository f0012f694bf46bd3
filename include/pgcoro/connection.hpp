// SPDX-License-Identifier: BSL-1.0
// pgcoro/connection.hpp - one nonblocking libpq connection driven by an Asio executor.
#ifndef PGCORO_CONNECTION_HPP
#define PGCORO_CONNECTION_HPP

#include <pgcoro/connect_config.hpp>
#include <pgcoro/copy.hpp>
#include <pgcoro/detail/async_op.hpp>
#include <pgcoro/detail/config.hpp>
#include <pgcoro/detail/notice.hpp>
#include <pgcoro/detail/param_pack.hpp>
#ifndef PGCORO_SEPARATE_COMPILATION
#include <pgcoro/detail/pq_direct.hpp>
#include <pgcoro/detail/pq_engine.hpp>
#endif
#include <pgcoro/error.hpp>
#include <pgcoro/notification.hpp>
#include <pgcoro/observer.hpp>
#include <pgcoro/prepared.hpp>
#include <pgcoro/result.hpp>
#include <pgcoro/stream.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string_view>
#include <type_traits>
#include <utility>

namespace pgcoro
{

namespace detail
{

class pq_engine;

#ifdef PGCORO_SEPARATE_COMPILATION
// Separate compilation: a statement's parameters, encoded in the caller's TU into the runtime
// list the out-of-line statement functions take (a pgcoro::params passed alone is kept as is).
template <class... Params>
pgcoro::params make_param_list(Params&&... p)
{
    if constexpr (is_runtime_list<std::remove_cvref_t<Params>...>)
        return pgcoro::params((std::forward<Params>(p), ...));
    else
    {
        pgcoro::params list;
        (list.add(p), ...);
        return list;
    }
}
#endif

} // namespace detail

/// Per-call options for connection::query().
struct query_options
{
    /// Client-side deadline for this statement; 0 = the connection's query_timeout.
    /// When it passes the statement is cancelled on the server and `timeout` is returned.
    std::chrono::milliseconds timeout{0};
};

/// A notice or warning the server sent (RAISE NOTICE, deprecation warnings, ...).
using notice = detail::notice;

/// One PostgreSQL connection. No operation blocks the event loop: host names are resolved and
/// cancel requests sent on pgcoro's small pool of helper threads (detail/blocking_calls.hpp:
/// at most 8 threads, results abandoned at the caller's deadline), the connect handshake is
/// PQconnectPoll driven by socket readiness, statements go through libpq's pipeline mode
/// (PQsendQueryParams / PQsendQueryPrepared, PQflush, PQconsumeInput).
///
/// Thread safety: one operation at a time (a second concurrent one fails with `busy`); all
/// calls on one connection from one thread at a time (on a multi-threaded io_context: from
/// coroutines on one strand, or one at a time in sequence, as a pool lease does).
class connection
{
public:
    using executor_type = boost::asio::any_io_executor;

    /// A closed connection that will run its operations on `ex` (an executor or a strand).
    explicit connection(executor_type ex);
    /// Takes over `other`'s connection; `other` is left closed.
    connection(connection&& other) noexcept = default;
    /// Closes this connection (as close() does) and takes over `other`'s.
    connection& operator=(connection&& other) noexcept;
    /// Closes the connection. Destroying it while one of its operations is pending is safe:
    /// that operation ends at once (as after close()) and the rest is freed when it does.
    ~connection();

    /// Opens the connection: for each configured host, resolves it asynchronously (numeric
    /// addresses and unix-socket directories skip DNS) and tries each address in turn.
    ///
    /// Completes with: nothing, once the server accepted us; the previous connection, if any,
    ///   is closed first.
    /// Errors: `connect_failed` with the server's SQLSTATE when it gave one (28P01 wrong
    ///   password, 53300 too many clients, 3D000 no database), `timeout` when
    ///   cfg.connect_timeout passed, `cancelled` when the awaiting coroutine was cancelled.
    /// Cancellation: terminal, partial and total; the attempt is abandoned and closed.
    /// Resumes on: the awaiting coroutine's executor.
    /// Lifetime: `cfg` is copied; closing or destroying the connection meanwhile ends the
    ///   operation with `cancelled`.
    boost::asio::awaitable<expected<void>> connect(const connect_config& cfg);

    /// Runs one SQL statement with parameters `$1..$n` sent separately from the text (never
    /// spliced into it). Parameters may be bool, integers, float/double, strings and string
    /// views, std::optional of those (nullopt is NULL) and std::nullopt.
    ///
    /// Completes with: the statement's result (rows, affected rows, command tag).
    /// Errors: `query_failed` with SQLSTATE and message (the connection stays usable);
    ///   `connection_lost` when the connection broke (it is closed); `timeout` when the query
    ///   timeout passed; `cancelled` when the awaiting coroutine was cancelled;
    ///   `invalid_argument` for a parameter with an embedded NUL, or a COPY statement;
    ///   `busy` when another operation is running.
    /// Cancellation: terminal and partial (not total: a statement being cancelled may still
    ///   have committed). At the deadline or on cancellation the call returns at once; the
    ///   server is asked to cancel the statement (on a helper thread) and its results are
    ///   discarded by the connection's next operation, which first waits (within
    ///   cancel_timeout, and within its own deadline) until the connection is clean, else
    ///   closes it and fails with `connection_lost`.
    /// Resumes on: the awaiting coroutine's executor.
    /// Lifetime: parameters are copied into the operation (so `return c.query(sql, x + 1);`
    ///   from a lambda is safe), except views: `sql` and std::string_view / const char*
    ///   parameters must stay valid until the operation completes (string literals always do).
    ///   A std::string or C-string parameter goes to libpq where it is (no pgcoro copy; move a
    ///   large std::string in, or it is copied into the operation); libpq still copies it once
    ///   into its output buffer on the calling thread (~1 ms per MiB): use COPY for bulk data.
    ///   A null `const char*` is sent as NULL.
    ///   Closing or destroying the connection meanwhile ends it with `connection_lost`.
    template <class... Params>
    boost::asio::awaitable<expected<result>> query(std::string_view sql, Params... params)
    {
#ifdef PGCORO_SEPARATE_COMPILATION
        return query_list(std::chrono::milliseconds(0), sql,
                          detail::make_param_list(std::move(params)...));
#else
        return detail::pq_engine::query(e_, std::chrono::milliseconds(0), sql,
                                        std::move(params)...);
#endif
    }

    /// query() with per-call options (a timeout for this statement).
    template <class... Params>
    boost::asio::awaitable<expected<result>> query(const query_options& opts, std::string_view sql,
                                                   Params... params)
    {
#ifdef PGCORO_SEPARATE_COMPILATION
        return query_list(opts.timeout, sql, detail::make_param_list(std::move(params)...));
#else
        return detail::pq_engine::query(e_, opts.timeout, sql, std::move(params)...);
#endif
    }

    /// query() as an Asio asynchronous operation, for any completion token: the parameters,
    /// then the token last (`c.async_query("SELECT $1::int", 7, handler)`). Completion signature
    /// `void(expected<result>)`; the handler runs on its associated executor (default:
    /// get_executor()), never inside this call; its cancellation slot cancels as in query().
    /// Lifetimes as query(). Precondition: the connection was not moved from.
    template <class... ParamsThenToken>
    auto async_query(std::string_view sql, ParamsThenToken&&... args)
    {
        return detail::async_statement(
            get_executor(), true,
            [this, sql](auto&&... p) { return query(sql, std::forward<decltype(p)>(p)...); },
            std::forward<ParamsThenToken>(args)...);
    }

    /// async_query() with per-call options (a timeout for this statement).
    template <class... ParamsThenToken>
    auto async_query(const query_options& opts, std::string_view sql, ParamsThenToken&&... args)
    {
        return detail::async_statement(
            get_executor(), true,
            [this, &opts, sql](auto&&... p)
            { return query(opts, sql, std::forward<decltype(p)>(p)...); },
            std::forward<ParamsThenToken>(args)...);
    }

    /// The next notification for a channel this session LISTENs to: one libpq already holds
    /// (notifications that arrive during other statements are kept), else the next to arrive,
    /// within `timeout` (0: no limit). For a listener that survives reconnects, see
    /// pgcoro::listener. Errors: `timeout`, `cancelled` (the connection stays usable),
    /// `connection_lost`, `busy`.
    boost::asio::awaitable<expected<notification>>
    next_notification(std::chrono::milliseconds timeout = std::chrono::milliseconds(0));

    /// Runs `sql` with `params` and returns its rows as a stream read in batches of up to
    /// `max_batch` as they arrive (see row_stream): for results too large to hold. The
    /// connection is busy until the stream ends. Errors: those of query() before any row.
    template <class... Params>
    boost::asio::awaitable<expected<row_stream>> stream(std::size_t max_batch, std::string_view sql,
                                                        Params... params)
    {
#ifdef PGCORO_SEPARATE_COMPILATION
        return stream_list(max_batch, sql, detail::make_param_list(std::move(params)...));
#else
        auto e = co_await detail::start_stream(e_, sql, params...);
        if (!e)
            co_return tl::unexpected(std::move(e.error()));
        co_return row_stream(std::move(*e), max_batch);
#endif
    }

    /// stream() with batches of up to 1024 rows.
    template <class... Params>
    boost::asio::awaitable<expected<row_stream>> stream(std::string_view sql, Params... params)
    {
        return stream(std::size_t{1024}, sql, std::move(params)...);
    }

    /// Prepares `sql` under a name of its own and describes it (parameter and column types).
    /// Errors: invalid_argument (pgbouncer mode: a prepared statement is session state the
    /// pooler does not keep), query_failed (the server refused the SQL), busy, connection_lost.
    boost::asio::awaitable<expected<prepared_statement>> prepare(std::string_view sql);

    /// Runs `st` (prepared on this connection) with `params`, checked first against its
    /// described parameters: count and types (an integer for a bigint is fine, text for an
    /// integer is sent as text and left to the server, a timestamp for a uuid is refused).
    /// Errors: invalid_argument (another connection's statement, one prepared before a
    /// reconnect, a wrong count or type), and those of query().
    template <class... Params>
    boost::asio::awaitable<expected<result>> execute(const prepared_statement& st, Params... params)
    {
#ifdef PGCORO_SEPARATE_COMPILATION
        return execute_list(st, detail::make_param_list(std::move(params)...));
#else
        if (!e_)
            co_return fail(errc::connection_lost, "connection was moved from");
        detail::pq_engine& e = *e_;
        if (st.owner_.lock() != e_ || st.generation_ != e.generation())
            co_return fail(errc::invalid_argument,
                           "the statement was prepared on another connection, or before this "
                           "one reconnected: prepare it again");
        std::string buf;
        auto enc = detail::encode_params(buf, params...);
        if (!enc)
            co_return tl::unexpected(std::move(enc.error()));
        if (auto ok = detail::check_prepared_params(st, enc->types.data(), enc->count()); !ok)
            co_return tl::unexpected(std::move(ok.error()));
        const auto deadline = direct_deadline();
        if (auto ok = co_await detail::begin_direct(e, deadline); !ok)
            co_return tl::unexpected(std::move(ok.error()));
        PGconn* c = e.session().native();
        auto r = co_await send_direct(
            PQsendQueryPrepared(c, st.name().c_str(), enc->count(), enc->values.data(),
                                enc->binary ? enc->lengths.data() : nullptr,
                                enc->binary ? enc->formats.data() : nullptr, 0),
            deadline);
        e.release();
        co_return r;
#endif
    }

    /// Starts `sql`, a COPY ... FROM STDIN, and returns the writer for its rows (the connection
    /// is busy until the writer finishes). Errors: query_failed (the server refused the
    /// statement), invalid_argument (not a COPY FROM STDIN), busy, connection_lost, cancelled.
    boost::asio::awaitable<expected<copy_writer>> copy_in(std::string_view sql);

    /// Starts `sql`, a COPY ... TO STDOUT, and returns the reader of its rows. Errors: as
    /// copy_in() (invalid_argument: not a COPY TO STDOUT).
    boost::asio::awaitable<expected<copy_reader>> copy_out(std::string_view sql);

    /// query(), then the only row as T (see result::one): out_of_range unless exactly one row.
    template <class T, class... Params>
    boost::asio::awaitable<expected<T>> query_one(std::string_view sql, Params... params)
    {
        auto r = co_await query(sql, std::move(params)...);
        if (!r)
            co_return tl::unexpected(std::move(r.error()));
        co_return r->template one<T>();
    }

    /// query(), then zero or one row as std::optional<T> (see result::opt).
    template <class T, class... Params>
    boost::asio::awaitable<expected<std::optional<T>>> query_opt(std::string_view sql,
                                                                 Params... params)
    {
        auto r = co_await query(sql, std::move(params)...);
        if (!r)
            co_return tl::unexpected(std::move(r.error()));
        co_return r->template opt<T>();
    }

    /// Closes the connection: stops watching the socket, then PQfinish. Idempotent. While an
    /// operation is pending (from another coroutine) it ends at once, a query with
    /// `connection_lost` (its statement is cancelled on the server), a connect with
    /// `cancelled`, and the close completes as it returns.
    void close() noexcept;

    /// True when no timed-out or cancelled statement is left to finish: the next operation
    /// starts at once (else it first finishes that one: see query()).
    bool settled() const noexcept;
    /// The largest statement (SQL text plus parameters, in bytes) this connection has sent.
    /// libpq keeps an output buffer that large until the connection closes, so a pool closes
    /// a connection past pool_max_retained_bytes when it is returned.
    std::size_t largest_statement_bytes() const noexcept;
    /// True once a query() on this connection failed with 25006 read_only_sql_transaction:
    /// a read-write pool then closes it when it is returned (pool_stats::closed_read_only).
    bool saw_read_only_error() const noexcept;
    /// Finishes what a timed-out or cancelled statement left (its cancel request, its
    /// results) within `budget`; else closes the connection and fails (`connection_lost`,
    /// `timeout`). Pools call it before they reuse a returned connection.
    /// Cancellation: terminal (the connection is then closed). Resumes on: the awaiting
    /// coroutine's executor.
    boost::asio::awaitable<expected<void>> settle(std::chrono::milliseconds budget);

    /// True when connected and libpq reports the connection OK.
    bool is_open() const noexcept;
    /// libpq's transaction status (PQTRANS_IDLE, PQTRANS_INTRANS, PQTRANS_INERROR, ...).
    PGTransactionStatusType transaction_status() const noexcept;
    /// How many named prepared statements the statement cache holds on the server now
    /// (connect_config::statement_cache_size; always 0 when the cache is off).
    std::size_t prepared_statements() const noexcept;
    /// The server process id serving this connection (pgbouncer's key data behind pgbouncer);
    /// 0 when closed.
    int backend_pid() const noexcept;
    /// Receives the server's notices; by default they are dropped (never printed to stderr).
    void set_notice_handler(std::function<void(const notice&)> h);
    /// Reports every statement query() runs to `o` (on_query_finished, and on_slow_query when
    /// it took `slow_threshold` or longer; 0 = never slow); nullptr stops reporting. `o` must
    /// outlive the connection or the next call. Pools install their observer on leased
    /// connections themselves.
    void set_observer(observer* o, std::chrono::milliseconds slow_threshold = {}) noexcept;
    /// The executor the connection's operations run on.
    executor_type get_executor() const noexcept;
    /// The PGconn, for what pgcoro does not wrap; owned by this connection. Do not call
    /// blocking libpq functions on it.
    PGconn* native_handle() const noexcept;

    /// The connection's libpq engine, for front ends that take it over
    /// (pipelined_connection::adopt()); this connection is left closed.
    std::shared_ptr<detail::pq_engine> take_engine() && noexcept
    {
        return std::move(e_);
    }

private:
    // After a PQsend* call (`sent` its outcome): flush, then the statement's result.
    boost::asio::awaitable<expected<result>>
    send_direct(int sent, std::chrono::steady_clock::time_point deadline);
    // The deadline of a direct operation starting now (the connection's query_timeout).
    std::chrono::steady_clock::time_point direct_deadline() const noexcept;
#ifdef PGCORO_SEPARATE_COMPILATION
    // The out-of-line bodies of the statement templates above, on encoded parameters.
    boost::asio::awaitable<expected<result>> query_list(std::chrono::milliseconds timeout,
                                                        std::string_view sql, pgcoro::params list);
    boost::asio::awaitable<expected<row_stream>>
    stream_list(std::size_t max_batch, std::string_view sql, pgcoro::params list);
    boost::asio::awaitable<expected<result>> execute_list(const prepared_statement& st,
                                                          pgcoro::params list);
#endif

    std::shared_ptr<detail::pq_engine> e_; // null once moved from
};

/// Creates a connection on `ex` and connects it with `cfg` (see connection::connect()).
/// (Not named `connect`: Asio's execution traits find a free `connect` by argument-dependent
/// lookup and would probe it with pgcoro's own types.)
PGCORO_DECL boost::asio::awaitable<expected<connection>>
open_connection(boost::asio::any_io_executor ex, const connect_config& cfg);

} // namespace pgcoro

#ifndef PGCORO_SEPARATE_COMPILATION
#include <pgcoro/impl/connection.ipp>
#endif

#endif // PGCORO_CONNECTION_HPP
