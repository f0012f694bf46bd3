// SPDX-License-Identifier: BSL-1.0
// pgcoro/detail/pool_upkeep.hpp - the pool driver's half that runs on its strand: applies the
// state machine's actions (connects, pings, rollbacks, settles, closes, leak reports, the
// refill timer) and runs the sweep. pool_core adds the acquire and release paths.
#ifndef PGCORO_DETAIL_POOL_UPKEEP_HPP
#define PGCORO_DETAIL_POOL_UPKEEP_HPP

#include <pgcoro/connect_config.hpp>
#include <pgcoro/detail/coarse_clock.hpp>
#include <pgcoro/detail/pool_machine.hpp>
#include <pgcoro/detail/pool_node.hpp>
#include <pgcoro/detail/pool_policy.hpp>
#include <pgcoro/detail/session_attrs.hpp>
#include <pgcoro/error.hpp>
#include <pgcoro/observer.hpp>
#include <pgcoro/pool_config.hpp>
#include <pgcoro/pool_stats.hpp>
#include <pgcoro/source_location.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
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
#include <random>
#include <string_view>
#include <utility>
#include <vector>

namespace pgcoro::detail
{

namespace asio = boost::asio;

// All pool state lives in machine_, behind mu_: a plain mutex, held only for a machine call
// (no suspension, no observer or user callback, nothing spawned under it; waking a waiter
// cancels its timer, which only posts). Acquire and release run the machine on the caller's
// thread; what the machine asks for in I/O runs on strand_ (apply()), as do the sweep, the
// refill timer, warmup and close. Observers are called outside mu_.
class pool_upkeep : public std::enable_shared_from_this<pool_upkeep>
{
public:
    using clock = std::chrono::steady_clock;
    using strand_type = asio::strand<asio::any_io_executor>;
    using actions = pool_actions<pool_node>;

    pool_upkeep(asio::any_io_executor ex, connect_config ccfg, pool_config pcfg,
                std::shared_ptr<observer> obs = nullptr)
        : ccfg_(std::move(ccfg)), strand_(asio::make_strand(ex)),
          machine_(pcfg,
                   [this]
                   {
                       // The connection's I/O objects take the strand's inner executor: their
                       // handlers run on the awaiting coroutine's executor anyway, and a
                       // type-erased strand is a heap allocation on every wait.
                       return std::make_unique<pool_node>(strand_.get_inner_executor(), this);
                   }),
          rng_(std::random_device{}()), obs_owner_(std::move(obs)), obs_(obs_owner_.get()),
          slow_query_(pcfg.slow_query_threshold), maint_timer_(strand_), refill_timer_(strand_),
          drain_timer_(strand_)
    {
        if (ccfg_.query_timeout.count() == 0)
            ccfg_.query_timeout = pcfg.query_timeout;
        if (requires_writable(ccfg_))
            writable_attrs_ = session_attrs_of(ccfg_); // a view into ccfg_.extra
    }
    pool_upkeep(const pool_upkeep&) = delete;
    pool_upkeep& operator=(const pool_upkeep&) = delete;

    const strand_type& strand() const noexcept { return strand_; }
    pool_stats stats() const noexcept
    {
        auto s = machine_.stats();
        s.closed_read_only = read_only_closed_.load(std::memory_order_relaxed);
        return s;
    }

    void set_leak_handler(std::function<void(const leak_info&)> h) { on_leak_ = std::move(h); }

    // Starts the maintenance sweep and the min_size refill. On the strand, once.
    void start()
    {
        asio::co_spawn(strand_, maintain(shared_from_this()), asio::detached);
        event([](auto& m, auto now) { m.poke(now); });
    }

protected:
    ~pool_upkeep() = default;
    std::shared_ptr<pool_upkeep> self() { return shared_from_this(); }

    // The time for fast-path stamps: the coarse clock (trails now() by under a tick, so
    // idle and lifetime limits act up to a tick late), or now() when an observer is told
    // durations.
    clock::time_point fast_now() const noexcept
    {
        return obs_ ? clock::now() : coarse_clock::now();
    }

    std::size_t size()
    {
        std::lock_guard lk(mu_);
        return machine_.size();
    }

    static conn_condition condition(pool_node& n, bool broken)
    {
        if (broken || !n.conn.is_open())
            return conn_condition::broken;
        if (n.conn.largest_statement_bytes() > pool_max_retained_bytes)
            return conn_condition::oversized;
        if (!n.conn.settled())
            return conn_condition::unsettled;
        switch (n.conn.transaction_status())
        {
        case PQTRANS_IDLE:
            return conn_condition::reusable;
        case PQTRANS_INTRANS:
        case PQTRANS_INERROR:
            return conn_condition::in_transaction;
        default:
            return conn_condition::broken; // mid-statement: the protocol state is unknown
        }
    }

    // With mu_ held: the machine's actions, if any (no allocation when there are none).
    actions take_actions()
    {
        return machine_.pending().empty() ? actions{} : machine_.take_pending();
    }

    // Runs a machine event on the strand and applies its actions.
    template <class F>
    void event(F f)
    {
        std::unique_lock lk(mu_);
        f(machine_, clock::now());
        auto acts = take_actions();
        lk.unlock();
        apply(acts);
    }

    void post_apply(actions acts)
    {
        if (acts.empty())
            return;
        asio::post(strand_,
                   [self = self(), acts = std::move(acts)]() mutable { self->apply(acts); });
    }

    // Carries out what the machine asked for. On the strand.
    void apply(actions& acts)
    {
        for (auto& c : acts.close)
        {
            pool_node& n = *c.node;
            if (obs_ && n.opened_at != clock::time_point{})
                notify(
                    [&]
                    {
                        obs_->on_connection_closed(connection_closed_event{
                            c.why, clock::now() - n.opened_at, n.backend_pid});
                    });
            n.conn.close();
        }
        if (!acts.close.empty() && slot_freed_)
            slot_freed_(); // sharded: another shard's waiter may connect now
        acts.close.clear();
        // Each node's operation can be aborted through its own signal (shutdown).
        const auto spawn = [this](pool_node* n, asio::awaitable<void> op)
        {
            asio::co_spawn(strand_, std::move(op),
                           asio::bind_cancellation_slot(n->abort.slot(), asio::detached));
        };
        for (pool_node* n : acts.open)
        {
            if (obs_)
                notify([&]
                       { obs_->on_connect_started(connect_started_event{stats().connecting}); });
            spawn(n, open(self(), n));
        }
        for (pool_node* n : acts.validate)
            spawn(n, validate(self(), n));
        for (pool_node* n : acts.reset)
            spawn(n, reset(self(), n));
        for (pool_node* n : acts.settle)
            spawn(n, settle(self(), n));
        for (pool_node* n : acts.abort)
            n->abort.emit(asio::cancellation_type::terminal);
        for (const auto& leak : acts.leaks)
        {
            if (obs_)
                notify(
                    [&] {
                        obs_->on_leak_suspected(
                            leak_suspected_event{leak.where, leak.held, leak.backend_pid});
                    });
            if (on_leak_)
                notify([&] { on_leak_(leak); });
        }
        if (acts.refill_at)
        {
            refill_timer_.expires_at(*acts.refill_at);
            refill_timer_.async_wait(
                asio::bind_executor(strand_,
                                    [self = self()](boost::system::error_code ec)
                                    {
                                        self->event(
                                            [ec](auto& m, auto now)
                                            {
                                                if (!ec)
                                                    m.refill_due(now);
                                            });
                                    }));
        }
        if (acts.drained)
            drain_timer_.cancel();
    }

    // An observer or user callback that throws is counted, never propagated.
    template <class F>
    void notify(F f) noexcept
    {
        try
        {
            f();
        }
        catch (...)
        {
            release_failures_.fetch_add(1, std::memory_order_relaxed);
        }
    }

    void report_release(pool_node& n, clock::time_point now)
    {
        n.conn.set_observer(nullptr); // the pool's own statements are not reported
        const auto status = n.conn.transaction_status();
        notify(
            [&]
            {
                obs_->on_release(
                    release_event{now - n.leased_at, n.backend_pid,
                                  status == PQTRANS_INTRANS || status == PQTRANS_INERROR});
            });
    }

    // ---- the strand's coroutines (each holds the core alive) -----------------------------

    static asio::awaitable<void> open(std::shared_ptr<pool_upkeep> self, pool_node* n)
    {
        auto r = co_await n->conn.connect(self->ccfg_);
        if (auto* o = self->obs_)
            self->notify(
                [&]
                {
                    if (r)
                        o->on_connect_succeeded(connect_succeeded_event{
                            clock::now() - n->connect_started, n->conn.backend_pid()});
                    else
                        o->on_connect_failed(connect_failed_event{clock::now() - n->connect_started,
                                                                  r.error().code, r.error().state,
                                                                  r.error().message});
                });
        const int pid = r ? n->conn.backend_pid() : 0;
        const double u = std::uniform_real_distribution<double>(0.0, 1.0)(self->rng_);
        self->event([&](auto& m, auto now)
                    { m.connect_done(n, r ? nullptr : &r.error(), pid, now, u); });
        for (auto* t : self->watchers_)
            t->cancel();
    }

    // A validation before hand-out or a keepalive: an empty statement is the cheapest full
    // round trip. One that times out closes its connection at once (no cancel round).
    static asio::awaitable<void> validate(std::shared_ptr<pool_upkeep> self, pool_node* n)
    {
        auto r =
            co_await n->conn.query(query_options{self->machine_.config().validation_timeout}, "");
        const bool ok = r.has_value();
        self->event([&](auto& m, auto now) { m.validated(n, ok, now); });
    }

    static asio::awaitable<void> reset(std::shared_ptr<pool_upkeep> self, pool_node* n)
    {
        auto r = co_await n->conn.query(query_options{self->machine_.config().validation_timeout},
                                        "ROLLBACK");
        const bool ok = r && n->conn.transaction_status() == PQTRANS_IDLE;
        self->event([&](auto& m, auto now) { m.reset_done(n, ok, now); });
    }

    // A statement timed out or was cancelled: its cancel and results are finished here, off
    // the caller's path, before anyone else gets the connection.
    static asio::awaitable<void> settle(std::shared_ptr<pool_upkeep> self, pool_node* n)
    {
        auto r = co_await n->conn.settle(self->ccfg_.cancel_timeout +
                                         self->machine_.config().validation_timeout);
        const auto c = condition(*n, !r);
        self->event([&](auto& m, auto now) { m.settled(n, c, now); });
    }

    static asio::awaitable<void> maintain(std::shared_ptr<pool_upkeep> self)
    {
        for (;;)
        {
            self->maint_timer_.expires_after(maintenance_interval(self->machine_.config()));
            auto [ec] = co_await self->maint_timer_.async_wait(asio::as_tuple(asio::use_awaitable));
            if (ec || self->closed())
                break;
            self->event([](auto& m, auto now) { m.sweep(now); });
        }
    }

    bool closed()
    {
        std::lock_guard lk(mu_);
        return machine_.closed();
    }

    connect_config ccfg_;
    strand_type strand_; // before machine_: its node factory uses it
    mutable std::mutex mu_;
    pool_machine<pool_node> machine_;     // every piece of pool state; guarded by mu_
    std::mt19937_64 rng_;                 // the strand's
    std::shared_ptr<observer> obs_owner_; // keeps the observer alive as long as the pool
    observer* obs_ = nullptr;             // the hot path's one branch
    std::chrono::milliseconds slow_query_;
    std::function<void(const leak_info&)> on_leak_; // the strand's
    std::function<void()> slot_freed_;          // set once before start (sharded pools), strand's
    std::vector<asio::steady_timer*> watchers_; // warmups waiting for connect progress
    std::atomic<std::uint64_t> release_failures_{0}; // exceptions caught on noexcept paths
    // read-write or primary pools: a returned connection whose server no longer matches
    // (a replica after a failover) is closed, not reused, and counted in read_only_closed_.
    std::string_view writable_attrs_;
    std::atomic<std::uint64_t> read_only_closed_{0};
    asio::steady_timer maint_timer_;
    asio::steady_timer refill_timer_;
    asio::steady_timer drain_timer_;
};

} // namespace pgcoro::detail

#endif // PGCORO_DETAIL_POOL_UPKEEP_HPP
