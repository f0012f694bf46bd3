// pgcoro/detail/pool_core.hpp - the pool's shared state and the thin driver that does its I/O.
#ifndef PGCORO_DETAIL_POOL_CORE_HPP
#define PGCORO_DETAIL_POOL_CORE_HPP

#include <pgcoro/connect_config.hpp>
#include <pgcoro/connection.hpp>
#include <pgcoro/detail/coarse_clock.hpp>
#include <pgcoro/detail/pool_policy.hpp>
#include <pgcoro/detail/waiter_queue.hpp>
#include <pgcoro/error.hpp>
#include <pgcoro/observer.hpp>
#include <pgcoro/pool_config.hpp>
#include <pgcoro/pool_stats.hpp>
#include <pgcoro/source_location.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <libpq-fe.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <poll.h>
#include <random>
#include <string>
#include <vector>

namespace pgcoro::detail
{

namespace asio = boost::asio;

// One pooled connection and its bookkeeping. Owned by pool_core::nodes_.
struct pool_node
{
    using time_point = std::chrono::steady_clock::time_point;
    explicit pool_node(asio::any_io_executor ex) : conn(std::move(ex)) {}

    connection conn;
    node_state state = node_state::connecting;
    time_point retire = time_point::max(); // max_lifetime (with jitter) ends here
    time_point connect_started{};          // when its connect began
    time_point opened_at{};                // when it became ready; time_point{} while never opened
    time_point idle_since{};
    time_point leased_at{};
    pgcoro::source_location acquired_at{};
    bool leak_reported = false;
};

// A suspected leak, as handed to the leak handler.
struct leak_info
{
    pgcoro::source_location where;  // the acquire() that took the lease
    std::chrono::milliseconds held; // how long it has been held so far
    int backend_pid;                // the server process behind it
};

// The pool's asynchronous work (connects, validation, resets, sweeps) runs on strand_; the
// fast paths (try_acquire, try_release) and a full pool's waiters (acquire_slow) run on the
// caller's thread. mu_ guards the state they share; stats() reads only the atomics in
// `gauges_`/`totals_`.
class pool_core : public std::enable_shared_from_this<pool_core>
{
public:
    using clock = std::chrono::steady_clock;
    using strand_type = asio::strand<asio::any_io_executor>;

    pool_core(asio::any_io_executor ex, connect_config ccfg, pool_config pcfg,
              std::shared_ptr<observer> obs = nullptr)
        : strand_(asio::make_strand(ex)), ccfg_(std::move(ccfg)), cfg_(pcfg), maint_timer_(strand_),
          refill_timer_(strand_), drain_timer_(strand_), rng_(std::random_device{}()),
          obs_owner_(std::move(obs)), obs_(obs_owner_.get())
    {
        gauges_.max_size.store(cfg_.max_size, std::memory_order_relaxed);
        if (ccfg_.query_timeout.count() == 0)
            ccfg_.query_timeout = cfg_.query_timeout;
    }

    const strand_type& strand() const noexcept { return strand_; }

    // Starts the maintenance sweep and the min_size refill. Called once, after make_shared.
    void start()
    {
        asio::co_spawn(strand_, maintain(shared_from_this()), asio::detached);
        start_connects();
    }

    void set_leak_handler(std::function<void(const leak_info&)> h) { on_leak_ = std::move(h); }

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
            auto r = co_await asio::co_spawn(strand_, enqueue(start, w), asio::use_awaitable);
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

    // What becomes of a returned connection: reused, reset, settled, or closed.
    void dispose(pool_node* n, bool broken)
    {
        lock_type lk(mu_);
        if (closed_)
        {
            close_node(n, close_reason::shutdown);
            return;
        }
        if (broken || !n->conn.is_open())
        {
            close_node(n, close_reason::broken);
            return;
        }
        if (!n->conn.settled())
        {
            // A statement timed out or was cancelled: its cancel and its results are finished
            // here, off the caller's path, before anyone else gets the connection.
            n->state = node_state::resetting;
            asio::co_spawn(strand_, settle(shared_from_this(), n), asio::detached);
            return;
        }
        switch (n->conn.transaction_status())
        {
        case PQTRANS_IDLE:
            make_available(n);
            return;
        case PQTRANS_INTRANS:
        case PQTRANS_INERROR:
            // Returned inside a transaction: roll it back before anyone else gets it.
            n->state = node_state::resetting;
            asio::co_spawn(strand_, reset(shared_from_this(), n), asio::detached);
            return;
        default:
            // Returned in the middle of a statement (its coroutine was destroyed): the
            // protocol state is unknown, so it is never reused.
            close_node(n, close_reason::broken);
            return;
        }
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
    void set_acquire_timeout(std::chrono::milliseconds d)
    {
        lock_type lk(mu_);
        cfg_.acquire_timeout = d;
    }
    void set_idle_timeout(std::chrono::milliseconds d)
    {
        lock_type lk(mu_);
        cfg_.idle_timeout = d;
    }

    // ---- stats (any thread) -------------------------------------------------------------

    pool_stats stats() const noexcept
    {
        pool_stats s;
        s.max_size = gauges_.max_size.load(std::memory_order_relaxed);
        s.size = gauges_.size.load(std::memory_order_relaxed);
        s.idle = gauges_.idle.load(std::memory_order_relaxed);
        s.leased = gauges_.leased.load(std::memory_order_relaxed);
        s.connecting = gauges_.connecting.load(std::memory_order_relaxed);
        s.waiters = gauges_.waiters.load(std::memory_order_relaxed);
        s.acquired_immediately = totals_.acquired_immediately.load(std::memory_order_relaxed);
        s.acquired_after_wait = totals_.acquired_after_wait.load(std::memory_order_relaxed);
        s.timed_out = totals_.timed_out.load(std::memory_order_relaxed);
        s.cancelled = totals_.cancelled.load(std::memory_order_relaxed);
        s.rejected = totals_.rejected.load(std::memory_order_relaxed);
        s.opened = totals_.opened.load(std::memory_order_relaxed);
        s.connect_failures = totals_.connect_failures.load(std::memory_order_relaxed);
        s.closed_idle = totals_.closed_idle.load(std::memory_order_relaxed);
        s.closed_lifetime = totals_.closed_lifetime.load(std::memory_order_relaxed);
        s.closed_broken = totals_.closed_broken.load(std::memory_order_relaxed);
        s.closed_validation = totals_.closed_validation.load(std::memory_order_relaxed);
        s.closed_shutdown = totals_.closed_shutdown.load(std::memory_order_relaxed);
        s.leaks_reported = totals_.leaks_reported.load(std::memory_order_relaxed);
        return s;
    }

private:
    // ---- state transitions (each in one place) ------------------------------------------

    using lock_type = std::unique_lock<std::recursive_mutex>;

    // The time for the fast paths' bookkeeping (idle_since, leased_at, the retire and
    // validate_after_idle checks): the coarse clock, which trails clock::now() by less than a
    // tick (1-4 ms), so those limits act up to a tick early or late; every comparison against
    // them is `elapsed >= positive limit`, which a short or negative elapsed time only
    // postpones. With an observer, clock::now(): the durations it is told (held, waited) keep
    // full precision.
    clock::time_point fast_now() const noexcept
    {
        return obs_ ? clock::now() : coarse_clock::now();
    }

    // Called with mu_ held.
    // `all_gauges` false: only idle_ changed (the fast path), so only idle and leased move.
    void lease_out(pool_node* n, pgcoro::source_location loc, clock::time_point now,
                   bool all_gauges = true)
    {
        n->state = node_state::leased;
        n->leased_at = now;
        n->acquired_at = loc;
        n->leak_reported = false;
        if (obs_)
            n->conn.set_observer(obs_, cfg_.slow_query_threshold);
        if (all_gauges)
            update_gauges();
        else
            update_lease_gauges();
    }

    void report_release(pool_node* n, clock::time_point now)
    {
        if (!obs_)
            return;
        n->conn.set_observer(nullptr); // the pool's own statements are not reported
        const auto status = n->conn.transaction_status();
        obs_->on_release(release_event{now - n->leased_at, n->conn.backend_pid(),
                                       status == PQTRANS_INTRANS || status == PQTRANS_INERROR});
    }

    bool needs_validation(const pool_node& n, clock::time_point now) const
    {
        return cfg_.validate_after_idle.count() > 0 &&
               now - n.idle_since >= cfg_.validate_after_idle;
    }

    void notify_acquire(acquire_outcome how, clock::time_point start, pgcoro::source_location loc,
                        std::error_code code) const noexcept
    {
        obs_->on_acquire(acquire_event{how, clock::now() - start, waiters_.size(), loc, code});
    }

    // A failed acquire(): reported to the observer, returned to the caller.
    tl::unexpected<error> acquire_failed(acquire_outcome how, clock::time_point start,
                                         pgcoro::source_location loc, error e) const
    {
        if (obs_)
            notify_acquire(how, start, loc, e.code);
        return tl::unexpected(std::move(e));
    }

    // Whether an acquire that found no idle connection may queue without the strand: nothing
    // but a release can serve it and queueing it starts no connect. With mu_ held.
    bool may_wait_here() const noexcept
    {
        if (closed_ || !idle_.empty() ||
            (cfg_.max_waiters > 0 && waiters_.size() >= cfg_.max_waiters))
            return false;
        const pool_counts c{nodes_.size(), connecting_, idle_.size(), waiters_.size() + 1};
        return connects_to_start(c, cfg_) == 0;
    }

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

    // enqueue() ends without a connection: cancelled by the caller, or out of time.
    tl::unexpected<error> stop_enqueue(bool cancelled, clock::time_point start,
                                       const pgcoro::source_location& loc)
    {
        if (cancelled)
        {
            ++totals_.cancelled;
            return acquire_failed(acquire_outcome::cancelled, start, loc,
                                  error(errc::cancelled, "acquire cancelled"));
        }
        auto e = timeout_error(clock::now() - start);
        ++totals_.timed_out;
        return acquire_failed(acquire_outcome::timed_out, start, loc, std::move(e));
    }

    // A connection is ready: the first waiter gets it, else it goes on the idle stack.
    void make_available(pool_node* n)
    {
        lock_type lk(mu_);
        if (closed_)
        {
            close_node(n, close_reason::shutdown);
            return;
        }
        auto now = clock::now();
        if (now >= n->retire)
        {
            close_node(n, close_reason::lifetime);
            return;
        }
        if (nodes_.size() > cfg_.max_size)
        {
            // set_max_size() shrank the pool while this one was leased.
            close_node(n, close_reason::idle_timeout);
            return;
        }
        if (hand_to_waiter(n, now))
            return;
        n->state = node_state::idle;
        n->idle_since = now;
        idle_.push_back(n);
        update_gauges();
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
                asio::post(strand_, [self = shared_from_this(), n] { self->release(n, false); });
        }
        catch (...)
        {
            lock_type lk(mu_);
            close_node(n, close_reason::broken);
        }
    }

    // A connect failed in a way retrying cannot fix (authentication, TLS, an unknown database,
    // configuration): the waiting acquires fail now with that error instead of waiting out
    // acquire_timeout. With mu_ held.
    void fail_waiters(const error& why)
    {
        while (pool_waiter* w = waiters_.pop_front())
        {
            w->failure = why;
            w->timer.cancel();
        }
        update_gauges();
    }

    // Leases `n` to the first waiter, if any, and wakes it (on any thread: the waiter resumes
    // on the strand and finds `assigned`). With mu_ held.
    bool hand_to_waiter(pool_node* n, clock::time_point now)
    {
        if (waiters_.empty())
            return false;
        pool_waiter* w = waiters_.pop_front();
        w->assigned = n;
        lease_out(n, w->where, now);
        w->timer.cancel();
        return true;
    }

    void close_node(pool_node* n, close_reason why)
    {
        lock_type lk(mu_);
        if (obs_ && n->opened_at != clock::time_point{})
            obs_->on_connection_closed(
                connection_closed_event{why, clock::now() - n->opened_at, n->conn.backend_pid()});
        n->conn.close();
        switch (why)
        {
        case close_reason::idle_timeout:
            ++totals_.closed_idle;
            break;
        case close_reason::lifetime:
            ++totals_.closed_lifetime;
            break;
        case close_reason::broken:
            ++totals_.closed_broken;
            break;
        case close_reason::validation_failed:
            ++totals_.closed_validation;
            break;
        case close_reason::shutdown:
            ++totals_.closed_shutdown;
            break;
        }
        std::erase(idle_, n);
        auto it =
            std::find_if(nodes_.begin(), nodes_.end(), [n](const auto& p) { return p.get() == n; });
        if (it != nodes_.end())
        {
            std::swap(*it, nodes_.back());
            nodes_.pop_back();
        }
        update_gauges();
        if (closed_ && nodes_.empty())
            drain_timer_.cancel();
        start_connects(); // replace it if min_size or waiters need one
    }

    // Pops the most recently used idle connection that is still good. A connection whose
    // socket turned readable while idle has been spoken to by the server - in practice a
    // FATAL (terminated, shutdown) before EOF - so it is replaced, not handed out. With mu_ held.
    pool_node* take_idle(clock::time_point now)
    {
        while (!idle_.empty())
        {
            pool_node* n = idle_.back();
            idle_.pop_back();
            if (auto why = unusable(*n, now))
                close_node(n, *why);
            else
                return n;
        }
        return nullptr;
    }

    // Why an idle connection may not be handed out any more, if it may not. The socket is
    // probed (one poll() syscall) only after it idled for probe_after_idle: a connection
    // reused within a millisecond skips it. The race it narrows - the server closing the
    // connection just before hand-out - exists at any probe interval (the server can close
    // it just after), and then the first statement fails with connection_lost. On the fast
    // path `now` and idle_since may be coarse stamps (fast_now()), so there the probe starts
    // after between 0 and 1 ms + 1 tick of idleness, not after exactly 1 ms.
    static std::optional<close_reason> unusable(pool_node& n, clock::time_point now)
    {
        constexpr auto probe_after_idle = std::chrono::milliseconds(1);
        if (now >= n.retire)
            return close_reason::lifetime;
        if (!n.conn.is_open() || (now - n.idle_since >= probe_after_idle && socket_readable(n)))
            return close_reason::broken;
        return std::nullopt;
    }

    static bool socket_readable(pool_node& n)
    {
        pollfd p{PQsocket(n.conn.native_handle()), POLLIN, 0};
        return p.fd < 0 || ::poll(&p, 1, 0) != 0;
    }

    // ---- connects -----------------------------------------------------------------------

    void start_connects()
    {
        lock_type lk(mu_);
        if (closed_)
            return;
        if (clock::now() < next_connect_at_)
        {
            schedule_refill();
            return;
        }
        pool_counts c{nodes_.size(), connecting_, idle_.size(), waiters_.size()};
        for (std::size_t k = connects_to_start(c, cfg_); k > 0; --k)
        {
            // The connection's I/O objects take the strand's inner executor: their handlers
            // already run on the awaiting coroutine's executor (the strand for the pool's
            // own work), and a type-erased strand is a heap allocation on every wait.
            nodes_.push_back(std::make_unique<pool_node>(strand_.get_inner_executor()));
            nodes_.back()->connect_started = clock::now();
            ++connecting_;
            if (obs_)
                obs_->on_connect_started(connect_started_event{connecting_});
            asio::co_spawn(strand_, open(shared_from_this(), nodes_.back().get()), asio::detached);
        }
        update_gauges();
    }

    void schedule_refill()
    {
        if (refill_pending_)
            return;
        refill_pending_ = true;
        refill_timer_.expires_at(next_connect_at_);
        refill_timer_.async_wait(
            asio::bind_executor(strand_,
                                [self = shared_from_this()](boost::system::error_code ec)
                                {
                                    self->refill_pending_ = false;
                                    if (!ec)
                                        self->start_connects();
                                }));
    }

    static asio::awaitable<void> open(std::shared_ptr<pool_core> self, pool_node* n)
    {
        auto r = co_await n->conn.connect(self->ccfg_);
        lock_type lk(self->mu_);
        --self->connecting_;
        for (auto* t : self->watchers_)
            t->cancel();
        if (self->closed_)
        {
            self->close_node(n, close_reason::shutdown);
            co_return;
        }
        if (!r)
        {
            if (auto* o = self->obs_)
                o->on_connect_failed(connect_failed_event{clock::now() - n->connect_started,
                                                          r.error().code, r.error().state,
                                                          r.error().message});
            self->last_error_ = std::move(r.error());
            ++self->totals_.connect_failures;
            if (!self->last_error_->transient())
                self->fail_waiters(*self->last_error_);
            ++self->consecutive_failures_;
            self->next_connect_at_ = clock::now() + refill_delay(self->consecutive_failures_,
                                                                 self->cfg_, uniform01(self->rng_));
            // Not counted as a close: it never opened.
            std::erase_if(self->nodes_, [n](const auto& p) { return p.get() == n; });
            self->update_gauges();
            self->start_connects();
            co_return;
        }
        self->consecutive_failures_ = 0;
        self->next_connect_at_ = {};
        ++self->totals_.opened;
        n->opened_at = clock::now();
        if (auto* o = self->obs_)
            o->on_connect_succeeded(
                connect_succeeded_event{n->opened_at - n->connect_started, n->conn.backend_pid()});
        n->retire = retire_at(clock::now(), self->cfg_, uniform01(self->rng_));
        self->make_available(n);
        self->start_connects();
    }

    // ---- validation, reset, maintenance -------------------------------------------------

    asio::awaitable<bool> ping(pool_node& n, std::chrono::milliseconds budget)
    {
        // An empty statement is the cheapest full round trip (EmptyQueryResponse).
        auto r = co_await n.conn.query(query_options{budget}, "");
        co_return r.has_value();
    }

    static asio::awaitable<void> reset(std::shared_ptr<pool_core> self, pool_node* n)
    {
        auto r = co_await n->conn.query(query_options{self->cfg_.validation_timeout}, "ROLLBACK");
        if (r && n->conn.transaction_status() == PQTRANS_IDLE)
            self->make_available(n);
        else
            self->close_node(n, close_reason::broken);
    }

    static asio::awaitable<void> settle(std::shared_ptr<pool_core> self, pool_node* n)
    {
        auto r =
            co_await n->conn.settle(self->ccfg_.cancel_timeout + self->cfg_.validation_timeout);
        self->dispose(n, !r);
    }

    static asio::awaitable<void> keepalive(std::shared_ptr<pool_core> self, pool_node* n)
    {
        bool ok = co_await self->ping(*n, self->cfg_.validation_timeout);
        if (ok)
            self->make_available(n);
        else
            self->close_node(n, close_reason::validation_failed);
    }

    static asio::awaitable<void> maintain(std::shared_ptr<pool_core> self)
    {
        while (!self->closed_)
        {
            self->maint_timer_.expires_after(maintenance_interval(self->cfg_));
            auto [ec] = co_await self->maint_timer_.async_wait(asio::as_tuple(asio::use_awaitable));
            if (ec || self->closed_)
                break;
            self->sweep(clock::now());
        }
    }

    // Idle timeout, max lifetime, dead idle sockets, keepalive pings and leak reports.
    void sweep(clock::time_point now)
    {
        lock_type lk(mu_);
        // Oldest idle first (the stack's bottom), so idle_timeout trims the coldest.
        std::vector<pool_node*> idle_now(idle_.begin(), idle_.end());
        for (pool_node* n : idle_now)
        {
            if (auto why = unusable(*n, now))
                close_node(n, *why);
            else if (idle_expired(now - n->idle_since, nodes_.size(), cfg_))
                close_node(n, close_reason::idle_timeout);
            else if (cfg_.keepalive_interval.count() > 0 &&
                     now - n->idle_since >= cfg_.keepalive_interval)
            {
                std::erase(idle_, n);
                n->state = node_state::validating;
                update_gauges();
                asio::co_spawn(strand_, keepalive(shared_from_this(), n), asio::detached);
            }
        }
        if (cfg_.leak_threshold.count() > 0)
            for (auto& p : nodes_)
                if (p->state == node_state::leased && !p->leak_reported &&
                    now - p->leased_at >= cfg_.leak_threshold)
                {
                    p->leak_reported = true;
                    ++totals_.leaks_reported;
                    const auto held =
                        std::chrono::duration_cast<std::chrono::milliseconds>(now - p->leased_at);
                    if (obs_)
                        obs_->on_leak_suspected(
                            leak_suspected_event{p->acquired_at, held, p->conn.backend_pid()});
                    if (on_leak_)
                        on_leak_(leak_info{p->acquired_at, held, p->conn.backend_pid()});
                }
        start_connects();
    }

    // ---- diagnostics --------------------------------------------------------------------

    std::size_t ready_count() const { return nodes_.size() - connecting_; }

    error timeout_error(clock::duration waited) const
    {
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(waited).count();
        auto s = stats();
        std::string msg =
            "no connection within " + std::to_string(ms) + " ms (acquire_timeout " +
            std::to_string(cfg_.acquire_timeout.count()) + " ms): size=" + std::to_string(s.size) +
            "/" + std::to_string(cfg_.max_size) + " in_use=" + std::to_string(s.leased) +
            " idle=" + std::to_string(s.idle) + " connecting=" + std::to_string(s.connecting) +
            " waiters=" + std::to_string(s.waiters);
        if (auto oldest = oldest_lease())
            msg += "; oldest lease taken at " + std::string(oldest->file_name()) + ":" +
                   std::to_string(oldest->line());
        if (last_error_)
            msg += "; last connect error: " + last_error_->to_string();
        return error(errc::pool_timeout, std::move(msg));
    }

    std::optional<pgcoro::source_location> oldest_lease() const
    {
        lock_type lk(mu_);
        const pool_node* oldest = nullptr;
        for (const auto& p : nodes_)
            if (p->state == node_state::leased && (!oldest || p->leased_at < oldest->leased_at))
                oldest = p.get();
        if (!oldest)
            return std::nullopt;
        return oldest->acquired_at;
    }

    // A counter only written with mu_ held: a plain load and store, not a locked
    // read-modify-write (stats() reads it relaxed from any thread).
    static void bump(std::atomic<std::uint64_t>& c) noexcept
    {
        c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    }

    // The gauges a transition between idle and leased moves (size, connecting and waiters
    // stay); with mu_ held.
    void update_lease_gauges() noexcept
    {
        gauges_.idle.store(idle_.size(), std::memory_order_relaxed);
        gauges_.leased.store(nodes_.size() - idle_.size() - connecting_, std::memory_order_relaxed);
    }

    void update_gauges()
    {
        gauges_.size.store(nodes_.size(), std::memory_order_relaxed);
        gauges_.idle.store(idle_.size(), std::memory_order_relaxed);
        gauges_.connecting.store(connecting_, std::memory_order_relaxed);
        gauges_.leased.store(nodes_.size() - idle_.size() - connecting_, std::memory_order_relaxed);
        gauges_.waiters.store(waiters_.size(), std::memory_order_relaxed);
    }

    // The strand runs the pool's asynchronous work (connects, waits, resets, sweeps); mu_
    // guards the state it shares with the fast paths, which run on any thread without a
    // hop. Recursive because transitions nest (close_node -> start_connects); never held
    // across a suspension.
    strand_type strand_;
    mutable std::recursive_mutex mu_;
    connect_config ccfg_;
    pool_config cfg_;
    asio::steady_timer maint_timer_;
    asio::steady_timer refill_timer_;
    asio::steady_timer drain_timer_;
    std::mt19937_64 rng_;

    std::vector<std::unique_ptr<pool_node>> nodes_; // every connection, whatever its state
    std::vector<pool_node*> idle_;                  // LIFO: back() is the hottest
    waiter_queue waiters_;                          // FIFO
    std::vector<asio::steady_timer*> watchers_;     // warmups waiting for connect progress
    std::size_t connecting_ = 0;
    unsigned consecutive_failures_ = 0;
    clock::time_point next_connect_at_{};
    bool refill_pending_ = false;
    bool closed_ = false;
    std::optional<error> last_error_;
    std::function<void(const leak_info&)> on_leak_;
    std::shared_ptr<observer> obs_owner_; // keeps the observer alive as long as the pool
    observer* obs_ = nullptr;             // the hot path's one branch

    struct
    {
        std::atomic<std::size_t> max_size{0}, size{0}, idle{0}, leased{0}, connecting{0},
            waiters{0};
    } gauges_;
    struct
    {
        std::atomic<std::uint64_t> acquired_immediately{0}, acquired_after_wait{0}, timed_out{0},
            cancelled{0}, rejected{0}, opened{0}, connect_failures{0}, closed_idle{0},
            closed_lifetime{0}, closed_broken{0}, closed_validation{0}, closed_shutdown{0},
            leaks_reported{0};
    } totals_;
};

} // namespace pgcoro::detail

#endif // PGCORO_DETAIL_POOL_CORE_HPP
