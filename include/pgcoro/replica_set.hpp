// SPDX-License-Identifier: BSL-1.0
// pgcoro/replica_set.hpp - a primary and its streaming replicas: writes to whichever host is
// primary now, reads to healthy caught-up replicas, read-your-writes by WAL position.
#ifndef PGCORO_REPLICA_SET_HPP
#define PGCORO_REPLICA_SET_HPP

#include <pgcoro/config_error.hpp>
#include <pgcoro/connect_config.hpp>
#include <pgcoro/connection.hpp>
#include <pgcoro/database_url.hpp>
#include <pgcoro/detail/replica_lag.hpp>
#include <pgcoro/detail/replica_sampler.hpp>
#include <pgcoro/detail/session_attrs.hpp>
#include <pgcoro/error.hpp>
#include <pgcoro/lease.hpp>
#include <pgcoro/lsn.hpp>
#include <pgcoro/member_status.hpp>
#include <pgcoro/observer.hpp>
#include <pgcoro/pool.hpp>
#include <pgcoro/pool_config.hpp>
#include <pgcoro/source_location.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pgcoro
{

/// Where replica_set::acquire() sends the work.
enum class route
{
    read_only,  ///< a replica in rotation (or the primary, per no_replica_policy)
    read_write, ///< the primary
};
/// `co_await set.acquire(pgcoro::read_only)`: a replica.
inline constexpr route read_only = route::read_only;
/// `co_await set.acquire(pgcoro::read_write)`: the primary.
inline constexpr route read_write = route::read_write;

/// What a read does when no replica is in rotation (all down, lagging, or none configured).
enum class no_replica_policy
{
    fall_back_to_primary, ///< read from the primary
    fail,                 ///< fail with connect_failed (or timeout for a read-your-writes wait)
};

/// What a read-your-writes read does while no replica has replayed its LSN.
enum class replay_policy
{
    wait_for_replay, ///< wait up to read_options::max_wait for a replica, then no_replica_policy
    use_primary,     ///< read from the primary at once
};

/// Options of a read_only acquire().
struct read_options
{
    /// Read-your-writes: only a replica that has replayed this WAL position serves the read
    /// (pass replica_set::wal_position() taken after the write committed); zero: any replica.
    lsn min_lsn{};
    /// While no replica has replayed min_lsn: wait for one, or go to the primary.
    replay_policy if_behind = replay_policy::wait_for_replay;
    /// How long wait_for_replay waits before no_replica_policy decides. Default 1 s.
    std::chrono::milliseconds max_wait{1000};
};

/// How a replica set routes and samples its members.
struct replica_set_config
{
    /// The primary's pool; its refill backoff is capped at failover_retry_max.
    pool_config primary_pool{};
    /// Each replica's pool.
    pool_config replica_pool{};
    /// A replica further behind the primary than this leaves rotation. Default 5 s.
    std::chrono::milliseconds max_replica_lag{5000};
    /// How often each member's health and WAL position are sampled. Default 500 ms.
    std::chrono::milliseconds sample_interval{500};
    /// Deadline of one member's check (connect included). Default 1 s.
    std::chrono::milliseconds check_timeout{1000};
    /// Reads with no replica in rotation: to the primary (default) or fail.
    no_replica_policy no_replica = no_replica_policy::fall_back_to_primary;
    /// Cap of the primary pool's reconnect backoff, so that after a failover new acquires
    /// reach the promoted server promptly. Default 500 ms.
    std::chrono::milliseconds failover_retry_max{500};
};

namespace detail
{
// Each item a postgres:// URL naming one host; errors name the item ("<source> #2").
inline tl::expected<std::vector<connect_config>, config_errors>
parse_replica_items(const std::vector<std::string_view>& items, std::string_view source)
{
    config_errors errs;
    std::vector<connect_config> out;
    for (std::size_t i = 0; i < items.size(); ++i)
    {
        const std::string where = std::string(source) + " #" + std::to_string(i + 1);
        const std::string_view item = detail::trim(items[i]);
        if (detail::uri_prefix_length(item) == 0)
        {
            errs.add({where, "", "(not shown)", "not a postgres:// URL",
                      "postgres://user@host:port/dbname, comma-separated"});
            continue;
        }
        auto u = parse_database_url(item, where);
        if (!u)
        {
            errs.append(u.error());
            continue;
        }
        if (u->connect.hosts.size() != 1)
            errs.add({where, "", std::to_string(u->connect.hosts.size()) + " hosts",
                      "a replica URL names one host", "one host:port per replica"});
        out.push_back(u->connect_config_with_settings());
    }
    if (!errs.empty())
        return tl::unexpected(std::move(errs));
    return out;
}
} // namespace detail

/// Parses a comma-separated list of replica URLs (`DATABASE_REPLICA_URLS`): each item a
/// postgres:// URL naming one host, with DATABASE_URL's rules; every problem is reported.
inline tl::expected<std::vector<connect_config>, config_errors>
parse_replica_urls(std::string_view list, std::string_view source = "DATABASE_REPLICA_URLS")
{
    std::vector<std::string_view> items;
    // Split at commas that start a new URL (a URL's own host list also has commas).
    std::string_view rest = detail::trim(list);
    while (!rest.empty())
    {
        std::size_t cut = std::string_view::npos;
        for (std::size_t c = rest.find(','); c != std::string_view::npos; c = rest.find(',', c + 1))
            if (detail::uri_prefix_length(detail::trim(rest.substr(c + 1))) != 0)
            {
                cut = c;
                break;
            }
        items.push_back(rest.substr(0, cut));
        rest = cut == std::string_view::npos ? std::string_view() : rest.substr(cut + 1);
    }
    return detail::parse_replica_items(items, source);
}

/// The same rules for a list of replica URLs given in code, one URL per element.
inline tl::expected<std::vector<connect_config>, config_errors>
parse_replica_urls(const std::vector<std::string>& urls, std::string_view source = "replica URL")
{
    std::vector<std::string_view> items(urls.begin(), urls.end());
    return detail::parse_replica_items(items, source);
}

/// The replica URLs in the environment variable DATABASE_REPLICA_URLS (none when unset).
inline tl::expected<std::vector<connect_config>, config_errors> replica_urls_from_env()
{
    const char* v = std::getenv("DATABASE_REPLICA_URLS");
    if (!v)
        return std::vector<connect_config>{};
    return parse_replica_urls(v);
}

/// A primary and its streaming replicas behind one acquire(). The primary pool connects with
/// `primary` (a host list; target_session_attrs=read-write is added when it sets none), so it
/// follows a failover: connections to the old primary break (connection_lost) and are
/// discarded, new ones go to the promoted host. Each replica has its own pool. A background
/// sampler checks every member each sample_interval; a replica leaves rotation while its check
/// fails, it is not in recovery, or it lags more than max_replica_lag, and returns when well.
/// Reads go to the replica in rotation with the fewest connections in use.
///
/// Thread safety: as pool; acquire() and members() from any thread.
/// Lifetime: the set may be destroyed while acquires are pending; its pools then shut down
/// when the last of them has completed.
class replica_set
{
public:
    /// The executor the member pools are made with (any executor converts to it).
    using executor_type = boost::asio::any_io_executor;
    /// The member pools' type.
    using pool_type = pool;
    /// Gives each member's pool its own observer, by member name ("primary", "replica1", ...),
    /// e.g. a stats_collector or a logging_observer per member; null for none.
    using observer_factory = std::function<std::shared_ptr<observer>(std::string_view member)>;

    /// A set over `primary` and `replicas`; starts the pools and the sampler. `obs` (optional)
    /// receives every member pool's events.
    replica_set(executor_type ex, connect_config primary, std::vector<connect_config> replicas,
                replica_set_config cfg = {}, std::shared_ptr<observer> obs = nullptr)
        : replica_set(std::move(ex), std::move(primary), std::move(replicas), cfg,
                      observer_factory([obs](std::string_view) { return obs; }))
    {
    }

    /// As above, each member's pool observed by `observers(member name)`.
    replica_set(executor_type ex, connect_config primary, std::vector<connect_config> replicas,
                replica_set_config cfg, const observer_factory& observers)
        : s_(std::make_shared<shared>())
    {
        s_->cfg = cfg;
        if (detail::session_attrs_of(primary) == "any")
            primary.extra.emplace_back("target_session_attrs", "read-write");
        pool_config pcfg = cfg.primary_pool;
        pcfg.refill_backoff_max = std::min(pcfg.refill_backoff_max, cfg.failover_retry_max);
        pcfg.refill_backoff_initial =
            std::min(pcfg.refill_backoff_initial, pcfg.refill_backoff_max);
        std::vector<detail::sampled_member> members;
        members.push_back(detail::sampled_member{"primary", primary});
        s_->primary = std::make_unique<pool_type>(ex, primary, pcfg,
                                                  observers ? observers("primary") : nullptr);
        for (std::size_t i = 0; i < replicas.size(); ++i)
        {
            auto name = "replica" + std::to_string(i + 1);
            auto obs = observers ? observers(name) : nullptr;
            members.push_back(detail::sampled_member{std::move(name), replicas[i]});
            s_->replicas.push_back(
                std::make_unique<pool_type>(ex, replicas[i], cfg.replica_pool, std::move(obs)));
        }
        s_->sampler = std::make_shared<detail::replica_sampler>(
            boost::asio::any_io_executor(ex), std::move(members), cfg.max_replica_lag,
            cfg.sample_interval, cfg.check_timeout);
        s_->sampler->start();
    }
    replica_set(const replica_set&) = delete;
    replica_set& operator=(const replica_set&) = delete;

    /// Stops the sampler; the pools shut down without waiting (as ~pool) once no
    /// acquire() is pending.
    ~replica_set() { s_->sampler->stop(); }

    /// Borrows a connection: read_write from the primary; read_only from the replica in
    /// rotation with the fewest connections in use, having replayed opts.min_lsn when set.
    /// Completes with: a lease. A replica whose acquire fails leaves rotation at once and the
    ///   next one (or the primary, per no_replica) is tried.
    /// Errors: the primary pool's acquire() errors; with no_replica_policy::fail,
    ///   connect_failed when no replica is in rotation, timeout when none replayed min_lsn
    ///   within max_wait.
    boost::asio::awaitable<expected<lease>>
    acquire(route r, read_options opts = {}, source_location where = source_location::current())
    {
        auto s = s_; // keeps the pools alive if the set goes away meanwhile
        if (r == route::read_write)
            co_return co_await s->primary->acquire(where);
        const auto deadline = std::chrono::steady_clock::now() + opts.max_wait;
        for (std::size_t failures = 0;;)
        {
            std::vector<detail::replica_choice> cs = s->sampler->choices();
            for (std::size_t i = 0; i < cs.size(); ++i)
                cs[i].in_use = s->replicas[i]->stats().leased;
            const auto pick = detail::choose_replica(
                cs, s->next.fetch_add(1, std::memory_order_relaxed), opts.min_lsn);
            if (!pick || failures > s->replicas.size())
            {
                if (s->cfg.no_replica == no_replica_policy::fail)
                    co_return fail(errc::connect_failed,
                                   "no replica in rotation (" + s->sampler->summary() + ")");
                co_return co_await s->primary->acquire(where);
            }
            auto l = co_await s->replicas[*pick]->acquire(where);
            if (!l)
            {
                s->sampler->take_out(*pick, l.error().to_string());
                ++failures;
                continue;
            }
            if (!opts.min_lsn)
                co_return l;
            auto pos = co_await detail::replay_position(**l);
            if (pos && *pos >= opts.min_lsn)
                co_return l;
            if (!pos)
            {
                l->mark_broken();
                s->sampler->take_out(*pick, pos.error().to_string());
                ++failures;
                continue;
            }
            l->release();
            if (opts.if_behind == replay_policy::use_primary)
                co_return co_await s->primary->acquire(where);
            if (std::chrono::steady_clock::now() >= deadline)
            {
                if (s->cfg.no_replica == no_replica_policy::fail)
                    co_return fail(errc::timeout,
                                   "no replica replayed " + opts.min_lsn.to_string() + " within " +
                                       std::to_string(opts.max_wait.count()) + " ms");
                co_return co_await s->primary->acquire(where);
            }
            boost::asio::steady_timer t(co_await boost::asio::this_coro::executor,
                                        std::chrono::milliseconds(10));
            co_await t.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
        }
    }

    /// The WAL position of `c`'s server now (pg_current_wal_lsn(), on the primary): taken
    /// after a write commits, it is read_options::min_lsn for reads that must see the write.
    static boost::asio::awaitable<expected<lsn>> wal_position(connection& c)
    {
        co_return co_await detail::current_position(c);
    }

    /// Waits until the primary pool has min_size connections and one sampling round is done,
    /// then until each replica in rotation has min_size connections (a replica that is down
    /// or lagging is not waited for: it only stays out of rotation).
    /// Completes with: the primary pool's warmup() result.
    boost::asio::awaitable<expected<void>> warmup()
    {
        auto s = s_;
        auto r = co_await s->primary->warmup();
        co_await s->sampler->wait_rounds(1, s->cfg.check_timeout *
                                                static_cast<int>(s->replicas.size() + 2));
        const std::vector<detail::replica_choice> cs = s->sampler->choices();
        for (std::size_t i = 0; i < cs.size(); ++i)
            if (cs[i].in_rotation)
                co_await s->replicas[i]->warmup();
        co_return r;
    }

    /// Waits until `n` more sampling rounds have completed (or `limit` passed): after a change
    /// (a replica stopped or resumed), the routing reflects it.
    boost::asio::awaitable<void> wait_samples(std::size_t n, std::chrono::milliseconds limit)
    {
        auto sampler = s_->sampler;
        co_await sampler->wait_rounds(n, limit);
    }

    /// The health report: the primary and each replica, with pool stats, lag and rotation.
    std::vector<member_status> members() const
    {
        auto out = s_->sampler->report();
        if (!out.empty())
            out[0].pool = s_->primary->stats();
        for (std::size_t i = 0; i < s_->replicas.size() && i + 1 < out.size(); ++i)
            out[i + 1].pool = s_->replicas[i]->stats();
        return out;
    }

    /// The primary's pool.
    pool_type& primary() noexcept { return *s_->primary; }
    /// Replica `i`'s pool (0-based, in the order given).
    pool_type& replica(std::size_t i) noexcept { return *s_->replicas[i]; }
    /// The number of replicas.
    std::size_t replica_count() const noexcept { return s_->replicas.size(); }

    /// Stops the sampler (waiting for its check in flight, at most check_timeout) and closes
    /// every pool as pool::close(grace). Safe while leases and acquires are in flight.
    boost::asio::awaitable<void> close(std::chrono::milliseconds grace = std::chrono::seconds(30))
    {
        auto s = s_;
        co_await s->sampler->close();
        co_await s->primary->close(grace);
        for (auto& p : s->replicas)
            co_await p->close(grace);
    }

private:
    struct shared
    {
        replica_set_config cfg;
        std::unique_ptr<pool_type> primary;
        std::vector<std::unique_ptr<pool_type>> replicas;
        std::shared_ptr<detail::replica_sampler> sampler;
        std::atomic<std::size_t> next{0}; // rotates ties among replicas
    };
    std::shared_ptr<shared> s_;
};

/// The replica set on Asio's polymorphic executor.

} // namespace pgcoro

#endif // PGCORO_REPLICA_SET_HPP
