// pgcoro/detail/pool_upkeep.hpp - the pool's asynchronous work on its strand: connects and
// refill, validation, resets, settling returned connections, the maintenance sweep.
#ifndef PGCORO_DETAIL_POOL_UPKEEP_HPP
#define PGCORO_DETAIL_POOL_UPKEEP_HPP

#include <pgcoro/detail/pool_state.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <memory>
#include <vector>

namespace pgcoro::detail
{

// The strand and the coroutines it runs for the pool. Each of them holds the pool's state
// alive (shared_from_this) while it runs.
class pool_upkeep : public pool_state, public std::enable_shared_from_this<pool_upkeep>
{
public:
    using strand_type = asio::strand<asio::any_io_executor>;

    pool_upkeep(asio::any_io_executor ex, connect_config ccfg, pool_config pcfg,
                std::shared_ptr<observer> obs)
        : pool_state(std::move(ccfg), pcfg, std::move(obs)), strand_(asio::make_strand(ex)),
          maint_timer_(strand_), refill_timer_(strand_), drain_timer_(strand_)
    {
    }

    const strand_type& strand() const noexcept { return strand_; }

    // Starts the maintenance sweep and the min_size refill. Called once, after make_shared.
    void start()
    {
        asio::co_spawn(strand_, maintain(shared_from_this()), asio::detached);
        start_connects();
    }

protected:
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

    static asio::awaitable<void> open(std::shared_ptr<pool_upkeep> self, pool_node* n)
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

    asio::awaitable<bool> ping(pool_node& n, std::chrono::milliseconds budget)
    {
        // An empty statement is the cheapest full round trip (EmptyQueryResponse).
        auto r = co_await n.conn.query(query_options{budget}, "");
        co_return r.has_value();
    }

    static asio::awaitable<void> reset(std::shared_ptr<pool_upkeep> self, pool_node* n)
    {
        auto r = co_await n->conn.query(query_options{self->cfg_.validation_timeout}, "ROLLBACK");
        if (r && n->conn.transaction_status() == PQTRANS_IDLE)
            self->make_available(n);
        else
            self->close_node(n, close_reason::broken);
    }

    static asio::awaitable<void> settle(std::shared_ptr<pool_upkeep> self, pool_node* n)
    {
        auto r =
            co_await n->conn.settle(self->ccfg_.cancel_timeout + self->cfg_.validation_timeout);
        self->dispose(n, !r);
    }

    static asio::awaitable<void> keepalive(std::shared_ptr<pool_upkeep> self, pool_node* n)
    {
        bool ok = co_await self->ping(*n, self->cfg_.validation_timeout);
        if (ok)
            self->make_available(n);
        else
            self->close_node(n, close_reason::validation_failed);
    }

    static asio::awaitable<void> maintain(std::shared_ptr<pool_upkeep> self)
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

    ~pool_upkeep() = default;

    // The strand runs the pool's asynchronous work (connects, waits, resets, sweeps).
    strand_type strand_;
    asio::steady_timer maint_timer_;
    asio::steady_timer refill_timer_;
    asio::steady_timer drain_timer_;
};

} // namespace pgcoro::detail

#endif // PGCORO_DETAIL_POOL_UPKEEP_HPP
