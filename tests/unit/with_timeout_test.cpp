// Unit tests for pgcoro/with_timeout.hpp. The timer-wins cases use an already expired
// deadline, so no test waits for time to pass.
#include <pgcoro/with_timeout.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <stdexcept>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using pgcoro::errc;
using pgcoro::expected;

namespace
{

// Waits (for an hour) until cancelled, then reports `cancelled` like a pgcoro query does.
asio::awaitable<expected<int>> wait_until_cancelled(bool& was_cancelled)
{
    asio::steady_timer t(co_await asio::this_coro::executor, std::chrono::hours(1));
    auto [ec] = co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
    was_cancelled = ec == asio::error::operation_aborted;
    co_return pgcoro::fail(errc::cancelled, "statement cancelled");
}

// A result type without a default constructor, like expected<connection>.
struct no_default
{
    explicit no_default(int v) : value(v) {}
    int value;
};

} // namespace

TEST(WithTimeout, OperationWinsAndKeepsItsResult)
{
    asio::io_context io;
    std::optional<expected<int>> r;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void>
        {
            r = co_await pgcoro::with_timeout(
                1h, []() -> asio::awaitable<expected<int>> { co_return 7; });
        },
        asio::detached);
    auto start = std::chrono::steady_clock::now();
    io.run();
    ASSERT_TRUE(r && r->has_value());
    EXPECT_EQ(**r, 7);
    EXPECT_LT(std::chrono::steady_clock::now() - start, 1s); // the hour-long timer was stopped
}

TEST(WithTimeout, TimerWinsCancelsOperationAndReportsTimeout)
{
    // Setup: a deadline that has already passed, an operation that never finishes on its own.
    asio::io_context io;
    bool was_cancelled = false;
    std::optional<expected<int>> r;
    // Act
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            r = co_await pgcoro::with_timeout(0ns, [&]()
                                              { return wait_until_cancelled(was_cancelled); });
        },
        asio::detached);
    io.run();
    // Check: timeout, and the operation saw its cancellation before with_timeout returned.
    ASSERT_TRUE(r && !r->has_value());
    EXPECT_TRUE(r->error().is(errc::timeout)) << r->error();
    EXPECT_TRUE(was_cancelled);
    // The operation's own account is kept (issue 19: 15aed96 said only "timed out after N ms",
    // hiding e.g. an acquire's "last connect error: ... Connection refused").
    EXPECT_NE(r->error().message.find("(statement cancelled)"), std::string::npos) << r->error();
}

TEST(WithTimeout, CallerCancellationReachesOperation)
{
    asio::io_context io;
    asio::cancellation_signal sig;
    bool was_cancelled = false;
    std::optional<expected<int>> r;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void>
        { r = co_await pgcoro::with_timeout(1h, wait_until_cancelled(was_cancelled)); },
        asio::bind_cancellation_slot(sig.slot(), asio::detached));
    asio::post(io, [&] { sig.emit(asio::cancellation_type::terminal); });
    io.run();
    ASSERT_TRUE(r && !r->has_value());
    EXPECT_TRUE(r->error().is(errc::cancelled)) << r->error(); // not a timeout
    EXPECT_TRUE(was_cancelled);
}

TEST(WithTimeout, ExceptionIsRethrown)
{
    asio::io_context io;
    std::exception_ptr ex;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void>
        {
            (void)co_await pgcoro::with_timeout(1h,
                                                []() -> asio::awaitable<expected<int>>
                                                {
                                                    throw std::runtime_error("user bug");
                                                    co_return 0;
                                                });
        },
        [&](std::exception_ptr e) { ex = e; });
    io.run();
    ASSERT_TRUE(ex);
    EXPECT_THROW(std::rethrow_exception(ex), std::runtime_error);
}

TEST(WithTimeout, WorksForTypesWithoutDefaultConstructor)
{
    asio::io_context io;
    int got = 0;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void>
        {
            auto r = co_await pgcoro::with_timeout(
                1h, []() -> asio::awaitable<expected<no_default>> { co_return no_default(5); });
            got = r ? r->value : -1;
        },
        asio::detached);
    io.run();
    EXPECT_EQ(got, 5);
}
