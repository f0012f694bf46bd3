// tests/support/oracles.hpp - what the fault tests check after (and while) injecting a fault.
//
//   ledger            every unit of work inserts a client-generated id in one transaction;
//                     afterwards every acknowledged id is present exactly once, no failed id
//                     is present, and commits whose outcome was unknown (the connection broke
//                     during COMMIT) are resolved with pg_xact_status() and must agree.
//   back_to_baseline  after pool.close(): this process's fd count and the server's sessions
//                     for the pool's application_name return to what they were before.
//   gauges_*          pool.stats() is self-consistent (size = idle + leased + connecting, every
//                     opened connection is still held or was closed exactly once).
//   lag_probe         a 1 ms ticker on the loop under test; a blocking call on the loop (a
//                     libpq blocking function, DNS, PQcancel) shows up as a late tick.
#ifndef PGCORO_TESTS_SUPPORT_ORACLES_HPP
#define PGCORO_TESTS_SUPPORT_ORACLES_HPP

#include "support/test_server.hpp"

#include <pgcoro/connection.hpp>
#include <pgcoro/pool_config.hpp>
#include <pgcoro/pool_stats.hpp>
#include <pgcoro/retry.hpp>
#include <pgcoro/transaction.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <unistd.h>
#include <vector>

namespace pgcoro::test
{

inline boost::asio::awaitable<void> sleep_for(std::chrono::steady_clock::duration d)
{
    boost::asio::steady_timer t(co_await boost::asio::this_coro::executor, d);
    co_await t.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
}

// ---- configurations the fault tests start from ----------------------------------------------

/// The test cluster (or `base`) under its own application_name, with a 3 s connect deadline.
inline connect_config fault_app(const std::string& name,
                                connect_config base = test_server::get().tcp())
{
    base.application_name = name;
    base.connect_timeout = std::chrono::seconds(3);
    return base;
}
/// The side connection the oracles read the server through (never through a fault proxy).
inline connect_config side_config()
{
    return fault_app("pgcoro-fault-side");
}
/// A small pool with short, explicit limits (tests widen what they need).
inline pool_config fault_pool(std::size_t max_size = 4)
{
    pool_config p;
    p.min_size = 0;
    p.max_size = max_size;
    p.acquire_timeout = std::chrono::seconds(3);
    p.validate_after_idle = std::chrono::milliseconds(0);
    p.refill_backoff_initial = std::chrono::milliseconds(50);
    p.refill_backoff_max = std::chrono::milliseconds(400);
    p.max_concurrent_connects = 2;
    return p;
}

// ---- (d) event-loop lag probe ----------------------------------------------------------------

/// A 1 ms steady_timer ticker on the loop under test, recording how late each tick fires.
///
/// The machine is shared (2 cores, parallel builds), so a tick can also be late because the
/// loop thread was runnable but waited for a CPU. That wait is read from the kernel's per-thread
/// run-queue delay (/proc/thread-self/schedstat, 2nd field) and subtracted: max_blocked() is the
/// lateness the loop itself caused (a handler blocking in a syscall or computing); max_lag() is
/// the raw lateness, reported for information. Only ticks while the probe is started count;
/// stop() before leaving a run() whose io_context is not run for a while afterwards.
class lag_probe
{
public:
    using clock = std::chrono::steady_clock;

    /// `budget` is multiplied by PGCORO_LAG_BUDGET_SCALE (a whole number, default 1): the
    /// sanitizer builds set 3, since there plain memory work (freeing a 32 MiB buffer) takes
    /// several times as long, while a blocking libpq call still blocks far longer.
    explicit lag_probe(boost::asio::any_io_executor ex,
                       std::chrono::milliseconds budget = std::chrono::milliseconds(20),
                       std::chrono::microseconds period = std::chrono::milliseconds(1))
        : ex_(std::move(ex)), budget_(budget * budget_scale()), period_(period),
          stats_(std::make_shared<stats>())
    {
    }
    lag_probe(const lag_probe&) = delete;
    lag_probe& operator=(const lag_probe&) = delete;
    ~lag_probe() { stop(); }

    /// Starts a ticker (the previous one, if any, is stopped).
    void start()
    {
        stop();
        running_ = std::make_shared<std::atomic<bool>>(true);
        boost::asio::co_spawn(ex_, tick(stats_, running_, period_), boost::asio::detached);
    }
    /// The ticker ends at its next tick, which is not counted.
    void stop()
    {
        if (running_)
            *running_ = false;
        running_.reset();
    }
    /// Ticks armed or fired while paused are not counted (around work whose cost is the
    /// caller's payload, such as copying a 64 MiB parameter).
    void pause()
    {
        stats_->paused = true;
        ++stats_->pauses;
    }
    void resume() { stats_->paused = false; }

    std::chrono::microseconds max_lag() const
    {
        return std::chrono::microseconds(stats_->max_lag_us);
    }
    std::chrono::microseconds max_blocked() const
    {
        return std::chrono::microseconds(stats_->max_blocked_us);
    }
    std::size_t ticks() const { return stats_->ticks; }

    /// The loop ticked, and never blocked longer than the budget.
    ::testing::AssertionResult ok() const
    {
        std::ostringstream d;
        d << "ticks=" << ticks() << " max_lag=" << max_lag().count()
          << "us max_blocked=" << max_blocked().count() << "us budget=" << budget_.count() << "ms";
        if (ticks() == 0)
            return ::testing::AssertionFailure() << "lag probe never ticked: " << d.str();
        if (max_blocked() > budget_)
            return ::testing::AssertionFailure() << "event loop blocked: " << d.str();
        return ::testing::AssertionSuccess() << d.str();
    }

private:
    static int budget_scale()
    {
        const char* v = std::getenv("PGCORO_LAG_BUDGET_SCALE");
        const int k = v ? std::atoi(v) : 1;
        return k >= 1 && k <= 100 ? k : 1;
    }

    struct stats
    {
        std::atomic<long long> max_lag_us{0};
        std::atomic<long long> max_blocked_us{0};
        std::atomic<std::size_t> ticks{0};
        std::atomic<bool> paused{false};
        std::atomic<unsigned> pauses{0};
    };

    // Nanoseconds this thread has spent runnable but waiting for a CPU; 0 when unknown.
    static long long run_queue_ns()
    {
        int fd = ::open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return 0;
        char buf[128] = {};
        auto n = ::read(fd, buf, sizeof buf - 1);
        ::close(fd);
        unsigned long long on_cpu = 0, waiting = 0;
        if (n <= 0 || std::sscanf(buf, "%llu %llu", &on_cpu, &waiting) != 2)
            return 0;
        return static_cast<long long>(waiting);
    }

    static boost::asio::awaitable<void> tick(std::shared_ptr<stats> st,
                                             std::shared_ptr<std::atomic<bool>> running,
                                             std::chrono::microseconds period)
    {
        using namespace std::chrono;
        boost::asio::steady_timer t(co_await boost::asio::this_coro::executor);
        const auto give_up = clock::now() + minutes(30); // bounded even if never stopped
        long long waited_before = run_queue_ns();
        while (*running && clock::now() < give_up)
        {
            t.expires_after(period);
            const auto due = t.expiry();
            const unsigned pauses = st->pauses;
            const bool paused_at_arm = st->paused;
            co_await t.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
            if (!*running)
                break;
            const auto late = duration_cast<microseconds>(clock::now() - due).count();
            const long long waited = run_queue_ns();
            const long long cpu_wait_us = (waited - waited_before) / 1000;
            waited_before = waited;
            if (paused_at_arm || st->paused || st->pauses != pauses)
                continue;
            const long long blocked = std::max(0LL, late - cpu_wait_us);
            st->max_lag_us = std::max<long long>(st->max_lag_us, late);
            st->max_blocked_us = std::max<long long>(st->max_blocked_us, blocked);
            ++st->ticks;
        }
    }

    boost::asio::any_io_executor ex_;
    std::chrono::milliseconds budget_;
    std::chrono::microseconds period_;
    std::shared_ptr<stats> stats_;
    std::shared_ptr<std::atomic<bool>> running_;
};

/// Prints the probe's figures and fails the test when the loop blocked past the budget.
inline void expect_loop_responsive(const lag_probe& p)
{
    auto r = p.ok();
    std::printf("[ lag probe] %s\n", r.message());
    EXPECT_TRUE(r);
}

// The most connect attempts a pool may make in `window` while every attempt fails at once:
// max_concurrent_connects at t=0 and after each backoff step (initial, doubling, capped,
// possibly jittered down to half). A bound on the reconnect rate: no storm.
inline std::size_t attempt_bound(const pgcoro::pool_config& p,
                                 std::chrono::steady_clock::duration window)
{
    // Each delay is at least half its nominal value (equal jitter allows that much).
    std::size_t rounds = 1;
    auto d = p.refill_backoff_initial;
    std::chrono::steady_clock::duration t{};
    while ((t += d / 2) <= window)
    {
        ++rounds;
        d = std::min(d * 2, p.refill_backoff_max);
    }
    return rounds * p.max_concurrent_connects;
}

// ---- (c) pool gauges ------------------------------------------------------------------------

inline std::uint64_t closed_total(const pool_stats& s)
{
    return s.closed_idle + s.closed_lifetime + s.closed_broken + s.closed_validation +
           s.closed_shutdown;
}

/// The gauges agree with each other: size = idle + leased + connecting, size <= max_size.
/// Read them on the pool's (single-threaded) loop, between handlers.
inline ::testing::AssertionResult gauges_consistent(const pool_stats& s)
{
    if (s.size != s.idle + s.leased + s.connecting)
        return ::testing::AssertionFailure() << "size != idle + leased + connecting: " << s;
    if (s.max_size > 0 && s.size > s.max_size)
        return ::testing::AssertionFailure() << "size > max_size: " << s;
    if (s.leased > s.size || s.idle > s.size || s.connecting > s.size)
        return ::testing::AssertionFailure() << "a gauge exceeds size: " << s;
    return ::testing::AssertionSuccess();
}

/// While the pool is open: every connection that opened is still held (idle or leased) or was
/// closed exactly once: opened = closed_* + (size - connecting). A connection closed twice or
/// lost track of breaks the equation.
inline ::testing::AssertionResult connections_conserved(const pool_stats& s)
{
    if (auto g = gauges_consistent(s); !g)
        return g;
    const std::uint64_t held = s.size - s.connecting;
    if (s.opened != closed_total(s) + held)
        return ::testing::AssertionFailure()
               << "opened (" << s.opened << ") != closed (" << closed_total(s) << ") + held ("
               << held << "): " << s;
    return ::testing::AssertionSuccess();
}

/// After pool.close(): nothing held, nothing waiting, every opened connection closed exactly
/// once (more closes than opens is a double count, fewer a leak).
inline ::testing::AssertionResult pool_drained(const pool_stats& s)
{
    if (s.size != 0 || s.idle != 0 || s.leased != 0 || s.connecting != 0 || s.waiters != 0)
        return ::testing::AssertionFailure() << "pool not empty after close: " << s;
    if (closed_total(s) != s.opened)
        return ::testing::AssertionFailure() << "closes (" << closed_total(s) << ") != opens ("
                                             << s.opened << ") after close: " << s;
    return ::testing::AssertionSuccess();
}

// ---- (b) fds and server sessions ------------------------------------------------------------

/// Sessions with this application_name on the server, counted over `side`; -1 on error.
inline boost::asio::awaitable<std::int64_t> server_sessions(connection& side,
                                                            const std::string& app)
{
    auto r = co_await side.query(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", app);
    co_return r ? r->get<std::int64_t>(0, 0).value_or(-1) : -1;
}

/// Waits (at most `limit`) until the server has no session named `app`: nothing the client
/// dropped (a pool destroyed mid-flight, an io_context destroyed with frames in it) was leaked.
inline boost::asio::awaitable<::testing::AssertionResult>
sessions_ended(connection& side, const std::string& app,
               std::chrono::milliseconds limit = std::chrono::milliseconds(3000))
{
    const auto until = std::chrono::steady_clock::now() + limit;
    std::int64_t sessions = co_await server_sessions(side, app);
    while (sessions != 0 && std::chrono::steady_clock::now() < until)
    {
        co_await sleep_for(std::chrono::milliseconds(20));
        sessions = co_await server_sessions(side, app);
    }
    if (sessions == 0)
        co_return ::testing::AssertionSuccess();
    co_return ::testing::AssertionFailure()
        << sessions << " server sessions for '" << app << "' left after " << limit.count() << " ms";
}

/// Waits (at most `limit`) until this process has at most `fds` descriptors open and the server
/// has no session named `app` (backends exit asynchronously after the client closes).
inline boost::asio::awaitable<::testing::AssertionResult>
back_to_baseline(connection& side, const std::string& app, int fds,
                 std::chrono::milliseconds limit = std::chrono::milliseconds(3000))
{
    const auto until = std::chrono::steady_clock::now() + limit;
    int now_fds = 0;
    std::int64_t sessions = 0;
    for (;;)
    {
        now_fds = open_fd_count();
        sessions = co_await server_sessions(side, app);
        if (now_fds <= fds && sessions == 0)
            co_return ::testing::AssertionSuccess();
        if (std::chrono::steady_clock::now() >= until)
            break;
        co_await sleep_for(std::chrono::milliseconds(20));
    }
    co_return ::testing::AssertionFailure()
        << "not back to baseline after " << limit.count() << " ms: fds " << now_fds << " (baseline "
        << fds << "), server sessions for '" << app << "' " << sessions;
}

// ---- (a) the ledger -------------------------------------------------------------------------

/// Exactly-once bookkeeping of units of work. Each unit is one transaction on a connection:
/// BEGIN; SET LOCAL synchronous_commit = on (the test cluster runs with it off, and an
/// acknowledged commit must survive `pg_ctl stop -m immediate`); INSERT id RETURNING
/// txid_current(); COMMIT (through pgcoro::transact). Its outcome is recorded as
///   acknowledged  COMMIT succeeded;
///   failed        it failed before COMMIT was sent, or COMMIT was answered with an error:
///                 the server certainly rolled it back;
///   unknown       the connection broke or timed out during COMMIT: resolved in verify() with
///                 pg_xact_status(txid). After a crash (stop -m immediate) an xid whose WAL
///                 was lost is reassigned; pg_xact_status() then describes its new owner.
///                 Each row stores its txid, so a reuse by another unit is recognised.
/// The id is deliberately not a key: a unit that ran twice (a retry of a write whose outcome
/// was unknown) leaves two rows, which verify() counts as `duplicated` (issue 19: with a
/// primary key the count could never fire; Oracles.LedgerReportsADuplicatedWrite shows it does).
class ledger
{
public:
    enum class outcome
    {
        acknowledged,
        failed,
        unknown,
    };
    /// A unit that was not acknowledged (acknowledged ones are kept as one byte each).
    struct entry
    {
        std::string id;
        outcome what = outcome::failed;
        std::string txid; // known once the INSERT answered
        error err;
    };
    struct verdict
    {
        std::size_t acknowledged = 0, failed = 0, unknown = 0;
        std::size_t unknown_committed = 0, unknown_aborted = 0;
        std::size_t unknown_reused_xid = 0; // resolved through the row that reused the xid
        std::size_t rows = 0, lost = 0, duplicated = 0, phantom = 0, failed_but_present = 0,
                    mismatched = 0;
        std::string problems; // one line per problem (the first 20)
        bool ok() const { return problems.empty(); }
        friend std::ostream& operator<<(std::ostream& os, const verdict& v)
        {
            os << "acknowledged=" << v.acknowledged << " failed=" << v.failed
               << " unknown=" << v.unknown << " (committed " << v.unknown_committed << ", aborted "
               << v.unknown_aborted << ", xid reused after a crash " << v.unknown_reused_xid
               << ") rows=" << v.rows << " lost=" << v.lost << " duplicated=" << v.duplicated
               << " phantom=" << v.phantom << " failed_but_present=" << v.failed_but_present
               << " unknown_mismatched=" << v.mismatched;
            if (!v.problems.empty())
                os << "\n" << v.problems;
            return os;
        }
    };

    explicit ledger(std::string table) : table_(std::move(table))
    {
        prefix_ = table_ + "-" + std::to_string(std::random_device{}()) + "-";
        insert_sql_ = "INSERT INTO " + table_ +
                      " (id, txid) VALUES ($1, txid_current()) RETURNING txid::text";
    }

    const std::string& table() const noexcept { return table_; }

    /// Drops and creates the table (committed synchronously: it must survive a crash).
    boost::asio::awaitable<expected<void>> create(connection& c)
    {
        for (std::string sql :
             {std::string("BEGIN"), std::string("SET LOCAL synchronous_commit = on"),
              "DROP TABLE IF EXISTS " + table_,
              "CREATE TABLE " + table_ +
                  " (id text NOT NULL, txid bigint NOT NULL,"
                  " at timestamptz NOT NULL DEFAULT clock_timestamp())",
              "CREATE INDEX ON " + table_ + " (id)", std::string("COMMIT")})
        {
            auto r = co_await c.query(sql);
            if (!r)
            {
                co_await c.query("ROLLBACK");
                co_return tl::unexpected(r.error());
            }
        }
        co_return expected<void>{};
    }
    boost::asio::awaitable<void> drop(connection& c)
    {
        co_await c.query("DROP TABLE IF EXISTS " + table_);
    }

    /// One unit of work through `pool` (acquire, transaction, release). Its outcome is
    /// recorded; the result is returned as is, for a retry or a breaker.
    /// `hold` keeps the transaction open that long after its INSERT (pg_sleep), so a fault
    /// can hit it in flight.
    template <class Pool>
    boost::asio::awaitable<expected<int>> insert(Pool& pool, std::chrono::milliseconds hold = {})
    {
        unit u = next_unit(hold);
        auto r = co_await pool.run([&](connection& c) { return attempt(c, u); });
        record(u, r);
        co_return r;
    }
    /// One unit of work through `pool`, retried as a whole by pgcoro::retry() under `policy`
    /// with the same id on every attempt: a retry that re-ran a write whose outcome was
    /// unknown (allowed only when `policy.idempotent`) leaves two rows, which verify() reports.
    template <class Pool>
    boost::asio::awaitable<expected<int>> insert_retried(Pool& pool, const retry_policy& policy)
    {
        unit u = next_unit({});
        auto r = co_await pgcoro::retry(
            policy, [&] { return pool.run([&](connection& c) { return attempt(c, u); }); });
        record(u, r);
        co_return r;
    }
    /// One unit of work on `c`.
    boost::asio::awaitable<expected<int>> insert(connection& c, std::chrono::milliseconds hold = {})
    {
        unit u = next_unit(hold);
        auto r = co_await attempt(c, u);
        record(u, r);
        co_return r;
    }

    /// The id of unit `seq` (1-based, in the order units started): for tests of the oracle.
    std::string id(std::uint64_t seq) const { return id_of(seq); }
    /// Units recorded with outcome `o` so far.
    std::size_t count(outcome o) const { return counts_[static_cast<std::size_t>(o)]; }
    /// The units that were not acknowledged, by sequence number.
    const std::map<std::uint64_t, entry>& not_acknowledged() const noexcept { return details_; }

    /// Reads the table over `side` and checks it against the recorded outcomes.
    boost::asio::awaitable<verdict> verify(connection& side)
    {
        verdict v;
        auto note = [&](const std::string& line)
        {
            if (std::count(v.problems.begin(), v.problems.end(), '\n') < 20)
                v.problems += line + "\n";
        };
        auto rows = co_await side.query("SELECT id, count(*) FROM " + table_ + " GROUP BY id");
        if (!rows)
        {
            note("cannot read the ledger: " + rows.error().to_string());
            co_return v;
        }
        // Rows by sequence number (ids are prefix + seq); anything else is a phantom.
        std::vector<std::int64_t> present(outcomes_.size() + 1, 0);
        for (std::size_t i = 0; i < rows->size(); ++i)
        {
            const auto id = rows->get<std::string>(i, 0).value_or("");
            const auto n = rows->get<std::int64_t>(i, 1).value_or(0);
            v.rows += static_cast<std::size_t>(n);
            const auto seq = seq_of(id);
            if (seq == 0 || seq > outcomes_.size())
            {
                ++v.phantom;
                note("phantom (never attempted): " + id);
                continue;
            }
            present[seq] = n;
            if (n > 1)
            {
                ++v.duplicated;
                note("duplicated: " + id + " x" + std::to_string(n));
            }
        }
        for (std::uint64_t seq = 1; seq <= outcomes_.size(); ++seq)
        {
            const bool here = present[seq] > 0;
            const auto what = outcomes_[seq - 1];
            if (what == pending)
            {
                ++v.mismatched;
                note("still in flight at verify(): " + id_of(seq));
                continue;
            }
            switch (static_cast<outcome>(what))
            {
            case outcome::acknowledged:
                ++v.acknowledged;
                if (!here)
                {
                    ++v.lost;
                    note("lost (acknowledged, absent): " + id_of(seq));
                }
                break;
            case outcome::failed:
                ++v.failed;
                if (here)
                {
                    ++v.failed_but_present;
                    note("reported failed but present: " + id_of(seq) + " (" +
                         details_[seq].err.to_string() + ")");
                }
                break;
            case outcome::unknown:
            {
                ++v.unknown;
                const entry& e = details_[seq];
                auto st = co_await side.query("SELECT pg_xact_status($1::xid8)", e.txid);
                std::string status = st ? st->get<std::string>(0, 0).value_or("null") : "error";
                if (status == "committed")
                    ++v.unknown_committed;
                else if (status == "aborted")
                    ++v.unknown_aborted;
                const bool should_be_here = status == "committed";
                if (status != "committed" && status != "aborted")
                {
                    ++v.mismatched;
                    note("unknown commit " + e.id + " txid " + e.txid + " unresolved: " + status);
                }
                else if (should_be_here && !here && co_await txid_reused(side, e.txid, e.id))
                {
                    // After a crash, an xid whose WAL never reached disk is handed out again:
                    // pg_xact_status() then reports the new owner, here another ledger unit
                    // (same txid, other id). Ours was lost with the WAL: it did not commit.
                    ++v.unknown_aborted;
                    --v.unknown_committed;
                    ++v.unknown_reused_xid;
                }
                else if (should_be_here != here)
                {
                    ++v.mismatched;
                    note("unknown commit " + e.id + " txid " + e.txid + " is " + status +
                         " but the row is " + (here ? "present" : "absent"));
                }
                break;
            }
            }
        }
        co_return v;
    }

private:
    struct unit
    {
        std::uint64_t seq = 0;
        std::string id;
        bool inserted = false; // the INSERT answered: only COMMIT was left
        std::string txid;
        std::chrono::milliseconds hold{0};
    };

    static constexpr std::uint8_t pending = 3;

    unit next_unit(std::chrono::milliseconds hold)
    {
        outcomes_.push_back(pending);
        const std::uint64_t seq = outcomes_.size();
        return unit{seq, id_of(seq), false, {}, hold};
    }
    std::string id_of(std::uint64_t seq) const { return prefix_ + std::to_string(seq); }
    // The sequence number in an id of ours; 0 for anything else.
    std::uint64_t seq_of(const std::string& id) const
    {
        if (id.size() <= prefix_.size() || id.compare(0, prefix_.size(), prefix_) != 0)
            return 0;
        std::uint64_t seq = 0;
        for (std::size_t i = prefix_.size(); i < id.size(); ++i)
        {
            if (id[i] < '0' || id[i] > '9' || seq > (1ull << 40))
                return 0;
            seq = seq * 10 + static_cast<std::uint64_t>(id[i] - '0');
        }
        return seq;
    }

    // True when another row of the ledger carries `txid`.
    boost::asio::awaitable<bool> txid_reused(connection& side, const std::string& txid,
                                             const std::string& id)
    {
        auto r = co_await side.query("SELECT count(*) FROM " + table_ +
                                         " WHERE txid = $1::bigint AND id <> $2",
                                     std::string_view(txid), std::string_view(id));
        co_return r && r->get<std::int64_t>(0, 0).value_or(0) > 0;
    }

    boost::asio::awaitable<expected<int>> attempt(connection& c, unit& u)
    {
        co_return co_await pgcoro::transact(
            c,
            [&](connection& tx) -> boost::asio::awaitable<expected<int>>
            {
                u.inserted = false;
                auto s = co_await tx.query("SET LOCAL synchronous_commit = on");
                if (!s)
                    co_return tl::unexpected(s.error());
                auto i = co_await tx.query(insert_sql_, std::string_view(u.id));
                if (!i)
                    co_return tl::unexpected(i.error());
                u.txid = i->get<std::string>(0, 0).value_or("");
                if (u.hold.count() > 0)
                {
                    auto h = co_await tx.query("SELECT pg_sleep($1::float8 / 1000)",
                                               static_cast<std::int64_t>(u.hold.count()));
                    if (!h)
                        co_return tl::unexpected(h.error());
                }
                u.inserted = true;
                co_return 1;
            });
    }

    outcome record(const unit& u, const expected<int>& r)
    {
        outcome what = outcome::acknowledged;
        if (!r)
        {
            what = u.inserted && outcome_unknown(r.error()) ? outcome::unknown : outcome::failed;
            details_[u.seq] = entry{u.id, what, u.txid, r.error()};
        }
        outcomes_[u.seq - 1] = static_cast<std::uint8_t>(what);
        ++counts_[static_cast<std::size_t>(what)];
        return what;
    }

    std::string table_;
    std::string prefix_;
    std::string insert_sql_;
    std::vector<std::uint8_t> outcomes_;     // by seq - 1: an outcome, or `pending`
    std::map<std::uint64_t, entry> details_; // the units not acknowledged
    std::array<std::size_t, 3> counts_{};
};

} // namespace pgcoro::test

#endif // PGCORO_TESTS_SUPPORT_ORACLES_HPP
