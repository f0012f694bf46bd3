// SPDX-License-Identifier: BSL-1.0
// pgcoro/detail/replica_sampler.hpp - the replica set's background checks: each member's
// health and WAL position on a connection of its own, every sample_interval, on a strand.
#ifndef PGCORO_DETAIL_REPLICA_SAMPLER_HPP
#define PGCORO_DETAIL_REPLICA_SAMPLER_HPP

#include <pgcoro/connect_config.hpp>
#include <pgcoro/connection.hpp>
#include <pgcoro/database_url.hpp>
#include <pgcoro/detail/replica_lag.hpp>
#include <pgcoro/error.hpp>
#include <pgcoro/lsn.hpp>
#include <pgcoro/member_status.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace pgcoro::detail
{

namespace asio = boost::asio;

// A member to check: its name and how to reach it (the primary's is the pool's host list).
struct sampled_member
{
    std::string name;
    connect_config cfg;
};

// A field read as text, as an LSN.
inline expected<lsn> lsn_text(const expected<std::string>& text, const char* what)
{
    if (!text)
        return tl::unexpected(text.error());
    auto l = lsn::parse(*text);
    if (!l)
        return fail(errc::protocol_error, std::string(what) + " returned \"" + *text + "\"");
    return *l;
}

// The first field of a one-row result as an LSN.
inline expected<lsn> lsn_field(const expected<result>& r, const char* what)
{
    if (!r)
        return tl::unexpected(r.error());
    return lsn_text(r->get<std::string>(0, 0), what);
}

// pg_current_wal_lsn() of `c`'s server (a primary; a replica fails with 55000).
inline asio::awaitable<expected<lsn>> current_position(connection& c)
{
    auto r = co_await c.query("SELECT pg_current_wal_lsn()::text");
    co_return lsn_field(r, "pg_current_wal_lsn()");
}

// pg_last_wal_replay_lsn() of `c`'s server; zero on a server not in recovery.
inline asio::awaitable<expected<lsn>> replay_position(connection& c)
{
    auto r = co_await c.query("SELECT COALESCE(pg_last_wal_replay_lsn(), '0/0')::text");
    co_return lsn_field(r, "pg_last_wal_replay_lsn()");
}

// Checks member 0 (the primary: its WAL position) and each replica (in recovery, replayed
// position, paused) every `interval`, and decides each replica's rotation from its lag
// (lsn_history). State read by acquire() lives behind mu_; connections live on the strand.
class replica_sampler : public std::enable_shared_from_this<replica_sampler>
{
public:
    using clock = std::chrono::steady_clock;

    replica_sampler(asio::any_io_executor ex, std::vector<sampled_member> members,
                    std::chrono::milliseconds max_lag, std::chrono::milliseconds interval,
                    std::chrono::milliseconds check_timeout)
        : strand_(asio::make_strand(ex)), members_(std::move(members)), max_lag_(max_lag),
          interval_(interval), check_timeout_(check_timeout), timer_(strand_),
          conns_(members_.size())
    {
        for (std::size_t i = 0; i < members_.size(); ++i)
        {
            auto& c = members_[i].cfg;
            member_status s;
            s.name = members_[i].name;
            s.role = i == 0 ? member_role::primary : member_role::replica;
            s.url = to_url(c); // as the member's pool connects
            c.connect_timeout = std::min(c.connect_timeout, check_timeout);
            c.application_name += "-sampler";
            s.reason = "not checked yet";
            status_.push_back(std::move(s));
        }
    }

    void start() { asio::co_spawn(strand_, run(shared_from_this()), asio::detached); }

    // Ends the loop after the check in flight; safe from any thread, idempotent.
    void stop() noexcept
    {
        stopping_ = true;
        try
        {
            asio::post(strand_, [self = shared_from_this()] { self->timer_.cancel(); });
        }
        catch (...)
        {
        }
    }

    // stop(), then waits (bounded) until the loop has ended and closed its connections.
    asio::awaitable<void> close()
    {
        stop();
        const auto limit = clock::now() + check_timeout_ * static_cast<int>(members_.size() + 1) +
                           std::chrono::seconds(1);
        asio::steady_timer t(co_await asio::this_coro::executor);
        while (!done_ && clock::now() < limit)
        {
            t.expires_after(std::chrono::milliseconds(5));
            co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
        }
    }

    // Waits until `n` more rounds have completed, or `limit` passed.
    asio::awaitable<void> wait_rounds(std::size_t n, std::chrono::milliseconds limit)
    {
        const auto target = rounds_.load() + n;
        const auto until = clock::now() + limit;
        asio::steady_timer t(co_await asio::this_coro::executor);
        while (rounds_.load() < target && !done_ && clock::now() < until)
        {
            t.expires_after(std::chrono::milliseconds(5));
            co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
        }
    }

    // Each replica's rotation and last replayed position (in_use left for the caller).
    std::vector<replica_choice> choices() const
    {
        std::lock_guard lk(mu_);
        std::vector<replica_choice> out;
        for (std::size_t i = 1; i < status_.size(); ++i)
            out.push_back(replica_choice{status_[i].in_rotation, 0, status_[i].position});
        return out;
    }

    // Replica `i` (0-based) failed an acquire: out of rotation until its next good check.
    void take_out(std::size_t i, std::string why)
    {
        std::lock_guard lk(mu_);
        if (i + 1 < status_.size())
        {
            status_[i + 1].in_rotation = false;
            status_[i + 1].reason = std::move(why);
        }
    }

    // Every member's last status (pool stats left for the caller).
    std::vector<member_status> report() const
    {
        std::lock_guard lk(mu_);
        return status_;
    }

    // "replica1: <reason>; replica2: <reason>" for errors.
    std::string summary() const
    {
        std::lock_guard lk(mu_);
        std::string out;
        for (std::size_t i = 1; i < status_.size(); ++i)
            out += (out.empty() ? "" : "; ") + status_[i].name + ": " +
                   (status_[i].reason.empty() ? "in rotation" : status_[i].reason);
        return out.empty() ? "no replicas configured" : out;
    }

private:
    static asio::awaitable<void> run(std::shared_ptr<replica_sampler> self)
    {
        while (!self->stopping_)
        {
            co_await self->round();
            self->rounds_.fetch_add(1);
            if (self->stopping_)
                break;
            self->timer_.expires_after(self->interval_);
            co_await self->timer_.async_wait(asio::as_tuple(asio::use_awaitable));
        }
        for (auto& c : self->conns_)
            c.reset();
        self->done_ = true;
    }

    asio::awaitable<void> round()
    {
        auto p = co_await check(0, "SELECT pg_current_wal_lsn()::text");
        const auto primary_at = clock::now();
        auto pos = lsn_field(p, "pg_current_wal_lsn()");
        {
            std::lock_guard lk(mu_);
            auto& s = status_[0];
            s.healthy = pos.has_value();
            s.reason = pos ? std::string() : pos.error().to_string();
            if (pos)
            {
                s.position = *pos;
                history_.add(primary_at, *pos);
            }
        }
        for (std::size_t i = 1; i < members_.size() && !stopping_; ++i)
        {
            auto r = co_await check(
                i, "SELECT pg_is_in_recovery()::text, "
                   "COALESCE(pg_last_wal_replay_lsn(), '0/0')::text, "
                   "CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused()::text "
                   "ELSE 'false' END");
            const auto at = clock::now();
            std::lock_guard lk(mu_);
            auto& s = status_[i];
            if (!r)
            {
                s.healthy = s.in_rotation = false;
                s.reason = r.error().to_string();
                continue;
            }
            auto rec = r->get<std::string>(0, 0);
            auto replayed = lsn_text(r->get<std::string>(0, 1), "pg_last_wal_replay_lsn()");
            s.healthy = rec.has_value() && replayed.has_value();
            if (!s.healthy)
            {
                s.in_rotation = false;
                s.reason = "unreadable check result";
                continue;
            }
            s.replay_paused = r->get<std::string>(0, 2).value_or("") == "true";
            if (*rec != "true")
            {
                s.in_rotation = false;
                s.position = lsn();
                s.reason = "not in recovery (promoted?)";
                continue;
            }
            s.position = *replayed;
            s.lag = history_.lag(*replayed, at);
            s.bytes_behind = history_.latest().bytes_after(*replayed);
            s.in_rotation = s.lag <= max_lag_;
            s.reason = s.in_rotation
                           ? std::string()
                           : "lag " + std::to_string(s.lag.count()) + " ms over max_replica_lag " +
                                 std::to_string(max_lag_.count()) + " ms";
        }
    }

    // Runs `sql` on member `i`'s check connection (opened first when needed), within
    // check_timeout; a failed check drops the connection.
    asio::awaitable<expected<result>> check(std::size_t i, const char* sql)
    {
        auto& slot = conns_[i];
        if (!slot || !slot->is_open())
        {
            slot.reset();
            auto c = co_await open_connection(strand_, members_[i].cfg);
            if (!c)
                co_return tl::unexpected(std::move(c.error()));
            slot.emplace(std::move(*c));
        }
        query_options qo;
        qo.timeout = check_timeout_;
        auto r = co_await slot->query(qo, sql);
        if (!r)
            slot.reset();
        co_return r;
    }

    asio::strand<asio::any_io_executor> strand_;
    std::vector<sampled_member> members_;
    std::chrono::milliseconds max_lag_, interval_, check_timeout_;
    asio::steady_timer timer_;
    std::vector<std::optional<connection>> conns_; // the strand's
    mutable std::mutex mu_;
    std::vector<member_status> status_; // guarded by mu_
    lsn_history history_;               // guarded by mu_
    std::atomic<bool> stopping_{false}, done_{false};
    std::atomic<std::size_t> rounds_{0};
};

} // namespace pgcoro::detail

#endif // PGCORO_DETAIL_REPLICA_SAMPLER_HPP
