// pgcoro/detail/pool_state.hpp - the pool's state under its mutex, and the synchronous
// transitions and bookkeeping on it (no I/O, no strand, nothing spawned).
#ifndef PGCORO_DETAIL_POOL_STATE_HPP
#define PGCORO_DETAIL_POOL_STATE_HPP

#include <pgcoro/connect_config.hpp>
#include <pgcoro/connection.hpp>
#include <pgcoro/detail/coarse_clock.hpp>
#include <pgcoro/detail/pool_node.hpp>
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

// What the pool knows, guarded by mu_: its nodes, idle stack and waiter queue, its counters,
// and the transitions that only move state. pool_upkeep adds the asynchronous work on the
// strand, pool_core the acquire and release paths. stats() reads only the atomics in
// `gauges_`/`totals_`, from any thread.
class pool_state
{
public:
    using clock = std::chrono::steady_clock;

    pool_state(connect_config ccfg, pool_config pcfg, std::shared_ptr<observer> obs)
        : ccfg_(std::move(ccfg)), cfg_(pcfg), rng_(std::random_device{}()),
          obs_owner_(std::move(obs)), obs_(obs_owner_.get())
    {
        gauges_.max_size.store(cfg_.max_size, std::memory_order_relaxed);
        if (ccfg_.query_timeout.count() == 0)
            ccfg_.query_timeout = cfg_.query_timeout;
    }
    pool_state(const pool_state&) = delete;
    pool_state& operator=(const pool_state&) = delete;

    void set_leak_handler(std::function<void(const leak_info&)> h) { on_leak_ = std::move(h); }

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

protected:
    ~pool_state() = default;

    // Recursive because transitions nest (close_node -> start_connects); never held across a
    // suspension.
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

    // mu_ guards the state the strand shares with the fast paths, which run on any thread
    // without a hop.
    mutable std::recursive_mutex mu_;
    connect_config ccfg_;
    pool_config cfg_;
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

#endif // PGCORO_DETAIL_POOL_STATE_HPP
