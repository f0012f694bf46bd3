// SPDX-License-Identifier: BSL-1.0
// detail::async_run: a pgcoro coroutine operation as an Asio asynchronous operation with any
// completion token. Here with stand-in operations (no server); the pool's and connection's
// async_* members are tested against the server in tests/integration/async_token_test.cpp.
// GCC 12 at -O2 warns about coroutine frames freed with a different operator delete than the
// one that allocated them (Asio's recycling allocator): a known false positive.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
// And at -O1 (the sanitizer builds) a false "may be used uninitialized" inside Asio's
// use_future completion: set before the includes, where that template is defined.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <pgcoro/detail/async_op.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/experimental/promise.hpp>
#include <boost/asio/experimental/use_promise.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <thread>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using pgcoro::detail::async_run;

namespace
{

asio::awaitable<int> answer()
{
    co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
    co_return 42;
}

// Waits `d`; -1 when cancelled.
asio::awaitable<int> sleep_for(std::chrono::milliseconds d)
{
    asio::steady_timer t(co_await asio::this_coro::executor, d);
    auto [ec] = co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
    co_return ec ? -1 : 1;
}

template <class T>
struct counting_allocator
{
    using value_type = T;
    std::shared_ptr<std::atomic<int>> count;
    explicit counting_allocator(std::shared_ptr<std::atomic<int>> c) : count(std::move(c)) {}
    template <class U>
    counting_allocator(const counting_allocator<U>& o) : count(o.count)
    {
    }
    T* allocate(std::size_t n)
    {
        ++*count;
        return std::allocator<T>().allocate(n);
    }
    void deallocate(T* p, std::size_t n) { std::allocator<T>().deallocate(p, n); }
    template <class U>
    bool operator==(const counting_allocator<U>& o) const
    {
        return count == o.count;
    }
};

} // namespace

TEST(AsyncOp, CallbackIsNeverInvokedInsideTheInitiatingFunction)
{
    asio::io_context io;
    int got = 0;
    bool returned = false;
    bool inline_call = false;
    asio::post(io,
               [&]
               {
                   async_run(io.get_executor(), answer(),
                             [&](int v)
                             {
                                 inline_call = !returned;
                                 got = v;
                             });
                   returned = true;
               });
    io.run();
    EXPECT_EQ(got, 42);
    EXPECT_FALSE(inline_call);
}

TEST(AsyncOp, AnOperationThatNeverSuspendsStillCompletesLater)
{
    asio::io_context io;
    bool returned = false;
    bool inline_call = true;
    auto immediate = []() -> asio::awaitable<int>
    {
        co_return 7;
    };
    asio::post(io,
               [&]
               {
                   async_run(io.get_executor(), immediate(), [&](int) { inline_call = !returned; });
                   returned = true;
               });
    io.run();
    EXPECT_FALSE(inline_call);
}

TEST(AsyncOp, AVoidOperationCompletesWithNoArguments)
{
    asio::io_context io;
    bool ran = false, done = false;
    auto op = [&]() -> asio::awaitable<void>
    {
        ran = true;
        co_return;
    };
    async_run(io.get_executor(), op(), [&]() { done = ran; });
    io.run();
    EXPECT_TRUE(done);
}

TEST(AsyncOp, UseFutureWithTheIoContextOnAnotherThread)
{
    asio::io_context io;
    auto guard = asio::make_work_guard(io);
    std::thread runner([&] { io.run(); });
    std::future<int> f = async_run(io.get_executor(), answer(), asio::use_future);
    ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
    EXPECT_EQ(f.get(), 42);
    guard.reset();
    runner.join();
}

TEST(AsyncOp, DeferredStartsOnlyWhenInvoked)
{
    asio::io_context io;
    std::atomic<int> started{0};
    auto op = [&]() -> asio::awaitable<int>
    {
        ++started;
        co_return 7;
    };
    auto d = async_run(io.get_executor(), op(), asio::deferred);
    io.run();
    io.restart();
    EXPECT_EQ(started, 0);
    int got = 0;
    std::move(d)([&](int v) { got = v; });
    io.run();
    EXPECT_EQ(started, 1);
    EXPECT_EQ(got, 7);
}

TEST(AsyncOp, AsTupleAndUseAwaitable)
{
    asio::io_context io;
    int a = 0, b = 0;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void>
        {
            auto ex = co_await asio::this_coro::executor;
            auto [v] = co_await async_run(ex, answer(), asio::as_tuple(asio::use_awaitable));
            a = v;
            b = co_await async_run(ex, answer(), asio::use_awaitable);
        },
        asio::detached);
    io.run();
    EXPECT_EQ(a, 42);
    EXPECT_EQ(b, 42);
}

TEST(AsyncOp, ParallelGroupCancelsTheSlowerOperation)
{
    asio::io_context io;
    int op_result = 0;
    std::size_t first = 9;
    const auto t0 = std::chrono::steady_clock::now();
    asio::steady_timer timer(io, 20ms);
    asio::experimental::make_parallel_group(
        async_run(io.get_executor(), sleep_for(10s), asio::deferred),
        timer.async_wait(asio::deferred))
        .async_wait(asio::experimental::wait_for_one(),
                    [&](std::array<std::size_t, 2> order, int v, boost::system::error_code)
                    {
                        first = order[0];
                        op_result = v;
                    });
    io.run();
    EXPECT_EQ(first, 1u);     // the timer finished first
    EXPECT_EQ(op_result, -1); // and the operation saw the cancellation
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
}

TEST(AsyncOp, BoundCancellationSlotReachesTheOperation)
{
    asio::io_context io;
    asio::cancellation_signal sig;
    int got = 0;
    async_run(io.get_executor(), sleep_for(10s),
              asio::bind_cancellation_slot(sig.slot(), [&](int v) { got = v; }));
    asio::steady_timer t(io, 20ms);
    t.async_wait([&](auto) { sig.emit(asio::cancellation_type::terminal); });
    io.run();
    EXPECT_EQ(got, -1);
}

TEST(AsyncOp, HandlerRunsOnItsAssociatedExecutorWithItsAllocator)
{
    asio::io_context io;
    auto handler_strand = asio::make_strand(io);
    auto count = std::make_shared<std::atomic<int>>(0);
    bool on_strand = false;
    int got = 0;
    async_run(io.get_executor(), answer(),
              asio::bind_executor(
                  handler_strand,
                  asio::bind_allocator(counting_allocator<int>(count),
                                       [&](int v)
                                       {
                                           on_strand = handler_strand.running_in_this_thread();
                                           got = v;
                                       })));
    io.run();
    EXPECT_EQ(got, 42);
    EXPECT_TRUE(on_strand);
    EXPECT_GT(count->load(), 0); // the completion's dispatch allocated through it
}

TEST(AsyncOp, WorkOfTheHandlerExecutorIsCountedUntilCompletion)
{
    // The handler's io_context is another one, with nothing else to do: its run() must not
    // return before the handler ran.
    asio::io_context ops;
    asio::io_context handlers;
    int got = 0;
    async_run(ops.get_executor(), sleep_for(30ms),
              asio::bind_executor(handlers, [&](int v) { got = v; }));
    std::thread t([&] { ops.run(); });
    handlers.run();
    t.join();
    EXPECT_EQ(got, 1);
}

// The io_context goes away with the operation not started yet (its start is posted), or
// suspended in a wait: the handler is destroyed without being called, nothing leaks (the
// sentinel's count; ASan in the sanitizer build) and nothing is touched after the context.
TEST(AsyncOp, IoContextDestroyedBeforeTheOperationStarted)
{
    auto sentinel = std::make_shared<int>(0);
    bool called = false;
    {
        asio::io_context io;
        async_run(io.get_executor(), sleep_for(10ms),
                  [&called, s = sentinel](int) { called = true; });
        EXPECT_EQ(sentinel.use_count(), 2);
    }
    EXPECT_FALSE(called);
    EXPECT_EQ(sentinel.use_count(), 1);
}

TEST(AsyncOp, IoContextDestroyedWhileTheOperationIsSuspended)
{
    auto sentinel = std::make_shared<int>(0);
    bool called = false;
    {
        asio::io_context io;
        async_run(io.get_executor(), sleep_for(10s),
                  [&called, s = sentinel](int) { called = true; });
        io.run_for(50ms); // started, now waiting on its timer
        EXPECT_FALSE(called);
        EXPECT_EQ(sentinel.use_count(), 2);
    }
    EXPECT_FALSE(called);
    EXPECT_EQ(sentinel.use_count(), 1);
}

TEST(AsyncOp, IoContextDestroyedWithACancellationSlotBound)
{
    auto sentinel = std::make_shared<int>(0);
    asio::cancellation_signal sig;
    {
        asio::io_context io;
        async_run(io.get_executor(), sleep_for(10s),
                  asio::bind_cancellation_slot(sig.slot(), [s = sentinel](int) {}));
        io.run_for(50ms);
    }
    sig.emit(asio::cancellation_type::terminal); // the slot's handler is gone: a no-op
    EXPECT_EQ(sentinel.use_count(), 1);
}

// experimental::use_promise: the operation starts eagerly and the promise is awaited later.
TEST(AsyncOp, UsePromiseStartsEagerlyAndIsAwaitedLater)
{
    asio::io_context io;
    int got = 0;
    auto main = [&]() -> asio::awaitable<void>
    {
        auto p = async_run(io.get_executor(), answer(), asio::experimental::use_promise);
        co_await asio::post(io, asio::use_awaitable); // the operation runs meanwhile
        got = co_await std::move(p);
    };
    asio::co_spawn(io, main(), asio::detached);
    io.run();
    EXPECT_EQ(got, 42);
}
