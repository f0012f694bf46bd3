// pgcoro/detail/pool_core.hpp - the pool's acquire and release paths, warmup, close and
// run-time reconfiguration, over pool_upkeep (strand work) and pool_state (state, counters).
#ifndef PGCORO_DETAIL_POOL_CORE_HPP
#define PGCORO_DETAIL_POOL_CORE_HPP

#include <pgcoro/detail/pool_upkeep.hpp>
#include <pgcoro/detail/spawn_on.hpp>
#include <pgcoro/detail/waiter_queue.hpp>
#include <pgcoro/error.hpp>
#include <pgcoro/source_location.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <memory>
#include <utility>

namespace pgcoro::detail
{

namespace asio = boost::asio;

// The pool's asynchronous work (connects, validation, resets, sweeps) runs on strand_; the
// fast paths (try_acquire, try_release) and a full pool's waiters (acquire_slow) run on the
// caller's thread. mu_ guards the state they share; stats() reads only the atomics in
// `gauges_`/`totals_`.
class pool_core final : public pool_upkeep
{
public:
    pool_core(asio::any_io_executor ex, connect_config ccfg, pool_config pcfg,
              std::shared_ptr<observer> obs = nullptr)
        : pool_upkeep(std::move(ex), std::move(ccfg), pcfg, std::move(obs))
    {
    }

    // ---- acquire ------------------------------------------------------------------------

    // The fast path, callable from any thread without a strand hop: hands out the hottest idle
    // connection when it needs no validation, else returns nullptr and the caller takes the
    // slow path (acquire() on the strand), which also handles closing, waiting and retiring.
    // Its idle and lease bookkeeping reads the coarse clock (fast_now()).
    pool_node* try_acquire(pgcoro::source_location loc)
    {
        std::lock_guard lk(mu_); // not unique_lock: its out-of-line lock() costs a call
        if (closed_ || idle_.empty())
            return nullptr;
        pool_node* n = idle_.back();
        const auto now = fast_now();
        if (needs_validation(*n, now) || unusable(*n, now))
            return nullptr;
        idle_.pop_back();
        lease_out(n, loc, now, false);
        bump(totals_.acquired_immediately);
        if (obs_)
            notify_acquire(acquire_outcome::immediate, now, loc, {});
        return n;
    }

    // The slow path, as the caller's coroutine runs it. When the pool has nothing to do but
    // wait for a release (no idle connection, no connect to start, not closed, room in the
    // queue; the saturated pool's common case) the caller queues itself right here; otherwise
    // enqueue() on the strand validates, retires, connects, and hands out or queues it. The
    // wait for a queued acquire runs on the caller's executor either way: no strand hop.
    //
    // Woken by make_available() or try_release() (assigned; the latter on any thread),
    // begin_shutdown() (closed), the deadline, or the caller's cancellation. Every wake-up
    // sets assigned or closed with mu_ held, checked here with mu_ held before the wait, and
    // cancels the timer; mu_ stays held until the wait has started, so no wake-up is lost or
    // touches the timer during the start. The caller's cancellation reaches the timer
    // through its cancellation slot.
    asio::awaitable<expected<pool_node*>> acquire_slow(pgcoro::source_location loc)
    {
        const auto start = clock::now();
        // The timer takes the strand's inner executor, as the connections' I/O objects do: its
        // handler runs on the waiting coroutine's executor anyway, and a type-erased strand
        // would cost a heap allocation per waiter.
        pool_waiter w(strand_.get_inner_executor(), start + cfg_.acquire_timeout, loc);
        waiter_membership member(*this, w); // unlinks `w` whatever ends this frame
        lock_type lk(mu_);
        if (may_wait_here())
        {
            waiters_.push_back(&w);
            update_gauges();
        }
        else
        {
            lk.unlock();
            auto r = co_await spawn_on(strand_, enqueue(start, w));
            if (!r || *r)
                co_return r; // a connection, or an error
            lk.lock();       // queued
        }

        boost::system::error_code ec = asio::error::operation_aborted;
        auto cs = co_await asio::this_coro::cancellation_state;
        if (w.assigned || w.closed || w.failure || cs.cancelled() != asio::cancellation_type::none)
            lk.unlock();
        else
        {
            // A deferred operation, not use_awaitable: no coroutine frame for the wait itself.
            const auto token = asio::as_tuple(asio::deferred);
            // mu_ stays locked until the wait has started, and is unlocked on the thread that
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

        lk = lock_type(mu_);
        member.consumed = true;
        if (w.assigned)
        {
            ++totals_.acquired_after_wait;
            if (obs_)
                notify_acquire(acquire_outcome::waited, start, loc, {});
            co_return w.assigned;
        }
        if (w.closed)
        {
            ++totals_.rejected;
            co_return acquire_failed(acquire_outcome::rejected, start, loc,
                                     error(errc::pool_closed, "pool closed while waiting"));
        }
        if (w.failure)
        {
            ++totals_.rejected;
            co_return acquire_failed(acquire_outcome::rejected, start, loc, std::move(*w.failure));
        }
        if (!ec)
        {
            // Described while this waiter still counts among the waiters.
            auto e = timeout_error(clock::now() - start);
            waiters_.erase(&w);
            ++totals_.timed_out;
            update_gauges();
            co_return acquire_failed(acquire_outcome::timed_out, start, loc, std::move(e));
        }
        waiters_.erase(&w);
        update_gauges();
        ++totals_.cancelled;
        co_return acquire_failed(acquire_outcome::cancelled, start, loc,
                                 error(errc::cancelled, "acquire cancelled"));
    }

    // ---- release ------------------------------------------------------------------------

    // The fast path of a release, on the releasing thread: an open connection outside a
    // transaction goes straight to the first waiter, or back on the idle stack when nobody
    // waits. Returns false when the strand must handle it (release()): a reset, a close,
    // retirement. Like try_acquire(), it stamps with fast_now().
    bool try_release(pool_node* n, bool broken)
    {
        if (broken)
            return false;
        std::lock_guard lk(mu_);
        const auto now = fast_now();
        if (closed_ || now >= n->retire || nodes_.size() > cfg_.max_size || !n->conn.is_open() ||
            !n->conn.settled() || n->conn.transaction_status() != PQTRANS_IDLE)
            return false;
        report_release(n, now);
        if (hand_to_waiter(n, now)) // as make_available() would on the strand
            return true;
        n->state = node_state::idle;
        n->idle_since = now;
        idle_.push_back(n);
        update_lease_gauges();
        return true;
    }

    // A lease gave its connection back (posted onto the strand by the lease).
    void release(pool_node* n, bool broken)
    {
        lock_type lk(mu_);
        report_release(n, clock::now());
        dispose(n, broken);
    }

    // ---- warmup and close ---------------------------------------------------------------

    // Waits until min_size connections are open; fails with the connect error as soon as a
    // connect fails, or with timeout after connect_timeout (+ the refill delays).
    asio::awaitable<expected<void>> warmup()
    {
        co_await asio::this_coro::throw_if_cancelled(false);
        const auto failures_before = totals_.connect_failures.load();
        start_connects();
        asio::steady_timer t(strand_);
        auto limit =
            clock::now() + std::max(ccfg_.connect_timeout, std::chrono::milliseconds(1000));
        for (;;)
        {
            {
                lock_type lk(mu_);
                if (closed_)
                    co_return fail(errc::pool_closed, "pool is closed");
                if (ready_count() >= cfg_.min_size)
                    co_return expected<void>{};
                if (totals_.connect_failures.load() != failures_before && last_error_)
                    co_return tl::unexpected(*last_error_);
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
    // for leased ones to come back, then closes whatever remains as it returns.
    asio::awaitable<void> close(std::chrono::milliseconds grace)
    {
        co_await asio::this_coro::throw_if_cancelled(false);
        begin_shutdown();
        drain_timer_.expires_after(grace);
        while (!nodes_.empty())
        {
            auto [ec] = co_await drain_timer_.async_wait(asio::as_tuple(asio::use_awaitable));
            if (!ec)
                break; // grace period over; the rest close when their leases return
        }
    }

    // The pool object went away: shut down without waiting.
    void begin_shutdown()
    {
        lock_type lk(mu_);
        if (closed_)
            return;
        closed_ = true;
        maint_timer_.cancel();
        refill_timer_.cancel();
        while (pool_waiter* w = waiters_.pop_front())
        {
            w->closed = true;
            w->timer.cancel();
        }
        while (!idle_.empty())
        {
            pool_node* n = idle_.back();
            idle_.pop_back();
            close_node(n, close_reason::shutdown);
        }
        for (auto* t : watchers_)
            t->cancel();
        update_gauges();
    }

    // ---- runtime reconfiguration --------------------------------------------------------

    void set_max_size(std::size_t n)
    {
        lock_type lk(mu_);
        cfg_.max_size = std::max<std::size_t>(n, 1);
        gauges_.max_size.store(cfg_.max_size, std::memory_order_relaxed);
        cfg_.min_size = std::min(cfg_.min_size, cfg_.max_size);
        while (nodes_.size() > cfg_.max_size && !idle_.empty())
        {
            pool_node* idle = idle_.front(); // the coldest
            idle_.erase(idle_.begin());
            close_node(idle, close_reason::idle_timeout);
        }
        start_connects();
    }

private:
    std::shared_ptr<pool_core> self()
    {
        return std::static_pointer_cast<pool_core>(shared_from_this());
    }

    // ---- state transitions (each in one place) ------------------------------------------

    // The slow path's strand part: validates, retires, hands out an idle connection, or queues
    // `w` (which lives in the caller's frame) and starts the connects it calls for.
    // Completes with: the connection; nullptr when `w` was queued; or the error (pool_closed,
    // too_many_waiters, cancelled during a validation).
    asio::awaitable<expected<pool_node*>> enqueue(clock::time_point start, pool_waiter& w)
    {
        // This coroutine reports cancellation as a value, never by throwing.
        co_await asio::this_coro::throw_if_cancelled(false);
        const auto loc = w.where;
        lock_type lk(mu_); // released around every suspension
        for (;;)
        {
            if (closed_)
            {
                ++totals_.rejected;
                co_return acquire_failed(acquire_outcome::rejected, start, loc,
                                         error(errc::pool_closed, "pool is closed"));
            }
            pool_node* n = take_idle(start);
            if (!n)
                break;
            if (needs_validation(*n, start))
            {
                // Validation runs within the caller's deadline and ends with its cancellation:
                // a cancelled or out-of-time acquire leaves the connection as it was.
                const auto deadline = start + cfg_.acquire_timeout;
                auto now = clock::now();
                const bool cancelled = (co_await asio::this_coro::cancellation_state).cancelled() !=
                                       asio::cancellation_type::none;
                if (cancelled || now >= deadline)
                {
                    n->state = node_state::idle; // idle_since unchanged: still due a validation
                    idle_.push_back(n);
                    update_gauges();
                    co_return stop_enqueue(cancelled, start, loc);
                }
                n->state = node_state::validating;
                update_gauges();
                lk.unlock();
                const auto budget =
                    std::min<clock::duration>(cfg_.validation_timeout, deadline - now);
                bool ok = co_await ping(*n, std::chrono::ceil<std::chrono::milliseconds>(budget));
                lk.lock();
                if (closed_)
                {
                    close_node(n, close_reason::shutdown);
                    continue; // rejected above
                }
                if ((co_await asio::this_coro::cancellation_state).cancelled() !=
                    asio::cancellation_type::none)
                {
                    // Not the connection's fault: it is finished in the background (its ping
                    // cancelled on the server) and goes back, or is closed if it broke.
                    dispose(n, false);
                    co_return stop_enqueue(true, start, loc);
                }
                if (!ok)
                {
                    // A ping that timed out closes its connection at once (no cancel round).
                    close_node(n, close_reason::validation_failed);
                    continue;
                }
            }
            lease_out(n, loc, clock::now());
            ++totals_.acquired_immediately;
            if (obs_)
                notify_acquire(acquire_outcome::immediate, start, loc, {});
            co_return n;
        }

        if (cfg_.max_waiters > 0 && waiters_.size() >= cfg_.max_waiters)
        {
            ++totals_.rejected;
            co_return acquire_failed(acquire_outcome::rejected, start, loc,
                                     error(errc::too_many_waiters,
                                           "acquire rejected: " + std::to_string(waiters_.size()) +
                                               " waiters already (max_waiters)"));
        }
        waiters_.push_back(&w);
        update_gauges();
        try
        {
            start_connects();
        }
        catch (...)
        {
            waiters_.erase(&w); // the caller's frame (and `w`) is about to go
            update_gauges();
            throw;
        }
        co_return nullptr;
    }

    // Keeps a waiter's queue membership tied to its frame: when the frame ends before the
    // waiter was woken and looked (io_context destroyed, an exception), the waiter leaves the
    // queue, and a connection assigned to it meanwhile is given back.
    struct waiter_membership
    {
        waiter_membership(pool_core& c, pool_waiter& w) noexcept : core(c), waiter(w) {}
        waiter_membership(const waiter_membership&) = delete;
        waiter_membership& operator=(const waiter_membership&) = delete;
        ~waiter_membership()
        {
            if (consumed)
                return;
            pool_node* n = nullptr;
            {
                lock_type lk(core.mu_);
                core.waiters_.erase(&waiter);
                core.update_gauges();
                n = std::exchange(waiter.assigned, nullptr);
            }
            if (n)
                core.give_back(n);
        }
        pool_core& core;
        pool_waiter& waiter;
        bool consumed = false; // the frame took the waiter's outcome itself
    };

    // A connection leased to a waiter that vanished: back to the pool, or closed. Never
    // throws (it runs in destructors).
    void give_back(pool_node* n) noexcept
    {
        try
        {
            if (!try_release(n, false))
                asio::post(strand_, [self = self(), n] { self->release(n, false); });
        }
        catch (...)
        {
            lock_type lk(mu_);
            close_node(n, close_reason::broken);
        }
    }
};

} // namespace pgcoro::detail

#endif // PGCORO_DETAIL_POOL_CORE_HPP
