// Integration tests for pgcoro::pool against the real test cluster.
#include <pgcoro/pool.hpp>

#include "support/test_server.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <optional>
#include <thread>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using pgcoro::errc;
using pgcoro::test::run;
using pgcoro::test::test_server;

namespace
{

// A pool config for tests: small, with short limits unless a test widens them.
pgcoro::pool_config small_pool(std::size_t max = 4)
{
    pgcoro::pool_config p;
    p.min_size = 0;
    p.max_size = max;
    p.acquire_timeout = 5s;
    p.validate_after_idle = 0ms;
    p.refill_backoff_initial = 50ms;
    p.refill_backoff_max = 400ms;
    p.max_concurrent_connects = 4;
    return p;
}

pgcoro::connect_config app(const std::string& name)
{
    auto c = test_server::get().tcp();
    c.application_name = name;
    c.connect_timeout = 3s;
    return c;
}

asio::awaitable<void> sleep_for(std::chrono::milliseconds d)
{
    asio::steady_timer t(co_await asio::this_coro::executor, d);
    co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
}

// Counts the server sessions with this application_name, over a separate connection.
asio::awaitable<std::int64_t> sessions(pgcoro::connection& side, const std::string& name)
{
    auto r = co_await side.query(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", name);
    co_return r ? r->get<std::int64_t>(0, 0).value_or(-1) : -1;
}

asio::awaitable<std::int64_t> terminate_all(pgcoro::connection& side, const std::string& name)
{
    auto r = co_await side.query("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                                 " WHERE application_name = $1",
                                 name);
    co_return r ? r->get<std::int64_t>(0, 0).value_or(-1) : -1;
}

} // namespace

TEST(Pool, ThousandCoroutinesThroughTenConnections)
{
    const std::string name = "pgcoro-pool-1000";
    asio::io_context io;
    auto cfg = small_pool(10);
    cfg.acquire_timeout = 30s;
    pgcoro::pool pool(io.get_executor(), app(name), cfg);
    int ok = 0, failed = 0, done = 0;
    std::int64_t max_seen = 0;
    bool stop = false;
    // Sample the server's view of the pool while the load runs.
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void>
        {
            auto side = co_await pgcoro::open_connection(io.get_executor(), app("side"));
            while (side && !stop)
            {
                max_seen = std::max(max_seen, co_await sessions(*side, name));
                co_await sleep_for(5ms);
            }
        },
        asio::detached);
    for (int k = 0; k < 1000; ++k)
        asio::co_spawn(
            io,
            [&, k]() -> asio::awaitable<void>
            {
                for (int q = 0; q < 10; ++q)
                {
                    auto r =
                        co_await pool.run([&](pgcoro::connection& c)
                                          { return c.query("SELECT $1::int + 1", k * 10 + q); });
                    (r && r->get<int>(0, 0).value() == k * 10 + q + 1) ? ++ok : ++failed;
                }
                if (++done == 1000)
                {
                    stop = true;
                    io.stop(); // the pool's maintenance timer would keep run_for() busy
                }
            },
            asio::detached);
    io.run_for(120s);
    EXPECT_EQ(done, 1000);
    EXPECT_EQ(ok, 10000);
    EXPECT_EQ(failed, 0);
    EXPECT_GT(max_seen, 0);
    EXPECT_LE(max_seen, 10);
    auto s = pool.stats();
    EXPECT_LE(s.opened, 10u) << s;
    EXPECT_GT(s.acquired_after_wait, 0u) << s;
}

TEST(Pool, WaitersAreServedInArrivalOrder)
{
    asio::io_context io;
    pgcoro::pool pool(io.get_executor(), app("pgcoro-fifo"), small_pool(1));
    std::vector<int> order;
    run(io,
        [&]() -> asio::awaitable<void>
        {
            auto held = co_await pool.acquire();
            PGCORO_CO_ASSERT(held.has_value());
            int finished = 0;
            for (int i = 0; i < 20; ++i)
            {
                asio::co_spawn(
                    io,
                    [&, i]() -> asio::awaitable<void>
                    {
                        auto l = co_await pool.acquire(); // queued in spawn order
                        if (l)
                            order.push_back(i);
                        ++finished;
                    },
                    asio::detached);
                co_await sleep_for(2ms); // arrival order = i
            }
            EXPECT_EQ(pool.stats().waiters, 20u);
            held->release();
            while (finished < 20)
                co_await sleep_for(5ms);
        }());
    std::vector<int> expected(20);
    std::iota(expected.begin(), expected.end(), 0);
    EXPECT_EQ(order, expected);
}

TEST(Pool, AcquireTimesOutWithTheCountsAndTheOldestLease)
{
    asio::io_context io;
    auto cfg = small_pool(1);
    cfg.acquire_timeout = 200ms;
    pgcoro::pool pool(io.get_executor(), app("pgcoro-timeout"), cfg);
    run(io,
        [&]() -> asio::awaitable<void>
        {
            auto held = co_await pool.acquire();
            PGCORO_CO_ASSERT(held.has_value());
            auto start = std::chrono::steady_clock::now();
            auto second = co_await pool.acquire();
            auto waited = std::chrono::steady_clock::now() - start;
            PGCORO_CO_ASSERT(!second.has_value());
            EXPECT_TRUE(second.error().is(errc::pool_timeout)) << second.error();
            EXPECT_TRUE(second.error().transient());
            EXPECT_GE(waited, 190ms);
            const auto& m = second.error().message;
            EXPECT_NE(m.find("size=1/1"), std::string::npos) << m;
            EXPECT_NE(m.find("in_use=1"), std::string::npos) << m;
            EXPECT_NE(m.find("waiters=1"), std::string::npos) << m;
            EXPECT_NE(m.find("pool_test.cpp"), std::string::npos) << m; // where `held` was taken
            EXPECT_EQ(pool.stats().timed_out, 1u);
            EXPECT_EQ(pool.stats().waiters, 0u);
        }());
}

TEST(Pool, TimeoutCarriesTheLastConnectError)
{
    asio::io_context io;
    auto ccfg = app("pgcoro-unreachable");
    ccfg.hosts = {{"127.0.0.1", 1}}; // nothing listens on port 1
    auto cfg = small_pool(2);
    cfg.acquire_timeout = 400ms;
    pgcoro::pool pool(io.get_executor(), ccfg, cfg);
    run(io,
        [&]() -> asio::awaitable<void>
        {
            auto l = co_await pool.acquire();
            PGCORO_CO_ASSERT(!l.has_value());
            EXPECT_TRUE(l.error().is(errc::pool_timeout));
            EXPECT_NE(l.error().message.find("last connect error: connect_failed"),
                      std::string::npos)
                << l.error();
            // Capped exponential backoff: a handful of attempts in 400 ms, not a busy loop.
            auto s = pool.stats();
            EXPECT_GE(s.connect_failures, 1u);
            EXPECT_LE(s.connect_failures, 12u) << s;
        }());
}

TEST(Pool, CancelledWaiterLeavesTheQueue)
{
    using namespace asio::experimental::awaitable_operators;
    asio::io_context io;
    pgcoro::pool pool(io.get_executor(), app("pgcoro-cancel"), small_pool(1));
    run(io,
        [&]() -> asio::awaitable<void>
        {
            auto held = co_await pool.acquire();
            PGCORO_CO_ASSERT(held.has_value());
            asio::steady_timer t(io, 100ms);
            auto winner =
                co_await (pool.acquire() || t.async_wait(asio::as_tuple(asio::use_awaitable)));
            EXPECT_EQ(winner.index(), 1u); // the timer won; the acquire was cancelled
            auto s = pool.stats();
            EXPECT_EQ(s.waiters, 0u) << s;
            EXPECT_EQ(s.cancelled, 1u) << s;
            EXPECT_EQ(s.leased, 1u) << s;
            held->release();
            auto again = co_await pool.acquire(); // the connection was not lost
            EXPECT_TRUE(again.has_value());
            EXPECT_EQ(pool.stats().size, 1u);
        }());
}

TEST(Pool, TooManyWaitersAreRejectedAtOnce)
{
    asio::io_context io;
    auto cfg = small_pool(1);
    cfg.max_waiters = 1;
    cfg.acquire_timeout = 300ms;
    pgcoro::pool pool(io.get_executor(), app("pgcoro-maxwait"), cfg);
    run(io,
        [&]() -> asio::awaitable<void>
        {
            auto held = co_await pool.acquire();
            PGCORO_CO_ASSERT(held.has_value());
            asio::co_spawn(
                io, [&]() -> asio::awaitable<void> { co_await pool.acquire(); }, asio::detached);
            co_await sleep_for(20ms);
            auto start = std::chrono::steady_clock::now();
            auto r = co_await pool.acquire();
            PGCORO_CO_ASSERT(!r.has_value());
            EXPECT_TRUE(r.error().is(errc::too_many_waiters)) << r.error();
            EXPECT_LT(std::chrono::steady_clock::now() - start, 100ms);
            co_await sleep_for(400ms);
        }());
}

TEST(Pool, TerminatedIdleConnectionsAreReplacedTransparently)
{
    const std::string name = "pgcoro-terminated";
    asio::io_context io;
    pgcoro::pool pool(io.get_executor(), app(name), small_pool(5));
    run(io,
        [&]() -> asio::awaitable<void>
        {
            auto side = co_await pgcoro::open_connection(io.get_executor(), app("side"));
            PGCORO_CO_ASSERT(side.has_value());
            {
                std::vector<pgcoro::lease> five;
                for (int i = 0; i < 5; ++i)
                {
                    auto l = co_await pool.acquire();
                    PGCORO_CO_ASSERT(l.has_value());
                    five.push_back(std::move(*l));
                }
            }
            co_await sleep_for(20ms);
            EXPECT_EQ(pool.stats().idle, 5u);
            EXPECT_EQ(co_await terminate_all(*side, name), 5);
            co_await sleep_for(100ms); // let the FATAL messages arrive
            // Every query below must succeed: dead idle connections are never handed out.
            std::vector<pgcoro::lease> again;
            for (int i = 0; i < 5; ++i)
            {
                auto l = co_await pool.acquire();
                PGCORO_CO_ASSERT(l.has_value());
                auto r = co_await (*l)->query("SELECT 1");
                EXPECT_TRUE(r.has_value()) << r.error();
                again.push_back(std::move(*l));
            }
            EXPECT_GE(pool.stats().closed_broken, 5u) << pool.stats();
        }());
}

TEST(Pool, RecoversWithinTwoSecondsAfterServerRestart)
{
    if (!test_server::get().owned())
        GTEST_SKIP() << "external server: cannot restart it";
    asio::io_context io;
    auto cfg = small_pool(4);
    cfg.acquire_timeout = 300ms; // shorter than the ~700 ms outage, so the outage is felt
    pgcoro::pool pool(io.get_executor(), app("pgcoro-restart"), cfg);
    std::atomic<bool> stop{false};
    int ok_before = 0, errors = 0, workers_done = 0;
    // Four workers keep the pool busy through the outage; none may hang.
    for (int w = 0; w < 4; ++w)
        asio::co_spawn(
            io,
            [&]() -> asio::awaitable<void>
            {
                while (!stop)
                {
                    auto r = co_await pool.run([](pgcoro::connection& c)
                                               { return c.query("SELECT 1"); });
                    r ? ++ok_before : ++errors;
                    co_await sleep_for(10ms);
                }
                ++workers_done;
            },
            asio::detached);
    std::thread server_control(
        [&]
        {
            std::this_thread::sleep_for(300ms);
            EXPECT_EQ(test_server::get().pg_ctl("stop -m immediate"), 0);
            std::this_thread::sleep_for(700ms);
            EXPECT_EQ(test_server::get().pg_ctl("start"), 0);
        });
    io.run_for(1100ms);
    server_control.join(); // pg_ctl start -w returns once the server accepts connections
    auto back = std::chrono::steady_clock::now();
    std::chrono::steady_clock::duration recovered_after{};
    run(io,
        [&]() -> asio::awaitable<void>
        {
            for (;;)
            {
                auto r =
                    co_await pool.run([](pgcoro::connection& c) { return c.query("SELECT 1"); });
                if (r)
                    break;
                if (std::chrono::steady_clock::now() - back > 5s)
                    break;
                co_await sleep_for(20ms);
            }
            recovered_after = std::chrono::steady_clock::now() - back;
            stop = true;
            while (workers_done < 4)
                co_await sleep_for(10ms);
        }());
    EXPECT_GT(ok_before, 0);
    EXPECT_GT(errors, 0); // the outage was felt
    EXPECT_LT(recovered_after, 2s);
    EXPECT_EQ(workers_done, 4); // nothing hung
}

TEST(Pool, IdleTimeoutLifetimeAndRefillShowInStats)
{
    const std::string name = "pgcoro-lifecycle";
    asio::io_context io;
    auto cfg = small_pool(4);
    cfg.min_size = 1;
    cfg.idle_timeout = 150ms;
    pgcoro::pool pool(io.get_executor(), app(name), cfg);
    run(io,
        [&]() -> asio::awaitable<void>
        {
            PGCORO_CO_ASSERT((co_await pool.warmup()).has_value());
            {
                std::vector<pgcoro::lease> four;
                for (int i = 0; i < 4; ++i)
                    if (auto l = co_await pool.acquire())
                        four.push_back(std::move(*l));
                EXPECT_EQ(four.size(), 4u);
            }
            co_await sleep_for(600ms);
            auto s = pool.stats();
            EXPECT_EQ(s.closed_idle, 3u) << s; // trimmed down to min_size
            EXPECT_EQ(s.size, 1u) << s;

            // min_size refill: kill the last connection; the sweep notices and reopens one.
            auto side = co_await pgcoro::open_connection(io.get_executor(), app("side"));
            PGCORO_CO_ASSERT(side.has_value());
            auto opened_before = pool.stats().opened;
            EXPECT_EQ(co_await terminate_all(*side, name), 1);
            co_await sleep_for(400ms);
            s = pool.stats();
            EXPECT_GE(s.closed_broken, 1u) << s;
            EXPECT_EQ(s.opened, opened_before + 1) << s;
            EXPECT_EQ(s.size, 1u) << s;
        }());
}

TEST(Pool, MaxLifetimeRetiresConnections)
{
    asio::io_context io;
    auto cfg = small_pool(2);
    cfg.min_size = 2;
    cfg.max_lifetime = 200ms;
    cfg.max_lifetime_jitter = 50ms;
    pgcoro::pool pool(io.get_executor(), app("pgcoro-lifetime"), cfg);
    run(io,
        [&]() -> asio::awaitable<void>
        {
            PGCORO_CO_ASSERT((co_await pool.warmup()).has_value());
            co_await sleep_for(700ms);
            auto s = pool.stats();
            EXPECT_GE(s.closed_lifetime, 2u) << s; // each retired at least once
            EXPECT_GE(s.opened, 4u) << s;          // and replaced (min_size)
            auto l = co_await pool.acquire();
            EXPECT_TRUE(l.has_value());
        }());
}

TEST(Pool, LeakedLeaseIsReportedWithItsAcquireLocation)
{
    asio::io_context io;
    auto cfg = small_pool(1);
    cfg.leak_threshold = 100ms;
    pgcoro::pool pool(io.get_executor(), app("pgcoro-leak"), cfg);
    std::vector<pgcoro::leak_report> reports;
    pool.on_leak([&](const pgcoro::leak_report& r) { reports.push_back(r); });
    unsigned line = 0;
    run(io,
        [&]() -> asio::awaitable<void>
        {
            line = __LINE__ + 1;
            auto l = co_await pool.acquire();
            PGCORO_CO_ASSERT(l.has_value());
            co_await sleep_for(400ms);
        }());
    ASSERT_EQ(reports.size(), 1u);
    EXPECT_NE(std::string(reports[0].where.file_name()).find("pool_test.cpp"), std::string::npos);
    EXPECT_EQ(reports[0].where.line(), line);
    EXPECT_GE(reports[0].held, 100ms);
    EXPECT_EQ(pool.stats().leaks_reported, 1u);
}

TEST(Pool, ReturnedTransactionIsRolledBack)
{
    asio::io_context io;
    pgcoro::pool pool(io.get_executor(), app("pgcoro-reset"), small_pool(1));
    run(io,
        [&]() -> asio::awaitable<void>
        {
            {
                auto l = co_await pool.acquire();
                PGCORO_CO_ASSERT(l.has_value());
                co_await (*l)->query("CREATE TEMP TABLE IF NOT EXISTS r (v int)");
                co_await (*l)->query("BEGIN");
                co_await (*l)->query("INSERT INTO r VALUES (1)");
                EXPECT_EQ((*l)->transaction_status(), PQTRANS_INTRANS);
            } // returned inside the transaction
            auto l = co_await pool.acquire();
            PGCORO_CO_ASSERT(l.has_value());
            EXPECT_EQ((*l)->transaction_status(), PQTRANS_IDLE);
            auto n = co_await (*l)->query("SELECT count(*) FROM r");
            PGCORO_CO_ASSERT(n.has_value());
            EXPECT_EQ(n->get<std::int64_t>(0, 0).value(), 0);
            EXPECT_EQ(pool.stats().opened, 1u); // same connection, reset not replaced
        }());
}

TEST(Pool, CloseWaitsForLeasesThenLeavesNoServerSessions)
{
    const std::string name = "pgcoro-close";
    asio::io_context io;
    auto cfg = small_pool(3);
    pgcoro::pool pool(io.get_executor(), app(name), cfg);
    run(io,
        [&]() -> asio::awaitable<void>
        {
            auto side = co_await pgcoro::open_connection(io.get_executor(), app("side"));
            PGCORO_CO_ASSERT(side.has_value());
            auto a = co_await pool.acquire();
            auto b = co_await pool.acquire();
            auto c = co_await pool.acquire();
            PGCORO_CO_ASSERT(a && b && c);
            c->release(); // one idle
            co_await sleep_for(10ms);
            bool closed = false;
            asio::co_spawn(
                io,
                [&]() -> asio::awaitable<void>
                {
                    co_await pool.close(5s);
                    closed = true;
                },
                asio::detached);
            co_await sleep_for(20ms);
            auto late = co_await pool.acquire();
            PGCORO_CO_ASSERT(!late.has_value());
            EXPECT_TRUE(late.error().is(errc::pool_closed)) << late.error();
            EXPECT_FALSE(closed);
            // The outstanding leases still work, then come back.
            auto r = co_await (*a)->query("SELECT 1");
            EXPECT_TRUE(r.has_value());
            a->release();
            b->release();
            for (int i = 0; i < 100 && !closed; ++i)
                co_await sleep_for(10ms);
            EXPECT_TRUE(closed);
            EXPECT_EQ(pool.stats().size, 0u);
            co_await sleep_for(50ms);
            EXPECT_EQ(co_await sessions(*side, name), 0);
        }());
}

TEST(Pool, DestroyingThePoolWithLeasesAliveIsSafe)
{
    asio::io_context io;
    std::optional<pgcoro::lease> survivor;
    {
        pgcoro::pool pool(io.get_executor(), app("pgcoro-destroy"), small_pool(2));
        run(io,
            [&]() -> asio::awaitable<void>
            {
                auto l = co_await pool.acquire();
                PGCORO_CO_ASSERT(l.has_value());
                survivor.emplace(std::move(*l));
            }());
    }
    run(io,
        [&]() -> asio::awaitable<void>
        {
            auto r = co_await (*survivor)->query("SELECT 1"); // the connection outlives the pool
            EXPECT_TRUE(r.has_value());
            survivor.reset(); // returning it to a closed pool closes it
            co_return;
        }());
}

TEST(Pool, WarmupReportsTheConnectError)
{
    if (!test_server::get().has_password_role())
        GTEST_SKIP() << "external server: no password role";
    asio::io_context io;
    auto cfg = small_pool(2);
    cfg.min_size = 2;
    pgcoro::pool pool(io.get_executor(), test_server::get().password_role("wrong"), cfg);
    run(io,
        [&]() -> asio::awaitable<void>
        {
            auto r = co_await pool.warmup();
            PGCORO_CO_ASSERT(!r.has_value());
            EXPECT_EQ(r.error().state, "28P01") << r.error();
        }());
}

TEST(Pool, MaxSizeCanChangeAtRunTime)
{
    asio::io_context io;
    auto cfg = small_pool(1);
    cfg.acquire_timeout = 200ms;
    pgcoro::pool pool(io.get_executor(), app("pgcoro-resize"), cfg);
    run(io,
        [&]() -> asio::awaitable<void>
        {
            auto a = co_await pool.acquire();
            PGCORO_CO_ASSERT(a.has_value());
            auto b = co_await pool.acquire();
            EXPECT_TRUE(!b && b.error().is(errc::pool_timeout));
            pool.set_max_size(2);
            auto c = co_await pool.acquire();
            EXPECT_TRUE(c.has_value());
            EXPECT_EQ(pool.stats().size, 2u);
        }());
}

// A release with a waiter hands the connection straight to it, from the releasing thread:
// the waiter wakes at once (not at its deadline), gets the same connection, and counts as
// served after a wait. Repeated, so a wake-up lost between queueing and waiting would show.
TEST(Pool, ReleaseFromAnotherThreadWakesTheWaiterAtOnce)
{
    asio::io_context io(2);
    auto cfg = small_pool(1);
    cfg.acquire_timeout = 5s;
    pgcoro::pool pool(io.get_executor(), app("pgcoro-handoff"), cfg);
    constexpr int rounds = 50;
    std::atomic<int> served{0}, same_pid{0}, slow{0};
    asio::co_spawn(
        asio::make_strand(io),
        [&]() -> asio::awaitable<void>
        {
            for (int i = 0; i < rounds; ++i)
            {
                auto held = co_await pool.acquire();
                if (!held)
                    break;
                const int pid = (*held)->backend_pid();
                std::atomic<bool> got{false};
                asio::co_spawn(
                    asio::make_strand(io),
                    [&, pid]() -> asio::awaitable<void>
                    {
                        const auto t0 = std::chrono::steady_clock::now();
                        auto l = co_await pool.acquire();
                        if (std::chrono::steady_clock::now() - t0 > 1s)
                            ++slow;
                        if (l)
                        {
                            ++served;
                            if ((*l)->backend_pid() == pid)
                                ++same_pid;
                        }
                        got = true;
                    },
                    asio::detached);
                co_await sleep_for(i % 2 ? 1ms : 0ms); // the waiter queues (or is about to)
                held->release();
                while (!got)
                    co_await sleep_for(1ms);
            }
            io.stop();
        },
        asio::detached);
    std::thread other([&] { io.run_for(30s); });
    io.run_for(30s);
    other.join();
    EXPECT_EQ(served.load(), rounds);
    EXPECT_EQ(same_pid.load(), rounds);
    EXPECT_EQ(slow.load(), 0);
    EXPECT_GE(pool.stats().acquired_after_wait, 1u);
    EXPECT_EQ(pool.stats().opened, 1u);
}

// A waiter resumes on its own executor, whichever way it waited: queued directly (the pool is
// at max_size, so only a release can serve it) or through the pool's strand (the pool still
// had room and connected for it). The pool runs on one io_context and thread, the caller on
// another.
TEST(Pool, WaiterResumesOnItsOwnExecutor)
{
    asio::io_context pool_io, caller_io;
    auto pool_work = asio::make_work_guard(pool_io);
    std::thread pool_thread([&] { pool_io.run_for(30s); });
    auto cfg = small_pool(1);
    pgcoro::pool pool(pool_io.get_executor(), app("pgcoro-resume"), cfg);
    run(caller_io,
        [&]() -> asio::awaitable<void>
        {
            const auto me = std::this_thread::get_id();
            auto first = co_await pool.acquire(); // no connection yet: the strand connects
            EXPECT_EQ(std::this_thread::get_id(), me);
            PGCORO_CO_ASSERT(first.has_value());
            std::optional<std::thread::id> resumed_on;
            bool got = false;
            asio::co_spawn(
                caller_io,
                [&]() -> asio::awaitable<void>
                {
                    auto second = co_await pool.acquire(); // the pool is full: waits directly
                    resumed_on = std::this_thread::get_id();
                    got = second.has_value();
                },
                asio::detached);
            co_await sleep_for(20ms);
            EXPECT_EQ(pool.stats().waiters, 1u);
            first->release();
            for (int i = 0; i < 200 && !resumed_on; ++i)
                co_await sleep_for(5ms);
            EXPECT_TRUE(got);
            EXPECT_EQ(resumed_on, me);
            EXPECT_EQ(pool.stats().acquired_after_wait, 2u); // the connect, then the release
        }());
    pool_work.reset();
    pool_io.stop();
    pool_thread.join();
}

// Closing the pool fails every waiter at once with pool_closed, not at its deadline, and the
// connection a waiter would have got is not handed out afterwards.
TEST(Pool, CloseFailsTheWaitersAtOnce)
{
    asio::io_context io;
    auto cfg = small_pool(1);
    cfg.acquire_timeout = 10s;
    pgcoro::pool pool(io.get_executor(), app("pgcoro-close-waiters"), cfg);
    run(io,
        [&]() -> asio::awaitable<void>
        {
            auto held = co_await pool.acquire();
            PGCORO_CO_ASSERT(held.has_value());
            int failed_closed = 0, finished = 0;
            for (int i = 0; i < 3; ++i)
                asio::co_spawn(
                    io,
                    [&]() -> asio::awaitable<void>
                    {
                        auto l = co_await pool.acquire();
                        if (!l && l.error().is(errc::pool_closed))
                            ++failed_closed;
                        ++finished;
                    },
                    asio::detached);
            co_await sleep_for(20ms);
            EXPECT_EQ(pool.stats().waiters, 3u);
            const auto start = std::chrono::steady_clock::now();
            bool closed = false;
            asio::co_spawn(
                io,
                [&]() -> asio::awaitable<void>
                {
                    co_await pool.close(5s);
                    closed = true;
                },
                asio::detached);
            for (int i = 0; i < 100 && finished < 3; ++i)
                co_await sleep_for(5ms);
            EXPECT_EQ(failed_closed, 3);
            EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
            EXPECT_EQ(pool.stats().waiters, 0u);
            held->release(); // closes it: nobody is waiting any more
            for (int i = 0; i < 100 && !closed; ++i)
                co_await sleep_for(5ms);
            EXPECT_TRUE(closed);
            EXPECT_EQ(pool.stats().size, 0u);
        }());
}

TEST(Pool, FourThreadStress)
{
    asio::io_context io(4);
    auto cfg = small_pool(8);
    cfg.acquire_timeout = 30s;
    pgcoro::pool pool(io.get_executor(), app("pgcoro-mt"), cfg);
    std::atomic<int> ok{0}, failed{0}, done{0};
    constexpr int coroutines = 200, rounds = 20;
    for (int k = 0; k < coroutines; ++k)
        asio::co_spawn(
            asio::make_strand(io),
            [&, k]() -> asio::awaitable<void>
            {
                for (int q = 0; q < rounds; ++q)
                {
                    auto l = co_await pool.acquire();
                    if (!l)
                    {
                        ++failed;
                        continue;
                    }
                    auto r = co_await (*l)->query("SELECT $1::int", k + q);
                    (r && r->get<int>(0, 0).value() == k + q) ? ++ok : ++failed;
                }
                if (++done == coroutines)
                    io.stop();
            },
            asio::detached);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&] { io.run_for(60s); });
    for (auto& t : threads)
        t.join();
    EXPECT_EQ(done.load(), coroutines);
    EXPECT_EQ(ok.load(), coroutines * rounds);
    EXPECT_EQ(failed.load(), 0);
    EXPECT_LE(pool.stats().opened, 8u);
}
