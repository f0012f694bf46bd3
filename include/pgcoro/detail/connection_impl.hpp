// pgcoro/detail/connection_impl.hpp - the I/O engine behind pgcoro::connection.
#ifndef PGCORO_DETAIL_CONNECTION_IMPL_HPP
#define PGCORO_DETAIL_CONNECTION_IMPL_HPP

#include <pgcoro/connect_config.hpp>
#include <pgcoro/detail/cancel_service.hpp>
#include <pgcoro/detail/conn_params.hpp>
#include <pgcoro/detail/param_pack.hpp>
#include <pgcoro/detail/pq_error.hpp>
#include <pgcoro/detail/pq_handles.hpp>
#include <pgcoro/detail/pq_socket.hpp>
#include <pgcoro/detail/statement_cache.hpp>
#include <pgcoro/detail/text_codec.hpp>
#include <pgcoro/error.hpp>
#include <pgcoro/observer.hpp>
#include <pgcoro/result.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/execution/context.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/query.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <libpq-fe.h>

#include <array>
#include <atomic>
#include <chrono>
#include <fcntl.h>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unistd.h>
#include <utility>

namespace pgcoro::detail
{

/// A server notice as passed to a notice handler; views are valid during the call only.
struct notice
{
    std::string_view severity; ///< "NOTICE", "WARNING", ... (not localized)
    pgcoro::sqlstate state;    ///< e.g. 01000
    std::string_view message;  ///< primary message
};

namespace asio = boost::asio;

class connection_impl
{
    using clock = std::chrono::steady_clock;

    // What ended a wait for socket readiness.
    enum class wait_result
    {
        ready,
        deadline,  // our own deadline (connect_timeout, query timeout, cancel_timeout) passed
        cancelled, // the awaiting coroutine was cancelled
        failed,    // the reactor reported an error on the descriptor
        closed,    // the owner closed or destroyed the connection (close_by_owner())
    };

    // The deadline timer's handler may run after the operation that armed it is over (it was
    // already queued when we cancelled the timer), and after the connection is gone. So it
    // only touches this shared block, and only when its generation still matches.
    struct deadline_state
    {
        std::atomic<unsigned> generation{0};
        std::atomic<bool> hit{false};
        pq_socket* socket = nullptr;
        asio::ip::tcp::resolver* resolver = nullptr;
    };

public:
    explicit connection_impl(asio::any_io_executor ex)
        : ex_(ex), op_ex_(ex), socket_(ex), timer_(ex), resolver_(ex),
          deadline_(std::make_shared<deadline_state>())
    {
        deadline_->socket = &socket_;
        deadline_->resolver = &resolver_;
    }
    connection_impl(const connection_impl&) = delete;
    connection_impl& operator=(const connection_impl&) = delete;
    ~connection_impl()
    {
        deadline_->socket = nullptr;
        deadline_->resolver = nullptr;
        close();
    }

    asio::any_io_executor get_executor() const noexcept { return ex_; }
    PGconn* native_handle() const noexcept { return conn_.get(); }
    bool is_open() const noexcept
    {
        return !close_requested_ && conn_ && PQstatus(conn_.get()) == CONNECTION_OK;
    }
    PGTransactionStatusType transaction_status() const noexcept
    {
        return conn_ ? PQtransactionStatus(conn_.get()) : PQTRANS_UNKNOWN;
    }
    int backend_pid() const noexcept { return conn_ ? PQbackendPID(conn_.get()) : 0; }
    void set_notice_handler(std::function<void(const notice&)> h) { on_notice_ = std::move(h); }
    void set_observer(observer* o, std::chrono::milliseconds slow_threshold) noexcept
    {
        obs_ = o;
        slow_threshold_ = slow_threshold;
    }

    void close() noexcept
    {
        // We watch a dup() of libpq's socket, so closing ours can never touch an fd number
        // that libpq closed and the process reused; then PQfinish closes libpq's.
        boost::system::error_code ignored;
        socket_.close(ignored);
        conn_.reset();
        cache_.forget_all(); // the session's prepared statements end with it
    }

    // connection::close(). With no operation running, close() now. Otherwise the running one
    // is woken (its waits are cancelled) and ends at once with connection_lost (a connect with
    // cancelled; a statement the server runs is cancelled there); the close itself happens as
    // it ends, so it never touches a freed PGconn.
    void close_by_owner() noexcept
    {
        if (!busy_)
        {
            close();
            return;
        }
        close_requested_ = true;
        socket_.cancel();
        resolver_.cancel();
        if (drain_timer_)
            drain_timer_->cancel();
    }

    // Disposes of `impl` for a connection that is destroyed or assigned to: now, or, while an
    // operation is running, when that operation ends (it owns the impl until then).
    static void dispose(std::unique_ptr<connection_impl> impl) noexcept
    {
        if (!impl || !impl->busy_)
            return;
        impl->close_by_owner();
        impl->orphaned_ = true;
        impl.release(); // deleted by end_operation()
    }

    // ---- connect ------------------------------------------------------------------------

    asio::awaitable<expected<void>> connect(connect_config cfg)
    {
        if (busy_)
            co_return fail(errc::busy, "connection is running another operation");
        busy_guard guard(*this);
        op_ex_ = co_await asio::this_coro::executor;
        close();
        cancel_timeout_ = cfg.cancel_timeout;
        query_timeout_ = cfg.query_timeout;
        // Through pgbouncer in transaction mode a named statement would be prepared on one
        // server session and used on another (26000, or 42P05 for the next client).
        cache_.reset(cfg.pgbouncer ? 0 : cfg.statement_cache_size);
        // Through pgbouncer statement_timeout cannot be sent (no startup options, and a
        // session SET would leak to other clients): it becomes the client-side deadline of
        // each statement instead, which cancels the statement when it passes.
        if (cfg.pgbouncer && cfg.statement_timeout.count() > 0 &&
            (query_timeout_.count() == 0 || cfg.statement_timeout < query_timeout_))
            query_timeout_ = cfg.statement_timeout;
        bool throw_prev = co_await asio::this_coro::throw_if_cancelled();
        co_await asio::this_coro::throw_if_cancelled(false);

        arm(cfg.connect_timeout);
        error last(errc::connect_failed, "no host configured");
        for (const auto& hp : cfg.hosts)
        {
            auto r = co_await connect_host(cfg, hp);
            if (r)
            {
                disarm();
                co_await asio::this_coro::throw_if_cancelled(throw_prev);
                co_return expected<void>{};
            }
            last = std::move(r.error());
            if (last.is(errc::timeout) || last.is(errc::cancelled))
                break;
        }
        disarm();
        co_await asio::this_coro::throw_if_cancelled(throw_prev);
        co_return tl::unexpected(std::move(last));
    }

    // ---- query --------------------------------------------------------------------------

    template <class... Params>
    asio::awaitable<expected<result>> query(std::chrono::milliseconds timeout, std::string_view sql,
                                            Params... params)
    {
        if (busy_)
            co_return fail(errc::busy, "connection is running another operation");
        if (!is_open())
            co_return fail(errc::connection_lost, "connection is not open");
        busy_guard guard(*this);
        op_ex_ = co_await asio::this_coro::executor;
        // With no observer the statement pays this one branch; the clock is read only for one.
        const auto started =
            obs_ ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};

        // Parameters go as text into one reusable buffer (no allocation once it has grown).
        if (auto ok = check_statement(sql, sizeof...(Params)); !ok)
            co_return finished(sql, started, tl::unexpected(std::move(ok.error())));
        auto enc = encode_params(params_, params...);
        if (!enc)
            co_return finished(sql, started, tl::unexpected(std::move(enc.error())));
        sql_.assign(sql);
        const statement st{sql_.c_str(), enc->types.data(), enc->values.data(), enc->count()};
        const auto t = timeout.count() > 0 ? timeout : query_timeout_;

        bool throw_prev = co_await asio::this_coro::throw_if_cancelled();
        co_await asio::this_coro::throw_if_cancelled(false);
        std::optional<expected<result>> r; // set by every way out of the loop
        for (int attempt = 0;; ++attempt)
        {
            const statement_cache::entry* named = nullptr;
            const bool idle_before = transaction_status() == PQTRANS_IDLE;
            if (use_cache())
            {
                cache_.make_key(sql, st.types, st.n);
                named = cache_.find();
                if (!named)
                {
                    auto p = co_await prepare(st, t);
                    if (!p)
                    {
                        r.emplace(tl::unexpected(std::move(p.error())));
                        break;
                    }
                    named = *p;
                }
            }
            if (!send(st, named))
            {
                r.emplace(tl::unexpected(failure_after_libpq_error(errc::query_failed)));
                break;
            }
            r.emplace(co_await finish_statement(t));
            if (!named || attempt > 0 || !prepare_again(*r, idle_before))
                break;
        }
        if (*r && cache_.enabled())
            forget_if_deallocated((*r)->command_tag());
        co_await asio::this_coro::throw_if_cancelled(throw_prev);
        co_return finished(sql, started, std::move(*r));
    }

    /// Statements this connection holds prepared on the server (statement cache entries).
    std::size_t prepared_statements() const noexcept { return cache_.size(); }
    /// The session's statement cache (a pipelined connection that adopts this one uses it).
    statement_cache& statements() noexcept { return cache_; }

private:
    // Reports a finished statement to the observer (if any) and passes its outcome through.
    expected<result> finished(std::string_view sql, std::chrono::steady_clock::time_point started,
                              expected<result> r) const noexcept
    {
        if (obs_)
            report(sql, std::chrono::steady_clock::now() - started, r);
        return r;
    }

    void report(std::string_view sql, std::chrono::nanoseconds elapsed,
                const expected<result>& r) const noexcept
    {
        query_event e;
        e.statement = statement_ref(sql);
        e.elapsed = elapsed;
        e.backend_pid = backend_pid();
        if (r)
        {
            e.rows = r->size() > 0 ? r->size() : r->affected_rows();
        }
        else
        {
            const error& err = r.error();
            e.outcome = err.is(errc::timeout)     ? query_outcome::timed_out
                        : err.is(errc::cancelled) ? query_outcome::cancelled
                                                  : query_outcome::failed;
            e.code = err.code;
            e.state = err.state;
            e.message = err.message;
        }
        obs_->on_query_finished(e);
        if (slow_threshold_.count() > 0 && elapsed >= slow_threshold_)
            obs_->on_slow_query(
                slow_query_event{e.statement, elapsed, slow_threshold_, e.backend_pid});
    }

    // Marks an operation (connect, query) as running; at its end, carries out a close the
    // owner asked for meanwhile, and deletes the impl if the owner has gone (dispose()). The
    // guard is the first local of the operation's coroutine, so nothing touches the impl after.
    struct busy_guard
    {
        explicit busy_guard(connection_impl& c) noexcept : c_(c) { c_.busy_ = true; }
        busy_guard(const busy_guard&) = delete;
        busy_guard& operator=(const busy_guard&) = delete;
        ~busy_guard() { c_.end_operation(); }
        connection_impl& c_;
    };

    void end_operation() noexcept
    {
        busy_ = false;
        drain_timer_ = nullptr;
        if (close_requested_)
        {
            close_requested_ = false;
            close();
        }
        if (orphaned_)
            delete this;
    }

    // ---- statement cache ----------------------------------------------------------------

    // One statement as libpq takes it: NUL-terminated text and n parameter types and values.
    struct statement
    {
        const char* sql;
        const Oid* types;
        const char* const* values;
        int n;
    };

    // Named statements are used when the cache is on and the session can take a PREPARE (in a
    // failed transaction the server refuses everything until ROLLBACK anyway).
    bool use_cache() const noexcept
    {
        return cache_.enabled() && transaction_status() != PQTRANS_INERROR;
    }

    bool send(const statement& st, const statement_cache::entry* named)
    {
        if (named)
            return PQsendQueryPrepared(conn_.get(), named->name.c_str(), st.n, st.values, nullptr,
                                       nullptr, 0) != 0;
        return PQsendQueryParams(conn_.get(), st.sql, st.n, st.types, st.values, nullptr, nullptr,
                                 0) != 0;
    }

    // A cache miss: frees the statements that left the cache (DEALLOCATE, only outside a
    // transaction, where its failure cannot abort the caller's work), then prepares this one
    // under a new name. A failed PREPARE is reported like the statement's own failure.
    asio::awaitable<expected<const statement_cache::entry*>> prepare(const statement& st,
                                                                     std::chrono::milliseconds t)
    {
        cache_.make_room();
        if (!cache_.stale().empty() && transaction_status() == PQTRANS_IDLE)
        {
            std::string sql;
            for (const auto& name : cache_.stale())
                sql += "DEALLOCATE " + name + ";";
            cache_.clear_stale();
            if (!PQsendQuery(conn_.get(), sql.c_str()))
                co_return tl::unexpected(failure_after_libpq_error(errc::query_failed));
            auto d = co_await finish_statement(t);
            if (!d && !is_open())
                co_return tl::unexpected(std::move(d.error()));
            // Otherwise a failed DEALLOCATE (26000: already gone) changes nothing for us.
        }
        auto name = cache_.take_name();
        if (!PQsendPrepare(conn_.get(), name.c_str(), st.sql, st.n, st.types))
            co_return tl::unexpected(failure_after_libpq_error(errc::query_failed));
        auto r = co_await finish_statement(t);
        if (!r)
            co_return tl::unexpected(std::move(r.error()));
        co_return cache_.insert(std::move(name));
    }

    // A named statement failed because the server no longer has it as prepared: 26000 (a
    // DEALLOCATE or DISCARD ALL we did not see) or 0A000 ("cached plan must not change result
    // type" after a table changed). The statement did not run. Forgets it, and says whether to
    // prepare and send it once more: only when it ran outside a transaction (inside one, the
    // error has aborted the transaction, and that is the caller's to handle).
    bool prepare_again(const expected<result>& r, bool idle_before)
    {
        if (r || !is_open())
            return false;
        const sqlstate& state = r.error().state;
        if (state == "26000")
            cache_.forget_all();
        else if (state == "0A000")
            cache_.invalidate();
        else
            return false;
        return idle_before && transaction_status() == PQTRANS_IDLE;
    }

    // DISCARD ALL and DEALLOCATE ALL sent through query() remove our statements too.
    void forget_if_deallocated(std::string_view tag) noexcept
    {
        if (tag == "DISCARD ALL" || tag == "DEALLOCATE ALL")
            cache_.forget_all();
    }

    // ---- deadline -----------------------------------------------------------------------

    // The handler runs on the executor of the coroutine that armed the timer (not on the
    // connection's own executor), so it is serialised with that coroutine when it runs on a
    // strand; the fields it touches are atomics for the case where it does not.
    void arm(std::chrono::milliseconds d)
    {
        auto gen = ++deadline_->generation;
        deadline_->hit = false;
        if (d.count() <= 0)
        {
            timer_.cancel();
            return;
        }
        timer_.expires_after(d);
        timer_.async_wait(asio::bind_executor(op_ex_,
                                              [st = deadline_, gen](boost::system::error_code ec)
                                              {
                                                  if (ec || st->generation != gen)
                                                      return;
                                                  st->hit = true;
                                                  if (st->socket)
                                                      st->socket->cancel();
                                                  if (st->resolver)
                                                      st->resolver->cancel();
                                              }));
    }
    void disarm()
    {
        ++deadline_->generation;
        deadline_->hit = false;
        timer_.cancel();
    }

    // ---- waiting ------------------------------------------------------------------------

    // Whether the awaiting coroutine was cancelled while no wait was pending (a wait started
    // afterwards would not see it). Awaited inline: no coroutine frame.
    static bool cancelled(const asio::cancellation_state& cs) noexcept
    {
        return cs.cancelled() != asio::cancellation_type::none;
    }

    // Waits for the socket to become readable or writable. `honour_cancel` is false while
    // draining after a cancellation: then only our own deadline ends the wait. The statement
    // loop in finish_statement() does the same inline (one coroutine frame less per wait).
    asio::awaitable<wait_result> wait(pq_socket::wait_type w, bool honour_cancel = true)
    {
        if (auto s = stopped(); s != wait_result::ready)
            co_return s;
        if (honour_cancel && cancelled(co_await asio::this_coro::cancellation_state))
            co_return wait_result::cancelled;
        boost::system::error_code ec;
        if (honour_cancel)
            std::tie(ec) = co_await socket_.async_wait(w, asio::as_tuple(asio::deferred));
        else
            std::tie(ec) = co_await socket_.async_wait(
                w, asio::bind_cancellation_slot(asio::cancellation_slot(),
                                                asio::as_tuple(asio::use_awaitable)));
        co_return classify(ec);
    }

    // Waits until the socket is readable or writable: while libpq still has output to flush,
    // the server may be blocked sending to us, so we must keep reading (libpq manual 34.4).
    asio::awaitable<wait_result> wait_read_or_write(bool honour_cancel = true)
    {
        if (auto s = stopped(); s != wait_result::ready)
            co_return s;
        if (honour_cancel && cancelled(co_await asio::this_coro::cancellation_state))
            co_return wait_result::cancelled;
        using sd = pq_socket;
        auto [order, ec_read, ec_write] =
            co_await asio::experimental::make_parallel_group(
                socket_.async_wait(sd::wait_read, asio::deferred),
                socket_.async_wait(sd::wait_write, asio::deferred))
                .async_wait(asio::experimental::wait_for_one(), asio::use_awaitable);
        co_return classify(order[0] == 0 ? ec_read : ec_write);
    }

    // What has already ended the operation's waiting: the owner's close, then our deadline;
    // `ready` when neither has.
    wait_result stopped() const noexcept
    {
        return close_requested_ ? wait_result::closed
               : deadline_->hit ? wait_result::deadline
                                : wait_result::ready;
    }

    wait_result classify(const boost::system::error_code& ec) const
    {
        if (!ec)
            return wait_result::ready;
        if (ec == asio::error::operation_aborted)
        {
            const auto s = stopped();
            return s != wait_result::ready ? s : wait_result::cancelled;
        }
        return wait_result::failed;
    }

    // ---- connect internals --------------------------------------------------------------

    asio::awaitable<expected<void>> connect_host(const connect_config& cfg, const host_port& hp)
    {
        // Unix-socket directory: no DNS, no hostaddr.
        if (!hp.host.empty() && hp.host.front() == '/')
            co_return co_await connect_address(cfg, hp.host, "", hp.port);
        // Numeric address: no DNS.
        boost::system::error_code ec;
        asio::ip::make_address(hp.host, ec);
        if (!ec)
            co_return co_await connect_address(cfg, hp.host, hp.host, hp.port);

        // A name: getaddrinfo runs on Asio's resolver thread, never on this executor.
        auto [rec, endpoints] = co_await resolver_.async_resolve(
            hp.host, std::to_string(hp.port), asio::as_tuple(asio::use_awaitable));
        if (rec)
        {
            if (close_requested_)
                co_return fail(errc::cancelled,
                               "connect cancelled resolving " + hp.host + ": connection closed");
            if (deadline_->hit)
                co_return fail(errc::timeout, "connect timed out resolving " + hp.host);
            if (rec == asio::error::operation_aborted)
                co_return fail(errc::cancelled, "connect cancelled resolving " + hp.host);
            co_return fail(errc::connect_failed,
                           "could not resolve host \"" + hp.host + "\": " + rec.message());
        }
        error last(errc::connect_failed, "no address for host \"" + hp.host + "\"");
        for (const auto& ep : endpoints)
        {
            auto r = co_await connect_address(cfg, hp.host, ep.endpoint().address().to_string(),
                                              hp.port);
            if (r)
                co_return r;
            last = std::move(r.error());
            if (last.is(errc::timeout) || last.is(errc::cancelled))
                break;
        }
        co_return tl::unexpected(std::move(last));
    }

    // Replaces our watched descriptor with a dup of libpq's current socket. libpq may swap
    // the socket during PQconnectPoll (SSL/GSS fallbacks, multi-host), even keeping the same
    // fd number, so this runs after every poll step.
    bool watch_socket()
    {
        boost::system::error_code ec;
        socket_.close(ec);
        int fd = PQsocket(conn_.get());
        if (fd < 0)
            return false;
        int mine = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
        if (mine < 0)
            return false;
        socket_.assign(mine, ec);
        if (ec)
        {
            ::close(mine);
            return false;
        }
        return true;
    }

    asio::awaitable<expected<void>> connect_address(const connect_config& cfg,
                                                    const std::string& host,
                                                    const std::string& hostaddr, std::uint16_t port)
    {
        const std::string where = (host.empty() ? hostaddr : host) + ":" + std::to_string(port);
        {
            conn_params p(cfg, host, hostaddr, port);
            conn_.reset(PQconnectStartParams(p.keys(), p.values(), 0));
        }
        if (!conn_)
            co_return fail(errc::connect_failed, "out of memory starting a connection");
        PQsetNoticeReceiver(conn_.get(), &connection_impl::receive_notice, this);
        // VERBOSE makes libpq put the SQLSTATE into connect failure texts ("FATAL:  28P01:").
        PQsetErrorVerbosity(conn_.get(), PQERRORS_VERBOSE);
        if (PQstatus(conn_.get()) == CONNECTION_BAD)
            co_return connect_failure(where, cfg.sslmode);

        // As the manual says: behave as if the last poll returned PGRES_POLLING_WRITING.
        PostgresPollingStatusType st = PGRES_POLLING_WRITING;
        for (;;)
        {
            if (!watch_socket())
                co_return connect_failure(where, cfg.sslmode);
            if (st == PGRES_POLLING_OK)
                break;
            if (st == PGRES_POLLING_FAILED)
                co_return connect_failure(where, cfg.sslmode);
            using sd = pq_socket;
            auto w = co_await wait(st == PGRES_POLLING_READING ? sd::wait_read : sd::wait_write);
            if (w == wait_result::deadline)
            {
                close();
                co_return fail(errc::timeout, "connect to " + where + " timed out after " +
                                                  std::to_string(cfg.connect_timeout.count()) +
                                                  " ms");
            }
            if (w == wait_result::cancelled || w == wait_result::closed)
            {
                close();
                co_return fail(errc::cancelled,
                               "connect to " + where + " cancelled" +
                                   (w == wait_result::closed ? ": connection closed" : ""));
            }
            st = PQconnectPoll(conn_.get());
        }
        PQsetErrorVerbosity(conn_.get(), PQERRORS_DEFAULT);
        if (PQsetnonblocking(conn_.get(), 1) != 0)
            co_return connect_failure(where, cfg.sslmode);
        co_return expected<void>{};
    }

    tl::unexpected<error> connect_failure(const std::string& where, ssl_mode sslmode)
    {
        std::string msg = first_line(PQerrorMessage(conn_.get()));
        sqlstate st = sqlstate_from_verbose_text(msg);
        // Drop the "FATAL:  28P01: " prefix's code from the readable text; keep severity.
        if (!st.empty())
        {
            auto p = msg.find(std::string(st.view()) + ": ");
            if (p != std::string::npos)
                msg.erase(p, 7);
        }
        close();
        if (st.empty() && is_tls_rejection(msg))
            return fail(errc::tls_failed, "connect to " + where + " failed: " + msg +
                                              " (TLS, sslmode=" + std::string(to_string(sslmode)) +
                                              ")");
        return fail(errc::connect_failed, "connect to " + where + " failed: " + msg, st);
    }

    // ---- statement internals ------------------------------------------------------------

    // After a libpq call failed: the connection may be broken (libpq may have closed its
    // socket already). Then close everything and report connection_lost.
    error failure_after_libpq_error(errc otherwise)
    {
        std::string msg = conn_message(conn_.get());
        if (!is_open())
        {
            close();
            return error(errc::connection_lost, std::move(msg));
        }
        return error(otherwise, std::move(msg));
    }

    // The server's error `e` ended the session (a FATAL such as 57P01, which libpq may hand
    // out while the connection still looks OK): close, and report it as connection_lost with
    // the server's SQLSTATE and message.
    error lost(error e)
    {
        close();
        e.code = make_error_code(errc::connection_lost);
        return e;
    }

    // PQconsumeInput failed while results were awaited. A server that ends the session says
    // why first (FATAL 57P01 from pg_terminate_backend or a shutdown) and libpq has that
    // message buffered: collect what it parses, so the caller gets the server's SQLSTATE. This
    // cannot block: PQgetResult is only called when libpq is not busy or its socket is gone.
    error failure_after_read_error(std::optional<result>& ok, std::optional<error>& err)
    {
        for (int i = 0; i < 16 && conn_; ++i)
        {
            PGconn* c = conn_.get();
            if (PQsocket(c) >= 0 && PQisBusy(c))
                break;
            pgresult_ptr r(PQgetResult(c));
            if (!r)
                break;
            collect(std::move(r), ok, err);
        }
        if (err && !err->state.empty())
            return lost(std::move(*err));
        return failure_after_libpq_error(errc::connection_lost);
    }

    // Flushes the statement, then reads results until libpq returns NULL.
    asio::awaitable<expected<result>> finish_statement(std::chrono::milliseconds timeout)
    {
        arm(timeout);
        using sd = pq_socket;
        PGconn* c = conn_.get();
        for (;;)
        {
            int f = PQflush(c);
            if (f == 0)
                break;
            if (f < 0)
            {
                disarm();
                co_return tl::unexpected(failure_after_libpq_error(errc::connection_lost));
            }
            auto w = co_await wait_read_or_write();
            if (w != wait_result::ready)
            {
                // Part of the statement is still unsent: no clean way back. Discard.
                disarm();
                close();
                co_return abandon_error(w, timeout, "while sending");
            }
            if (!PQconsumeInput(c))
            {
                disarm();
                co_return tl::unexpected(failure_after_libpq_error(errc::connection_lost));
            }
        }

        std::optional<result> ok;
        std::optional<error> err;
        bool first_wait = true; // the statement is sent: its response is new data (an edge)
        for (;;)
        {
            if (!PQisBusy(c))
            {
                pgresult_ptr r(PQgetResult(c));
                if (!r)
                    break;
                collect(std::move(r), ok, err);
                continue;
            }
            // wait(sd::wait_read), inline: the deferred async_wait needs no coroutine frame,
            // so a statement in steady state allocates none beyond Asio's recycled ones. The
            // first wait is async_wait_response (no epoll_ctl); the rest of a response that
            // came in pieces may already be there, which only async_wait sees.
            wait_result w = stopped();
            if (w == wait_result::ready)
            {
                if (cancelled(co_await asio::this_coro::cancellation_state))
                    w = wait_result::cancelled;
                else if (std::exchange(first_wait, false))
                {
                    auto [ec] =
                        co_await socket_.async_wait_response(asio::as_tuple(asio::deferred));
                    w = classify(ec);
                }
                else
                {
                    auto [ec] =
                        co_await socket_.async_wait(sd::wait_read, asio::as_tuple(asio::deferred));
                    w = classify(ec);
                }
            }
            if (w == wait_result::ready)
            {
                if (!PQconsumeInput(c))
                {
                    disarm();
                    co_return tl::unexpected(failure_after_read_error(ok, err));
                }
                continue;
            }
            if (w == wait_result::failed || w == wait_result::closed)
            {
                disarm();
                if (w == wait_result::closed) // the server may still be running it
                    start_cancel(std::make_shared<cancel_signal>(ex_));
                close();
                co_return abandon_error(w, timeout, "while waiting for results");
            }
            co_return co_await cancel_and_drain(w, timeout);
        }
        disarm();
        if (err)
            co_return tl::unexpected(is_open() && !err->is(errc::connection_lost)
                                         ? std::move(*err)
                                         : lost(std::move(*err)));
        if (!ok)
            co_return fail(errc::protocol_error, "statement returned no result");
        co_return std::move(*ok);
    }

    void collect(pgresult_ptr r, std::optional<result>& ok, std::optional<error>& err)
    {
        switch (PQresultStatus(r.get()))
        {
        case PGRES_COMMAND_OK:
        case PGRES_TUPLES_OK:
        case PGRES_EMPTY_QUERY:
            if (!err)
                ok.emplace(std::move(r));
            break;
        case PGRES_COPY_IN:
        case PGRES_COPY_OUT:
        case PGRES_COPY_BOTH:
            // COPY is not supported through query(); the connection cannot be recovered.
            if (!err)
                err = error(errc::protocol_error, "COPY is not supported by query()");
            close();
            break;
        default:
            if (!err)
                err = result_error(r.get(), conn_.get());
            break;
        }
    }

    tl::unexpected<error> abandon_error(wait_result w, std::chrono::milliseconds timeout,
                                        std::string_view when)
    {
        std::string suffix = when.empty() ? std::string() : " " + std::string(when);
        if (w == wait_result::deadline)
            return fail(errc::timeout, "statement timed out after " +
                                           std::to_string(timeout.count()) + " ms" + suffix);
        if (w == wait_result::cancelled)
            return fail(errc::cancelled, "statement cancelled" + suffix);
        if (w == wait_result::closed)
            return fail(errc::connection_lost, "connection closed by its owner" + suffix);
        return fail(errc::connection_lost, "socket error" + suffix);
    }

    // The statement's deadline passed or its coroutine was cancelled while the server works
    // on it. Ask the server to cancel (PQcancel on the helper thread), drain the results to
    // NULL and wait for the cancel request to finish, all within cancel_timeout; then the
    // connection is idle and reusable. Otherwise close it: a late cancel must never hit the
    // next statement.
    asio::awaitable<expected<result>> cancel_and_drain(wait_result why,
                                                       std::chrono::milliseconds timeout)
    {
        arm(cancel_timeout_);
        auto sig = std::make_shared<cancel_signal>(ex_);
        sig->timer.expires_after(cancel_timeout_);
        start_cancel(sig);

        using sd = pq_socket;
        PGconn* c = conn_.get();
        bool drained = false;
        sqlstate server_state;
        for (;;)
        {
            if (!PQisBusy(c))
            {
                pgresult_ptr r(PQgetResult(c));
                if (!r)
                {
                    drained = true;
                    break;
                }
                if (const char* s = PQresultErrorField(r.get(), PG_DIAG_SQLSTATE))
                    server_state = sqlstate(s);
                continue;
            }
            if (co_await wait(sd::wait_read, false) != wait_result::ready || !PQconsumeInput(c))
                break;
        }
        if (!sig->done && !close_requested_)
        {
            drain_timer_ = &sig->timer; // close_by_owner() ends this wait too
            co_await sig->timer.async_wait(asio::bind_cancellation_slot(
                asio::cancellation_slot(), asio::as_tuple(asio::use_awaitable)));
            drain_timer_ = nullptr;
        }
        disarm();
        if (!drained || !sig->done || !is_open())
            close();

        auto e = abandon_error(why, timeout, "");
        if (server_state == "57014")
            e.value().message += "; cancelled on the server";
        else if (!is_open())
            e.value().message += "; connection closed";
        co_return e;
    }

    // Asks the server to cancel the statement in flight: PQcancel on the helper thread, which
    // reports through `sig` (done at once when libpq has no cancel key to send).
    void start_cancel(std::shared_ptr<cancel_signal> sig)
    {
        if (pgcancel_ptr pc{PQgetCancel(conn_.get())})
            asio::use_service<cancel_service>(asio::query(ex_, asio::execution::context))
                .start(std::move(pc), std::move(sig), op_ex_);
        else
            sig->done = true;
    }

    static void receive_notice(void* self, const PGresult* r)
    {
        auto* me = static_cast<connection_impl*>(self);
        if (!me->on_notice_)
            return;
        const char* sev = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);
        const char* st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        const char* msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
        me->on_notice_(notice{sev ? sev : "", st ? sqlstate(st) : sqlstate(), msg ? msg : ""});
    }

    asio::any_io_executor ex_;
    asio::any_io_executor op_ex_; // executor of the coroutine running the current operation
    pgconn_ptr conn_;
    pq_socket socket_; // a dup of PQsocket(); ours to close
    asio::steady_timer timer_;
    asio::ip::tcp::resolver resolver_;
    std::shared_ptr<deadline_state> deadline_;
    std::function<void(const notice&)> on_notice_;
    std::chrono::milliseconds cancel_timeout_{std::chrono::seconds(5)};
    std::chrono::milliseconds query_timeout_{0};
    observer* obs_ = nullptr;                     // receives query events; not owned
    std::chrono::milliseconds slow_threshold_{0}; // on_slow_query from here on; 0 = off
    std::string params_;                          // encoded parameters, reused across statements
    std::string sql_;       // NUL-terminated copy of the statement text, reused
    statement_cache cache_; // named prepared statements (connect_config::statement_cache_size)
    bool busy_ = false;
    bool close_requested_ = false;              // close_by_owner() while an operation ran
    bool orphaned_ = false;                     // the owner is gone: end_operation() deletes us
    asio::steady_timer* drain_timer_ = nullptr; // cancel_and_drain()'s wait for the cancel
};

} // namespace pgcoro::detail

#endif // PGCORO_DETAIL_CONNECTION_IMPL_HPP
