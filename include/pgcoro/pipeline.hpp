// SPDX-License-Identifier: BSL-1.0
// pgcoro/pipeline.hpp - opt-in pipelined mode: many coroutines share one connection's libpq
// pipeline (PostgreSQL 14+ client library; any server that speaks protocol 3).
#ifndef PGCORO_PIPELINE_HPP
#define PGCORO_PIPELINE_HPP

#include <pgcoro/connect_config.hpp>
#include <pgcoro/connection.hpp>
#include <pgcoro/detail/async_op.hpp>
#include <pgcoro/detail/pq_shared.hpp>
#include <pgcoro/error.hpp>
#include <pgcoro/result.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace pgcoro
{

/// Options of a pipelined connection.
struct pipeline_config
{
    /// Most statements per Sync. The statements queued in one turn of the event loop (up to
    /// this many) share one Sync, i.e. one segment and one implicit transaction: the server
    /// commits and answers once per segment (about 4x the throughput of 1 on `SELECT 1`).
    /// 1: every statement is its own segment.
    std::size_t statements_per_sync = 64;
    /// When a statement fails, the others of its segment were rolled back or not run. true
    /// (default): send each of them again in a segment of its own, so every caller gets the
    /// outcome it would get with statements_per_sync = 1; such a statement may then have run
    /// once before, rolled back, which shows only in non-transactional effects (sequence
    /// values, dblink). false: they fail with query_failed ("rolled back" / "not run").
    bool resend_rolled_back = true;
    /// Client-side deadline per statement when the call gives none; 0 = none.
    /// open_pipelined_connection() takes connect_config::query_timeout when this is 0.
    std::chrono::milliseconds query_timeout{0};
    /// How long an abandoned statement may keep running after its cancel request before the
    /// connection is closed instead; 0 = 5 s (open_pipelined_connection(): the connect_config's).
    std::chrono::milliseconds cancel_timeout{0};
};

/// One connection in libpq pipeline mode, shared by many coroutines: each query() sends its
/// statement at once (PQsendQueryParams, unnamed statement) without waiting for earlier
/// statements' results, a Sync follows once per turn of the event loop (see pipeline_config),
/// and one reader matches results to callers in order. With many concurrent callers this
/// gives several times the throughput of connections that wait for each result.
///
/// Use it only for independent statements: the session is shared, so transaction control
/// (BEGIN...COMMIT; detected: the connection is closed and the transaction rolled back), SET,
/// LISTEN, temporary tables and session advisory locks do not belong here; use a pool
/// connection (pgcoro::transact) for those. COPY is not supported.
///
/// Thread safety: every call must come from coroutines running on get_executor() (on a
/// multi-threaded io_context: the same strand).
class pipelined_connection
{
public:
    using executor_type = boost::asio::any_io_executor;

    /// Takes over an open, idle connection and switches it to pipeline mode. Operations run on
    /// the connection's executor.
    /// Completes with: the pipelined connection.
    /// Errors: `connection_lost` when `c` is not open, `busy` when it is in a transaction or
    ///   running a statement, `protocol_error` when libpq refuses pipeline mode. On error `c`
    ///   is closed.
    static expected<pipelined_connection> adopt(connection&& c, const pipeline_config& cfg = {})
    {
        detail::pipeline_settings s;
        s.statements_per_sync = cfg.statements_per_sync;
        s.resend_rolled_back = cfg.resend_rolled_back;
        s.query_timeout = cfg.query_timeout;
        s.cancel_timeout = cfg.cancel_timeout;
        auto e = std::move(c).take_engine();
        if (!e)
            return fail(errc::connection_lost, "connection was moved from");
        auto st = std::make_shared<detail::pq_shared>(std::move(e), s);
        if (auto r = st->start(); !r)
        {
            st->close(r.error());
            return tl::unexpected(std::move(r.error()));
        }
        return pipelined_connection(std::move(st));
    }

    pipelined_connection(pipelined_connection&&) noexcept = default;
    pipelined_connection& operator=(pipelined_connection&& o) noexcept
    {
        if (this != &o)
        {
            close();
            st_ = std::move(o.st_);
        }
        return *this;
    }
    /// Closes the connection; statements still pending complete with `connection_lost`.
    ~pipelined_connection() { close(); }

    /// Runs one SQL statement with parameters `$1..$n` (as connection::query()); may be called
    /// by many coroutines at once.
    ///
    /// Completes with: the statement's result, once its Sync has been answered (so it is
    ///   committed).
    /// Errors: `query_failed` with SQLSTATE for this statement's own error; other callers'
    ///   statements are not affected (see resend_rolled_back). `timeout` when the deadline
    ///   passed, `cancelled` when the awaiting coroutine was cancelled: both at once; the
    ///   statement's results are discarded when they come, and if it still runs on the server
    ///   after its timeout (at once when cancelled) it is cancelled there (PQcancel on a helper
    ///   thread). A cancel that races with that statement's end can hit the next one, which is
    ///   then sent again (resend_rolled_back) or fails with 57014 and a note that it did not
    ///   take effect. If the cancelled statement still runs cancel_timeout later, the
    ///   connection is closed. `connection_lost` when the connection broke or was closed: every
    ///   pending statement fails with it (outcome unknown for those already sent).
    ///   `invalid_argument` for a bad parameter or for transaction control (BEGIN).
    /// Cancellation: terminal and partial, as described under Errors (not total: a statement
    ///   whose caller left may still commit); the connection stays usable for the others.
    /// Resumes on: the awaiting coroutine's executor (which must be get_executor()).
    /// Lifetime: parameters are copied into the operation; `sql` and string_view /
    ///   const char* parameters must stay valid until it completes (a statement may be sent
    ///   again, see resend_rolled_back); string literals always do. The awaitable keeps the
    ///   pipeline's state alive: destroying the pipelined_connection while statements are pending
    ///   completes them with `connection_lost`.
    template <class... Params>
    boost::asio::awaitable<expected<result>> query(std::string_view sql, Params... params)
    {
        return detail::pipeline_query(st_, std::chrono::milliseconds(0), sql, std::move(params)...);
    }

    /// query() with per-call options (a timeout for this statement).
    template <class... Params>
    boost::asio::awaitable<expected<result>> query(const query_options& opts, std::string_view sql,
                                                   Params... params)
    {
        return detail::pipeline_query(st_, opts.timeout, sql, std::move(params)...);
    }

    /// query() as an Asio asynchronous operation for any completion token, the token last
    /// (`p.async_query("SELECT $1::int", 7, handler)`): `void(expected<result>)`. The statement
    /// runs on get_executor(), where this must be called from; the handler runs on its
    /// associated executor (default: get_executor()), never inside this call.
    template <class... ParamsThenToken>
    auto async_query(std::string_view sql, ParamsThenToken&&... args)
    {
        return detail::async_statement(
            get_executor(), false,
            [this, sql](auto&&... p) { return query(sql, std::forward<decltype(p)>(p)...); },
            std::forward<ParamsThenToken>(args)...);
    }

    /// Closes the connection now; pending statements complete with `connection_lost`.
    /// Idempotent.
    void close() noexcept
    {
        if (st_)
            st_->close(detail::pq_shared::lost("pipelined connection closed"));
    }
    /// True until the connection is closed or lost.
    bool is_open() const noexcept { return st_ && st_->is_open(); }
    /// The server process id serving this connection; 0 when closed.
    int backend_pid() const noexcept { return st_ ? st_->backend_pid() : 0; }
    /// Statements sent whose callers are still waiting for them.
    std::size_t pending() const noexcept { return st_ ? st_->pending() : 0; }
    /// Entries queued on the connection (statements sent and not yet answered, and Syncs).
    std::size_t queued() const noexcept { return st_ ? st_->queued() : 0; }
    /// Named prepared statements the session holds (connect_config::statement_cache_size;
    /// the cache does not evict here: statements beyond its capacity run unnamed).
    std::size_t prepared_statements() const noexcept
    {
        return st_ ? st_->prepared_statements() : 0;
    }
    /// The executor every caller must run on.
    executor_type get_executor() const noexcept
    {
        return st_ ? st_->get_executor() : executor_type();
    }

private:
    explicit pipelined_connection(std::shared_ptr<detail::pq_shared> st) : st_(std::move(st)) {}
    std::shared_ptr<detail::pq_shared> st_;
};

/// Connects with `cfg` (see connection::connect()) on `ex` and switches to pipeline mode.
/// pcfg's zero timeouts are taken from cfg (query_timeout, cancel_timeout).
/// Completes with: the pipelined connection. Errors: as connection::connect() and
/// pipelined_connection::adopt(). Cancellation: as connection::connect().
inline boost::asio::awaitable<expected<pipelined_connection>>
open_pipelined_connection(boost::asio::any_io_executor ex, connect_config cfg,
                          pipeline_config pcfg = {})
{
    if (pcfg.query_timeout.count() <= 0)
        pcfg.query_timeout = cfg.query_timeout;
    if (pcfg.cancel_timeout.count() <= 0)
        pcfg.cancel_timeout = cfg.cancel_timeout;
    auto c = co_await open_connection(std::move(ex), cfg);
    if (!c)
        co_return tl::unexpected(std::move(c.error()));
    co_return pipelined_connection::adopt(std::move(*c), pcfg);
}

/// Options of a pipeline_group.
struct pipeline_group_config
{
    /// Number of pipelined connections (at least 1).
    std::size_t connections = 2;
    /// Options of each connection.
    pipeline_config pipeline;
    /// After a failed reconnect, a member is not tried again for this long.
    std::chrono::milliseconds reconnect_delay{1000};
};

namespace detail
{
struct pipeline_group_state : std::enable_shared_from_this<pipeline_group_state>
{
    boost::asio::any_io_executor ex;
    connect_config cfg;
    pipeline_group_config gcfg;
    std::vector<std::optional<pipelined_connection>> members;
    std::vector<char> connecting;
    std::vector<std::chrono::steady_clock::time_point> retry_after;
    std::size_t next = 0;
    bool closed = false;
    bool supervised = false;                         // supervise() runs
    boost::asio::steady_timer* supervisor = nullptr; // its timer while it waits

    static boost::asio::awaitable<expected<void>>
    open_member(std::shared_ptr<pipeline_group_state> st, std::size_t i)
    {
        st->connecting[i] = 1;
        auto r = co_await open_pipelined_connection(st->ex, st->cfg, st->gcfg.pipeline);
        st->connecting[i] = 0;
        if (!r)
        {
            st->retry_after[i] = std::chrono::steady_clock::now() + st->gcfg.reconnect_delay;
            co_return tl::unexpected(std::move(r.error()));
        }
        if (st->closed)
            co_return fail(errc::connection_lost, "pipeline group closed");
        st->members[i].emplace(std::move(*r));
        co_return expected<void>{};
    }

    // The open member with the shortest queue (the first of equals, round-robin from
    // `next`); starts reconnecting the closed ones it passes. Least-loaded rather than plain
    // round-robin so that the coroutines a completed segment resumes send their next
    // statements together to the member that just went idle, one batch behind one Sync,
    // instead of one statement (and one Sync, one send) to each member.
    pipelined_connection* pick()
    {
        const std::size_t n = members.size();
        pipelined_connection* best = nullptr;
        std::size_t best_i = 0;
        for (std::size_t k = 0; k < n; ++k)
        {
            const std::size_t i = (next + k) % n;
            if (members[i] && members[i]->is_open())
            {
                if (!best || members[i]->queued() < best->queued())
                {
                    best = &*members[i];
                    best_i = i;
                }
                continue;
            }
            reopen_if_due(i);
        }
        if (best)
            next = best_i + 1;
        return best;
    }

    // Starts reconnecting member `i` when it is down, not already connecting and past its
    // reconnect_delay.
    void reopen_if_due(std::size_t i)
    {
        if (closed || connecting[i] || (members[i] && members[i]->is_open()) ||
            std::chrono::steady_clock::now() < retry_after[i])
            return;
        connecting[i] = 1; // before the spawn: no second attempt for the same member
        boost::asio::co_spawn(ex, open_member(shared_from_this(), i), boost::asio::detached);
    }

    // Reconnects broken members in the background, whether or not queries arrive: every
    // reconnect_delay / 4 (50 ms .. 1 s) it looks at each member. Holds the state only weakly
    // and ends when the group closes (close() cancels its wait).
    static boost::asio::awaitable<void> supervise(std::weak_ptr<pipeline_group_state> w)
    {
        boost::asio::steady_timer t(co_await boost::asio::this_coro::executor);
        struct forget_timer // the frame may die with its io_context: never leave `supervisor`
        {
            std::weak_ptr<pipeline_group_state> w;
            ~forget_timer()
            {
                if (auto st = w.lock())
                {
                    st->supervisor = nullptr;
                    st->supervised = false;
                }
            }
        } guard{w};
        for (;;)
        {
            {
                auto st = w.lock();
                if (!st || st->closed)
                    co_return;
                for (std::size_t i = 0; i < st->members.size(); ++i)
                    st->reopen_if_due(i);
                t.expires_after(std::clamp<std::chrono::milliseconds>(
                    st->gcfg.reconnect_delay / 4, std::chrono::milliseconds(50),
                    std::chrono::milliseconds(1000)));
                st->supervisor = &t;
            }
            auto [ec] = co_await t.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
            if (auto st = w.lock())
                st->supervisor = nullptr;
            if (ec)
                co_return;
        }
    }
};

inline boost::asio::awaitable<expected<result>> pipeline_group_down()
{
    co_return fail(errc::connection_lost,
                   "no open connection in the pipeline group (reconnecting in the background)");
}
} // namespace detail

/// N pipelined connections, for spreading pipelined statements over several server processes:
/// each statement goes to the member with the shortest queue (round-robin among equals). A member
/// that breaks is reconnected in the background from connect() on, whether or not queries
/// arrive (at most one attempt per member at a time, then reconnect_delay after a failure)
/// while the others carry the load. Same rules as
/// pipelined_connection: independent statements only, all callers on the group's executor.
class pipeline_group
{
public:
    using executor_type = boost::asio::any_io_executor;

    /// A group of gcfg.connections members, not connected yet (see connect()).
    pipeline_group(executor_type ex, connect_config cfg, pipeline_group_config gcfg = {})
        : st_(std::make_shared<detail::pipeline_group_state>())
    {
        const std::size_t n = gcfg.connections > 0 ? gcfg.connections : 1;
        st_->ex = std::move(ex);
        st_->cfg = std::move(cfg);
        st_->gcfg = std::move(gcfg);
        st_->members.resize(n);
        st_->connecting.assign(n, 0);
        st_->retry_after.assign(n, std::chrono::steady_clock::time_point{});
    }
    pipeline_group(const pipeline_group&) = delete;
    pipeline_group& operator=(const pipeline_group&) = delete;
    /// Closes every member (pending statements complete with `connection_lost`).
    ~pipeline_group() { close(); }

    /// Opens every member that is not open (one after the other).
    /// Completes with: nothing when all are open. Errors: the first connect error (members
    /// that did open stay open and serve queries). Cancellation: as connection::connect().
    /// Lifetime: the operation keeps the group's state alive; it may outlive the group.
    boost::asio::awaitable<expected<void>> connect() { return connect_all(st_); }

    /// Runs a statement on the next open member (see pipelined_connection::query()).
    /// Errors: as pipelined_connection::query(); `connection_lost` at once when no member is
    ///   open (reconnects are then under way).
    template <class... Params>
    boost::asio::awaitable<expected<result>> query(std::string_view sql, Params... params)
    {
        return query(query_options{}, sql, std::move(params)...);
    }

    /// query() with per-call options (a timeout for this statement).
    template <class... Params>
    boost::asio::awaitable<expected<result>> query(const query_options& opts, std::string_view sql,
                                                   Params... params)
    {
        if (auto* c = st_->pick())
            return c->query(opts, sql, std::move(params)...);
        return detail::pipeline_group_down();
    }

    /// query() as an Asio asynchronous operation for any completion token, the token last
    /// (`g.async_query("SELECT $1::int", 7, handler)`): `void(expected<result>)`. The statement
    /// runs on get_executor(), where this must be called from; the handler runs on its
    /// associated executor (default: get_executor()), never inside this call.
    template <class... ParamsThenToken>
    auto async_query(std::string_view sql, ParamsThenToken&&... args)
    {
        return detail::async_statement(
            get_executor(), false,
            [this, sql](auto&&... p) { return query(sql, std::forward<decltype(p)>(p)...); },
            std::forward<ParamsThenToken>(args)...);
    }

    /// Closes every member and stops reconnecting. Idempotent.
    void close() noexcept
    {
        st_->closed = true;
        if (st_->supervisor)
            st_->supervisor->cancel();
        for (auto& m : st_->members)
            if (m)
                m->close();
    }
    /// Number of members that are open now.
    std::size_t open_count() const noexcept
    {
        std::size_t n = 0;
        for (const auto& m : st_->members)
            n += m && m->is_open();
        return n;
    }
    /// Number of members (open or not).
    std::size_t size() const noexcept { return st_->members.size(); }
    /// The executor every caller must run on.
    executor_type get_executor() const noexcept { return st_->ex; }

private:
    static boost::asio::awaitable<expected<void>>
    connect_all(std::shared_ptr<detail::pipeline_group_state> st)
    {
        std::optional<error> first;
        for (std::size_t i = 0; i < st->members.size() && !st->closed; ++i)
        {
            if ((st->members[i] && st->members[i]->is_open()) || st->connecting[i])
                continue;
            auto r = co_await detail::pipeline_group_state::open_member(st, i);
            if (!r && !first)
                first = std::move(r.error());
        }
        if (!st->closed && !st->supervised)
        {
            st->supervised = true;
            boost::asio::co_spawn(st->ex, detail::pipeline_group_state::supervise(st),
                                  boost::asio::detached);
        }
        if (first)
            co_return tl::unexpected(std::move(*first));
        co_return expected<void>{};
    }

    std::shared_ptr<detail::pipeline_group_state> st_;
};

} // namespace pgcoro

#endif // PGCORO_PIPELINE_HPP
