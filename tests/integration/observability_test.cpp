// Integration tests: a pool's observer sees every transition, check_health() grades a live pool,
// server_activity() reads pg_stat_activity.
#include <pgcoro/check_health.hpp>
#include <pgcoro/json.hpp>
#include <pgcoro/observe.hpp>
#include <pgcoro/pool.hpp>
#include <pgcoro/server_activity.hpp>
#include <pgcoro/stats_collector.hpp>

#include "support/fault_proxy.hpp"
#include "support/test_server.hpp"

#include <boost/asio/steady_timer.hpp>

#include <gtest/gtest.h>

#include <mutex>
#include <string>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using pgcoro::errc;
using pgcoro::test::run;
using pgcoro::test::test_server;

namespace
{

pgcoro::pool_config small_pool(std::size_t max = 2)
{
    pgcoro::pool_config p;
    p.max_size = max;
    p.acquire_timeout = 3s;
    p.validate_after_idle = 0ms;
    p.slow_query_threshold = 50ms;
    return p;
}

pgcoro::connect_config app(const std::string& name)
{
    auto c = test_server::get().tcp();
    c.application_name = name;
    c.connect_timeout = 3s;
    return c;
}

// Records what each hook received, as short strings, for exact assertions.
struct recorder final : pgcoro::observer
{
    std::mutex m;
    std::vector<std::string> log;
    void add(std::string s)
    {
        std::lock_guard g(m);
        log.push_back(std::move(s));
    }
    std::size_t count(const std::string& prefix)
    {
        std::lock_guard g(m);
        std::size_t n = 0;
        for (const auto& s : log)
            n += s.rfind(prefix, 0) == 0;
        return n;
    }
    void on_connect_started(const pgcoro::connect_started_event&) noexcept override
    {
        add("connect_started");
    }
    void on_connect_succeeded(const pgcoro::connect_succeeded_event& e) noexcept override
    {
        add(e.backend_pid > 0 ? "connect_succeeded" : "connect_succeeded without pid");
    }
    void on_connect_failed(const pgcoro::connect_failed_event& e) noexcept override
    {
        add("connect_failed " + std::string(e.state.view()));
    }
    void on_acquire(const pgcoro::acquire_event& e) noexcept override
    {
        add("acquire " + std::string(to_string(e.outcome)) +
            " line=" + std::to_string(e.where.line()));
    }
    void on_release(const pgcoro::release_event& e) noexcept override
    {
        add(std::string("release") + (e.reset ? " reset" : ""));
    }
    void on_query_finished(const pgcoro::query_event& e) noexcept override
    {
        add("query " + std::string(to_string(e.outcome)) + " " + std::string(e.state.view()) +
            " [" + e.statement.fingerprint() + "] rows=" + std::to_string(e.rows));
    }
    void on_slow_query(const pgcoro::slow_query_event& e) noexcept override
    {
        add("slow [" + e.statement.fingerprint() + "]");
    }
    void on_leak_suspected(const pgcoro::leak_suspected_event& e) noexcept override
    {
        add("leak line=" + std::to_string(e.where.line()));
    }
    void on_connection_closed(const pgcoro::connection_closed_event& e) noexcept override
    {
        add("closed " + std::string(to_string(e.reason)));
    }
};

asio::awaitable<void> sleep_for(std::chrono::milliseconds d)
{
    asio::steady_timer t(co_await asio::this_coro::executor, d);
    co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
}

} // namespace

TEST(Observability, PoolReportsEveryTransitionToItsObserver)
{
    asio::io_context io;
    auto rec = std::make_shared<recorder>();
    auto cfg = small_pool(1);
    cfg.acquire_timeout = 200ms;
    cfg.leak_threshold = 100ms;
    std::uint_least32_t acquire_line = 0;
    run(io,
        [&]() -> asio::awaitable<void>
        {
            pgcoro::pool pool(io.get_executor(), app("pgcoro-obs-events"), cfg, rec);
            {
                acquire_line = __LINE__ + 1;
                auto l = co_await pool.acquire();
                PGCORO_CO_ASSERT(l.has_value());
                auto ok = co_await (*l)->query("SELECT x FROM generate_series(1, $1) x", 3);
                PGCORO_CO_ASSERT(ok.has_value());
                auto bad = co_await (*l)->query("SELECT 1/0");
                EXPECT_FALSE(bad.has_value());
                auto slow = co_await (*l)->query("SELECT pg_sleep(0.08), 'secret literal'");
                EXPECT_TRUE(slow.has_value());
                auto begin = co_await (*l)->query("BEGIN");
                EXPECT_TRUE(begin.has_value());
                // A second acquire times out while the only connection is leased.
                auto timed_out = co_await pool.acquire();
                EXPECT_TRUE(!timed_out && timed_out.error().is(errc::pool_timeout));
                co_await sleep_for(600ms); // held past leak_threshold: a sweep reports it
            } // released inside a transaction: the pool rolls it back (not reported as a query)
            co_await sleep_for(50ms);
            co_await pool.close(2s);
        }());

    std::lock_guard g(rec->m);
    const std::vector<std::string> expected_prefix = {
        "connect_started",
        "connect_succeeded",
        "acquire waited line=" + std::to_string(acquire_line),
        "query success  [SELECT x FROM generate_series(?, $1) x] rows=3",
        "query failed 22012 [SELECT ?/?] rows=0",
        "query success  [SELECT pg_sleep(?), ?] rows=1",
        "slow [SELECT pg_sleep(?), ?]",
        "query success  [BEGIN] rows=0",
    };
    ASSERT_GE(rec->log.size(), expected_prefix.size() + 4) << ::testing::PrintToString(rec->log);
    for (std::size_t i = 0; i < expected_prefix.size(); ++i)
        EXPECT_EQ(rec->log[i], expected_prefix[i]) << i;
    auto has = [&](const std::string& s)
    {
        return std::find(rec->log.begin(), rec->log.end(), s) != rec->log.end();
    };
    EXPECT_TRUE(has("acquire timed_out line=" + std::to_string(acquire_line + 11)))
        << ::testing::PrintToString(rec->log);
    EXPECT_TRUE(has("leak line=" + std::to_string(acquire_line)))
        << ::testing::PrintToString(rec->log);
    EXPECT_TRUE(has("release reset")) << ::testing::PrintToString(rec->log);
    EXPECT_EQ(rec->log.back(), "closed shutdown");
    // The pool's own ROLLBACK is not a user statement.
    EXPECT_FALSE(has("query success  [ROLLBACK] rows=0"));
}

TEST(Observability, FailedConnectIsReportedWithItsSqlstate)
{
    if (!test_server::get().has_password_role())
        GTEST_SKIP() << "no password role on this server";
    asio::io_context io;
    auto rec = std::make_shared<recorder>();
    auto cfg = small_pool(1);
    cfg.acquire_timeout = 300ms;
    auto cc = test_server::get().password_role("wrong-password");
    run(io,
        [&]() -> asio::awaitable<void>
        {
            pgcoro::pool pool(io.get_executor(), cc, cfg, rec);
            auto l = co_await pool.acquire();
            EXPECT_FALSE(l.has_value());
            co_await pool.close(1s);
        }());
    EXPECT_GE(rec->count("connect_failed 28P01"), 1u) << ::testing::PrintToString(rec->log);
    EXPECT_EQ(rec->count("connect_succeeded"), 0u);
    // A wrong password fails the acquire at once with the connect error (issue 18, finding 12;
    // 15aed96 waited out acquire_timeout and reported "timed_out").
    EXPECT_EQ(rec->count("acquire rejected"), 1u) << ::testing::PrintToString(rec->log);
}

TEST(Observability, StatsCollectorCountsWhatThePoolDid)
{
    asio::io_context io;
    auto stats = std::make_shared<pgcoro::stats_collector>();
    run(io,
        [&]() -> asio::awaitable<void>
        {
            pgcoro::pool pool(io.get_executor(), app("pgcoro-obs-stats"), small_pool(2), stats);
            for (int i = 0; i < 20; ++i)
            {
                auto r = co_await pool.run([i](pgcoro::connection& c)
                                           { return c.query("SELECT $1::int", i); });
                EXPECT_TRUE(r.has_value());
            }
            auto bad = co_await pool.run([](pgcoro::connection& c)
                                         { return c.query("SELECT * FROM no_such_table"); });
            EXPECT_FALSE(bad.has_value());
            auto slow = co_await pool.run([](pgcoro::connection& c)
                                          { return c.query("SELECT pg_sleep(0.06)"); });
            EXPECT_TRUE(slow.has_value());
            auto s = stats->snapshot(pool.stats());
            EXPECT_EQ(s.queries_succeeded, 21u);
            EXPECT_EQ(s.queries_failed, 1u);
            EXPECT_EQ(s.slow_queries, 1u);
            EXPECT_EQ(s.acquired_immediately + s.acquired_after_wait, 22u);
            EXPECT_EQ(s.acquired_immediately + s.acquired_after_wait,
                      pool.stats().acquired_immediately + pool.stats().acquired_after_wait);
            EXPECT_EQ(s.connects_succeeded, pool.stats().opened);
            EXPECT_GE(s.query_duration.percentile(0.99), 50ms);
            // 42P01 is the application's fault: not in the success-rate window.
            EXPECT_DOUBLE_EQ(s.success_rate, 1.0);
            co_await pool.close(1s);
        }());
}

TEST(Observability, CheckHealthGradesALivePool)
{
    asio::io_context io;
    auto stats = std::make_shared<pgcoro::stats_collector>();
    run(io,
        [&]() -> asio::awaitable<void>
        {
            pgcoro::pool pool(io.get_executor(), app("pgcoro-obs-health"), small_pool(2), stats);
            pgcoro::health_options opts;
            opts.metrics = stats.get();
            auto healthy = co_await pgcoro::check_health(pool, opts);
            EXPECT_EQ(healthy.status, pgcoro::health_status::healthy);
            EXPECT_EQ(healthy.connections.max, 2u);
            EXPECT_EQ(healthy.checks.front().name, "ping");
            EXPECT_EQ(healthy.checks.front().detail.rfind("ok in ", 0), 0u);

            // Both connections leased: the ping cannot get one, and utilization is 1.0.
            auto a = co_await pool.acquire();
            auto b = co_await pool.acquire();
            PGCORO_CO_ASSERT(a && b);
            opts.ping_timeout = 200ms;
            auto busy = co_await pgcoro::check_health(pool, opts);
            EXPECT_EQ(busy.status, pgcoro::health_status::unhealthy);
            EXPECT_EQ(busy.checks.front().detail, "failed: timeout");
            EXPECT_DOUBLE_EQ(busy.connections.utilization, 1.0);
            a->release();
            co_await sleep_for(20ms);
            // One of two leased: the ping succeeds, utilization 0.5 < 0.8 => healthy; with a
            // stricter threshold the same pool is degraded.
            opts.thresholds.degraded_utilization = 0.4;
            auto half = co_await pgcoro::check_health(pool, opts);
            EXPECT_EQ(half.status, pgcoro::health_status::degraded) << pgcoro::to_json(half);
            opts.breaker = []
            {
                return pgcoro::breaker_state::open;
            };
            auto open = co_await pgcoro::check_health(pool, opts);
            EXPECT_EQ(open.status, pgcoro::health_status::unhealthy);
            b->release();
            co_await pool.close(1s);
        }());
}

TEST(Observability, CheckHealthOfAnUnreachableDatabaseIsUnhealthy)
{
    asio::io_context io;
    auto cc = app("pgcoro-obs-down");
    cc.hosts = {{"127.0.0.1", 1}}; // nothing listens on port 1
    run(io,
        [&]() -> asio::awaitable<void>
        {
            pgcoro::pool pool(io.get_executor(), cc, small_pool(1));
            pgcoro::health_options opts;
            opts.ping_timeout = 300ms;
            auto r = co_await pgcoro::check_health(pool, opts);
            EXPECT_EQ(r.status, pgcoro::health_status::unhealthy);
            EXPECT_EQ(r.checks.front().status, pgcoro::health_status::unhealthy);
            EXPECT_EQ(r.checks.front().detail.rfind("failed: ", 0), 0u);
            co_await pool.close(1s);
        }());
}

TEST(Observability, ServerActivityCountsThePoolsSessions)
{
    asio::io_context io;
    const std::string name = "pgcoro-obs-activity";
    run(io,
        [&]() -> asio::awaitable<void>
        {
            auto cfg = small_pool(3);
            cfg.min_size = 3;
            pgcoro::pool pool(io.get_executor(), app(name), cfg);
            auto w = co_await pool.warmup();
            PGCORO_CO_ASSERT(w.has_value());
            auto side = co_await pgcoro::open_connection(io.get_executor(), app("pgcoro-obs-side"));
            PGCORO_CO_ASSERT(side.has_value());
            auto begin = co_await side->query("BEGIN");
            PGCORO_CO_ASSERT(begin.has_value());
            auto r = co_await pgcoro::server_activity(*side);
            PGCORO_CO_ASSERT(r.has_value());
            EXPECT_GE(r->total, 4u);
            EXPECT_GE(r->active, 1u); // the side connection, running this very statement
            EXPECT_GE(r->idle, 3u);
            EXPECT_GT(r->max_connections, 0u);
            EXPECT_NEAR(r->utilization,
                        static_cast<double>(r->total) / static_cast<double>(r->max_connections),
                        1e-9);
            std::size_t mine = 0;
            for (const auto& [app_name, n] : r->by_application)
                if (app_name == name)
                    mine = n;
            EXPECT_EQ(mine, 3u);
            auto json = pgcoro::to_json(*r);
            EXPECT_NE(json.find("\"" + name + "\":3"), std::string::npos) << json;
            co_await pool.close(1s);
        }());
}

TEST(Observability, RetriesAndBreakerTransitionsReachTheCollector)
{
    asio::io_context io;
    auto stats = std::make_shared<pgcoro::stats_collector>();
    pgcoro::breaker_config bc;
    bc.failure_threshold = 2;
    bc.open_duration = 10s;
    pgcoro::circuit_breaker breaker(bc);
    pgcoro::observe_breaker(breaker, stats);
    run(io,
        [&]() -> asio::awaitable<void>
        {
            pgcoro::retry_policy policy;
            policy.max_attempts = 3;
            policy.idempotent = true; // connection_lost is retried only then
            policy.backoff.initial = 1ms;
            policy.backoff.cap = 2ms;
            pgcoro::retry_hooks hooks;
            hooks.on_retry = pgcoro::observe_retries(stats);
            int calls = 0;
            auto r = co_await pgcoro::retry(
                policy,
                [&]() -> asio::awaitable<pgcoro::expected<int>>
                {
                    ++calls;
                    co_return co_await breaker.run(
                        []() -> asio::awaitable<pgcoro::expected<int>>
                        { co_return pgcoro::fail(errc::connection_lost, "injected"); });
                },
                hooks);
            EXPECT_FALSE(r.has_value());
            EXPECT_EQ(calls, 3);
        }());
    auto s = stats->snapshot();
    EXPECT_EQ(s.retries, 2u);
    EXPECT_EQ(s.breaker_transitions, 1u);
    ASSERT_TRUE(s.breaker.has_value());
    EXPECT_EQ(*s.breaker, pgcoro::breaker_state::open);
}

// Issue 19: during an outage a health endpoint built from the README reported success_rate
// 1.00 - operations ended by with_timeout() are "cancelled" and were left out of the window.
// With the observer given to with_timeout() (and health_options::report_to), each deadline is
// a failure and the rate falls toward 0. Failed on 15aed96 (rate stayed 1.0: no such hook).
TEST(Observability, AnOutageDrivesTheSuccessRateTowardZero)
{
    asio::io_context io;
    pgcoro::test::fault_proxy proxy;
    auto stats = std::make_shared<pgcoro::stats_collector>();
    auto pcfg = small_pool(4);
    pcfg.acquire_timeout = 2s;
    pgcoro::pool pool(io.get_executor(), proxy.config(app("outage")), pcfg, stats);
    run(
        io,
        [&]() -> asio::awaitable<void>
        {
            auto op = [&]
            {
                return pool.run([](pgcoro::connection& c) { return c.query("SELECT 1"); });
            };
            for (int i = 0; i < 120; ++i)
            {
                auto r = co_await pgcoro::with_timeout(1s, op, stats.get());
                EXPECT_TRUE(r.has_value()) << r.error();
            }
            EXPECT_DOUBLE_EQ(stats->snapshot().success_rate, 1.0);

            proxy.stall(); // the database stops answering
            int timed_out = 0;
            for (int i = 0; i < 110; ++i)
            {
                auto r = co_await pgcoro::with_timeout(50ms, op, stats.get());
                if (!r && r.error().is(errc::timeout))
                    ++timed_out;
            }
            const auto m = stats->snapshot();
            EXPECT_GE(timed_out, 100) << m.success_rate;
            EXPECT_LE(m.success_rate, 0.1) << "outcomes in window " << m.window_outcomes;

            // A health check's failed ping counts too.
            pgcoro::health_options opts;
            opts.metrics = stats.get();
            opts.ping_timeout = 50ms;
            opts.report_to = stats.get();
            auto report = co_await pgcoro::check_health(pool, opts);
            EXPECT_EQ(report.status, pgcoro::health_status::unhealthy);
            EXPECT_NE(pgcoro::to_service_json(report).find("\"success_rate\":0"), std::string::npos)
                << pgcoro::to_service_json(report);
            proxy.heal();
        }(),
        60s);
}
