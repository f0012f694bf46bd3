// SPDX-License-Identifier: BSL-1.0
// pgcoro/detail/pq_engine.hpp - the one I/O driver of a libpq session: connect, the statement
// loop of an exclusive (one caller at a time) connection, cancel requests, and settling what an
// abandoned statement left. The shared (pipelined) front end drives the same engine
// (pq_shared.hpp).
#ifndef PGCORO_DETAIL_PQ_ENGINE_HPP
#define PGCORO_DETAIL_PQ_ENGINE_HPP

#include <pgcoro/connect_config.hpp>
#include <pgcoro/detail/blocking_calls.hpp>
#include <pgcoro/detail/notice.hpp>
#include <pgcoro/detail/param_pack.hpp>
#include <pgcoro/detail/pq_connect.hpp>
#include <pgcoro/detail/pq_io.hpp>
#include <pgcoro/detail/pq_session.hpp>
#include <pgcoro/error.hpp>
#include <pgcoro/observer.hpp>
#include <pgcoro/result.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/this_coro.hpp>

#include <libpq-fe.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>

namespace pgcoro::detail
{

// PQcancel on a helper thread (PG 15's PQcancel blocks: it connects to the server, sends
// CancelRequest and waits for the server to close that connection, which is what keeps a late
// cancel from hitting the next statement).
struct cancel_call final : blocking_call
{
    using blocking_call::blocking_call;
    pgcancel_ptr handle;
    bool dispatched = false;

    void run() noexcept override
    {
        char buf[256] = {};
        dispatched = PQcancel(handle.get(), buf, sizeof buf) == 1;
        handle.reset();
    }
};

class pq_engine
{
    using clock = std::chrono::steady_clock;

public:
    explicit pq_engine(asio::any_io_executor ex)
        : ex_(std::move(ex)), io_(ex_), session_(session_mode::exclusive, 0, true)
    {
    }
    pq_engine(const pq_engine&) = delete;
    pq_engine& operator=(const pq_engine&) = delete;
    ~pq_engine() { close(error(errc::connection_lost, "connection destroyed")); }

    const asio::any_io_executor& get_executor() const noexcept { return ex_; }
    PGconn* native_handle() const noexcept { return session_.native(); }
    bool is_open() const noexcept { return !io_.close_requested() && session_.is_open(); }
    PGTransactionStatusType transaction_status() const noexcept
    {
        return session_.native() ? PQtransactionStatus(session_.native()) : PQTRANS_UNKNOWN;
    }
    int backend_pid() const noexcept
    {
        return session_.native() ? PQbackendPID(session_.native()) : 0;
    }
    std::size_t prepared_statements() const noexcept { return session_.cache().size(); }
    // Nothing left by an abandoned statement: the next statement starts at once.
    bool settled() const noexcept { return session_.idle() && !cancel_; }
    // The largest statement (text + parameters) sent since the connection opened: libpq keeps
    // an output buffer that large for the connection's life.
    std::size_t largest_statement_bytes() const noexcept { return largest_statement_; }
    void set_notice_handler(std::function<void(const notice&)> h) { on_notice_ = std::move(h); }
    void set_observer(observer* o, std::chrono::milliseconds slow_threshold) noexcept
    {
        obs_ = o;
        slow_threshold_ = slow_threshold;
    }
    std::chrono::milliseconds query_timeout() const noexcept { return query_timeout_; }
    std::chrono::milliseconds cancel_timeout() const noexcept { return cancel_timeout_; }
    pq_session& session() noexcept { return session_; }
    pq_io& io() noexcept { return io_; }
    bool busy() const noexcept { return busy_; }

    // Closes now: pending statements complete with `why`.
    void close(const error& why) noexcept
    {
        io_.unwatch();
        session_.close(why);
    }

    // connection::close(). With no operation running, close() now. Otherwise the running one is
    // woken and ends at once (a query with connection_lost, its statement cancelled on the
    // server; a connect with cancelled); the close happens as it ends.
    void close_by_owner() noexcept
    {
        if (!busy_)
        {
            close(error(errc::connection_lost, "connection closed"));
            return;
        }
        io_.request_close();
    }

    // ---- connect --------------------------------------------------------------------------

    static asio::awaitable<expected<void>> connect(std::shared_ptr<pq_engine> self,
                                                   connect_config cfg)
    {
        if (!self)
            co_return fail(errc::connection_lost, "connection was moved from");
        pq_engine& e = *self;
        if (e.busy_)
            co_return fail(errc::busy, "connection is running another operation");
        busy_guard guard(e);
        e.close(error(errc::connection_lost, "connection reopened"));
        ++e.generation_; // statements prepared on the old session are gone
        e.pgbouncer_ = cfg.pgbouncer;
        e.cancel_timeout_ =
            cfg.cancel_timeout.count() > 0 ? cfg.cancel_timeout : std::chrono::seconds(5);
        e.query_timeout_ = cfg.query_timeout;
        // Through pgbouncer statement_timeout cannot be sent (no startup options, and a session
        // SET would leak to other clients): it becomes each statement's client-side deadline.
        if (cfg.pgbouncer && cfg.statement_timeout.count() > 0 &&
            (e.query_timeout_.count() == 0 || cfg.statement_timeout < e.query_timeout_))
            e.query_timeout_ = cfg.statement_timeout;
        const bool throw_prev = co_await asio::this_coro::throw_if_cancelled();
        co_await asio::this_coro::throw_if_cancelled(false);
        pq_connector connector(e.io_, cfg, e.ex_);
        auto r = co_await connector.run();
        co_await asio::this_coro::throw_if_cancelled(throw_prev);
        if (!r)
            co_return tl::unexpected(std::move(r.error()));
        // Through pgbouncer in transaction mode a named statement would be prepared on one
        // server session and used on another (26000, or 42P05 for the next client).
        e.session_.adopt(std::move(*r), cfg.pgbouncer ? 0 : cfg.statement_cache_size);
        PQsetNoticeReceiver(e.session_.native(), &pq_engine::receive_notice, &e);
        co_return expected<void>{};
    }

    // ---- an exclusive connection's statement ----------------------------------------------

    template <class... Params>
    static asio::awaitable<expected<result>> query(std::shared_ptr<pq_engine> self,
                                                   std::chrono::milliseconds timeout,
                                                   std::string_view sql, Params... params)
    {
        if (!self)
            co_return fail(errc::connection_lost, "connection was moved from");
        pq_engine& e = *self;
        if (e.busy_)
            co_return fail(errc::busy, "connection is running another operation");
        if (!e.is_open())
            co_return fail(errc::connection_lost, "connection is not open");
        busy_guard guard(e);
        // With no observer the statement pays this one branch; the clock is read only for one.
        const auto started = e.obs_ ? clock::now() : clock::time_point{};
        if (auto ok = check_statement(sql, param_count(params...)); !ok)
            co_return e.finished(sql, started, tl::unexpected(std::move(ok.error())));
        const auto t = timeout.count() > 0 ? timeout : e.query_timeout_;
        const auto deadline = t.count() > 0 ? clock::now() + t : pq_io::no_deadline;

        const bool throw_prev = co_await asio::this_coro::throw_if_cancelled();
        co_await asio::this_coro::throw_if_cancelled(false);
        std::optional<expected<result>> r;
        if (!e.settled())
            if (auto s = co_await e.settle(deadline); !s)
                r.emplace(tl::unexpected(std::move(s.error())));
        if (!r)
        {
            exclusive_statement<Params...> op(e, sql, params...);
            if (auto sent = op.resend(); !sent)
                r.emplace(tl::unexpected(std::move(sent.error())));
            else
            {
                // Flushes the statement, then reads until its segment's Sync has been
                // answered. Inline, not a coroutine of its own: one frame less per statement.
                bool first = true; // the statement is sent: its response is new data (an edge)
                for (;;)
                {
                    const int f = e.session_.flush();
                    if (f >= 0)
                        e.session_.drain();
                    if (op.done)
                    {
                        e.session_.leave_pipeline_if_idle();
                        r.emplace(std::move(*op.outcome));
                        break;
                    }
                    const auto what = f == 1  ? wait_for::read_or_write
                                      : first ? wait_for::response
                                              : wait_for::read;
                    wait_result w;
                    if (pq_io::bare(what, deadline))
                    {
                        // The common case inline: one reactor operation, no coroutine frame
                        // for the wait (pq_io::wait is one), no timer.
                        auto cs = co_await asio::this_coro::cancellation_state;
                        const auto c = cs.cancelled();
                        if (auto early = e.io_.before_wait(deadline, c))
                            w = *early;
                        else if (what == wait_for::response)
                        {
                            auto [ec] = co_await e.io_.wait_response();
                            w = e.io_.classify(ec);
                        }
                        else
                        {
                            auto [ec] = co_await e.io_.wait_readable();
                            w = e.io_.classify(ec);
                        }
                    }
                    else
                        w = co_await e.io_.wait(what, deadline);
                    first = false;
                    if (w != wait_result::ready)
                    {
                        r.emplace(e.abandon(op, w, t, f == 1));
                        break;
                    }
                    e.session_.consume(); // on failure the session is closed, `op` delivered
                }
            }
        }
        co_await asio::this_coro::throw_if_cancelled(throw_prev);
        co_return e.finished(sql, started, std::move(*r));
    }

    // connection::settle(): settle() as an operation of its own, within `budget`.
    static asio::awaitable<expected<void>> settle_within(std::shared_ptr<pq_engine> self,
                                                         std::chrono::milliseconds budget)
    {
        if (!self)
            co_return fail(errc::connection_lost, "connection was moved from");
        pq_engine& e = *self;
        if (e.busy_)
            co_return fail(errc::busy, "connection is running another operation");
        if (e.settled())
            co_return expected<void>{};
        busy_guard guard(e);
        const bool throw_prev = co_await asio::this_coro::throw_if_cancelled();
        co_await asio::this_coro::throw_if_cancelled(false);
        auto r = co_await e.settle(clock::now() + budget);
        co_await asio::this_coro::throw_if_cancelled(throw_prev);
        co_return r;
    }

    // Encodes and queues one statement of `op` (into the engine's reused buffers: libpq copies
    // both during the call).
    template <class... Params>
    expected<void> submit(pq_op& op, bool alone, std::string_view sql, const Params&... params)
    {
        if constexpr (is_runtime_list<Params...>)
        {
            const pgcoro::params& list = (params, ...);
            if (list.encoding_error())
                return tl::unexpected(*list.encoding_error());
            const statement_params p{list.types(), list.values(), list.lengths(), list.formats(),
                                     static_cast<int>(list.size())};
            return submit_encoded(op, alone, sql, p, list.bytes());
        }
        else
        {
            auto enc = encode_params(params_, params...);
            if (!enc)
                return tl::unexpected(std::move(enc.error()));
            // Lengths and formats only when a value is binary: libpq then reads all-text.
            const statement_params p{enc->types.data(), enc->values.data(),
                                     enc->binary ? enc->lengths.data() : nullptr,
                                     enc->binary ? enc->formats.data() : nullptr, enc->count()};
            return submit_encoded(op, alone, sql, p, enc->bytes);
        }
    }

    // submit() once the parameters are encoded.
    expected<void> submit_encoded(pq_op& op, bool alone, std::string_view sql,
                                  const statement_params& p, std::size_t bytes)
    {
        sql_.assign(sql);
        largest_statement_ = std::max(largest_statement_, sql.size() + bytes);
        auto r = session_.submit(op, alone, sql_.c_str(), sql, p, statements_per_sync_);
        // libpq has copied both: pgcoro's own buffers never stay large.
        constexpr std::size_t keep = 64 * 1024;
        if (params_.capacity() > keep)
            std::string().swap(params_);
        if (sql_.capacity() > keep)
            std::string().swap(sql_);
        return r;
    }
    void set_statements_per_sync(std::size_t n) noexcept { statements_per_sync_ = n ? n : 1; }
    void set_cancel_timeout(std::chrono::milliseconds t) noexcept
    {
        cancel_timeout_ = t.count() > 0 ? t : std::chrono::seconds(5);
    }

    // Sends a cancel request for the statement at the head (PQcancel on a helper thread);
    // false when none could be sent (the caller then closes the connection). Its end can be
    // awaited with async_wait_call(cancel_request(), token).
    bool send_cancel()
    {
        pgcancel_ptr pc{PQgetCancel(session_.native())};
        if (!pc)
            return false;
        auto c = std::make_shared<cancel_call>(blocking_context_of(ex_));
        c->handle = std::move(pc);
        c->deadline = clock::now() + cancel_timeout_;
        if (!blocking_calls::instance().submit(c))
            return false;
        cancel_ = std::move(c);
        session_.cancel_sent(clock::now());
        return true;
    }
    const std::shared_ptr<cancel_call>& cancel_request() const noexcept { return cancel_; }

    // Finishes what abandoned statements left before the next statement: discards their
    // results, cancels them on the server, and waits until the cancel request is done, all
    // within cancel_timeout of the cancel (and `deadline`); else the connection is closed and
    // connection_lost returned.
    asio::awaitable<expected<void>> settle(clock::time_point deadline)
    {
        for (;;)
        {
            if (!session_.is_open())
                co_return fail(errc::connection_lost, "connection is not open");
            const int f = session_.flush();
            if (f < 0)
                co_return fail(errc::connection_lost, "connection lost while settling");
            session_.drain();
            if (session_.idle())
                break;
            const auto now = clock::now();
            auto rv = session_.review(now, cancel_timeout_, cancel_ && !is_done(*cancel_));
            auto until = now + cancel_timeout_;
            if (rv.what == pq_session::review_result::give_up)
                co_return lost("an earlier statement did not stop within cancel_timeout after "
                               "its cancel request; connection closed");
            if (rv.what == pq_session::review_result::send_cancel && !send_cancel())
                co_return lost("could not send a cancel request for an earlier statement; "
                               "connection closed");
            if (rv.what != pq_session::review_result::nothing)
                until = rv.at;
            const auto w = co_await io_.wait(f == 1 ? wait_for::read_or_write : wait_for::read,
                                             std::min(until, deadline));
            if (w == wait_result::ready)
                session_.consume();
            else if (w == wait_result::deadline && clock::now() < deadline)
                continue;
            else if (w != wait_result::ready)
                co_return stop_settling(w);
        }
        if (cancel_ && !is_done(*cancel_))
        {
            const auto w = co_await io_.wait_call(cancel_, std::min(cancel_->deadline, deadline));
            if (w != wait_result::ready)
                co_return stop_settling(w);
        }
        cancel_.reset();
        session_.leave_pipeline_if_idle();
        co_return expected<void>{};
    }

    // ---- operations that span calls (COPY, streamed results: see pq_direct.hpp) ------------
    // Marks the connection busy for an operation made of several calls; false when busy.
    bool claim() noexcept
    {
        if (busy_)
            return false;
        busy_ = true;
        return true;
    }
    // Ends claim() (or a busy_guard); a close() requested meanwhile happens now.
    void release() noexcept
    {
        busy_ = false;
        if (io_.close_requested())
        {
            io_.clear_close_request();
            close(error(errc::connection_lost, "connection closed by its owner"));
        }
    }
    // Which session this is (each connect() starts a new one), for prepared_statement.
    std::uint64_t generation() const noexcept { return generation_; }
    // A statement name unique in this engine's life ("pgcoro_x<n>": never a cache name).
    std::string take_prepared_name() { return "pgcoro_x" + std::to_string(++prepared_names_); }
    // Whether the connection was opened in pgbouncer mode.
    bool pgbouncer() const noexcept { return pgbouncer_; }

    // Closes the connection with `msg` as connection_lost, returned as the failure.
    tl::unexpected<error> close_lost(std::string msg) noexcept { return lost(std::move(msg)); }
    // close_lost() for an operation left mid-statement: a cancel request first (on a helper
    // thread), so a statement that writes nothing for a while still ends on the server.
    tl::unexpected<error> cancel_and_close(std::string msg) noexcept
    {
        if (session_.native())
            try
            {
                send_cancel();
            }
            catch (...)
            {
            }
        cancel_.reset(); // the request runs on its own; this connection is gone
        return lost(std::move(msg));
    }

private:
    template <class... Params>
    struct exclusive_statement final : pq_op
    {
        exclusive_statement(pq_engine& eng, std::string_view s, const Params&... p)
            : e(eng), sql(s), params(p...)
        {
        }
        ~exclusive_statement()
        {
            if (!done)
                e.session_.forget(*this);
        }
        expected<void> resend() override
        {
            return std::apply([&](const auto&... p) { return e.submit(*this, true, sql, p...); },
                              params);
        }
        pq_engine& e;
        std::string_view sql;
        std::tuple<const Params&...> params; // in the query coroutine's frame
    };

    // The statement's caller leaves (deadline, cancellation, the owner's close, socket error)
    // before its outcome: it returns now. The statement is cancelled on the server and its
    // results are discarded by the next settle(); the connection is closed instead when part
    // of the statement is still unsent, when no cancel request can be sent, or on close/error.
    expected<result> abandon(pq_op& op, wait_result w, std::chrono::milliseconds t,
                             bool unsent) noexcept
    {
        session_.abandon(op.seq, std::chrono::milliseconds(0));
        std::string msg = w == wait_result::deadline
                              ? "statement timed out after " + std::to_string(t.count()) + " ms"
                          : w == wait_result::cancelled ? "statement cancelled"
                          : w == wait_result::closed    ? "connection closed by its owner"
                                                        : "socket error while waiting for results";
        if (unsent)
            msg += " while sending it";
        const bool keep = !unsent && (w == wait_result::deadline || w == wait_result::cancelled);
        // The server may still be running it (also when the owner closes: then it stops).
        const bool cancelling = session_.is_open() && w != wait_result::failed && send_cancel();
        if (!keep || !cancelling)
        {
            close(error(errc::connection_lost, msg + "; connection closed"));
            msg += "; connection closed";
        }
        else
            msg += "; cancel request sent";
        const errc code = w == wait_result::deadline    ? errc::timeout
                          : w == wait_result::cancelled ? errc::cancelled
                                                        : errc::connection_lost;
        return fail(code, std::move(msg));
    }

    tl::unexpected<error> lost(std::string msg) noexcept
    {
        error e(errc::connection_lost, std::move(msg));
        close(e);
        return tl::unexpected(std::move(e));
    }
    tl::unexpected<error> stop_settling(wait_result w) noexcept
    {
        if (w == wait_result::deadline)
        {
            auto e = lost("timed out waiting for an earlier, cancelled statement to finish; "
                          "connection closed");
            e.value().code = make_error_code(errc::timeout);
            return e;
        }
        if (w == wait_result::cancelled)
        {
            auto e = lost("cancelled while an earlier statement was being cancelled; "
                          "connection closed");
            e.value().code = make_error_code(errc::cancelled);
            return e;
        }
        return lost(w == wait_result::closed ? "connection closed by its owner"
                                             : "socket error while settling");
    }

    // Reports a finished statement to the observer (if any) and passes its outcome through.
    expected<result> finished(std::string_view sql, clock::time_point started,
                              expected<result> r) const noexcept
    {
        if (obs_)
            report(sql, clock::now() - started, r);
        return r;
    }

    void report(std::string_view sql, std::chrono::nanoseconds elapsed,
                const expected<result>& r) const noexcept
    {
        try
        {
            query_event ev;
            ev.statement = statement_ref(sql);
            ev.elapsed = elapsed;
            ev.backend_pid = backend_pid();
            if (r)
                ev.rows = r->size() > 0 ? r->size() : r->affected_rows();
            else
            {
                const error& err = r.error();
                ev.outcome = err.is(errc::timeout)     ? query_outcome::timed_out
                             : err.is(errc::cancelled) ? query_outcome::cancelled
                                                       : query_outcome::failed;
                ev.code = err.code;
                ev.state = err.state;
                ev.message = err.message;
            }
            obs_->on_query_finished(ev);
            if (slow_threshold_.count() > 0 && elapsed >= slow_threshold_)
                obs_->on_slow_query(
                    slow_query_event{ev.statement, elapsed, slow_threshold_, ev.backend_pid});
        }
        catch (...)
        {
            // An observer that throws loses its event; the statement's outcome stands.
        }
    }

    // Marks an operation as running; at its end carries out a close the owner asked for.
    struct busy_guard
    {
        explicit busy_guard(pq_engine& e) noexcept : e_(e) { e_.busy_ = true; }
        busy_guard(const busy_guard&) = delete;
        busy_guard& operator=(const busy_guard&) = delete;
        ~busy_guard() { e_.release(); }
        pq_engine& e_;
    };

    static void receive_notice(void* self, const PGresult* r)
    {
        auto* me = static_cast<pq_engine*>(self);
        if (!me->on_notice_)
            return;
        const char* sev = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);
        const char* st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        const char* msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
        me->on_notice_(notice{sev ? sev : "", st ? sqlstate(st) : sqlstate(), msg ? msg : ""});
    }

    asio::any_io_executor ex_;
    pq_io io_;
    pq_session session_;
    std::shared_ptr<cancel_call> cancel_; // the last cancel request, until it is done
    std::function<void(const notice&)> on_notice_;
    std::chrono::milliseconds cancel_timeout_{std::chrono::seconds(5)};
    std::chrono::milliseconds query_timeout_{0};
    std::size_t statements_per_sync_ = 1;
    observer* obs_ = nullptr;                     // receives query events; not owned
    std::chrono::milliseconds slow_threshold_{0}; // on_slow_query from here on; 0 = off
    std::string params_;                          // encoded parameters, reused
    std::string sql_;                             // NUL-terminated statement text, reused
    std::uint64_t generation_ = 0;
    std::uint64_t prepared_names_ = 0;
    bool pgbouncer_ = false;
    std::size_t largest_statement_ = 0; // see largest_statement_bytes()
    bool busy_ = false;
};

} // namespace pgcoro::detail

#endif // PGCORO_DETAIL_PQ_ENGINE_HPP
