// Integration tests for pgcoro::pipelined_connection and pgcoro::pipeline_group (libpq pipeline
// mode shared by many coroutines) against the real test cluster.
#include <pgcoro/pipeline.hpp>

#include "support/test_server.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>

#include <gtest/gtest.h>

#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using pgcoro::errc;
using pgcoro::test::run;
using pgcoro::test::test_server;
using clock_type = std::chrono::steady_clock;

namespace
{

// `cache`: connect_config::statement_cache_size (0: unnamed statements).
pgcoro::connect_config app(const std::string& name, std::size_t cache = 0)
{
    auto c = test_server::get().tcp();
    c.application_name = name;
    c.statement_cache_size = cache;
    c.connect_timeout = 5s;
    c.cancel_timeout = 3s;
    return c;
}

asio::awaitable<void> sleep_for(std::chrono::milliseconds d)
{
    asio::steady_timer t(co_await asio::this_coro::executor, d);
    co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
}

// Waits (bounded) until `done()` holds; returns whether it did.
asio::awaitable<bool> wait_until(const std::function<bool()>& done, std::chrono::milliseconds limit)
{
    const auto until = clock_type::now() + limit;
    while (!done())
    {
        if (clock_type::now() >= until)
            co_return false;
        co_await sleep_for(2ms);
    }
    co_return true;
}

asio::awaitable<pgcoro::expected<pgcoro::pipelined_connection>> open_pipe(const std::string& name,
                                                                          std::size_t per_sync = 64,
                                                                          bool resend = true,
                                                                          std::size_t cache = 0)
{
    pgcoro::pipeline_config p;
    p.statements_per_sync = per_sync;
    p.resend_rolled_back = resend;
    co_return co_await pgcoro::open_pipelined_connection(co_await asio::this_coro::executor,
                                                         app(name, cache), p);
}

using outcome = std::optional<pgcoro::expected<pgcoro::result>>;

// Awaits `q` and puts its outcome in `out`.
asio::awaitable<void> store(asio::awaitable<pgcoro::expected<pgcoro::result>> q, outcome& out)
{
    out = co_await std::move(q);
}

// Starts `q` in its own coroutine; its outcome lands in `out`.
void spawn_query(asio::any_io_executor ex, asio::awaitable<pgcoro::expected<pgcoro::result>> q,
                 outcome& out)
{
    asio::co_spawn(ex, store(std::move(q), out), asio::detached);
}

bool all_done(const std::vector<outcome>& v)
{
    for (const auto& o : v)
        if (!o)
            return false;
    return true;
}

// 100 coroutines x 100 statements with distinct parameters on one pipelined connection: each
// result must come back to the coroutine that asked for it.
void hundred_by_hundred(std::size_t per_sync, std::size_t cache = 0)
{
    asio::io_context io;
    run(
        io,
        [per_sync, cache]() -> asio::awaitable<void>
        {
            auto ex = co_await asio::this_coro::executor;
            auto pc = co_await open_pipe("pgcoro-pipe-100", per_sync, true, cache);
            PGCORO_CO_ASSERT(pc.has_value());
            const int pid = pc->backend_pid();
            PGCORO_CO_ASSERT(pid != 0);
            constexpr int coroutines = 100, per = 100;
            int ok = 0, wrong = 0, failed = 0, finished = 0;
            std::size_t max_pending = 0;
            for (int k = 0; k < coroutines; ++k)
                asio::co_spawn(
                    ex,
                    [&, k]() -> asio::awaitable<void>
                    {
                        const std::string tag = "c" + std::to_string(k);
                        for (int q = 0; q < per; ++q)
                        {
                            const int v = k * 1000 + q;
                            auto r = co_await pc->query("SELECT $1::int4 * 2, $2::text", v, tag);
                            max_pending = std::max(max_pending, pc->pending());
                            if (!r)
                            {
                                ++failed;
                                ADD_FAILURE() << r.error();
                                continue;
                            }
                            if (r->get<int>(0, 0).value_or(-1) == 2 * v &&
                                r->get<std::string>(0, 1).value_or("") == tag)
                                ++ok;
                            else
                                ++wrong;
                        }
                        ++finished;
                    },
                    asio::detached);
            EXPECT_TRUE(co_await wait_until([&] { return finished == coroutines; }, 60s));
            EXPECT_EQ(ok, coroutines * per);
            EXPECT_EQ(wrong, 0);
            EXPECT_EQ(failed, 0);
            // Statements really were in flight together, on the one server process.
            EXPECT_GT(max_pending, 1u);
            auto r = co_await pc->query("SELECT pg_backend_pid()");
            PGCORO_CO_ASSERT(r.has_value());
            EXPECT_EQ(r->get<int>(0, 0).value_or(0), pid);
            EXPECT_EQ(pc->pending(), 0u);
            // With the statement cache: the two statements, prepared once each.
            EXPECT_EQ(pc->prepared_statements(), cache > 0 ? 2u : 0u);
        }(),
        90s);
}

} // namespace

TEST(Pipeline, HundredCoroutinesHundredStatementsEach)
{
    hundred_by_hundred(64);
}

TEST(PipelineSyncEach, HundredCoroutinesHundredStatementsEach)
{
    hundred_by_hundred(1);
}

TEST(PipelineCached, HundredCoroutinesHundredStatementsEach)
{
    hundred_by_hundred(64, 8);
}

namespace
{
// One coroutine's failing statement fails only that statement: with a Sync per statement by
// construction, with batched Syncs because the others of its segment are sent again.
// With the statement cache the syntax error is the PREPARE's, reported as the statement's own.
void error_isolation(std::size_t per_sync, std::size_t cache = 0)
{
    asio::io_context io;
    run(io,
        [per_sync, cache]() -> asio::awaitable<void>
        {
            auto ex = co_await asio::this_coro::executor;
            auto pc = co_await open_pipe("pgcoro-pipe-iso", per_sync, true, cache);
            PGCORO_CO_ASSERT(pc.has_value());
            constexpr int coroutines = 100, per = 20;
            int ok = 0, other_failures = 0, finished = 0;
            std::optional<pgcoro::error> div_zero, syntax;
            for (int k = 0; k < coroutines; ++k)
                asio::co_spawn(
                    ex,
                    [&, k]() -> asio::awaitable<void>
                    {
                        for (int q = 0; q < per; ++q)
                        {
                            if (k == 7 && q == 5)
                            {
                                auto r = co_await pc->query("SELECT 1 / $1::int", 0);
                                if (!r)
                                    div_zero = r.error();
                                continue;
                            }
                            if (k == 13 && q == 9)
                            {
                                auto r = co_await pc->query("SELEC 1");
                                if (!r)
                                    syntax = r.error();
                                continue;
                            }
                            const int v = k * 100 + q;
                            auto r = co_await pc->query("SELECT $1::int", v);
                            if (r && r->get<int>(0, 0).value_or(-1) == v)
                                ++ok;
                            else
                                ++other_failures;
                        }
                        ++finished;
                    },
                    asio::detached);
            EXPECT_TRUE(co_await wait_until([&] { return finished == coroutines; }, 60s));
            EXPECT_EQ(ok, coroutines * per - 2);
            EXPECT_EQ(other_failures, 0);
            PGCORO_CO_ASSERT(div_zero.has_value());
            PGCORO_CO_ASSERT(syntax.has_value());
            EXPECT_TRUE(div_zero->is(errc::query_failed)) << *div_zero;
            EXPECT_EQ(div_zero->state, "22012") << *div_zero;
            EXPECT_TRUE(syntax->is(errc::query_failed)) << *syntax;
            EXPECT_EQ(syntax->state, "42601") << *syntax;
            EXPECT_TRUE(pc->is_open());
        }());
}
} // namespace

TEST(Pipeline, ErrorIsolation)
{
    error_isolation(64);
}

TEST(PipelineSyncEach, ErrorIsolation)
{
    error_isolation(1);
}

TEST(PipelineCached, ErrorIsolation)
{
    error_isolation(64, 8);
}

// A Sync per statement: each statement is its own implicit transaction, so the writes of the
// others commit although one statement sent together with them failed.
TEST(PipelineSyncEach, EachStatementCommitsOnItsOwn)
{
    asio::io_context io;
    run(io,
        []() -> asio::awaitable<void>
        {
            auto ex = co_await asio::this_coro::executor;
            auto side = co_await pgcoro::open_connection(ex, app("pgcoro-pipe-side"));
            PGCORO_CO_ASSERT(side.has_value());
            (void)co_await side->query("DROP TABLE IF EXISTS pipe_each");
            PGCORO_CO_ASSERT(
                (co_await side->query("CREATE TABLE pipe_each (id int PRIMARY KEY)")).has_value());
            auto pc = co_await open_pipe("pgcoro-pipe-each", 1);
            PGCORO_CO_ASSERT(pc.has_value());
            std::vector<outcome> out(6);
            for (int i = 0; i < 5; ++i)
                spawn_query(ex, pc->query("INSERT INTO pipe_each VALUES ($1)", i), out[i]);
            spawn_query(ex, pc->query("INSERT INTO pipe_each VALUES (1 / $1::int)", 0), out[5]);
            EXPECT_TRUE(co_await wait_until([&] { return all_done(out); }, 10s));
            for (int i = 0; i < 5; ++i)
                EXPECT_TRUE(out[i] && out[i]->has_value());
            PGCORO_CO_ASSERT(out[5] && !out[5]->has_value());
            EXPECT_EQ(out[5]->error().state, "22012");
            auto n = co_await side->query("SELECT count(*) FROM pipe_each");
            PGCORO_CO_ASSERT(n.has_value());
            EXPECT_EQ(n->get<std::int64_t>(0, 0).value_or(-1), 5);
            (void)co_await side->query("DROP TABLE pipe_each");
        }());
}

namespace
{
// Ten INSERTs queued in the same turn of the event loop share one Sync; the fifth fails.
void segment_with_a_failure(bool resend, std::size_t cache = 0)
{
    asio::io_context io;
    run(io,
        [](bool resend, std::size_t cache) -> asio::awaitable<void>
        {
            auto ex = co_await asio::this_coro::executor;
            auto side = co_await pgcoro::open_connection(ex, app("pgcoro-pipe-side"));
            PGCORO_CO_ASSERT(side.has_value());
            (void)co_await side->query("DROP TABLE IF EXISTS pipe_batch");
            PGCORO_CO_ASSERT(
                (co_await side->query("CREATE TABLE pipe_batch (id int PRIMARY KEY)")).has_value());
            auto pc = co_await open_pipe("pgcoro-pipe-batch", 64, resend, cache);
            PGCORO_CO_ASSERT(pc.has_value());
            std::vector<outcome> out(10);
            for (int i = 0; i < 10; ++i)
                spawn_query(
                    ex,
                    pc->query("INSERT INTO pipe_batch VALUES ($1 / $2::int)", i, i == 4 ? 0 : 1),
                    out[i]);
            EXPECT_TRUE(co_await wait_until([&] { return all_done(out); }, 10s));
            PGCORO_CO_ASSERT(all_done(out));
            PGCORO_CO_ASSERT(!out[4]->has_value());
            EXPECT_EQ(out[4]->error().state, "22012") << out[4]->error();
            for (int i = 0; i < 10; ++i)
            {
                if (i == 4)
                    continue;
                if (resend)
                {
                    // Sent again on their own: they succeed.
                    EXPECT_TRUE(out[i]->has_value()) << i << ": " << out[i]->error();
                    continue;
                }
                PGCORO_CO_ASSERT(!out[i]->has_value());
                const auto& e = out[i]->error();
                EXPECT_TRUE(e.is(errc::query_failed)) << e;
                EXPECT_NE(e.message.find(i < 4 ? "rolled back" : "not run"), std::string::npos)
                    << i << ": " << e;
            }
            auto n = co_await side->query("SELECT count(*) FROM pipe_batch");
            PGCORO_CO_ASSERT(n.has_value());
            EXPECT_EQ(n->get<std::int64_t>(0, 0).value_or(-1), resend ? 9 : 0);
            // The pipeline goes on with the next segment.
            auto again = co_await pc->query("INSERT INTO pipe_batch VALUES ($1) RETURNING id", 42);
            PGCORO_CO_ASSERT(again.has_value());
            EXPECT_EQ(again->get<int>(0, 0).value_or(-1), 42);
            (void)co_await side->query("DROP TABLE pipe_batch");
        }(resend, cache));
}
} // namespace

// Batched Syncs: the failing statement gets its own error; the other statements of its
// segment (rolled back or not run) are sent again on their own and succeed.
TEST(Pipeline, FailureInASegmentFailsOnlyItsStatement)
{
    segment_with_a_failure(true);
}

// Without resending, a failure aborts its whole segment: the statement that failed gets its
// error, the ones before it "rolled back", the ones after "not run", and nothing of the
// segment is committed.
TEST(PipelineNoResend, ErrorAbortsItsSegment)
{
    segment_with_a_failure(false);
}

// The same with named statements: the first INSERT's PREPARE shares the segment.
TEST(PipelineCached, FailureInASegmentFailsOnlyItsStatement)
{
    segment_with_a_failure(true, 8);
}

TEST(PipelineCachedNoResend, ErrorAbortsItsSegment)
{
    segment_with_a_failure(false, 8);
}

// A statement whose deadline passes completes with `timeout` at once; it is cancelled on the
// server, so the statements queued behind it run soon after instead of 5 s later.
TEST(Pipeline, TimeoutCancelsTheRunningStatement)
{
    asio::io_context io;
    run(io,
        []() -> asio::awaitable<void>
        {
            auto ex = co_await asio::this_coro::executor;
            auto pc = co_await open_pipe("pgcoro-pipe-timeout");
            PGCORO_CO_ASSERT(pc.has_value());
            const int pid = pc->backend_pid();
            const auto t0 = clock_type::now();
            std::vector<outcome> behind(5);
            outcome slow;
            spawn_query(ex,
                        pc->query(pgcoro::query_options{300ms}, "SELECT pg_sleep($1::float8)", 5.0),
                        slow);
            for (int i = 0; i < 5; ++i)
                spawn_query(ex, pc->query("SELECT $1::int", i), behind[i]);
            EXPECT_TRUE(co_await wait_until([&] { return slow.has_value(); }, 3s));
            PGCORO_CO_ASSERT(slow && !slow->has_value());
            EXPECT_TRUE(slow->error().is(errc::timeout)) << slow->error();
            EXPECT_LT(clock_type::now() - t0, 2500ms);
            EXPECT_TRUE(co_await wait_until([&] { return all_done(behind); }, 10s));
            // pg_sleep(5) would hold them back for 5 s: it was cancelled on the server.
            EXPECT_LT(clock_type::now() - t0, 4s);
            for (int i = 0; i < 5; ++i)
            {
                PGCORO_CO_ASSERT(behind[i] && behind[i]->has_value());
                EXPECT_EQ((*behind[i])->get<int>(0, 0).value_or(-1), i);
            }
            EXPECT_TRUE(pc->is_open());
            EXPECT_EQ(pc->backend_pid(), pid);
            auto r = co_await pc->query("SELECT 7");
            PGCORO_CO_ASSERT(r.has_value());
            EXPECT_EQ(r->get<int>(0, 0).value_or(-1), 7);
        }());
}

// Cancelling the awaiting coroutine completes its statement with `cancelled` at once and
// cancels it on the server; the connection stays usable.
TEST(Pipeline, CancellationOfTheAwaitingCoroutine)
{
    asio::io_context io;
    run(io,
        []() -> asio::awaitable<void>
        {
            auto ex = co_await asio::this_coro::executor;
            auto pc = co_await open_pipe("pgcoro-pipe-cancel");
            PGCORO_CO_ASSERT(pc.has_value());
            asio::cancellation_signal sig;
            outcome slow;
            asio::co_spawn(ex, store(pc->query("SELECT pg_sleep(5)"), slow),
                           asio::bind_cancellation_slot(sig.slot(), asio::detached));
            co_await sleep_for(200ms);
            EXPECT_FALSE(slow.has_value());
            const auto t0 = clock_type::now();
            sig.emit(asio::cancellation_type::terminal);
            EXPECT_TRUE(co_await wait_until([&] { return slow.has_value(); }, 2s));
            PGCORO_CO_ASSERT(slow && !slow->has_value());
            EXPECT_TRUE(slow->error().is(errc::cancelled)) << slow->error();
            EXPECT_LT(clock_type::now() - t0, 1s);
            auto r = co_await pc->query("SELECT 42");
            PGCORO_CO_ASSERT(r.has_value());
            EXPECT_EQ(r->get<int>(0, 0).value_or(-1), 42);
            EXPECT_LT(clock_type::now() - t0, 4s); // pg_sleep(5) was cancelled on the server
            EXPECT_TRUE(pc->is_open());
            // A coroutine already cancelled when it calls query() does not send anything.
            asio::cancellation_signal early;
            outcome never;
            asio::co_spawn(
                ex,
                [&]() -> asio::awaitable<void>
                {
                    co_await asio::this_coro::throw_if_cancelled(false);
                    co_await sleep_for(5s); // ended by the cancellation
                    never = co_await pc->query("SELECT 1");
                },
                asio::bind_cancellation_slot(early.slot(), asio::detached));
            co_await sleep_for(50ms);
            early.emit(asio::cancellation_type::terminal);
            EXPECT_TRUE(co_await wait_until([&] { return never.has_value(); }, 2s));
            PGCORO_CO_ASSERT(never && !never->has_value());
            EXPECT_TRUE(never->error().is(errc::cancelled)) << never->error();
            EXPECT_NE(never->error().message.find("before it was sent"), std::string::npos)
                << never->error();
        }());
}

// pg_terminate_backend on the pipelined connection's backend: every pending statement fails
// with connection_lost, promptly, and later calls fail at once.
TEST(Pipeline, ServerTerminationFailsEveryPendingStatement)
{
    asio::io_context io;
    run(io,
        []() -> asio::awaitable<void>
        {
            auto ex = co_await asio::this_coro::executor;
            auto side = co_await pgcoro::open_connection(ex, app("pgcoro-pipe-side"));
            PGCORO_CO_ASSERT(side.has_value());
            auto pc = co_await open_pipe("pgcoro-pipe-term");
            PGCORO_CO_ASSERT(pc.has_value());
            std::vector<outcome> out(20);
            for (auto& o : out)
                spawn_query(ex, pc->query("SELECT pg_sleep(1)"), o);
            co_await sleep_for(300ms);
            EXPECT_EQ(pc->pending(), 20u);
            auto t = co_await side->query("SELECT pg_terminate_backend($1)", pc->backend_pid());
            PGCORO_CO_ASSERT(t.has_value());
            EXPECT_TRUE(t->get<bool>(0, 0).value_or(false));
            const auto t0 = clock_type::now();
            EXPECT_TRUE(co_await wait_until([&] { return all_done(out); }, 5s));
            EXPECT_LT(clock_type::now() - t0, 3s);
            for (const auto& o : out)
            {
                PGCORO_CO_ASSERT(o && !o->has_value());
                EXPECT_TRUE(o->error().is(errc::connection_lost)) << o->error();
            }
            EXPECT_FALSE(pc->is_open());
            auto after = co_await pc->query("SELECT 1");
            PGCORO_CO_ASSERT(!after.has_value());
            EXPECT_TRUE(after.error().is(errc::connection_lost));
        }());
}

// Destroying the pipelined connection with statements pending completes them with
// connection_lost; nothing leaks (fds here, memory under ASan).
TEST(Pipeline, DestructionWithPendingStatements)
{
    asio::io_context io;
    run(io,
        []() -> asio::awaitable<void>
        {
            auto ex = co_await asio::this_coro::executor;
            co_await sleep_for(1ms); // the reactor's own descriptors exist from here on
            const int fds_before = pgcoro::test::open_fd_count();
            std::optional<pgcoro::pipelined_connection> pc;
            {
                auto r = co_await open_pipe("pgcoro-pipe-destroy");
                PGCORO_CO_ASSERT(r.has_value());
                pc.emplace(std::move(*r));
            }
            std::vector<outcome> out(10);
            for (auto& o : out)
                spawn_query(ex, pc->query("SELECT pg_sleep(1)"), o);
            co_await sleep_for(100ms);
            const auto t0 = clock_type::now();
            pc.reset();
            EXPECT_TRUE(co_await wait_until([&] { return all_done(out); }, 2s));
            EXPECT_LT(clock_type::now() - t0, 1s);
            for (const auto& o : out)
            {
                PGCORO_CO_ASSERT(o && !o->has_value());
                EXPECT_TRUE(o->error().is(errc::connection_lost)) << o->error();
            }
            EXPECT_EQ(pgcoro::test::open_fd_count(), fds_before);
        }());
}

// The session is shared: a transaction opened through the pipeline is refused, rolled back
// and the connection closed.
TEST(Pipeline, TransactionControlIsRefused)
{
    asio::io_context io;
    run(io,
        []() -> asio::awaitable<void>
        {
            auto pc = co_await open_pipe("pgcoro-pipe-tx");
            PGCORO_CO_ASSERT(pc.has_value());
            auto r = co_await pc->query("BEGIN");
            PGCORO_CO_ASSERT(!r.has_value());
            EXPECT_TRUE(r.error().is(errc::invalid_argument)) << r.error();
            EXPECT_FALSE(pc->is_open());
        }());
}

// adopt() needs an open, idle connection.
TEST(Pipeline, AdoptNeedsAnIdleConnection)
{
    asio::io_context io;
    run(io,
        []() -> asio::awaitable<void>
        {
            auto ex = co_await asio::this_coro::executor;
            auto c = co_await pgcoro::open_connection(ex, app("pgcoro-pipe-adopt"));
            PGCORO_CO_ASSERT(c.has_value());
            PGCORO_CO_ASSERT((co_await c->query("BEGIN")).has_value());
            auto busy = pgcoro::pipelined_connection::adopt(std::move(*c));
            PGCORO_CO_ASSERT(!busy.has_value());
            EXPECT_TRUE(busy.error().is(errc::busy)) << busy.error();

            pgcoro::connection closed(ex);
            auto lost = pgcoro::pipelined_connection::adopt(std::move(closed));
            PGCORO_CO_ASSERT(!lost.has_value());
            EXPECT_TRUE(lost.error().is(errc::connection_lost)) << lost.error();

            auto fresh = co_await pgcoro::open_connection(ex, app("pgcoro-pipe-adopt"));
            PGCORO_CO_ASSERT(fresh.has_value());
            auto pc = pgcoro::pipelined_connection::adopt(std::move(*fresh));
            PGCORO_CO_ASSERT(pc.has_value());
            auto r = co_await pc->query("SELECT $1::text", "adopted");
            PGCORO_CO_ASSERT(r.has_value());
            EXPECT_EQ(r->get<std::string>(0, 0).value_or(""), "adopted");
        }());
}

// A group spreads statements over its members; a member whose backend is terminated is
// noticed while idle, skipped, and reconnected in the background.
TEST(PipelineGroup, RoundRobinAndReconnect)
{
    asio::io_context io;
    run(io,
        []() -> asio::awaitable<void>
        {
            auto ex = co_await asio::this_coro::executor;
            auto side = co_await pgcoro::open_connection(ex, app("pgcoro-pipe-side"));
            PGCORO_CO_ASSERT(side.has_value());
            pgcoro::pipeline_group_config gc;
            gc.connections = 3;
            gc.reconnect_delay = 100ms;
            pgcoro::pipeline_group g(ex, app("pgcoro-pipe-group"), gc);
            EXPECT_EQ(g.open_count(), 0u);
            auto c = co_await g.connect();
            PGCORO_CO_ASSERT(c.has_value());
            EXPECT_EQ(g.open_count(), 3u);

            constexpr int coroutines = 100, per = 20;
            int ok = 0, finished = 0;
            std::set<int> pids;
            for (int k = 0; k < coroutines; ++k)
                asio::co_spawn(
                    ex,
                    [&, k]() -> asio::awaitable<void>
                    {
                        for (int q = 0; q < per; ++q)
                        {
                            const int v = k * 100 + q;
                            auto r = co_await g.query("SELECT $1::int, pg_backend_pid()", v);
                            if (r && r->get<int>(0, 0).value_or(-1) == v)
                            {
                                ++ok;
                                pids.insert(r->get<int>(0, 1).value_or(0));
                            }
                        }
                        ++finished;
                    },
                    asio::detached);
            EXPECT_TRUE(co_await wait_until([&] { return finished == coroutines; }, 60s));
            EXPECT_EQ(ok, coroutines * per);
            EXPECT_EQ(pids.size(), 3u);

            PGCORO_CO_ASSERT(!pids.empty());
            auto t = co_await side->query("SELECT pg_terminate_backend($1)", *pids.begin());
            PGCORO_CO_ASSERT(t.has_value());
            EXPECT_TRUE(co_await wait_until([&] { return g.open_count() == 2; }, 3s));
            int after_ok = 0;
            for (int i = 0; i < 30; ++i)
            {
                auto r = co_await g.query("SELECT $1::int", i);
                after_ok += r && r->get<int>(0, 0).value_or(-1) == i;
            }
            EXPECT_EQ(after_ok, 30);
            EXPECT_TRUE(co_await wait_until([&] { return g.open_count() == 3; }, 5s));
            auto r = co_await g.query("SELECT pg_backend_pid()");
            PGCORO_CO_ASSERT(r.has_value());
        }());
}

// Issue 18, finding 12: a member that broke was reconnected only when a query passed it
// (15aed96: open_count() stayed at 1 of 2 with no queries). Now the group reconnects it in the
// background; destroying the group while a reconnect is under way is clean (ASan build).
TEST(PipelineGroup, ReconnectsInTheBackgroundWithoutQueries)
{
    asio::io_context io;
    run(io,
        []() -> asio::awaitable<void>
        {
            auto ex = co_await asio::this_coro::executor;
            auto side = co_await pgcoro::open_connection(ex, app("pgcoro-pipe-side2"));
            PGCORO_CO_ASSERT(side.has_value());
            auto members = [&]() -> asio::awaitable<std::int64_t>
            {
                auto r = co_await side->query("SELECT count(*) FROM pg_stat_activity "
                                              "WHERE application_name = 'pgcoro-pipe-bg'");
                co_return r ? r->get<std::int64_t>(0, 0).value_or(-1) : -1;
            };
            pgcoro::pipeline_group_config gc;
            gc.connections = 2;
            gc.reconnect_delay = 100ms;
            {
                pgcoro::pipeline_group g(ex, app("pgcoro-pipe-bg"), gc);
                PGCORO_CO_ASSERT((co_await g.connect()).has_value());
                EXPECT_EQ(co_await members(), 2);
                auto t = co_await side->query("SELECT pg_terminate_backend(pid) FROM "
                                              "pg_stat_activity WHERE application_name = "
                                              "'pgcoro-pipe-bg' LIMIT 1");
                PGCORO_CO_ASSERT(t.has_value());
                EXPECT_TRUE(co_await wait_until([&] { return g.open_count() == 1; }, 3s));
                // No query on the group from here on.
                EXPECT_TRUE(co_await wait_until([&] { return g.open_count() == 2; }, 3s))
                    << "open " << g.open_count();
                EXPECT_EQ(co_await members(), 2);

                // Break one again and destroy the group while its reconnect is under way.
                t = co_await side->query("SELECT pg_terminate_backend(pid) FROM "
                                         "pg_stat_activity WHERE application_name = "
                                         "'pgcoro-pipe-bg' LIMIT 1");
                PGCORO_CO_ASSERT(t.has_value());
                EXPECT_TRUE(co_await wait_until([&] { return g.open_count() == 1; }, 3s));
                co_await sleep_for(60ms); // the background reconnect has started
            }
            co_await sleep_for(300ms); // whatever was in flight finishes and closes
        }());
}

// ---- the statement cache on a pipelined connection -------------------------------------------

namespace
{
// This session's pgcoro statements on the server and how often they ran (generic + custom
// plans), the counting query itself left out (it is cached too).
struct server_statements
{
    std::int64_t count = -1;
    std::int64_t executions = -1;
};

asio::awaitable<server_statements> statements_on_server(pgcoro::pipelined_connection& pc)
{
    auto r =
        co_await pc.query("SELECT count(*), coalesce(sum(generic_plans + custom_plans), 0)::int8 "
                          "FROM pg_prepared_statements "
                          "WHERE name LIKE 'pgcoro\\_%' AND statement NOT LIKE '%pg_prepared%'");
    if (!r)
    {
        ADD_FAILURE() << r.error();
        co_return server_statements{};
    }
    co_return server_statements{r->get<std::int64_t>(0, 0).value_or(-1),
                                r->get<std::int64_t>(0, 1).value_or(-1)};
}

// The cache holds `n` statements and the server exactly those; returns the server's view.
asio::awaitable<server_statements> expect_prepared(pgcoro::pipelined_connection& pc, std::size_t n)
{
    EXPECT_EQ(pc.prepared_statements(), n);
    auto s = co_await statements_on_server(pc);
    EXPECT_EQ(s.count, static_cast<std::int64_t>(n));
    co_return s;
}
} // namespace

// Concurrent callers of one statement share one named prepared statement: it is prepared once
// (in the first caller's segment) and every call runs it (Bind/Execute, no Parse).
TEST(PipelineCached, ConcurrentCallersShareOnePreparedStatement)
{
    asio::io_context io;
    run(io,
        []() -> asio::awaitable<void>
        {
            auto ex = co_await asio::this_coro::executor;
            auto pc = co_await open_pipe("pgcoro-pipe-cache", 64, true, 8);
            PGCORO_CO_ASSERT(pc.has_value());
            constexpr int coroutines = 50, per = 20;
            int ok = 0, finished = 0;
            for (int k = 0; k < coroutines; ++k)
                asio::co_spawn(
                    ex,
                    [&, k]() -> asio::awaitable<void>
                    {
                        for (int q = 0; q < per; ++q)
                        {
                            auto r = co_await pc->query("SELECT $1::int * 2", k * 100 + q);
                            ok += r && r->get<int>(0, 0).value_or(-1) == 2 * (k * 100 + q);
                        }
                        ++finished;
                    },
                    asio::detached);
            EXPECT_TRUE(co_await wait_until([&] { return finished == coroutines; }, 30s));
            EXPECT_EQ(ok, coroutines * per);
            auto s = co_await expect_prepared(*pc, 1);
            EXPECT_EQ(s.executions, coroutines * per);
        }());
}

// A PREPARE that fails (a syntax error) is the statement's own error, every time; the
// statements sent with it are not affected, and the cache keeps nothing for it.
TEST(PipelineCached, FailedPrepareIsTheStatementsError)
{
    asio::io_context io;
    run(io,
        []() -> asio::awaitable<void>
        {
            auto ex = co_await asio::this_coro::executor;
            auto pc = co_await open_pipe("pgcoro-pipe-cache-bad", 64, true, 8);
            PGCORO_CO_ASSERT(pc.has_value());
            for (int round = 0; round < 2; ++round)
            {
                std::vector<outcome> out(10);
                for (int i = 0; i < 10; ++i)
                    spawn_query(ex,
                                i == 3 ? pc->query("SELEC $1::int", i)
                                       : pc->query("SELECT $1::int + 1", i),
                                out[i]);
                EXPECT_TRUE(co_await wait_until([&] { return all_done(out); }, 10s));
                PGCORO_CO_ASSERT(all_done(out));
                for (int i = 0; i < 10; ++i)
                {
                    if (i == 3)
                    {
                        PGCORO_CO_ASSERT(!out[i]->has_value());
                        EXPECT_EQ(out[i]->error().state, "42601") << out[i]->error();
                        continue;
                    }
                    EXPECT_TRUE(out[i]->has_value())
                        << round << "/" << i << ": " << out[i]->error();
                    PGCORO_CO_ASSERT(out[i]->has_value());
                    EXPECT_EQ((*out[i])->get<int>(0, 0).value_or(-1), i + 1);
                }
            }
            (void)co_await expect_prepared(*pc, 1);
        }());
}

// A full cache does not evict on a pipelined connection: the statements beyond its capacity
// run unnamed, and the server holds exactly what the cache holds.
TEST(PipelineCached, FullCacheRunsTheRestUnnamed)
{
    asio::io_context io;
    run(io,
        []() -> asio::awaitable<void>
        {
            auto pc = co_await open_pipe("pgcoro-pipe-cache-full", 64, true, 2);
            PGCORO_CO_ASSERT(pc.has_value());
            const char* sql[] = {"SELECT $1::int + 1", "SELECT $1::int + 2", "SELECT $1::int + 3",
                                 "SELECT $1::int + 4"};
            for (int round = 0; round < 2; ++round)
                for (int i = 0; i < 4; ++i)
                {
                    auto r = co_await pc->query(sql[i], 10);
                    EXPECT_TRUE(r.has_value()) << r.error();
                    PGCORO_CO_ASSERT(r.has_value());
                    EXPECT_EQ(r->get<int>(0, 0).value_or(-1), 11 + i);
                }
            // The counting query is the third distinct statement: it runs unnamed too.
            auto s = co_await expect_prepared(*pc, 2);
            EXPECT_EQ(s.executions, 4);
        }());
}

// After ALTER TABLE the named statement's plan no longer fits ("cached plan must not change
// result type", 0A000): it is prepared anew and sent again, and the caller sees the new row.
TEST(PipelineCached, ChangedTableIsPreparedAgain)
{
    asio::io_context io;
    run(io,
        []() -> asio::awaitable<void>
        {
            auto ex = co_await asio::this_coro::executor;
            auto side = co_await pgcoro::open_connection(ex, app("pgcoro-pipe-side"));
            PGCORO_CO_ASSERT(side.has_value());
            (void)co_await side->query("DROP TABLE IF EXISTS pipe_cache_t");
            PGCORO_CO_ASSERT(
                (co_await side->query("CREATE TABLE pipe_cache_t (a int)")).has_value());
            PGCORO_CO_ASSERT(
                (co_await side->query("INSERT INTO pipe_cache_t VALUES (1)")).has_value());
            auto pc = co_await open_pipe("pgcoro-pipe-cache-alter", 64, true, 8);
            PGCORO_CO_ASSERT(pc.has_value());
            for (int i = 0; i < 2; ++i)
            {
                auto r = co_await pc->query("SELECT * FROM pipe_cache_t");
                EXPECT_TRUE(r.has_value()) << r.error();
                PGCORO_CO_ASSERT(r.has_value());
                EXPECT_EQ(r->columns(), 1u);
            }
            PGCORO_CO_ASSERT(
                (co_await side->query("ALTER TABLE pipe_cache_t ADD COLUMN b int DEFAULT 7"))
                    .has_value());
            auto r = co_await pc->query("SELECT * FROM pipe_cache_t");
            EXPECT_TRUE(r.has_value()) << r.error();
            PGCORO_CO_ASSERT(r.has_value());
            EXPECT_EQ(r->columns(), 2u);
            EXPECT_EQ(r->get<int>(0, 1).value_or(-1), 7);
            EXPECT_EQ(pc->prepared_statements(), 1u);
            (void)co_await side->query("DROP TABLE pipe_cache_t");
        }());
}

// DEALLOCATE ALL through the pipeline empties the cache; a named statement queued behind it
// in the same segment finds its statement gone (26000), is prepared anew and sent again.
TEST(PipelineCached, DeallocateAllIsRecoveredFrom)
{
    asio::io_context io;
    run(io,
        []() -> asio::awaitable<void>
        {
            auto ex = co_await asio::this_coro::executor;
            auto pc = co_await open_pipe("pgcoro-pipe-cache-dealloc", 64, true, 8);
            PGCORO_CO_ASSERT(pc.has_value());
            auto first = co_await pc->query("SELECT $1::int * 3", 1);
            EXPECT_TRUE(first.has_value()) << first.error();
            PGCORO_CO_ASSERT(first.has_value());
            EXPECT_EQ(pc->prepared_statements(), 1u);
            std::vector<outcome> out(2);
            spawn_query(ex, pc->query("DEALLOCATE ALL"), out[0]);
            spawn_query(ex, pc->query("SELECT $1::int * 3", 5), out[1]);
            EXPECT_TRUE(co_await wait_until([&] { return all_done(out); }, 10s));
            PGCORO_CO_ASSERT(all_done(out));
            EXPECT_TRUE(out[0]->has_value()) << out[0]->error();
            EXPECT_TRUE(out[1]->has_value()) << out[1]->error();
            PGCORO_CO_ASSERT(out[1]->has_value());
            EXPECT_EQ((*out[1])->get<int>(0, 0).value_or(-1), 15);
            auto again = co_await pc->query("SELECT $1::int * 3", 7);
            EXPECT_TRUE(again.has_value()) << again.error();
            PGCORO_CO_ASSERT(again.has_value());
            EXPECT_EQ(again->get<int>(0, 0).value_or(-1), 21);
            (void)co_await expect_prepared(*pc, 1);
        }());
}

// A connection's cached statements carry over when it is adopted for pipelining: the same
// statement runs under its name, and new ones take new names (no 42P05).
TEST(PipelineCached, AdoptedConnectionKeepsItsStatements)
{
    asio::io_context io;
    run(io,
        []() -> asio::awaitable<void>
        {
            auto ex = co_await asio::this_coro::executor;
            auto c = co_await pgcoro::open_connection(ex, app("pgcoro-pipe-cache-adopt", 8));
            PGCORO_CO_ASSERT(c.has_value());
            auto r = co_await c->query("SELECT $1::int + 100", 1);
            EXPECT_TRUE(r.has_value()) << r.error();
            PGCORO_CO_ASSERT(r.has_value());
            EXPECT_EQ(c->prepared_statements(), 1u);
            auto pc = pgcoro::pipelined_connection::adopt(std::move(*c));
            EXPECT_TRUE(pc.has_value()) << pc.error();
            PGCORO_CO_ASSERT(pc.has_value());
            EXPECT_EQ(pc->prepared_statements(), 1u);
            auto same = co_await pc->query("SELECT $1::int + 100", 2);
            EXPECT_TRUE(same.has_value()) << same.error();
            PGCORO_CO_ASSERT(same.has_value());
            EXPECT_EQ(same->get<int>(0, 0).value_or(-1), 102);
            auto other = co_await pc->query("SELECT $1::int + 200", 2);
            EXPECT_TRUE(other.has_value()) << other.error();
            PGCORO_CO_ASSERT(other.has_value());
            EXPECT_EQ(other->get<int>(0, 0).value_or(-1), 202);
            auto s = co_await expect_prepared(*pc, 2);
            EXPECT_EQ(s.executions, 3);
        }());
}
