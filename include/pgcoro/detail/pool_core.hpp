// SPDX-License-Identifier: BSL-1.0
// pgcoro/detail/pool_core.hpp - the pool's acquire and release paths, warmup, close and
// run-time reconfiguration, over pool_upkeep (the strand's work) and pool_machine (the state).
#ifndef PGCORO_DETAIL_POOL_CORE_HPP
#define PGCORO_DETAIL_POOL_CORE_HPP

#include <pgcoro/detail/pool_upkeep.hpp>
#include <pgcoro/detail/waiter_queue.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <memory>
#include <mutex>
#include <utility>

namespace pgcoro::detail
{

// Acquire and release run the machine on the caller's thread under mu_; a waiting acquire
// waits on its own executor. See pool_upkeep for the rules of mu_ and the strand.
class pool_core final : public pool_upkeep
{
public:
    using pool_upkeep::pool_upkeep;

    // ---- acquire ------------------------------------------------------------------------

    // The fast path, on any thread: the hottest idle connection when it needs no validation,
    // else nullptr (the caller takes acquire_slow()). Stamps with the coarse clock.
    pool_node* try_acquire(pgcoro::source_location loc)
    {
        const auto now = fast_now();
        pool_node* n;
        {
            std::lock_guard lk(mu_);
            n = machine_.take_idle_fast(now, loc);
        }
        if (n && obs_)
            leased(n, acquire_outcome::immediate, now, loc);
        return n;
    }

    // The slow path: the caller queues itself (the machine hands it an idle connection at
    // once if one can be), and waits on its own executor for a release, a connect or a
    // validation to serve it, the deadline, a closing pool or its cancellation. Every wake-up
    // sets an outcome in the waiter under mu_, which is held until the wait has started, so
    // none is lost.
    asio::awaitable<expected<pool_node*>> acquire_slow(pgcoro::source_location loc)
    {
        const auto start = clock::now();
        // The timer takes the strand's inner executor, as the connections' I/O objects do.
        pool_waiter w(strand_.get_inner_executor(), clock::time_point::max(), loc);
        waiter_membership member(*this, w); // unlinks `w` whatever ends this frame
        std::unique_lock lk(mu_);
        w.timer.expires_at(start + machine_.config().acquire_timeout);
        const auto step = machine_.acquire(w, start);
        const auto waiters = machine_.waiter_count();
        auto acts = take_actions();
        lk.unlock();
        post_apply(std::move(acts));
        switch (step)
        {
        case acquire_step::assigned:
            member.consumed = true;
            co_return leased(static_cast<pool_node*>(w.assigned), acquire_outcome::immediate, start,
                             loc);
        case acquire_step::closed:
            member.consumed = true;
            co_return failed(acquire_outcome::rejected, start, loc,
                             error(errc::pool_closed, "pool is closed"));
        case acquire_step::too_many_waiters:
            member.consumed = true;
            co_return failed(
                acquire_outcome::rejected, start, loc,
                error(errc::too_many_waiters, "acquire rejected: " + std::to_string(waiters) +
                                                  " waiters already (max_waiters)"));
        case acquire_step::queued:
            break;
        }

        boost::system::error_code ec = asio::error::operation_aborted;
        auto cs = co_await asio::this_coro::cancellation_state;
        lk.lock();
        if (w.assigned || w.closed || w.failure || cs.cancelled() != asio::cancellation_type::none)
            lk.unlock();
        else
        {
            // A deferred operation, not use_awaitable: no coroutine frame for the wait itself.
            const auto token = asio::as_tuple(asio::deferred);
            // mu_ stays locked until the wait has started and is unlocked on the thread that
            // locked it; `lk` lets go of it first, so the coroutine (which may resume on
            // another thread before this returns) locks afresh and no lock object is shared.
            lk.release();
            std::tie(ec) =
                co_await asio::async_initiate<decltype(token), void(boost::system::error_code)>(
                    [&w, m = &mu_](auto handler)
                    {
                        w.timer.async_wait(std::move(handler));
                        m->unlock();
                    },
                    token);
        }

        lk = std::unique_lock(mu_); // `lk` may have let go of mu_ (release()) above
        member.consumed = true;
        if (w.assigned)
        {
            machine_.count(acquire_outcome::waited);
            lk.unlock();
            co_return leased(static_cast<pool_node*>(w.assigned), acquire_outcome::waited, start,
                             loc);
        }
        if (w.closed || w.failure)
        {
            machine_.count(acquire_outcome::rejected);
            lk.unlock();
            co_return failed(acquire_outcome::rejected, start, loc,
                             w.failure ? std::move(*w.failure)
                                       : error(errc::pool_closed, "pool closed while waiting"));
        }
        if (!ec)
        {
            auto e = machine_.timeout_error(clock::now() - start); // still counted as waiting
            machine_.leave(w);
            machine_.count(acquire_outcome::timed_out);
            lk.unlock();
            co_return failed(acquire_outcome::timed_out, start, loc, std::move(e));
        }
        auto e = machine_.cancelled_error(clock::now() - start); // still counted as waiting
        machine_.leave(w);
        machine_.count(acquire_outcome::cancelled);
        lk.unlock();
        co_return failed(acquire_outcome::cancelled, start, loc, std::move(e));
    }

    // ---- release ------------------------------------------------------------------------

    // A lease gives its connection back, on the lease's thread: to the first waiter or the
    // idle stack without a hop; a reset, settle or close is posted to the strand. Never
    // throws: if posting fails, the connections it concerned are closed by their destructor.
    void release(pool_node* n, bool broken) noexcept
    {
        try
        {
            const auto now = fast_now();
            if (obs_)
                report_release(*n, now);
            if (!broken && !writable_attrs_.empty() &&
                (n->conn.saw_read_only_error() ||
                 server_mismatch(n->conn.native_handle(), writable_attrs_)))
            {
                broken = true; // 25006 territory: a read-only server for a read-write pool
                read_only_closed_.fetch_add(1, std::memory_order_relaxed);
            }
            const auto c = condition(*n, broken);
            std::unique_lock lk(mu_);
            machine_.release(n, c, now);
            if (machine_.pending().empty())
                return; // to a waiter or the idle stack
            auto acts = machine_.take_pending();
            lk.unlock();
            post_apply(std::move(acts));
        }
        catch (...)
        {
            release_failures_.fetch_add(1, std::memory_order_relaxed);
        }
    }

    // ---- warmup, close, reconfiguration (on the strand) ---------------------------------

    // Waits until min_size connections are open; fails with the connect error as soon as a
    // connect fails, or with timeout after connect_timeout (+ the refill delays).
    asio::awaitable<expected<void>> warmup()
    {
        co_await asio::this_coro::throw_if_cancelled(false);
        const auto failures_before = machine_.stats().connect_failures;
        event([](auto& m, auto now) { m.poke(now); });
        asio::steady_timer t(strand_);
        const auto limit =
            clock::now() + std::max(ccfg_.connect_timeout, std::chrono::milliseconds(1000));
        for (;;)
        {
            {
                std::lock_guard lk(mu_);
                if (machine_.closed())
                    co_return fail(errc::pool_closed, "pool is closed");
                if (machine_.ready_count() >= machine_.config().min_size)
                    co_return expected<void>{};
                if (machine_.stats().connect_failures != failures_before && machine_.last_error())
                    co_return tl::unexpected(*machine_.last_error());
            }
            if (clock::now() >= limit)
                co_return fail(errc::timeout, "warmup did not reach min_size in time");
            t.expires_at(std::min(limit, clock::now() + std::chrono::milliseconds(20)));
            watchers_.push_back(&t);
            auto [ec] = co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
            std::erase(watchers_, &t);
            if (ec && (co_await asio::this_coro::cancellation_state).cancelled() !=
                          asio::cancellation_type::none)
                co_return fail(errc::cancelled, "warmup cancelled");
        }
    }

    // Stops new acquires, fails the waiters, closes idle connections, waits up to `grace`
    // for leased ones to come back, then returns (the rest close as they return).
    asio::awaitable<void> close(std::chrono::milliseconds grace)
    {
        co_await asio::this_coro::throw_if_cancelled(false);
        begin_shutdown();
        drain_timer_.expires_after(grace);
        while (size() > 0)
        {
            auto [ec] = co_await drain_timer_.async_wait(asio::as_tuple(asio::use_awaitable));
            if (!ec)
                break; // grace period over
        }
    }

    // The pool object went away, or close(): shut down without waiting.
    void begin_shutdown()
    {
        event([](auto& m, auto now) { m.shutdown(now); });
        maint_timer_.cancel();
        refill_timer_.cancel();
        for (auto* t : watchers_)
            t->cancel();
    }

    void set_max_size(std::size_t n)
    {
        event([n](auto& m, auto now) { m.set_max_size(n, now); });
    }
    void set_acquire_timeout(std::chrono::milliseconds d)
    {
        std::lock_guard lk(mu_);
        machine_.set_acquire_timeout(d);
    }
    void set_idle_timeout(std::chrono::milliseconds d)
    {
        std::lock_guard lk(mu_);
        machine_.set_idle_timeout(d);
    }

private:
    // A connection was handed out: its statements go to the observer, which hears of it.
    pool_node* leased(pool_node* n, acquire_outcome how, clock::time_point start,
                      pgcoro::source_location loc)
    {
        if (obs_)
        {
            n->conn.set_observer(obs_, slow_query_);
            notify(
                [&] {
                    obs_->on_acquire(
                        acquire_event{how, clock::now() - start, stats().waiters, loc, {}});
                });
        }
        return n;
    }

    tl::unexpected<error> failed(acquire_outcome how, clock::time_point start,
                                 pgcoro::source_location loc, error e)
    {
        if (obs_)
            notify(
                [&] {
                    obs_->on_acquire(
                        acquire_event{how, clock::now() - start, stats().waiters, loc, e.code});
                });
        return tl::unexpected(std::move(e));
    }

    // Keeps a waiter's queue membership tied to its frame: when the frame ends before the
    // waiter took its outcome (io_context destroyed, an exception), the waiter leaves the
    // queue and a connection assigned to it meanwhile is given back.
    struct waiter_membership
    {
        waiter_membership(pool_core& c, pool_waiter& w) noexcept : core(c), waiter(w) {}
        waiter_membership(const waiter_membership&) = delete;
        waiter_membership& operator=(const waiter_membership&) = delete;
        ~waiter_membership()
        {
            if (consumed)
                return;
            pool_node* n;
            {
                std::lock_guard lk(core.mu_);
                n = core.machine_.leave(waiter);
            }
            if (n)
                core.release(n, false);
        }
        pool_core& core;
        pool_waiter& waiter;
        bool consumed = false; // the frame took the waiter's outcome itself
    };
};

} // namespace pgcoro::detail

#endif // PGCORO_DETAIL_POOL_CORE_HPP
