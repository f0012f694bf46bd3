// SPDX-License-Identifier: BSL-1.0
// pgcoro/listener.hpp - LISTEN/NOTIFY on a dedicated connection that reconnects by itself.
#ifndef PGCORO_LISTENER_HPP
#define PGCORO_LISTENER_HPP

#include <pgcoro/backoff.hpp>
#include <pgcoro/connect_config.hpp>
#include <pgcoro/connection.hpp>
#include <pgcoro/detail/resilience_random.hpp>
#include <pgcoro/error.hpp>
#include <pgcoro/notification.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pgcoro
{

/// What listener::next() returns: a notification, or word that the connection was lost and
/// re-established (every channel LISTENed again): notifications sent in between may be lost,
/// so re-read whatever state they describe.
struct listen_event
{
    enum class kind
    {
        notification, ///< `what` holds a notification
        resync,       ///< reconnected; notifications may have been missed before this event
    };
    kind type = kind::notification;
    pgcoro::notification what; ///< empty for resync
    error cause;               ///< for resync: why the connection was lost
};

/// Reconnection policy of a listener.
struct listener_options
{
    /// Delays between reconnect attempts (default 100 ms doubling to 10 s, equal jitter).
    backoff_policy reconnect{std::chrono::milliseconds(100), 2.0, std::chrono::seconds(10),
                             jitter_kind::equal};
};

/// LISTEN/NOTIFY on a connection of its own (never a pool lease: LISTEN is session state).
/// One operation at a time (listen() between next() calls, from the coroutine that calls
/// next(), or `busy`). After the connection is lost (server restart, pg_terminate_backend),
/// next() reconnects with backoff, LISTENs every channel again and returns a `resync` event.
/// Refused in pgbouncer mode: transaction pooling cannot keep a LISTEN.
class listener
{
public:
    /// Connects a listener with `cfg`. Errors: those of open_connection(); invalid_argument in
    /// pgbouncer mode.
    static boost::asio::awaitable<expected<listener>>
    open(boost::asio::any_io_executor ex, connect_config cfg, listener_options opts = {})
    {
        if (cfg.pgbouncer)
            co_return fail(errc::invalid_argument,
                           "LISTEN needs a server session of its own, which pgbouncer's "
                           "transaction pooling does not keep: give the listener a direct "
                           "connection to the server (pgbouncer mode off)");
        auto c = co_await open_connection(ex, cfg);
        if (!c)
            co_return tl::unexpected(std::move(c.error()));
        listener l(std::move(ex), std::move(cfg), opts);
        l.conn_.emplace(std::move(*c));
        co_return std::move(l);
    }

    /// LISTENs to `channel` (quoted: any name of 1 to 63 bytes without NUL). Errors:
    /// invalid_argument, and those of query(). Idempotent.
    boost::asio::awaitable<expected<void>> listen(std::string_view channel)
    {
        auto sql = statement("LISTEN ", channel);
        if (!sql)
            co_return tl::unexpected(std::move(sql.error()));
        if (conn_ && conn_->is_open())
        {
            auto r = co_await conn_->query(*sql);
            if (!r)
                co_return tl::unexpected(std::move(r.error()));
        }
        if (std::find(channels_.begin(), channels_.end(), channel) == channels_.end())
            channels_.emplace_back(channel);
        co_return expected<void>{};
    }

    /// UNLISTENs `channel`. Errors: invalid_argument, and those of query().
    boost::asio::awaitable<expected<void>> unlisten(std::string_view channel)
    {
        auto sql = statement("UNLISTEN ", channel);
        if (!sql)
            co_return tl::unexpected(std::move(sql.error()));
        std::erase(channels_, std::string(channel));
        if (conn_ && conn_->is_open())
        {
            auto r = co_await conn_->query(*sql);
            if (!r)
                co_return tl::unexpected(std::move(r.error()));
        }
        co_return expected<void>{};
    }

    /// The next event: a notification (in the order the server sent them), or `resync` after
    /// a reconnect. Waits up to `timeout` for a notification (0: as long as it takes,
    /// reconnecting meanwhile); cancel it with Asio cancellation or close(). Errors: timeout,
    /// cancelled, busy, pool_closed (after close()).
    boost::asio::awaitable<expected<listen_event>>
    next(std::chrono::milliseconds timeout = std::chrono::milliseconds(0))
    {
        for (;;)
        {
            if (closed_)
                co_return fail(errc::pool_closed, "listener closed");
            if (!conn_ || !conn_->is_open())
            {
                auto again = co_await reconnect();
                if (!again)
                    co_return tl::unexpected(std::move(again.error()));
                listen_event ev;
                ev.type = listen_event::kind::resync;
                ev.cause = std::move(lost_);
                co_return ev;
            }
            auto n = co_await conn_->next_notification(timeout);
            if (n)
            {
                listen_event ev;
                ev.what = std::move(*n);
                co_return ev;
            }
            if (!n.error().is(errc::connection_lost))
                co_return tl::unexpected(std::move(n.error()));
            lost_ = std::move(n.error());
            conn_.reset();
        }
    }

    /// The channels LISTENed to (and LISTENed again after a reconnect).
    const std::vector<std::string>& channels() const noexcept { return channels_; }
    /// The connection's backend pid (0 while reconnecting).
    int backend_pid() const noexcept { return conn_ ? conn_->backend_pid() : 0; }
    /// Closes the connection; a pending next() ends with connection_lost, later ones with
    /// pool_closed.
    void close() noexcept
    {
        closed_ = true;
        if (conn_)
            conn_->close();
    }

private:
    listener(boost::asio::any_io_executor ex, connect_config cfg, listener_options opts)
        : ex_(std::move(ex)), cfg_(std::move(cfg)), opts_(opts)
    {
    }

    // `verb` and the channel as a quoted identifier.
    static expected<std::string> statement(std::string_view verb, std::string_view channel)
    {
        if (channel.empty() || channel.size() > 63 || channel.find('\0') != channel.npos)
            return fail(errc::invalid_argument,
                        "a channel name has 1 to 63 bytes and no NUL (PostgreSQL would "
                        "truncate a longer one)");
        std::string sql(verb);
        sql += '"';
        for (char c : channel)
        {
            if (c == '"')
                sql += '"';
            sql += c;
        }
        sql += '"';
        return sql;
    }

    // Connects again (with backoff between attempts) and LISTENs every channel.
    boost::asio::awaitable<expected<void>> reconnect()
    {
        boost::asio::steady_timer timer(ex_);
        std::chrono::milliseconds delay{0};
        for (unsigned attempt = 1;; ++attempt)
        {
            if (closed_)
                co_return fail(errc::pool_closed, "listener closed");
            auto c = co_await open_connection(ex_, cfg_);
            bool ok = c.has_value();
            if (ok)
            {
                conn_.emplace(std::move(*c));
                for (const auto& ch : channels_)
                {
                    auto r = co_await conn_->query(*statement("LISTEN ", ch));
                    if (!r)
                    {
                        ok = false;
                        conn_.reset();
                        break;
                    }
                }
            }
            if (ok)
                co_return expected<void>{};
            if (!c && c.error().is(errc::cancelled))
                co_return tl::unexpected(std::move(c.error()));
            delay = backoff(opts_.reconnect, attempt, delay, detail::default_uniform01());
            timer.expires_after(delay);
            auto [ec] =
                co_await timer.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
            if (ec)
                co_return fail(errc::cancelled, "listener reconnect cancelled");
        }
    }

    boost::asio::any_io_executor ex_;
    connect_config cfg_;
    listener_options opts_;
    std::optional<connection> conn_;
    std::vector<std::string> channels_;
    error lost_;
    bool closed_ = false;
};

} // namespace pgcoro

#endif // PGCORO_LISTENER_HPP
