// SPDX-License-Identifier: BSL-1.0
// The pool's, connection's and pipeline's operations with completion tokens other than the
// coroutine spelling, against the test cluster: callbacks, use_future with the io_context on
// another thread, deferred, as_tuple, parallel_group (acquire || timer), use_awaitable, and
// four threads running one io_context with callbacks only.
// GCC 12 at -O2 warns about coroutine frames freed with a different operator delete than the
// one that allocated them (Asio's recycling allocator): a known false positive.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
// And at -O1 (the sanitizer builds) a false "may be used uninitialized" inside Asio's
// use_future completion: set before the includes, where that template is defined.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <pgcoro/async.hpp>
#include <pgcoro/circuit_breaker.hpp>
#include <pgcoro/pipeline.hpp>
#include <pgcoro/pool.hpp>
#include <pgcoro/retry.hpp>
#include <pgcoro/with_timeout.hpp>

#include "support/test_server.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <memory>
#include <optional>
#include <thread>
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
    p.min_size = 0;
    p.max_size = max;
    p.acquire_timeout = 5s;
    return p;
}

pgcoro::connect_config app()
{
    auto c = test_server::get().tcp();
    c.application_name = "pgcoro_async_token";
    c.connect_timeout = 3s;
    return c;
}

} // namespace

TEST(AsyncToken, CallbacksAcquireQueryAndClose)
{
    asio::io_context io;
    pgcoro::pool pool(io.get_executor(), app(), small_pool());
    std::optional<int> answer;
    bool closed = false;
    bool acquire_returned = false, acquire_inline = false;
    pool.async_acquire(
        [&](pgcoro::expected<pgcoro::lease> l)
        {
            acquire_inline = !acquire_returned;
            ASSERT_TRUE(l) << l.error();
            auto held = std::make_shared<pgcoro::lease>(std::move(*l));
            (*held)->async_query("SELECT $1::int + 1", 41,
                                 [&, held](pgcoro::expected<pgcoro::result> r)
                                 {
                                     ASSERT_TRUE(r) << r.error();
                                     answer = r->get<int>(0, 0).value();
                                     held->release();
                                     pool.async_close(1s, [&] { closed = true; });
                                 });
        });
    acquire_returned = true;
    io.run_for(30s); // returns once the pool is closed
    EXPECT_FALSE(acquire_inline);
    EXPECT_EQ(answer, 42);
    EXPECT_TRUE(closed);
}

TEST(AsyncToken, UseFutureFromAThreadThatDoesNotRunTheIoContext)
{
    asio::io_context io;
    auto guard = asio::make_work_guard(io);
    std::thread runner([&] { io.run(); });
    {
        pgcoro::pool pool(io.get_executor(), app(), small_pool());
        std::future<pgcoro::expected<void>> w = pool.async_warmup(asio::use_future);
        ASSERT_EQ(w.wait_for(10s), std::future_status::ready);
        EXPECT_TRUE(w.get());
        std::future<pgcoro::expected<pgcoro::lease>> f = pool.async_acquire(asio::use_future);
        ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
        auto l = f.get();
        ASSERT_TRUE(l) << l.error();
        auto q = (*l)->async_query("SELECT 'a' || $1", std::string("b"), asio::use_future);
        ASSERT_EQ(q.wait_for(10s), std::future_status::ready);
        auto r = q.get();
        ASSERT_TRUE(r) << r.error();
        EXPECT_EQ(r->get<std::string>(0, 0).value(), "ab");
        l->release();
        pool.async_close(1s, asio::use_future).get();
    }
    guard.reset();
    runner.join();
}

TEST(AsyncToken, DeferredAndAsTupleAndAwaitable)
{
    asio::io_context io;
    pgcoro::pool pool(io.get_executor(), app(), small_pool());
    int via_tuple = 0, via_awaitable = 0;
    run(io,
        [&]() -> asio::awaitable<void>
        {
            // deferred: nothing starts until the deferred operation is awaited.
            auto later = pool.async_acquire(asio::deferred);
            auto l = co_await std::move(later)(asio::use_awaitable);
            if (!l)
                co_return;
            auto [r] = co_await (*l)->async_query("SELECT 7", asio::as_tuple(asio::use_awaitable));
            if (r)
                via_tuple = r->get<int>(0, 0).value_or(0);
            auto r2 = co_await (*l)->async_query("SELECT 8", asio::use_awaitable);
            if (r2)
                via_awaitable = r2->get<int>(0, 0).value_or(0);
        }());
    EXPECT_EQ(via_tuple, 7);
    EXPECT_EQ(via_awaitable, 8);
}

TEST(AsyncToken, ParallelGroupAcquireOrTimerCancelsTheWaitingAcquire)
{
    asio::io_context io;
    auto cfg = small_pool(1);
    cfg.acquire_timeout = 30s;
    pgcoro::pool pool(io.get_executor(), app(), cfg);
    std::optional<pgcoro::error> waiter_error;
    std::size_t winner = 9;
    std::optional<int> after;
    run(io,
        [&]() -> asio::awaitable<void>
        {
            auto held = co_await pool.acquire(); // the only connection
            if (!held)
                co_return;
            asio::steady_timer timer(io, 50ms);
            auto [order, l, ec] =
                co_await asio::experimental::make_parallel_group(pool.async_acquire(asio::deferred),
                                                                 timer.async_wait(asio::deferred))
                    .async_wait(asio::experimental::wait_for_one(), asio::use_awaitable);
            (void)ec;
            winner = order[0];
            if (!l)
                waiter_error = l.error();
            held->release();
            // The cancelled waiter left the queue: the connection goes to the next acquire.
            auto again = co_await pool.async_acquire(asio::use_awaitable);
            if (again)
                after = (*again)->backend_pid() != 0 ? 1 : 0;
        }());
    EXPECT_EQ(winner, 1u);
    ASSERT_TRUE(waiter_error);
    EXPECT_TRUE(waiter_error->is(errc::cancelled)) << *waiter_error;
    EXPECT_EQ(after, 1);
    EXPECT_EQ(pool.stats().waiters, 0u);
}

TEST(AsyncToken, PipelineQueryWithACallback)
{
    asio::io_context io;
    std::optional<int> got;
    std::shared_ptr<pgcoro::pipelined_connection> shared;
    run(io,
        [&]() -> asio::awaitable<void>
        {
            auto p = co_await pgcoro::open_pipelined_connection(co_await asio::this_coro::executor,
                                                                app());
            if (p)
                shared = std::make_shared<pgcoro::pipelined_connection>(std::move(*p));
        }());
    ASSERT_TRUE(shared);
    shared->async_query("SELECT $1::int * 2", 21,
                        [&](pgcoro::expected<pgcoro::result> r)
                        {
                            if (r)
                                got = r->get<int>(0, 0).value_or(0);
                            shared->close();
                        });
    io.restart();
    io.run_for(30s);
    EXPECT_EQ(got, 42);
}

TEST(AsyncToken, FourThreadsCallbacksOnly)
{
    asio::io_context io;
    pgcoro::pool pool(io.get_executor(), app(), small_pool(4));
    std::atomic<int> ok{0}, failed{0};
    constexpr int chains = 16, per_chain = 25;
    // Each chain: acquire -> query -> release -> again, per_chain times, all with callbacks.
    struct chain : std::enable_shared_from_this<chain>
    {
        pgcoro::pool& pool;
        std::atomic<int>& ok;
        std::atomic<int>& failed;
        int left;
        chain(pgcoro::pool& p, std::atomic<int>& o, std::atomic<int>& f, int n)
            : pool(p), ok(o), failed(f), left(n)
        {
        }
        void step()
        {
            if (left-- == 0)
                return;
            pool.async_acquire(
                [self = shared_from_this()](pgcoro::expected<pgcoro::lease> l)
                {
                    if (!l)
                    {
                        ++self->failed;
                        return self->step();
                    }
                    auto held = std::make_shared<pgcoro::lease>(std::move(*l));
                    (*held)->async_query("SELECT $1::int", self->left,
                                         [self, held](pgcoro::expected<pgcoro::result> r)
                                         {
                                             ++(r ? self->ok : self->failed);
                                             held->release();
                                             self->step();
                                         });
                });
        }
    };
    for (int i = 0; i < chains; ++i)
        std::make_shared<chain>(pool, ok, failed, per_chain)->step();
    // The chains end by themselves; the pool then has nothing to do but its upkeep timer, so
    // the threads run for a bounded time and the counts are checked after.
    std::vector<std::thread> threads;
    for (int i = 0; i < 4; ++i)
        threads.emplace_back(
            [&]
            {
                const auto until = std::chrono::steady_clock::now() + 60s;
                while (ok + failed < chains * per_chain && std::chrono::steady_clock::now() < until)
                    io.run_for(50ms);
            });
    for (auto& t : threads)
        t.join();
    EXPECT_EQ(ok.load(), chains * per_chain);
    EXPECT_EQ(failed.load(), 0);
}

TEST(AsyncToken, CombinatorsThroughAsyncRun)
{
    asio::io_context io;
    auto guard = asio::make_work_guard(io);
    std::thread runner([&] { io.run(); });
    {
        pgcoro::pool pool(io.get_executor(), app(), small_pool());
        auto query = [&pool](std::string sql)
        {
            return [&pool, sql]()
            {
                return pool.run([sql](pgcoro::connection& c) { return c.query(sql); });
            };
        };
        // retry() with use_future: a transient failure (40001) once, then the answer.
        int calls = 0;
        auto flaky = [&]() -> asio::awaitable<pgcoro::expected<int>>
        {
            if (++calls == 1)
                co_return pgcoro::fail(errc::query_failed, "injected serialization failure",
                                       pgcoro::sqlstate("40001"));
            auto r = co_await query("SELECT 5")();
            if (!r)
                co_return tl::unexpected(r.error());
            co_return r->get<int>(0, 0).value_or(0);
        };
        pgcoro::retry_policy policy;
        policy.backoff.initial = 1ms;
        auto f =
            pgcoro::async_run(io.get_executor(), pgcoro::retry(policy, flaky), asio::use_future);
        ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
        auto r = f.get();
        ASSERT_TRUE(r) << r.error();
        EXPECT_EQ(*r, 5);
        EXPECT_EQ(calls, 2);

        // with_timeout() with a callback: the timer wins over pg_sleep.
        std::promise<pgcoro::expected<pgcoro::result>> p;
        pgcoro::async_run(io.get_executor(),
                          pgcoro::with_timeout(100ms, query("SELECT pg_sleep(5)")),
                          [&](pgcoro::expected<pgcoro::result> v) { p.set_value(std::move(v)); });
        auto fut = p.get_future();
        ASSERT_EQ(fut.wait_for(10s), std::future_status::ready);
        auto t = fut.get();
        ASSERT_FALSE(t);
        EXPECT_TRUE(t.error().is(errc::timeout)) << t.error();

        // circuit_breaker::run() with deferred, started later with use_future.
        pgcoro::circuit_breaker breaker;
        auto d =
            pgcoro::async_run(io.get_executor(), breaker.run(query("SELECT 1")), asio::deferred);
        auto b = std::move(d)(asio::use_future);
        ASSERT_EQ(b.wait_for(10s), std::future_status::ready);
        EXPECT_TRUE(b.get());
        pool.async_close(1s, asio::use_future).get();
    }
    guard.reset();
    runner.join();
}
