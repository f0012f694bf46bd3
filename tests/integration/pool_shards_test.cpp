// A pool split into shards (one per io_context, or several on one io_context run by several
// threads): where acquires are served from, a dry shard borrowing another's idle connection,
// a waiter served by another shard's release, max_size as the whole pool's limit, stats and
// leak reports across shards, and a 4-thread stress run (in the TSan and ASan builds) with one
// shard running dry while the others have idle connections, destroyed mid-flight.
#include <pgcoro/pool.hpp>
#include <pgcoro/with_timeout.hpp>

#include "support/oracles.hpp"
#include "support/test_server.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_future.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using pgcoro::errc;
using pgcoro::test::test_server;
using clk = std::chrono::steady_clock;

namespace
{

// N io_contexts, each run by its own thread until stop().
struct contexts
{
    explicit contexts(std::size_t n)
    {
        for (std::size_t i = 0; i < n; ++i)
        {
            ios.push_back(std::make_unique<asio::io_context>(1));
            work.emplace_back(ios.back()->get_executor());
        }
        for (auto& io : ios)
            threads.emplace_back([ctx = io.get()] { ctx->run(); });
    }
    contexts(const contexts&) = delete;
    contexts& operator=(const contexts&) = delete;
    ~contexts() { stop(); }
    void stop()
    {
        work.clear();
        for (auto& io : ios)
            io->stop();
        for (auto& t : threads)
            if (t.joinable())
                t.join();
    }
    std::vector<asio::any_io_executor> executors() const
    {
        std::vector<asio::any_io_executor> v;
        for (const auto& io : ios)
            v.push_back(io->get_executor());
        return v;
    }
    asio::io_context& operator[](std::size_t i) { return *ios[i]; }

    std::vector<std::unique_ptr<asio::io_context>> ios;
    std::vector<asio::executor_work_guard<asio::io_context::executor_type>> work;
    std::vector<std::thread> threads;
};

// The io_context a lease's connection does its I/O on: the shard it belongs to.
const asio::execution_context* shard_of(const pgcoro::lease& l)
{
    return &asio::query(l->get_executor(), asio::execution::context);
}

// Runs `aw` on `io` and waits for it (bounded).
template <class T>
T on(asio::io_context& io, asio::awaitable<T> aw)
{
    auto f = asio::co_spawn(io, std::move(aw), asio::use_future);
    if (f.wait_for(30s) != std::future_status::ready)
        throw std::runtime_error("operation did not complete in 30 s");
    return f.get();
}

pgcoro::lease acquire_on(asio::io_context& io, pgcoro::pool& pool)
{
    auto r = on(io, pool.acquire());
    if (!r)
        throw std::runtime_error("acquire failed: " + r.error().to_string());
    return std::move(*r);
}

pgcoro::pool_config shard_config(std::size_t max, std::size_t min)
{
    pgcoro::pool_config pc;
    pc.max_size = max;
    pc.min_size = min;
    pc.acquire_timeout = 5s;
    pc.validate_after_idle = 0ms;
    return pc;
}

} // namespace

TEST(PoolShards, AcquireIsServedByTheShardOfTheCallersIoContext)
{
    contexts ctx(2);
    const auto exs = ctx.executors();
    pgcoro::pool pool(exs, test_server::get().tcp(), shard_config(4, 4));
    ASSERT_TRUE(on(ctx[0], pool.warmup()).has_value());
    const auto s = pool.stats();
    EXPECT_EQ(s.max_size, 4u) << s;
    EXPECT_EQ(s.size, 4u) << s; // min_size 4: 2 per shard
    for (std::size_t i = 0; i < 2; ++i)
    {
        auto a = acquire_on(ctx[i], pool);
        auto b = acquire_on(ctx[i], pool);
        EXPECT_EQ(shard_of(a), &ctx[i]);
        EXPECT_EQ(shard_of(b), &ctx[i]);
        auto q = on(ctx[i], a->query("SELECT 1"));
        EXPECT_TRUE(q.has_value());
    }
    EXPECT_EQ(pool.stats().acquired_immediately, 4u) << pool.stats();
    EXPECT_THROW(pgcoro::pool(std::span<const asio::any_io_executor>{}, test_server::get().tcp()),
                 std::invalid_argument);
}

TEST(PoolShards, DryShardBorrowsAnotherShardsIdleConnection)
{
    contexts ctx(2);
    pgcoro::pool pool(ctx.executors(), test_server::get().tcp(), shard_config(2, 2));
    ASSERT_TRUE(on(ctx[0], pool.warmup()).has_value());
    auto own = acquire_on(ctx[0], pool);
    EXPECT_EQ(shard_of(own), &ctx[0]);
    const auto t0 = clk::now();
    auto lent = acquire_on(ctx[0], pool); // shard 0 is dry and full: shard 1's idle one
    EXPECT_LT(clk::now() - t0, 1s);
    EXPECT_EQ(shard_of(lent), &ctx[1]);
    EXPECT_TRUE(on(ctx[0], lent->query("SELECT 1")).has_value()); // used from the other thread
    const auto s = pool.stats();
    EXPECT_EQ(s.leased, 2u) << s;
    EXPECT_EQ(s.acquired_after_wait, 0u) << s;
    EXPECT_EQ(s.size, 2u) << s;
    lent = {};
    own = {};
    EXPECT_EQ(pool.stats().idle, 2u) << pool.stats();
    auto again = acquire_on(ctx[1], pool); // the borrowed one went back to its own shard
    EXPECT_EQ(shard_of(again), &ctx[1]);
}

TEST(PoolShards, WaiterIsServedByAnotherShardsRelease)
{
    contexts ctx(2);
    pgcoro::pool pool(ctx.executors(), test_server::get().tcp(), shard_config(2, 2));
    ASSERT_TRUE(on(ctx[0], pool.warmup()).has_value());
    auto a = acquire_on(ctx[0], pool);
    auto b = acquire_on(ctx[1], pool);
    ASSERT_EQ(shard_of(b), &ctx[1]);
    std::atomic<long long> waited_ms{-1};
    // A named lambda: the coroutine refers to its captures through it.
    auto timed_acquire = [&]() -> asio::awaitable<pgcoro::expected<pgcoro::lease>>
    {
        const auto t0 = clk::now();
        auto r = co_await pool.acquire();
        waited_ms = std::chrono::duration_cast<std::chrono::milliseconds>(clk::now() - t0).count();
        co_return r;
    };
    auto waiting = asio::co_spawn(ctx[0], timed_acquire(), asio::use_future);
    for (int i = 0; i < 200 && pool.stats().waiters == 0; ++i)
        std::this_thread::sleep_for(5ms);
    ASSERT_EQ(pool.stats().waiters, 1u) << pool.stats();
    std::this_thread::sleep_for(100ms);
    b.release(); // shard 1 has no waiter: the connection goes to shard 0's
    ASSERT_EQ(waiting.wait_for(4s), std::future_status::ready) << pool.stats();
    auto r = waiting.get();
    ASSERT_TRUE(r.has_value()) << r.error();
    EXPECT_EQ(shard_of(*r), &ctx[1]);
    EXPECT_LT(waited_ms.load(), 1000); // not acquire_timeout (5 s)
    EXPECT_TRUE(on(ctx[0], (*r)->query("SELECT 1")).has_value());
    const auto s = pool.stats();
    EXPECT_EQ(s.acquired_after_wait, 1u) << s;
    EXPECT_EQ(s.waiters, 0u) << s;
    EXPECT_EQ(s.leased, 2u) << s;
    r->release();
    a.release();
    EXPECT_EQ(pool.stats().idle, 2u) << pool.stats();
}

// Shard 0 holds every connection of the pool and always has waiters of its own, so none of
// its releases ever leaves a connection idle; shard 1 has no connection and no slot left to
// open one. Shard 1's waiter is still served in a few turnovers of shard 0's queue, not
// after its acquire_timeout (5 s).
TEST(PoolShards, AShardWhoseWaitersKeepEveryConnectionBusyDoesNotStarveAnotherShard)
{
    contexts ctx(2);
    pgcoro::pool pool(ctx.executors(), test_server::get().tcp(), shard_config(2, 0));
    std::atomic<bool> stop{false};
    std::atomic<int> busy_statements{0}, busy_failures{0}, running{0};
    auto busy = [&]() -> asio::awaitable<void>
    {
        ++running;
        while (!stop.load())
        {
            auto l = co_await pool.acquire();
            if (!l)
            {
                ++busy_failures;
                continue;
            }
            if ((co_await (*l)->query("SELECT pg_sleep(0.002)")).has_value())
                ++busy_statements;
        }
        --running;
    };
    for (int i = 0; i < 6; ++i)
        asio::co_spawn(ctx[0], busy(), asio::detached);
    for (int i = 0; i < 400 && (pool.stats().size < 2 || pool.stats().waiters < 3); ++i)
        std::this_thread::sleep_for(5ms);
    std::this_thread::sleep_for(100ms);
    const auto before = pool.stats();
    EXPECT_EQ(before.size, 2u) << before; // both on shard 0: no slot left for shard 1
    EXPECT_GE(before.waiters, 3u) << before;
    std::vector<long long> waits;
    for (int k = 0; k < 5; ++k)
    {
        const auto t0 = clk::now();
        auto r = on(ctx[1], pool.acquire());
        waits.push_back(
            std::chrono::duration_cast<std::chrono::milliseconds>(clk::now() - t0).count());
        ASSERT_TRUE(r.has_value()) << r.error() << " after " << waits.back() << " ms";
        EXPECT_EQ(shard_of(*r), &ctx[0]); // shard 0's connection, handed over
        EXPECT_TRUE(on(ctx[1], (*r)->query("SELECT 1")).has_value());
    }
    stop = true;
    for (int i = 0; i < 400 && running.load() > 0; ++i)
        std::this_thread::sleep_for(5ms);
    EXPECT_EQ(running.load(), 0);
    EXPECT_EQ(busy_failures.load(), 0);
    EXPECT_GT(busy_statements.load(), 20);
    std::printf("[ shards   ] shard 1's waits behind a busy shard 0 (ms):");
    for (auto w : waits)
    {
        std::printf(" %lld", w);
        EXPECT_LT(w, 500) << "shard 1's waiter starved behind shard 0's own waiters";
    }
    std::printf("; shard 0 statements meanwhile: %d\n", busy_statements.load());
}

// A shard's pool_timeout says where the whole pool stood, not only that shard (which has no
// connection of its own here).
TEST(PoolShards, ATimeoutInOneShardDescribesTheOtherShardsToo)
{
    contexts ctx(2);
    auto pc = shard_config(2, 0);
    pc.acquire_timeout = 200ms;
    pgcoro::pool pool(ctx.executors(), test_server::get().tcp(), pc);
    auto a = acquire_on(ctx[0], pool);
    auto b = acquire_on(ctx[0], pool);
    ASSERT_EQ(shard_of(a), &ctx[0]);
    ASSERT_EQ(shard_of(b), &ctx[0]);
    auto r = on(ctx[1], pool.acquire());
    ASSERT_FALSE(r.has_value());
    EXPECT_TRUE(r.error().is(errc::pool_timeout)) << r.error();
    const auto& msg = r.error().message;
    EXPECT_NE(msg.find("size=0/2 in_use=0 idle=0 connecting=0 waiters=1"), std::string::npos)
        << msg;
    EXPECT_NE(msg.find("; shard 2 of 2; the other shards: size=2 in_use=2 idle=0 connecting=0 "
                       "waiters=0"),
              std::string::npos)
        << msg;
}

TEST(PoolShards, MaxSizeIsTheWholePoolsLimitFromAnyShard)
{
    contexts ctx(3);
    auto pc = shard_config(5, 0);
    pc.acquire_timeout = 300ms;
    pgcoro::pool pool(ctx.executors(), test_server::get().tcp(), pc);
    std::vector<pgcoro::lease> held;
    for (int i = 0; i < 5; ++i) // all from one io_context: its shard opens what others do not
        held.push_back(acquire_on(ctx[0], pool));
    auto s = pool.stats();
    EXPECT_EQ(s.size, 5u) << s;
    EXPECT_EQ(s.leased, 5u) << s;
    auto sixth = on(ctx[1], pool.acquire()); // the pool is full: another shard times out too
    ASSERT_FALSE(sixth.has_value());
    EXPECT_TRUE(sixth.error().is(errc::pool_timeout)) << sixth.error();
    EXPECT_EQ(pool.stats().size, 5u);
    held.pop_back();
    auto next = acquire_on(ctx[2], pool); // one was returned: borrowed across shards
    EXPECT_EQ(pool.stats().size, 5u) << pool.stats();
    // Shrinking: the pool closes connections as they come back until it is within 2.
    pool.set_max_size(2);
    held.clear();
    next = {};
    for (int i = 0; i < 200 && pool.stats().size > 2; ++i)
        std::this_thread::sleep_for(5ms);
    s = pool.stats();
    EXPECT_EQ(s.max_size, 2u) << s;
    EXPECT_EQ(s.size, 2u) << s;
    std::vector<pgcoro::lease> again;
    again.push_back(acquire_on(ctx[1], pool));
    again.push_back(acquire_on(ctx[2], pool));
    auto third = on(ctx[0], pool.acquire());
    EXPECT_FALSE(third.has_value());
    EXPECT_LE(pool.stats().size, 2u) << pool.stats();
}

TEST(PoolShards, LeakReportNamesTheAcquireOfABorrowedConnection)
{
    contexts ctx(2);
    auto pc = shard_config(2, 2);
    pc.leak_threshold = 50ms;
    pgcoro::pool pool(ctx.executors(), test_server::get().tcp(), pc);
    std::mutex mu;
    std::vector<pgcoro::leak_report> leaks;
    pool.on_leak(
        [&](const pgcoro::leak_report& r)
        {
            std::lock_guard lk(mu);
            leaks.push_back(r);
        });
    ASSERT_TRUE(on(ctx[0], pool.warmup()).has_value());
    auto own = acquire_on(ctx[0], pool);
    const int line = __LINE__ + 1;
    auto lent = on(ctx[0], pool.acquire(pgcoro::source_location::current()));
    ASSERT_TRUE(lent.has_value());
    ASSERT_EQ(shard_of(*lent), &ctx[1]);
    own = {};
    bool seen = false;
    for (int i = 0; i < 300 && !seen; ++i)
    {
        std::this_thread::sleep_for(10ms);
        std::lock_guard lk(mu);
        for (const auto& l : leaks)
            seen = seen || static_cast<int>(l.where.line()) == line;
    }
    EXPECT_TRUE(seen) << "no leak report for the line of the borrowing acquire";
}

// max_waiters is the whole pool's, split evenly: each shard queues its half and refuses the
// next one at once.
TEST(PoolShards, MaxWaitersIsSplitEvenlyBetweenShards)
{
    contexts ctx(2);
    auto pc = shard_config(2, 2);
    pc.max_waiters = 4;
    pgcoro::pool pool(ctx.executors(), test_server::get().tcp(), pc);
    ASSERT_TRUE(on(ctx[0], pool.warmup()).has_value());
    auto a = acquire_on(ctx[0], pool);
    auto b = acquire_on(ctx[1], pool);
    std::vector<std::future<pgcoro::expected<pgcoro::lease>>> queued;
    for (std::size_t i = 0; i < 2; ++i)
    {
        for (int k = 0; k < 2; ++k)
            queued.push_back(asio::co_spawn(ctx[i], pool.acquire(), asio::use_future));
        for (int t = 0; t < 200 && pool.stats().waiters < 2 * (i + 1); ++t)
            std::this_thread::sleep_for(5ms);
        ASSERT_EQ(pool.stats().waiters, 2 * (i + 1)) << pool.stats();
        const auto t0 = clk::now();
        auto refused = on(ctx[i], pool.acquire()); // this shard's third waiter
        EXPECT_LT(clk::now() - t0, 1s);
        ASSERT_FALSE(refused.has_value()) << "shard " << i;
        EXPECT_TRUE(refused.error().is(errc::too_many_waiters)) << refused.error();
    }
    EXPECT_EQ(pool.stats().rejected, 2u) << pool.stats();
    a.release();
    b.release();
    for (auto& f : queued) // the two connections serve the four waiters in turn
    {
        ASSERT_EQ(f.wait_for(4s), std::future_status::ready);
        auto r = f.get();
        ASSERT_TRUE(r.has_value()) << r.error();
    }
}

// set_acquire_timeout() and set_idle_timeout() reach every shard.
TEST(PoolShards, RuntimeSettersReachEveryShard)
{
    contexts ctx(2);
    pgcoro::pool pool(ctx.executors(), test_server::get().tcp(), shard_config(2, 0));
    {
        auto a = acquire_on(ctx[0], pool);
        auto b = acquire_on(ctx[1], pool);
        ASSERT_EQ(shard_of(a), &ctx[0]);
        ASSERT_EQ(shard_of(b), &ctx[1]);
        pool.set_acquire_timeout(100ms); // from 5 s
        for (std::size_t i = 0; i < 2; ++i)
        {
            const auto t0 = clk::now();
            auto r = on(ctx[i], pool.acquire());
            EXPECT_LT(clk::now() - t0, 2s) << "shard " << i;
            ASSERT_FALSE(r.has_value());
            EXPECT_TRUE(r.error().is(errc::pool_timeout)) << r.error();
            EXPECT_NE(r.error().message.find("(acquire_timeout 100 ms)"), std::string::npos)
                << r.error();
        }
    }
    EXPECT_EQ(pool.stats().idle, 2u) << pool.stats(); // one idle connection in each shard
    pool.set_idle_timeout(50ms);                      // from none
    for (int t = 0; t < 400 && pool.stats().size > 0; ++t)
        std::this_thread::sleep_for(5ms);
    const auto s = pool.stats();
    EXPECT_EQ(s.size, 0u) << s;
    EXPECT_EQ(s.closed_idle, 2u) << s;
}

// Two shards on one io_context run by two threads: each thread starts at its own shard (its
// acquires get that shard's connection back), so the threads do not share one queue.
TEST(PoolShards, SeveralShardsOnOneIoContextAreSpreadByThread)
{
    asio::io_context io(2);
    const std::vector<asio::any_io_executor> exs{io.get_executor(), io.get_executor()};
    pgcoro::pool pool(exs, test_server::get().tcp(), shard_config(2, 2));
    // Runs `aw` to completion on the calling thread only (nobody else runs `io`).
    auto here = [&io](auto aw)
    {
        auto f = asio::co_spawn(io, std::move(aw), asio::use_future);
        io.restart();
        while (f.wait_for(0s) != std::future_status::ready)
            io.run_one_for(10ms);
        return f.get();
    };
    ASSERT_TRUE(here(pool.warmup()).has_value());
    int pid[2] = {0, 0};
    for (int t = 0; t < 2; ++t)
        std::thread(
            [&, t]
            {
                for (int k = 0; k < 3; ++k) // the same connection each time: the hottest idle
                {                           // of the thread's own shard
                    auto r = here(pool.acquire());
                    ASSERT_TRUE(r.has_value()) << r.error();
                    EXPECT_TRUE(k == 0 || (*r)->backend_pid() == pid[t]) << "thread " << t;
                    pid[t] = (*r)->backend_pid();
                }
            })
            .join();
    EXPECT_NE(pid[0], 0);
    EXPECT_NE(pid[0], pid[1]) << "both threads started at the same shard";
}

TEST(PoolShards, CloseWaitsForLeasesOfEveryShard)
{
    contexts ctx(2);
    pgcoro::pool pool(ctx.executors(), test_server::get().tcp(), shard_config(2, 2));
    ASSERT_TRUE(on(ctx[0], pool.warmup()).has_value());
    auto a = std::make_shared<pgcoro::lease>(acquire_on(ctx[0], pool));
    auto b = std::make_shared<pgcoro::lease>(acquire_on(ctx[1], pool));
    auto closing = asio::co_spawn(ctx[0], pool.close(5s), asio::use_future);
    std::this_thread::sleep_for(50ms);
    EXPECT_EQ(closing.wait_for(0s), std::future_status::timeout); // leases out on both shards
    auto refused = on(ctx[1], pool.acquire());
    ASSERT_FALSE(refused.has_value());
    EXPECT_TRUE(refused.error().is(errc::pool_closed)) << refused.error();
    a.reset();
    std::this_thread::sleep_for(50ms);
    EXPECT_EQ(closing.wait_for(0s), std::future_status::timeout); // shard 1's lease is still out
    b.reset();
    EXPECT_EQ(closing.wait_for(4s), std::future_status::ready);
    EXPECT_EQ(pool.stats().size, 0u) << pool.stats();
}

// 4 io_contexts, one thread each, one shard each; most clients run on the first, so its shard
// runs dry and borrows while the others have idle connections; clients on the others come and
// go, so their releases serve the first shard's waiters. Then everything is destroyed
// mid-flight. Also with 4 shards on one io_context run by 4 threads.
static void stress(bool one_context)
{
    const std::string app = one_context ? "pgcoro-shards-1ctx" : "pgcoro-shards";
    std::atomic<int> ok{0}, failed{0}, finished{0}, borrowed{0};
    std::mutex mu;
    std::vector<std::string> unexpected;
    std::atomic<bool> stop{false};
    {
        std::vector<std::unique_ptr<asio::io_context>> ios;
        for (int i = 0; i < (one_context ? 1 : 4); ++i)
            ios.push_back(std::make_unique<asio::io_context>(one_context ? 4 : 1));
        std::vector<asio::any_io_executor> exs;
        for (int i = 0; i < 4; ++i)
            exs.push_back(ios[one_context ? 0 : i]->get_executor());
        auto cc = test_server::get().tcp();
        cc.application_name = app;
        cc.cancel_timeout = 1s;
        pgcoro::pool_config pc;
        pc.max_size = 8;
        pc.min_size = 4;
        pc.acquire_timeout = 1s;
        pc.validate_after_idle = 5ms;
        pc.validation_timeout = 50ms;
        auto pool = std::make_unique<pgcoro::pool>(exs, cc, pc);
        // `light`: a client of the other io_contexts pauses 5-15 ms after each statement, so
        // those shards keep idle connections most of the time (the first shard borrows them)
        // and their releases often find no local waiter (they are offered to the first shard).
        auto client = [&](unsigned seed, bool light) -> asio::awaitable<void>
        {
            std::mt19937 rng(seed);
            while (!stop.load())
            {
                pgcoro::expected<pgcoro::lease> r;
                if (rng() % 4 == 0)
                    r = co_await pgcoro::with_timeout(std::chrono::milliseconds(rng() % 5),
                                                      pool->acquire());
                else
                    r = co_await pool->acquire();
                if (!r)
                {
                    ++failed;
                    if (!r.error().is(errc::pool_timeout) && !r.error().is(errc::cancelled) &&
                        !r.error().is(errc::timeout) && !r.error().is(errc::pool_closed))
                    {
                        std::lock_guard lk(mu);
                        unexpected.push_back(r.error().to_string());
                    }
                    continue;
                }
                if (shard_of(*r) !=
                    &asio::query(co_await asio::this_coro::executor, asio::execution::context))
                    ++borrowed; // another shard's connection
                auto q = co_await (*r)->query(
                    pgcoro::query_options{std::chrono::milliseconds(50 + rng() % 50)},
                    "SELECT pg_sleep($1::int / 1000.0)", static_cast<int>(rng() % 3));
                if (q)
                    ++ok;
                else if (!q.error().is(errc::timeout) && !q.error().is(errc::connection_lost))
                {
                    std::lock_guard lk(mu);
                    unexpected.push_back(q.error().to_string());
                }
                if (light || rng() % 2 == 0)
                {
                    asio::steady_timer t(
                        co_await asio::this_coro::executor,
                        std::chrono::milliseconds(light ? 5 + rng() % 10 : rng() % 4));
                    co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
                }
            }
            ++finished;
        };
        // 40 clients on the first io_context, 4 on each other one.
        for (unsigned k = 0; k < 52; ++k)
        {
            const bool light = !one_context && k >= 40;
            auto& io = *ios[light ? 1 + (k - 40) % 3 : 0];
            asio::co_spawn(io, client(100 + k, light), asio::detached);
        }
        auto resize = [&]() -> asio::awaitable<void>
        {
            std::mt19937 rng(11);
            asio::steady_timer timer(co_await asio::this_coro::executor);
            while (!stop.load())
            {
                pool->set_max_size(4 + rng() % 5);
                timer.expires_after(50ms);
                co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
            }
        };
        asio::co_spawn(*ios[0], resize(), asio::detached);
        std::vector<std::thread> threads;
        for (int i = 0; i < 4; ++i)
            threads.emplace_back([&, i] { ios[one_context ? 0 : i]->run_for(2s); });
        for (auto& t : threads)
            t.join();
        stop = true;
        const auto s = pool->stats();
        EXPECT_LE(s.size, 8u) << s;
        EXPECT_GT(s.acquired_immediately + s.acquired_after_wait, 50u) << s;
        pool.reset(); // mid-flight: waiters queued, leases held, statements running
        if (!one_context)
        {
            // A frame on one io_context may hold a lease or a waiter of another one's shard,
            // so the io_contexts all run out of work before any is destroyed (pool.hpp). They
            // run with work guards until every client has finished: an io_context with no
            // work at one moment may get some later (a client on the first io_context starts
            // a statement on another shard's connection, whose I/O runs on that shard's).
            threads.clear();
            std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards;
            for (auto& io : ios)
            {
                io->restart();
                guards.emplace_back(io->get_executor());
            }
            for (int i = 0; i < 4; ++i)
                threads.emplace_back([&, i] { ios[i]->run(); });
            const auto deadline = clk::now() + 20s;
            while (finished.load() < 52 && clk::now() < deadline)
                std::this_thread::sleep_for(10ms);
            EXPECT_EQ(finished.load(), 52) << "clients still running after the drain";
            guards.clear(); // now each runs out of work: the connections' closes, the releases
            const auto drained = clk::now() + 10s;
            while (clk::now() < drained &&
                   !std::all_of(ios.begin(), ios.end(), [](auto& io) { return io->stopped(); }))
                std::this_thread::sleep_for(10ms);
            for (auto& io : ios)
                EXPECT_TRUE(io->stopped()) << "an io_context still had work 10 s after the drain";
            for (auto& io : ios)
                io->stop(); // bounded either way
            for (auto& t : threads)
                t.join();
            // What one io_context posted to another after that one had run out of work.
            for (int round = 0; round < 100; ++round)
            {
                std::size_t ran = 0;
                for (auto& io : ios)
                {
                    io->restart();
                    ran += io->poll();
                }
                if (ran == 0)
                    break;
            }
        }
        ios.clear(); // one io_context: destroys every frame still suspended
    }
    std::printf("[ shards   ] %s: statements ok=%d, acquires failed=%d, leases of another "
                "io_context's shard=%d\n",
                one_context ? "1 io_context x 4 threads" : "4 io_contexts", ok.load(),
                failed.load(), borrowed.load());
    EXPECT_GT(ok.load(), 50);
    if (!one_context)
    {
        EXPECT_GT(borrowed.load(), 0) << "the busy shard never used another shard's connection";
    }
    {
        std::lock_guard lk(mu);
        EXPECT_TRUE(unexpected.empty())
            << unexpected.size() << " unexpected errors, first: " << unexpected.front();
    }
    // Every server session of the pool ends: nothing was leaked by the destruction.
    asio::io_context io;
    auto check = [&]() -> asio::awaitable<void>
    {
        auto side = co_await pgcoro::open_connection(io.get_executor(), test_server::get().tcp());
        PGCORO_CO_ASSERT(side.has_value());
        EXPECT_TRUE(co_await pgcoro::test::sessions_ended(*side, app));
    };
    pgcoro::test::run(io, check(), 30s);
}

TEST(PoolShardsStress, FourIoContextsOneDryShardPoolDestroyedMidFlight)
{
    stress(false);
}

TEST(PoolShardsStress, FourShardsOnOneIoContextWithFourThreads)
{
    stress(true);
}
