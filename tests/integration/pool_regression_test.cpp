// Regression tests for the pool's findings of issue 18 (each failed on 15aed96):
// - 1: a waiter's frame destroyed with its io_context stayed linked in the waiter queue, and a
//      lease released afterwards walked it (ASan: heap-use-after-free; this file runs in the
//      ASan build, scripts/sanitize.sh asan);
// - 2: an acquire cancelled while it validated idle connections made every later ping of that
//      loop fail at once (3 of 4 idle connections closed as validation_failed);
// - 3: acquire_timeout was no deadline while idle connections were validated one by one
//      (pool_timeout after 2001 ms with acquire_timeout 500 ms);
// - 6: set_max_size(1) with 4 leased connections left the pool at size 4: returned connections
//      went back to the idle stack whatever max_size said;
// - 12: a wrong password made acquire() wait out acquire_timeout and return a transient
//       pool_timeout;
// - 9 (pool side): a timed-out statement's connection is finished off the caller's path and
//      reused, not closed;
// - 10 (pool side): close(grace) waited out its grace for a connect stuck resolving a name.
#include <pgcoro/detail/pq_connect.hpp>
#include <pgcoro/pool.hpp>

#include "support/fault_proxy.hpp"
#include "support/test_server.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <netdb.h>
#include <optional>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using pgcoro::errc;
using pgcoro::test::run;
using pgcoro::test::test_server;
using clk = std::chrono::steady_clock;

namespace
{
pgcoro::pool_config sized(std::size_t max)
{
    pgcoro::pool_config p;
    p.min_size = 0;
    p.max_size = max;
    p.acquire_timeout = 10s;
    p.validate_after_idle = 0ms;
    return p;
}

// Runs `io` until `done()` or `limit`.
template <class Pred>
bool run_until(asio::io_context& io, Pred done, clk::duration limit = 10s)
{
    const auto until = clk::now() + limit;
    while (!done() && clk::now() < until)
        io.run_one_for(10ms);
    return done();
}
} // namespace

// Finding 1. Deterministic: the steps of the report, in both orders in which the io_context can
// destroy the two frames (the holder's first, or the waiter's first).
TEST(PoolRegression, ShutdownWithAWaiterAndALeaseFreesNothingTwice)
{
    for (int holder_sleeps_longer = 0; holder_sleeps_longer < 2; ++holder_sleeps_longer)
    {
        auto io = std::make_unique<asio::io_context>();
        auto pool =
            std::make_unique<pgcoro::pool>(io->get_executor(), test_server::get().tcp(), sized(1));
        bool holding = false, waiting = false, waiter_done = false;
        asio::co_spawn(
            *io,
            [&]() -> asio::awaitable<void>
            {
                auto l = co_await pool->acquire();
                holding = l.has_value();
                asio::steady_timer t(co_await asio::this_coro::executor,
                                     holder_sleeps_longer ? 60s : 20s);
                co_await t.async_wait(asio::use_awaitable);
            },
            asio::detached);
        ASSERT_TRUE(run_until(*io, [&] { return holding; }));
        asio::co_spawn(
            *io,
            [&]() -> asio::awaitable<void>
            {
                waiting = true;
                auto l = co_await pool->acquire();
                waiter_done = true;
            },
            asio::detached);
        ASSERT_TRUE(run_until(*io, [&] { return waiting; }));
        io->run_for(50ms);
        EXPECT_EQ(pool->stats().waiters, 1u) << pool->stats();
        io->stop();
        pool.reset();
        io.reset(); // destroys both frames: the waiter unlinks itself, the lease goes back
        EXPECT_FALSE(waiter_done);
    }
}

// Finding 6: shrinking below the leased count takes effect as the leases come back.
TEST(PoolRegression, ShrinkingBelowTheLeasedCountClosesReturnedConnections)
{
    asio::io_context io;
    pgcoro::pool pool(io.get_executor(), test_server::get().tcp(), sized(4));
    run(
        io,
        [&]() -> asio::awaitable<void>
        {
            std::vector<pgcoro::lease> leases;
            for (int i = 0; i < 4; ++i)
            {
                auto l = co_await pool.acquire();
                PGCORO_CO_ASSERT(l.has_value());
                leases.push_back(std::move(*l));
            }
            pool.set_max_size(1);
            asio::steady_timer t(io, 50ms); // set_max_size is applied on the pool's strand
            co_await t.async_wait(asio::use_awaitable);
            leases.clear();
            for (int i = 0; i < 100 && pool.stats().size > 1; ++i)
            {
                t.expires_after(10ms);
                co_await t.async_wait(asio::use_awaitable);
            }
            auto s = pool.stats();
            EXPECT_EQ(s.size, 1u) << s;
            EXPECT_EQ(s.max_size, 1u) << s;
            // Under load: 8 coroutines, 50 acquires each, never more than one connection.
            int running = 8;
            std::size_t max_seen = 0;
            for (int c = 0; c < 8; ++c)
                asio::co_spawn(
                    io,
                    [&]() -> asio::awaitable<void>
                    {
                        for (int i = 0; i < 50; ++i)
                        {
                            auto l = co_await pool.acquire();
                            EXPECT_TRUE(l.has_value()) << l.error();
                            max_seen = std::max(max_seen, pool.stats().size);
                        }
                        --running;
                    },
                    asio::detached);
            while (running > 0)
            {
                t.expires_after(10ms);
                co_await t.async_wait(asio::use_awaitable);
            }
            EXPECT_LE(max_seen, 1u);
        }(),
        60s);
}

// Finding 9, pool side: a statement that timed out returns at its deadline; its connection is
// finished (cancel, results discarded) in the background and reused, not closed.
TEST(PoolRegression, TimedOutStatementsConnectionIsSettledAndReused)
{
    asio::io_context io;
    pgcoro::pool pool(io.get_executor(), test_server::get().tcp(), sized(1));
    run(
        io,
        [&]() -> asio::awaitable<void>
        {
            int pid = 0;
            {
                auto l = co_await pool.acquire();
                PGCORO_CO_ASSERT(l.has_value());
                pid = (*l)->backend_pid();
                const auto t0 = clk::now();
                auto r = co_await (*l)->query(pgcoro::query_options{200ms}, "select pg_sleep(5)");
                const auto took = clk::now() - t0;
                PGCORO_CO_ASSERT(!r.has_value());
                EXPECT_TRUE(r.error().is(errc::timeout)) << r.error();
                EXPECT_LT(took, 500ms);
            }
            auto l = co_await pool.acquire();
            PGCORO_CO_ASSERT(l.has_value());
            EXPECT_EQ((*l)->backend_pid(), pid);
            EXPECT_TRUE((*l)->settled());
            auto one = co_await (*l)->query("select 1");
            EXPECT_TRUE(one.has_value()) << one.error();
            EXPECT_EQ(pool.stats().closed_broken, 0u) << pool.stats();
        }(),
        30s);
}

// Finding 12: a connect failure that retrying cannot fix fails the waiting acquires at once
// with that error, not transient.
TEST(PoolRegression, WrongPasswordFailsTheAcquireAtOnceAndNotTransient)
{
    if (!test_server::get().has_password_role())
        GTEST_SKIP() << "external server: no password role";
    asio::io_context io;
    pgcoro::pool pool(io.get_executor(), test_server::get().password_role("wrong"), sized(2));
    run(
        io,
        [&]() -> asio::awaitable<void>
        {
            for (int i = 0; i < 2; ++i)
            {
                const auto t0 = clk::now();
                auto l = co_await pool.acquire();
                const auto took = clk::now() - t0;
                PGCORO_CO_ASSERT(!l.has_value());
                EXPECT_EQ(l.error().state, "28P01") << l.error();
                EXPECT_FALSE(l.error().transient()) << l.error();
                EXPECT_LT(took, 2s); // acquire_timeout is 10 s
            }
        }(),
        30s);
}

namespace
{
// Opens `n` connections in `pool` and returns them, so they are idle.
asio::awaitable<void> fill(pgcoro::pool& pool, std::size_t n)
{
    std::vector<pgcoro::lease> leases;
    for (std::size_t i = 0; i < n; ++i)
    {
        auto l = co_await pool.acquire();
        if (!l)
        {
            ADD_FAILURE() << l.error();
            co_return;
        }
        leases.push_back(std::move(*l));
    }
}
} // namespace

// Finding 3: 4 idle connections due a validation behind a network that stopped answering.
TEST(PoolRegression, AcquireTimeoutIsADeadlineWhileValidating)
{
    asio::io_context io;
    pgcoro::test::fault_proxy proxy;
    auto ccfg = proxy.config();
    ccfg.cancel_timeout = 300ms;
    auto pcfg = sized(4);
    pcfg.acquire_timeout = 500ms;
    pcfg.validation_timeout = 200ms;
    pcfg.validate_after_idle = 50ms;
    pgcoro::pool pool(io.get_executor(), ccfg, pcfg);
    run(
        io,
        [&]() -> asio::awaitable<void>
        {
            co_await fill(pool, 4);
            PGCORO_CO_ASSERT(pool.stats().idle == 4);
            asio::steady_timer t(io, 100ms);
            co_await t.async_wait(asio::use_awaitable);
            proxy.stall();
            const auto t0 = clk::now();
            auto l = co_await pool.acquire();
            const auto took = clk::now() - t0;
            PGCORO_CO_ASSERT(!l.has_value());
            EXPECT_TRUE(l.error().is(errc::pool_timeout)) << l.error();
            EXPECT_LT(took, 700ms)
                << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms";
            proxy.heal();
        }(),
        30s);
}

// Finding 2: the acquire is cancelled while its validation ping is in flight.
TEST(PoolRegression, CancelledAcquireDuringValidationClosesNothing)
{
    using namespace asio::experimental::awaitable_operators;
    asio::io_context io;
    pgcoro::test::fault_proxy proxy;
    auto pcfg = sized(4);
    pcfg.validate_after_idle = 50ms;
    pcfg.validation_timeout = 2s;
    pgcoro::pool pool(io.get_executor(), proxy.config(), pcfg);
    run(
        io,
        [&]() -> asio::awaitable<void>
        {
            co_await fill(pool, 4);
            PGCORO_CO_ASSERT(pool.stats().idle == 4);
            asio::steady_timer t(io, 100ms);
            co_await t.async_wait(asio::use_awaitable);
            proxy.delay(pgcoro::test::fault_proxy::direction::server_to_client, 200ms);
            asio::steady_timer cancel_after(io, 50ms);
            auto raced = co_await (pool.acquire() || cancel_after.async_wait(asio::use_awaitable));
            EXPECT_EQ(raced.index(), 1u); // the timer won: the acquire did not complete
            proxy.heal();
            // The pinged connection is finished in the background; all 4 stay open.
            for (int i = 0; i < 100 && pool.stats().idle < 4; ++i)
            {
                t.expires_after(20ms);
                co_await t.async_wait(asio::use_awaitable);
            }
            auto s = pool.stats();
            EXPECT_EQ(s.closed_validation, 0u) << s;
            EXPECT_EQ(s.closed_broken, 0u) << s;
            EXPECT_EQ(s.idle, 4u) << s;
            EXPECT_EQ(s.cancelled, 1u) << s;
        }(),
        30s);
}

namespace
{
// Answers for "stuck.pgcoro.test" take 3 s; other names resolve normally.
int stuck_resolver(const char* host, const char* service, const addrinfo* hints, addrinfo** out)
{
    if (std::strcmp(host, "stuck.pgcoro.test") == 0)
    {
        std::this_thread::sleep_for(3000ms);
        return EAI_AGAIN;
    }
    return ::getaddrinfo(host, service, hints, out);
}
} // namespace

// Finding 10 (pool side): close(grace) waited out its whole grace for a connect stuck in name
// resolution (connect_timeout 30 s). Shutdown now aborts the connects, pings and rollbacks in
// flight; close() waits only for leases. Failed on a578b74 (returned after the 2 s grace).
TEST(PoolRegression, CloseDoesNotWaitForAConnectStuckInNameResolution)
{
    pgcoro::detail::resolve_override = &stuck_resolver;
    asio::io_context io;
    auto cfg = test_server::get().tcp();
    cfg.hosts[0].host = "stuck.pgcoro.test";
    cfg.connect_timeout = 30s;
    auto pcfg = sized(2);
    pcfg.min_size = 1;
    pgcoro::pool pool(io.get_executor(), cfg, pcfg);
    run(
        io,
        [&]() -> asio::awaitable<void>
        {
            asio::steady_timer t(io, 200ms); // the connect is resolving
            co_await t.async_wait(asio::use_awaitable);
            EXPECT_EQ(pool.stats().connecting, 1u) << pool.stats();
            const auto t0 = clk::now();
            co_await pool.close(2s);
            const auto took = clk::now() - t0;
            EXPECT_LT(took, 500ms)
                << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms";
            EXPECT_EQ(pool.stats().size, 0u) << pool.stats();
        }(),
        30s);
    pgcoro::detail::resolve_override = nullptr;
}

// Finding 11 (pool side): a connection that sent a 64 MiB parameter kept libpq's 64 MiB output
// buffer (and pgcoro's own copy) for as long as the pool kept it (RSS 201 MiB at 15aed96). A
// connection past 16 MiB is now closed when returned and replaced; smaller ones are reused.
// benchmarks/param_lag_bench.cpp shows the loop lag and RSS. Failed on a578b74 (reused).
TEST(PoolRegression, AConnectionThatSentAHugeStatementIsClosedOnReturn)
{
    asio::io_context io;
    pgcoro::pool pool(io.get_executor(), test_server::get().tcp(), sized(1));
    run(
        io,
        [&]() -> asio::awaitable<void>
        {
            int pid = 0;
            {
                auto l = co_await pool.acquire();
                PGCORO_CO_ASSERT(l.has_value());
                pid = (*l)->backend_pid();
                auto r = co_await (*l)->query("SELECT length($1)", std::string(1 << 20, 'x'));
                PGCORO_CO_ASSERT(r.has_value());
                EXPECT_EQ(r->get<int>(0, 0).value(), 1 << 20);
            }
            {
                auto l = co_await pool.acquire();
                PGCORO_CO_ASSERT(l.has_value());
                EXPECT_EQ((*l)->backend_pid(), pid) << "1 MiB: reused";
                const char* none = nullptr; // a null C string is SQL NULL, not a crash
                auto n = co_await (*l)->query("SELECT $1::text IS NULL", none);
                PGCORO_CO_ASSERT(n.has_value());
                EXPECT_TRUE(n->get<bool>(0, 0).value());
                auto r = co_await (*l)->query("SELECT length($1)", std::string(17 << 20, 'x'));
                PGCORO_CO_ASSERT(r.has_value());
                EXPECT_GE((*l)->largest_statement_bytes(), std::size_t{17 << 20});
            }
            auto l = co_await pool.acquire();
            PGCORO_CO_ASSERT(l.has_value());
            EXPECT_NE((*l)->backend_pid(), pid) << "17 MiB: closed on return and replaced";
            EXPECT_EQ(pool.stats().closed_lifetime, 1u) << pool.stats();
        }(),
        30s);
}
