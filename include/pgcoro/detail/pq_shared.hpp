// SPDX-License-Identifier: BSL-1.0
// pgcoro/detail/pq_shared.hpp - the shared front end's driver: many coroutines' statements on one
// pq_engine in pipeline mode, one reader matching results to callers, batched Syncs, and the
// cancel round of statements whose callers left.
#ifndef PGCORO_DETAIL_PQ_SHARED_HPP
#define PGCORO_DETAIL_PQ_SHARED_HPP

#include <pgcoro/detail/blocking_calls.hpp>
#include <pgcoro/detail/param_pack.hpp>
#include <pgcoro/detail/pq_engine.hpp>
#include <pgcoro/detail/pq_session.hpp>
#include <pgcoro/error.hpp>
#include <pgcoro/result.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>

#include <libpq-fe.h>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>

namespace pgcoro::detail
{

struct pipeline_settings
{
    std::size_t statements_per_sync = 64;
    bool resend_rolled_back = true;
    std::chrono::milliseconds query_timeout{0};
    std::chrono::milliseconds cancel_timeout{std::chrono::seconds(5)};
};

// Every call runs on the engine's executor (the pipelined connection's rule), so the state
// below needs no lock: the reader, the flusher, the posted Sync, the review timer's and the
// cancel request's completions and the callers all take turns on it.
class pq_shared : public std::enable_shared_from_this<pq_shared>
{
    using clock = std::chrono::steady_clock;

public:
    pq_shared(std::shared_ptr<pq_engine> e, pipeline_settings s)
        : e_(std::move(e)), ex_(e_->get_executor()), watch_(ex_), settings_(s)
    {
        if (settings_.statements_per_sync == 0)
            settings_.statements_per_sync = 1;
        if (settings_.cancel_timeout.count() <= 0)
            settings_.cancel_timeout = std::chrono::seconds(5);
    }
    pq_shared(const pq_shared&) = delete;
    pq_shared& operator=(const pq_shared&) = delete;
    ~pq_shared() { close(lost("pipelined connection destroyed")); }

    // connection_lost with `msg`, or without it when the message cannot be allocated: the
    // noexcept paths that close never end the program.
    static error lost(const char* msg) noexcept
    {
        try
        {
            return error(errc::connection_lost, msg);
        }
        catch (...)
        {
            return error(errc::connection_lost, std::string());
        }
    }

    // Switches the (idle, open) engine to shared mode and starts reading results.
    expected<void> start()
    {
        if (!e_->is_open())
            return fail(errc::connection_lost, "connection is not open");
        if (e_->busy() || !e_->settled() || e_->transaction_status() != PQTRANS_IDLE)
            return fail(errc::busy, "connection is not idle (in a transaction or running a "
                                    "statement); pipeline mode needs an idle connection");
        pq_session& s = e_->session();
        s.set_mode(session_mode::shared);
        s.set_resend_rolled_back(settings_.resend_rolled_back);
        e_->set_statements_per_sync(settings_.statements_per_sync);
        e_->set_cancel_timeout(settings_.cancel_timeout);
        if (!s.enter_pipeline())
            return fail(errc::protocol_error,
                        "could not enter pipeline mode: " + conn_message(s.native()));
        open_ = true;
        asio::co_spawn(ex_, read_loop(shared_from_this()), asio::detached);
        return {};
    }

    const asio::any_io_executor& get_executor() const noexcept { return ex_; }
    bool is_open() const noexcept { return open_ && e_->is_open(); }
    int backend_pid() const noexcept { return is_open() ? e_->backend_pid() : 0; }
    std::size_t pending() const noexcept { return e_->session().pending(); }
    std::size_t queued() const noexcept { return e_->session().queued(); }
    std::size_t prepared_statements() const noexcept { return e_->prepared_statements(); }
    const pipeline_settings& settings() const noexcept { return settings_; }

    // Closes the connection; every statement not yet delivered completes with `why`.
    void close(const error& why) noexcept
    {
        if (!open_)
            return;
        open_ = false;
        watch_.cancel();
        e_->close(why);
    }

    // Queues one statement (a Sync follows by the batching policy; see submit_sync()).
    template <class... Params>
    expected<void> submit(pq_op& op, bool alone, std::string_view sql, const Params&... params)
    {
        if (!is_open())
            return fail(errc::connection_lost, "pipelined connection is not open");
        if (auto r = e_->submit(op, alone, sql, params...); !r)
        {
            after_io();
            return r;
        }
        if (e_->session().unsynced() > 0)
        {
            // Batch: the Sync goes out, and libpq's buffer is flushed (one send), once the
            // coroutines that are ready now have queued their statements too.
            if (sync_posted_)
                return {};
            sync_posted_ = true;
            asio::post(ex_,
                       [self = shared_from_this()]
                       {
                           self->sync_posted_ = false;
                           if (self->is_open() && self->e_->session().unsynced() > 0)
                           {
                               (void)self->e_->session().sync_now();
                               self->flush();
                           }
                       });
            return {};
        }
        flush(); // a Sync was sent with it (alone, or the batch was full)
        return {};
    }

    // The waiter of statement `seq` left (timeout or cancellation): its results are discarded,
    // and if it runs on the server for longer than `budget` it is cancelled there.
    void abandon(std::uint64_t seq, std::chrono::milliseconds budget) noexcept
    {
        e_->session().abandon(seq, budget);
        review();
    }
    // The waiter's frame goes away unresumed (io_context destroyed): only unlink it.
    void forget(const pq_op& op) noexcept { e_->session().forget(op); }

private:
    // Output libpq could not send at once is sent when the socket is writable; the reader
    // keeps consuming meanwhile (libpq manual 34.4).
    void flush()
    {
        if (flushing_ || !is_open())
            return;
        const int f = e_->session().flush();
        if (f < 0)
            return after_io();
        if (f == 0)
            return;
        flushing_ = true;
        asio::co_spawn(ex_, flush_loop(shared_from_this()), asio::detached);
    }

    static asio::awaitable<void> flush_loop(std::shared_ptr<pq_shared> self)
    {
        while (self->is_open())
        {
            auto [ec] = co_await self->e_->io().socket().async_wait(pq_socket::wait_write,
                                                                    asio::as_tuple(asio::deferred));
            if (!self->is_open())
                break;
            const int f = ec ? -1 : self->e_->session().flush();
            if (ec)
                self->close(
                    error(errc::connection_lost, "socket error while sending: " + ec.message()));
            if (f <= 0)
                break;
        }
        self->flushing_ = false;
        self->after_io();
    }

    static asio::awaitable<void> read_loop(std::shared_ptr<pq_shared> self)
    {
        while (self->is_open())
        {
            self->e_->session().drain();
            self->after_io();
            if (!self->is_open())
                break;
            // Also while nothing is expected: a terminated backend or a restart shows up as
            // readable (FATAL, then EOF), so idle connections notice it at once.
            auto [ec] = co_await self->e_->io().socket().async_wait(pq_socket::wait_read,
                                                                    asio::as_tuple(asio::deferred));
            if (!self->is_open())
                break;
            if (ec)
                self->close(error(errc::connection_lost,
                                  "socket error while waiting for results: " + ec.message()));
            else
                self->e_->session().consume();
        }
        self->after_io();
    }

    // After the session may have changed: a closed session closes the front end; an abandoned
    // statement at the head is reviewed.
    void after_io() noexcept
    {
        if (open_ && !e_->session().is_open())
        {
            open_ = false;
            watch_.cancel();
            e_->close(lost("connection lost"));
            return;
        }
        review();
    }

    // The cancel round of an abandoned statement at the head of the pipeline (pq_session's
    // review()): a cancel request when its budget has passed, the connection closed when it
    // still runs cancel_timeout after that.
    void review() noexcept
    {
        if (!is_open())
            return;
        const auto& cr = e_->cancel_request();
        const bool in_flight = cr && !is_done(*cr);
        auto rv = e_->session().review(clock::now(), settings_.cancel_timeout, in_flight);
        switch (rv.what)
        {
        case pq_session::review_result::nothing:
            return;
        case pq_session::review_result::give_up:
            close(lost("an abandoned statement did not stop within cancel_timeout after a "
                       "cancel request; pipelined connection closed"));
            return;
        case pq_session::review_result::send_cancel:
        {
            bool sent = false;
            try
            {
                sent = e_->send_cancel(); // allocates the request's shared state
            }
            catch (...)
            {
            }
            if (!sent)
            {
                close(lost("could not send a cancel request; pipelined connection closed"));
                return;
            }
            watch_cancel_request();
            break;
        }
        case pq_session::review_result::wait:
            break;
        }
        arm_watch(rv.at);
    }

    // When the cancel request is done, review again (the next abandoned statement may wait).
    void watch_cancel_request() noexcept
    {
        try
        {
            async_wait_call(e_->cancel_request(), ex_,
                            asio::bind_executor(ex_,
                                                [w = weak_from_this()](auto)
                                                {
                                                    if (auto self = w.lock())
                                                        self->review();
                                                }));
        }
        catch (...)
        {
            // Out of memory: the review timer still gives up at cancel_timeout.
        }
    }

    void arm_watch(clock::time_point at) noexcept
    {
        if (watch_armed_ && watch_at_ == at)
            return;
        watch_armed_ = true;
        watch_at_ = at;
        const auto gen = ++watch_gen_;
        watch_.expires_at(at);
        try
        {
            watch_.async_wait(
                [w = weak_from_this(), gen](boost::system::error_code ec)
                {
                    if (ec)
                        return;
                    if (auto self = w.lock(); self && self->watch_gen_ == gen)
                    {
                        self->watch_armed_ = false;
                        self->review();
                    }
                });
        }
        catch (...)
        {
            watch_armed_ = false;
        }
    }

    std::shared_ptr<pq_engine> e_;
    asio::any_io_executor ex_;
    asio::steady_timer watch_; // when to look at the abandoned head statement again
    pipeline_settings settings_;
    clock::time_point watch_at_;
    unsigned watch_gen_ = 0;
    bool open_ = false;
    bool flushing_ = false;
    bool sync_posted_ = false;
    bool watch_armed_ = false;
};

// A statement of query(): lives in the awaiting coroutine's frame with its parameters, so it
// can be sent again (resend) without any allocation. Delivery cancels its timer.
template <class... Params>
struct shared_statement final : pq_op
{
    shared_statement(pq_shared& s, std::string_view q, Params&&... p)
        : st(s), timer(s.get_executor()), sql(q), params(std::move(p)...)
    {
    }
    ~shared_statement()
    {
        if (!done)
            st.forget(*this);
    }
    expected<void> send(bool alone)
    {
        return std::apply([&](const auto&... p) { return st.submit(*this, alone, sql, p...); },
                          params);
    }
    expected<void> resend() override { return send(true); }
    void wake() noexcept override { timer.cancel(); }

    pq_shared& st;
    asio::steady_timer timer;
    std::string_view sql;
    std::tuple<Params...> params;
};

// query() on a pipelined connection: send, then wait for delivery, the deadline or
// cancellation, whichever comes first.
template <class... Params>
asio::awaitable<expected<result>> pipeline_query(std::shared_ptr<pq_shared> st,
                                                 std::chrono::milliseconds timeout,
                                                 std::string_view sql, Params... params)
{
    if (!st)
        co_return fail(errc::connection_lost, "pipelined connection is not open");
    {
        auto cs = co_await asio::this_coro::cancellation_state;
        if (cs.cancelled() != asio::cancellation_type::none)
            co_return fail(errc::cancelled, "statement cancelled before it was sent");
    }
    if (auto ok = check_statement(sql, param_count(params...)); !ok)
        co_return tl::unexpected(std::move(ok.error()));
    if (timeout.count() <= 0)
        timeout = st->settings().query_timeout;
    shared_statement<Params...> op(*st, sql, std::move(params)...);
    if (timeout.count() > 0)
        op.timer.expires_after(timeout);
    else
        op.timer.expires_at(std::chrono::steady_clock::time_point::max());
    if (auto sent = op.send(false); !sent)
    {
        op.done = true;
        co_return tl::unexpected(std::move(sent.error()));
    }
    if (!op.done)
    {
        const bool throw_prev = co_await asio::this_coro::throw_if_cancelled();
        co_await asio::this_coro::throw_if_cancelled(false);
        // deferred, not use_awaitable: no coroutine frame for the wait.
        auto [ec] = co_await op.timer.async_wait(asio::as_tuple(asio::deferred));
        co_await asio::this_coro::throw_if_cancelled(throw_prev);
        if (!op.done)
        {
            // Not delivered: our deadline passed (ec is success) or we were cancelled.
            const bool timed_out = !ec;
            op.done = true;
            st->abandon(op.seq, timed_out ? timeout : std::chrono::milliseconds(0));
            if (timed_out)
                co_return fail(errc::timeout, "statement timed out after " +
                                                  std::to_string(timeout.count()) +
                                                  " ms (pipelined)");
            co_return fail(errc::cancelled, "statement cancelled (pipelined)");
        }
    }
    co_return std::move(*op.outcome);
}

} // namespace pgcoro::detail

#endif // PGCORO_DETAIL_PQ_SHARED_HPP
