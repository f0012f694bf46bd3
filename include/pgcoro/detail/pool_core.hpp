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

#include <atomic>
#include <chrono>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace pgcoro::detail
{

class pool_core;

// The shards of one pool (a pool made with several executors): each shard is a whole core
// with its own connections, waiters, strand and mutex. A shard lends an idle connection to
// another shard's acquire when that one has none (try_acquire), and hands a connection it
// gets back to another shard's waiter when it has none of its own waiting (offer()).
struct pool_group
{
    std::vector<std::weak_ptr<pool_core>> members; // weak: the leases and the pool own them
    std::vector<const void*> contexts;             // each member's execution context
    std::atomic<std::size_t> waiting{0};           // acquires queued in any shard
    std::atomic<std::ptrdiff_t> slots{0};          // connections the pool may still open
    std::atomic<std::size_t> max_size{0};          // the pool's max_size

    // When a shard's oldest waiter queued (steady_clock count; max() when none), each on its
    // own cache line: pool_machine::share() keeps it, the other shards' releases read it.
    struct alignas(64) front
    {
        std::atomic<std::chrono::steady_clock::rep> since{
            std::numeric_limits<std::chrono::steady_clock::rep>::max()};
    };
    std::unique_ptr<front[]> fronts; // one per member
};

// What an acquire got: a leased node, and the shard it belongs to when that is not the
// shard asked (the lease returns the node there; null otherwise).
struct acquired_node
{
    pool_node* node;
    std::shared_ptr<pool_core> lender;
};

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
    asio::awaitable<expected<acquired_node>> acquire_slow(pgcoro::source_location loc)
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
            co_return acquired_node{
                leased(static_cast<pool_node*>(w.assigned), acquire_outcome::immediate, start, loc),
                nullptr};
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

        // A shard's waiter is known to the other shards from here on (offer()); one that
        // released a connection just before is found by the steal that follows.
        queued_mark mark(group_ ? this : nullptr);
        if (group_)
        {
            if (auto lent = borrow(loc))
            {
                lk.lock();
                pool_node* own = machine_.leave(w);
                member.consumed = true;
                lk.unlock();
                give_back(w, own);
                co_return std::move(*lent);
            }
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
            auto* n = static_cast<pool_node*>(w.assigned);
            auto lender = std::static_pointer_cast<pool_core>(std::move(w.lender));
            if (lender)
                lender->stamp(n, loc); // another shard's connection, offered by it
            co_return acquired_node{leased(n, acquire_outcome::waited, start, loc),
                                    std::move(lender)};
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
            auto e = pool_timeout_error(clock::now() - start, machine_.config().acquire_timeout,
                                        where()); // still counted as waiting
            machine_.leave(w);
            machine_.count(acquire_outcome::timed_out);
            lk.unlock();
            co_return failed(acquire_outcome::timed_out, start, loc, std::move(e));
        }
        auto e = acquire_cancelled_error(clock::now() - start, where()); // still a waiter
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
            if (group_ && machine_.waiter_count() > 0)
                if (auto m = longer_waiting_shard(now); m && machine_.pass_on(n, c, now))
                {
                    lk.unlock();
                    if (!m->adopt(n, self_core()))
                        release_here(n); // served meanwhile: to this shard's own waiter
                    return;
                }
            machine_.release(n, c, now);
            if (machine_.pending().empty())
            {
                // To a waiter or the idle stack; from the idle stack to another shard's waiter
                // when this shard has none.
                if (group_ && n->state == node_state::idle &&
                    group_->waiting.load(std::memory_order_seq_cst) > 0)
                {
                    lk.unlock();
                    offer(n);
                }
                return;
            }
            auto acts = machine_.take_pending();
            lk.unlock();
            post_apply(std::move(acts));
        }
        catch (...)
        {
            release_failures_.fetch_add(1, std::memory_order_relaxed);
        }
    }

    // ---- shards --------------------------------------------------------------------------

    // Makes this core shard `index` of `g` (before any use).
    void join(std::shared_ptr<pool_group> g, std::size_t index) noexcept
    {
        group_ = std::move(g);
        index_ = index;
        slot_freed_ = [this]
        {
            poke_waiting_shards();
        };
        std::lock_guard lk(mu_);
        machine_.share(&group_->slots, &group_->fronts[index].since);
    }
    const std::shared_ptr<pool_group>& group() const noexcept { return group_; }

    // An idle connection of another shard (the next ones after this, in turn), or none.
    std::optional<acquired_node> borrow(pgcoro::source_location loc)
    {
        const auto count = group_->members.size();
        for (std::size_t k = 1; k < count; ++k)
            if (auto m = group_->members[(index_ + k) % count].lock())
                if (auto* n = m->try_acquire(loc))
                    return acquired_node{n, std::move(m)};
        return std::nullopt;
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
    // `n`, just put on this shard's idle stack while some shard has waiters: taken back and
    // handed to the first waiter of the next shard after this one that has one, or left here.
    void offer(pool_node* n) noexcept
    {
        const auto count = group_->members.size();
        for (std::size_t k = 1; k < count; ++k)
        {
            auto m = group_->members[(index_ + k) % count].lock();
            if (!m || m->queued_.load(std::memory_order_relaxed) == 0)
                continue;
            {
                std::lock_guard lk(mu_);
                if (!machine_.take_for_transfer(n, fast_now()))
                    return; // a waiter of this shard took it meanwhile
            }
            if (m->adopt(n, self_core()))
                return;
            release_here(n);
            return;
        }
    }

    // Hands `n` (of shard `lender`) to this shard's first waiter; false when none is left.
    bool adopt(pool_node* n, std::shared_ptr<void> lender) noexcept
    {
        std::lock_guard lk(mu_);
        auto* w = static_cast<pool_waiter*>(machine_.adopt());
        if (!w)
            return false;
        w->lender = std::move(lender);
        w->assigned = n;
        w->wake();
        return true;
    }

    // Where the pool stood, for a failed acquire: this shard, then the others of a sharded
    // pool ("; shard 1 of 2; the other shards: size=2 in_use=2 idle=0 connecting=0
    // waiters=3"). Under mu_; the other shards' gauges are read without their locks.
    std::string where() const
    {
        std::string s = machine_.describe();
        if (!group_)
            return s;
        pool_stats o;
        for (std::size_t i = 0; i < group_->members.size(); ++i)
            if (auto m = group_->members[i].lock(); m && i != index_)
                o += m->stats();
        return s + "; shard " + std::to_string(index_ + 1) + " of " +
               std::to_string(group_->members.size()) +
               "; the other shards: size=" + std::to_string(o.size) +
               " in_use=" + std::to_string(o.leased) + " idle=" + std::to_string(o.idle) +
               " connecting=" + std::to_string(o.connecting) +
               " waiters=" + std::to_string(o.waiters);
    }

    // Another shard whose oldest waiter has waited over twice as long as this shard's oldest
    // one, and 10 ms longer: a release goes there first, so a shard whose own waiters keep
    // every connection it holds busy does not leave another shard's waiters (which have no
    // connection, and no slot to open one) until their acquire_timeout. Shards with even
    // loads do not hand over this way. Null when there is none. Under mu_.
    std::shared_ptr<pool_core> longer_waiting_shard(clock::time_point now) const
    {
        if (group_->waiting.load(std::memory_order_relaxed) <=
            queued_.load(std::memory_order_relaxed))
            return nullptr; // no other shard has a waiter
        using rep = clock::rep;
        constexpr rep none = std::numeric_limits<rep>::max();
        const rep own = group_->fronts[index_].since.load(std::memory_order_relaxed);
        if (own == none)
            return nullptr;
        const rep at = now.time_since_epoch().count();
        rep longest =
            2 * (at - own) +
            std::chrono::duration_cast<clock::duration>(std::chrono::milliseconds(10)).count();
        std::size_t pick = index_;
        for (std::size_t i = 0; i < group_->members.size(); ++i)
        {
            const rep since = group_->fronts[i].since.load(std::memory_order_relaxed);
            if (i != index_ && since != none && at - since > longest)
            {
                longest = at - since;
                pick = i;
            }
        }
        return pick == index_ ? nullptr : group_->members[pick].lock();
    }

    // A node offered to another shard and not taken there comes back (no second offer).
    void release_here(pool_node* n) noexcept
    {
        try
        {
            std::unique_lock lk(mu_);
            machine_.release(n, conn_condition::reusable, fast_now());
            auto acts = take_actions();
            lk.unlock();
            post_apply(std::move(acts));
        }
        catch (...)
        {
            release_failures_.fetch_add(1, std::memory_order_relaxed);
        }
    }

    // A connection of this shard closed, freeing a slot of the pool: the other shards with
    // waiters start the connects those may now call for.
    void poke_waiting_shards()
    {
        if (group_->waiting.load(std::memory_order_seq_cst) == 0)
            return;
        for (auto& weak : group_->members)
            if (auto m = weak.lock(); m && m.get() != this && m->queued_.load() > 0)
                asio::post(m->strand(),
                           [m] { m->event([](auto& machine, auto now) { machine.poke(now); }); });
    }

    // Returns `n`, handed to waiter `w` that did not take it, to the shard it belongs to.
    void give_back(pool_waiter& w, pool_node* n) noexcept
    {
        if (!n)
            return;
        if (auto lender = std::static_pointer_cast<pool_core>(std::move(w.lender)))
            lender->release(n, false); // another shard's, offered meanwhile
        else
            release(n, false);
    }

    // Stamps a node of this shard that another shard's waiter received.
    void stamp(pool_node* n, pgcoro::source_location loc) noexcept
    {
        std::lock_guard lk(mu_);
        machine_.stamp(n, loc, fast_now());
    }

    std::shared_ptr<pool_core> self_core()
    {
        return std::static_pointer_cast<pool_core>(pool_upkeep::shared_from_this());
    }

    // Counts a queued acquire of a shard in the shard and its group while it waits.
    struct queued_mark
    {
        explicit queued_mark(pool_core* c) noexcept : core(c)
        {
            if (core)
            {
                core->queued_.fetch_add(1, std::memory_order_seq_cst);
                core->group_->waiting.fetch_add(1, std::memory_order_seq_cst);
            }
        }
        queued_mark(const queued_mark&) = delete;
        queued_mark& operator=(const queued_mark&) = delete;
        ~queued_mark()
        {
            if (core)
            {
                core->queued_.fetch_sub(1, std::memory_order_relaxed);
                core->group_->waiting.fetch_sub(1, std::memory_order_relaxed);
            }
        }
        pool_core* core;
    };

    std::shared_ptr<pool_group> group_; // null for a pool of one shard
    std::size_t index_ = 0;
    std::atomic<std::size_t> queued_{0}; // acquires waiting in this shard

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
            core.give_back(waiter, n);
        }
        pool_core& core;
        pool_waiter& waiter;
        bool consumed = false; // the frame took the waiter's outcome itself
    };
};

} // namespace pgcoro::detail

#endif // PGCORO_DETAIL_POOL_CORE_HPP
