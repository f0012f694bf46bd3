// SPDX-License-Identifier: BSL-1.0
// pgcoro/detail/pool_machine.hpp - the pool's state and every transition on it, as plain
// functions of (state, event, now): no I/O, no executor, no lock, no clock of its own.
#ifndef PGCORO_DETAIL_POOL_MACHINE_HPP
#define PGCORO_DETAIL_POOL_MACHINE_HPP

#include <pgcoro/detail/pool_actions.hpp>
#include <pgcoro/detail/pool_counters.hpp>
#include <pgcoro/detail/pool_describe.hpp>
#include <pgcoro/detail/pool_node.hpp>
#include <pgcoro/detail/pool_policy.hpp>
#include <pgcoro/detail/waiter_queue.hpp>
#include <pgcoro/error.hpp>
#include <pgcoro/events.hpp>
#include <pgcoro/pool_config.hpp>
#include <pgcoro/pool_stats.hpp>
#include <pgcoro/source_location.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <iterator>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace pgcoro::detail
{

// The pool's nodes, idle stack, waiter queue, counters and every transition between them.
// `Node` derives from node_rec and has `bool probe_broken(bool poll_socket)`. The caller
// serialises all calls (the driver holds its mutex); stats() may be read from any thread.
template <class Node>
class pool_machine
{
public:
    using clock = std::chrono::steady_clock;
    using time_point = clock::time_point;

    pool_machine(pool_config cfg, std::function<std::unique_ptr<Node>()> make_node)
        : cfg_(cfg), make_node_(std::move(make_node))
    {
        ctr_.gauges.max_size.store(cfg_.max_size, std::memory_order_relaxed);
    }
    pool_machine(const pool_machine&) = delete;
    pool_machine& operator=(const pool_machine&) = delete;

    const pool_config& config() const noexcept { return cfg_; }
    bool closed() const noexcept { return closed_; }
    std::size_t size() const noexcept { return nodes_.size(); }
    std::size_t ready_count() const noexcept { return nodes_.size() - connecting_; }
    std::size_t waiter_count() const noexcept { return waiters_.size(); }
    const std::optional<error>& last_error() const noexcept { return last_error_; }

    // The actions the last events left; the driver applies them and clears them.
    pool_actions<Node>& pending() noexcept { return pending_; }
    pool_actions<Node> take_pending() { return std::exchange(pending_, {}); }

    // ---- acquire ------------------------------------------------------------------------

    // The fast path: the hottest idle node when it needs no validation and looks sound;
    // nullptr sends the caller to acquire(). Leaves no actions.
    Node* take_idle_fast(time_point now, pgcoro::source_location loc)
    {
        if (closed_ || idle_.empty())
            return nullptr;
        Node* n = idle_.back();
        if (needs_validation(*n, now) || unusable(*n, now))
            return nullptr;
        idle_.pop_back();
        lease_out(*n, loc, now);
        ctr_.bump(ctr_.totals.acquired_immediately);
        update_lease_gauges();
        return n;
    }

    // A waiter arrives: it is queued and served in arrival order from the idle stack
    // (validating nodes due a validation in the background, closing unusable ones) or by
    // new connects.
    acquire_step acquire(waiter_rec& w, time_point now)
    {
        if (closed_)
        {
            ctr_.bump(ctr_.totals.rejected);
            return acquire_step::closed;
        }
        if (cfg_.max_waiters > 0 && waiters_.size() >= cfg_.max_waiters)
        {
            ctr_.bump(ctr_.totals.rejected);
            return acquire_step::too_many_waiters;
        }
        w.since = now;
        waiters_.push_back(&w);
        finish(now);
        if (w.assigned)
        {
            ctr_.bump(ctr_.totals.acquired_immediately);
            return acquire_step::assigned;
        }
        return acquire_step::queued;
    }

    // A waiter ends without taking an outcome (deadline, cancellation, its frame destroyed):
    // it leaves the queue. Returns a node assigned to it meanwhile, which the caller gives
    // back with release().
    Node* leave(waiter_rec& w) noexcept
    {
        waiters_.erase(&w);
        update_gauges();
        return static_cast<Node*>(std::exchange(w.assigned, nullptr));
    }

    // ---- shards (a pool split over several cores) ----------------------------------------

    // The shards of one pool share its max_size: `slots` is how many more connections the
    // whole pool may open (negative after set_max_size() shrank it). Each connect takes one,
    // each node that leaves gives it back. `front` gets when the oldest waiter queued (the
    // clock's count; max() when none), for the other shards. Set before the first event.
    void share(std::atomic<std::ptrdiff_t>* slots, std::atomic<clock::rep>* front) noexcept
    {
        slots_ = slots;
        front_ = front;
        update_gauges();
    }

    // Keeps `n`, which a lease gives back in condition `c`, leased for another shard's waiter
    // (as take_for_transfer() does); false when it is not fit to hand on (release() it).
    bool pass_on(Node* n, conn_condition c, time_point now) noexcept
    {
        if (c != conn_condition::reusable || closed_ || now >= n->retire ||
            nodes_.size() > cfg_.max_size || over_shared_limit())
            return false;
        lease_out(*n, {}, now);
        return true;
    }

    // Takes `n` back off the idle stack, to give to another shard's waiter: it counts as
    // leased here, stamped `now` (the receiving waiter stamps its own location with stamp()).
    // False when `n` is no longer idle (this shard's own waiter took it first).
    bool take_for_transfer(Node* n, time_point now) noexcept
    {
        if (closed_ || n->state != node_state::idle)
            return false;
        const auto it = std::find(idle_.rbegin(), idle_.rend(), n);
        if (it == idle_.rend())
            return false;
        idle_.erase(std::next(it).base());
        lease_out(*n, {}, now);
        update_lease_gauges();
        return true;
    }

    // Another shard's node, taken with take_for_transfer(), is on offer: this shard's first
    // waiter that no validation is serving already leaves the queue and is returned (the
    // caller assigns the node and wakes it). Null when there is none; the node then goes
    // back to its own shard.
    waiter_rec* adopt() noexcept
    {
        if (closed_ || waiters_.size() <= for_waiters_)
            return nullptr;
        waiter_rec* w = waiters_.pop_front();
        update_gauges();
        return w;
    }

    // Records who took `n` (a node of this shard a waiter of another shard received).
    void stamp(Node* n, pgcoro::source_location loc, time_point now) noexcept
    {
        lease_out(*n, loc, now);
    }

    // ---- release and the strand's completions -------------------------------------------

    // A lease gave its node back in condition `c`: handed to the first waiter or put on the
    // idle stack when reusable (leaving no actions), else reset, settled or closed.
    void release(Node* n, conn_condition c, time_point now)
    {
        if (c == conn_condition::reusable && !closed_ && now < n->retire &&
            nodes_.size() <= cfg_.max_size && !over_shared_limit())
        {
            // The common case, which changes nothing else: no finish() pass.
            if (waiters_.empty())
            {
                n->state = node_state::idle;
                n->idle_since = now;
                idle_.push_back(n);
                update_lease_gauges();
            }
            else
            {
                hand_to_waiter(n, now);
                update_gauges();
            }
            return;
        }
        switch (c)
        {
        case conn_condition::reusable:
            make_available(n, now);
            break;
        case conn_condition::in_transaction:
            if (closed_)
                close(n, close_reason::shutdown);
            else
            {
                n->state = node_state::resetting;
                pending_.reset.push_back(n);
            }
            break;
        case conn_condition::unsettled:
            if (closed_)
                close(n, close_reason::shutdown);
            else
            {
                n->state = node_state::resetting;
                pending_.settle.push_back(n);
            }
            break;
        case conn_condition::broken:
            close(n, closed_ ? close_reason::shutdown : close_reason::broken);
            break;
        case conn_condition::oversized:
            close(n, closed_ ? close_reason::shutdown : close_reason::lifetime);
            break;
        }
        finish(now);
    }

    // A connect ended: `failure` is null on success (`pid` the server process). Every
    // connection counted as opened is counted once as closed, and no other: opens and closes
    // of a drained pool are equal. A failure
    // backs the refill off (`unit_random` in [0, 1) jitters it), and one retrying cannot fix
    // fails the waiters at once.
    void connect_done(Node* n, const error* failure, int pid, time_point now, double unit_random)
    {
        --connecting_;
        if (failure && closed_)
            close(n, close_reason::shutdown, false); // aborted by shutdown: never opened
        else if (failure)
        {
            last_error_ = *failure;
            ctr_.bump(ctr_.totals.connect_failures);
            if (!failure->transient())
                fail_waiters(*failure);
            ++consecutive_failures_;
            next_connect_at_ = now + refill_delay(consecutive_failures_, cfg_, unit_random);
            close(n, close_reason::broken, false); // never opened: not counted as a close
        }
        else
        {
            consecutive_failures_ = 0;
            next_connect_at_ = {};
            ctr_.bump(ctr_.totals.opened);
            n->opened_at = now;
            n->backend_pid = pid;
            n->retire = retire_at(now, cfg_, unit_random);
            make_available(n, now); // after shutdown: closed at once, counted as a close
        }
        finish(now);
    }

    // A validation ping ended.
    void validated(Node* n, bool ok, time_point now)
    {
        if (std::exchange(n->for_waiter, false))
            --for_waiters_;
        if (closed_)
            close(n, close_reason::shutdown);
        else if (!ok)
            close(n, close_reason::validation_failed); // no cancel round: the ping timed out
        else
            make_available(n, now);
        finish(now);
    }

    // A ROLLBACK (after an in-transaction release) ended.
    void reset_done(Node* n, bool ok, time_point now)
    {
        release(n, ok ? conn_condition::reusable : conn_condition::broken, now);
    }

    // A returned unsettled node was settled (or not): dispatched again by its condition now.
    void settled(Node* n, conn_condition c, time_point now) { release(n, c, now); }

    // Nothing happened but the driver wants the pool topped up (start, warmup): starts the
    // connects min_size and the waiters call for.
    void poke(time_point now) { finish(now); }

    // The refill timer fired: start the connects that were held back.
    void refill_due(time_point now)
    {
        refill_pending_ = false;
        finish(now);
    }

    // The maintenance sweep: idle timeout, max lifetime, dead idle sockets, keepalive pings,
    // leak reports.
    void sweep(time_point now)
    {
        // Oldest idle first (the stack's bottom), so idle_timeout trims the coldest.
        const std::vector<Node*> idle_now(idle_.begin(), idle_.end());
        for (Node* n : idle_now)
        {
            if (auto why = unusable(*n, now))
                close(n, *why);
            else if (idle_expired(now - n->idle_since, nodes_.size(), cfg_))
                close(n, close_reason::idle_timeout);
            else if (cfg_.keepalive_interval.count() > 0 &&
                     now - n->idle_since >= cfg_.keepalive_interval)
            {
                std::erase(idle_, n);
                start_validation(*n, false);
            }
        }
        if (cfg_.leak_threshold.count() > 0)
            for (auto& p : nodes_)
                if (p->state == node_state::leased && !p->leak_reported &&
                    now - p->leased_at >= cfg_.leak_threshold)
                {
                    p->leak_reported = true;
                    ctr_.bump(ctr_.totals.leaks_reported);
                    pending_.leaks.push_back(leak_info{
                        p->acquired_at,
                        std::chrono::duration_cast<std::chrono::milliseconds>(now - p->leased_at),
                        p->backend_pid});
                }
        finish(now);
    }

    // Closes the pool: waiters are woken with `closed`, idle nodes close, the connects, pings
    // and resets in flight are aborted (they close as they end); leased nodes close as they
    // return. Idempotent.
    void shutdown(time_point now)
    {
        if (closed_)
            return;
        closed_ = true;
        while (waiter_rec* w = waiters_.pop_front())
        {
            w->closed = true;
            w->wake();
        }
        while (!idle_.empty())
            close(idle_.back(), close_reason::shutdown);
        for (auto& p : nodes_)
            if (p->state != node_state::leased)
                pending_.abort.push_back(p.get());
        finish(now);
    }

    // max_size changes at run time: idle nodes above it close (the coldest first); leased ones
    // close as they return.
    void set_max_size(std::size_t n, time_point now)
    {
        cfg_.max_size = std::max<std::size_t>(n, 1);
        ctr_.gauges.max_size.store(cfg_.max_size, std::memory_order_relaxed);
        cfg_.min_size = std::min(cfg_.min_size, cfg_.max_size);
        while ((nodes_.size() > cfg_.max_size || over_shared_limit()) && !idle_.empty())
            close(idle_.front(), close_reason::idle_timeout);
        finish(now);
    }
    void set_acquire_timeout(std::chrono::milliseconds d) noexcept { cfg_.acquire_timeout = d; }
    void set_idle_timeout(std::chrono::milliseconds d) noexcept { cfg_.idle_timeout = d; }

    // ---- reading ------------------------------------------------------------------------

    // Gauges and totals, from any thread.
    pool_stats stats() const noexcept { return ctr_.stats(); }
    // Counts how a woken waiter's acquire ended (acquire() counts the immediate and refused
    // ones itself).
    void count(acquire_outcome how) noexcept { ctr_.count(how); }

    // Where the pool stands, for a failed acquire's error (pool_describe.hpp).
    std::string describe() const
    {
        return describe_pool(stats(), cfg_.max_size, nodes_, last_error_);
    }

private:
    bool needs_validation(const node_rec& n, time_point now) const noexcept
    {
        return cfg_.validate_after_idle.count() > 0 &&
               now - n.idle_since >= cfg_.validate_after_idle;
    }

    // Why an idle node may not be handed out, if it may not. The socket is probed (one poll()
    // syscall) only after 1 ms of idleness: a connection reused at once skips it. The race it
    // narrows (the server closing the connection just before hand-out) exists at any probe
    // interval, and then the first statement fails with connection_lost.
    static std::optional<close_reason> unusable(Node& n, time_point now)
    {
        if (now >= n.retire)
            return close_reason::lifetime;
        if (n.probe_broken(now - n.idle_since >= std::chrono::milliseconds(1)))
            return close_reason::broken;
        return std::nullopt;
    }

    void lease_out(Node& n, pgcoro::source_location loc, time_point now) noexcept
    {
        n.state = node_state::leased;
        n.leased_at = now;
        n.acquired_at = loc;
        n.leak_reported = false;
    }

    void start_validation(Node& n, bool for_waiter)
    {
        n.state = node_state::validating;
        n.for_waiter = for_waiter;
        if (for_waiter)
            ++for_waiters_;
        pending_.validate.push_back(&n);
    }

    // Serves waiters from the idle stack while there are more of them than validations
    // started for them.
    void serve_waiters(time_point now)
    {
        while (!idle_.empty() && waiters_.size() > for_waiters_)
        {
            Node* n = idle_.back();
            idle_.pop_back();
            if (auto why = unusable(*n, now))
                close(n, *why);
            else if (needs_validation(*n, now))
                start_validation(*n, true);
            else
                hand_to_waiter(n, now);
        }
    }

    // Leases `n` to the first waiter and wakes it.
    void hand_to_waiter(Node* n, time_point now)
    {
        waiter_rec* w = waiters_.pop_front();
        w->assigned = n;
        lease_out(*n, w->where, now);
        w->wake();
    }

    // A ready node: to the first waiter, else onto the idle stack.
    void make_available(Node* n, time_point now)
    {
        if (closed_)
            close(n, close_reason::shutdown);
        else if (now >= n->retire)
            close(n, close_reason::lifetime);
        else if (nodes_.size() > cfg_.max_size || over_shared_limit())
            close(n, close_reason::idle_timeout); // set_max_size() shrank the pool meanwhile
        else if (!waiters_.empty())
            hand_to_waiter(n, now);
        else
        {
            n->state = node_state::idle;
            n->idle_since = now;
            idle_.push_back(n);
            update_lease_gauges();
        }
    }

    // `n` leaves the pool; the driver closes its connection. `counted` false for a node that
    // never opened.
    void close(Node* n, close_reason why, bool counted = true)
    {
        if (counted)
            ctr_.bump(ctr_.closed(why));
        std::erase(idle_, n);
        auto it =
            std::find_if(nodes_.begin(), nodes_.end(), [n](const auto& p) { return p.get() == n; });
        if (it == nodes_.end())
            return;
        pending_.close.push_back({std::move(*it), why});
        *it = std::move(nodes_.back());
        nodes_.pop_back();
        if (slots_)
            slots_->fetch_add(1, std::memory_order_relaxed);
    }

    // The shards together hold more connections than the pool's max_size now.
    bool over_shared_limit() const noexcept
    {
        return slots_ && slots_->load(std::memory_order_relaxed) < 0;
    }

    void fail_waiters(const error& why)
    {
        while (waiter_rec* w = waiters_.pop_front())
        {
            w->failure = why;
            w->wake();
        }
    }

    // After every event: serve waiters, start the connects called for (or arm the refill
    // timer while backing off), refresh the gauges, report a drained closed pool.
    void finish(time_point now)
    {
        serve_waiters(now);
        start_connects(now);
        update_gauges();
        if (closed_ && nodes_.empty())
            pending_.drained = true;
    }

    void start_connects(time_point now)
    {
        if (closed_)
            return;
        const std::size_t waiting =
            waiters_.size() > for_waiters_ ? waiters_.size() - for_waiters_ : 0;
        const pool_counts c{nodes_.size(), connecting_, idle_.size(), waiting};
        std::size_t k = connects_to_start(c, cfg_);
        if (k == 0)
            return;
        if (now < next_connect_at_)
        {
            if (!refill_pending_)
            {
                refill_pending_ = true;
                pending_.refill_at = next_connect_at_;
            }
            return;
        }
        for (; k > 0; --k)
        {
            if (slots_ && slots_->fetch_sub(1, std::memory_order_relaxed) <= 0)
            {
                slots_->fetch_add(1, std::memory_order_relaxed); // the pool is full
                break;
            }
            nodes_.push_back(make_node_());
            Node* n = nodes_.back().get();
            n->state = node_state::connecting;
            n->connect_started = now;
            ++connecting_;
            pending_.open.push_back(n);
        }
    }

    void update_lease_gauges() noexcept
    {
        ctr_.gauges.idle.store(idle_.size(), std::memory_order_relaxed);
        ctr_.gauges.leased.store(nodes_.size() - idle_.size() - connecting_,
                                 std::memory_order_relaxed);
    }

    void update_gauges() noexcept
    {
        ctr_.gauges.size.store(nodes_.size(), std::memory_order_relaxed);
        ctr_.gauges.connecting.store(connecting_, std::memory_order_relaxed);
        ctr_.gauges.waiters.store(waiters_.size(), std::memory_order_relaxed);
        if (front_)
            front_->store(waiters_.empty() ? clock::rep{std::numeric_limits<clock::rep>::max()}
                                           : waiters_.front()->since.time_since_epoch().count(),
                          std::memory_order_relaxed);
        update_lease_gauges();
    }

    pool_config cfg_;
    std::function<std::unique_ptr<Node>()> make_node_;
    std::vector<std::unique_ptr<Node>> nodes_; // every node, whatever its state
    std::vector<Node*> idle_;                  // LIFO: back() is the hottest
    waiter_queue waiters_;                     // FIFO
    std::size_t connecting_ = 0;
    std::size_t for_waiters_ = 0; // validation pings in flight started to serve a waiter
    unsigned consecutive_failures_ = 0;
    time_point next_connect_at_{};
    bool refill_pending_ = false;
    bool closed_ = false;
    std::optional<error> last_error_;
    pool_actions<Node> pending_;
    pool_counters ctr_;
    std::atomic<std::ptrdiff_t>* slots_ = nullptr; // shared by the shards of a pool
    std::atomic<clock::rep>* front_ = nullptr;     // this shard's oldest waiter, for the others
};

} // namespace pgcoro::detail

#endif // PGCORO_DETAIL_POOL_MACHINE_HPP
