// SPDX-License-Identifier: BSL-1.0
// pgcoro/detail/pq_io.hpp - the waits of one libpq connection: socket readiness bounded by a
// deadline and by the caller's cancellation, as one operation.
#ifndef PGCORO_DETAIL_PQ_IO_HPP
#define PGCORO_DETAIL_PQ_IO_HPP

#include <pgcoro/detail/blocking_calls.hpp>
#include <pgcoro/detail/pq_socket.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>

#include <libpq-fe.h>

#include <chrono>
#include <fcntl.h>
#include <optional>
#include <unistd.h>

namespace pgcoro::detail
{

namespace asio = boost::asio;

// What ended a wait.
enum class wait_result : unsigned char
{
    ready,
    deadline,  // the operation's own deadline passed
    cancelled, // the awaiting coroutine was cancelled
    failed,    // the reactor reported an error on the descriptor
    closed,    // the owner closed the connection (close_by_owner())
};

// What to wait for.
enum class wait_for : unsigned char
{
    read,          // more of a response that may already be in the socket (level)
    response,      // the response to a request sent just now (pq_socket::async_wait_response)
    write,         // writable
    read_or_write, // output pending: writable, and readable meanwhile (libpq manual 34.4)
};

// A deadline is part of each wait: the socket wait and the timer are one parallel group, so
// whichever ends first cancels the other inside Asio's own synchronisation and the outcome is
// delivered to the waiting coroutine only (no handler on another executor writes state the
// coroutine reads). Without a deadline the wait is the bare socket wait. Not thread-safe: the
// owner of the connection runs one operation at a time (close_by_owner() from the same thread).
class pq_io
{
public:
    using clock = std::chrono::steady_clock;
    static constexpr clock::time_point no_deadline = clock::time_point::max();

    explicit pq_io(const asio::any_io_executor& ex) : socket_(ex), timer_(ex) {}

    // Watches a dup of libpq's current socket (libpq may swap it during PQconnectPoll, even
    // keeping the fd number); closing ours never touches an fd libpq closed and the process
    // reused.
    bool watch(PGconn* c) noexcept
    {
        boost::system::error_code ec;
        socket_.close(ec);
        const int fd = PQsocket(c);
        if (fd < 0)
            return false;
        const int mine = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
        if (mine < 0)
            return false;
        socket_.assign(mine, ec);
        if (ec)
        {
            ::close(mine);
            return false;
        }
        return true;
    }
    void unwatch() noexcept
    {
        boost::system::error_code ignored;
        socket_.close(ignored);
    }
    pq_socket& socket() noexcept { return socket_; }

    // The owner closes the connection while an operation waits: it ends with `closed`.
    void request_close() noexcept
    {
        close_requested_ = true;
        socket_.cancel();
        timer_.cancel();
    }
    bool close_requested() const noexcept { return close_requested_; }
    void clear_close_request() noexcept { close_requested_ = false; }

    // Whether a wait for `what` until `deadline` is one bare reactor operation (no deadline,
    // one direction): callers on the hot path then await wait_response() / wait_readable()
    // inline after before_wait(), and no coroutine frame is made for the wait.
    static bool bare(wait_for what, clock::time_point deadline) noexcept
    {
        return deadline == no_deadline && what != wait_for::read_or_write;
    }

    // What ends a wait before it starts: the owner's close, a deadline already passed, the
    // caller's cancellation (`c`, from its cancellation state); nothing when it may start.
    std::optional<wait_result> before_wait(clock::time_point deadline,
                                           asio::cancellation_type_t c) const noexcept
    {
        if (close_requested_)
            return wait_result::closed;
        if (deadline != no_deadline && clock::now() >= deadline)
            return wait_result::deadline;
        if (c != asio::cancellation_type::none)
            return wait_result::cancelled;
        return std::nullopt;
    }

    // The bare waits (see bare()); their error code goes through classify().
    auto wait_response() { return socket_.async_wait_response(asio::as_tuple(asio::deferred)); }
    auto wait_readable(bool write = false)
    {
        return socket_.async_wait(write ? pq_socket::wait_write : pq_socket::wait_read,
                                  asio::as_tuple(asio::deferred));
    }

    // Waits for `what`, until `deadline`, the owner's close or the caller's cancellation.
    asio::awaitable<wait_result> wait(wait_for what, clock::time_point deadline)
    {
        if (auto early =
                before_wait(deadline, (co_await asio::this_coro::cancellation_state).cancelled()))
            co_return *early;
        if (bare(what, deadline))
        {
            // (Two statements, not `?:` around co_await: GCC 12 mishandles temporaries there.)
            if (what == wait_for::response)
            {
                auto [ec] = co_await wait_response();
                co_return classify(ec);
            }
            auto [ec] = co_await wait_readable(what == wait_for::write);
            co_return classify(ec);
        }
        co_return co_await group_wait(what, deadline);
    }

    // Waits until the blocking call `c` has run, until `deadline` (the call is then left to
    // finish on its own), the owner's close or the caller's cancellation.
    asio::awaitable<wait_result> wait_call(std::shared_ptr<blocking_call> c,
                                           clock::time_point deadline)
    {
        if (close_requested_)
            co_return wait_result::closed;
        timer_.expires_at(deadline);
        auto [order, ec, et] =
            co_await asio::experimental::make_parallel_group(
                async_wait_call(std::move(c), timer_.get_executor(), asio::deferred),
                timer_.async_wait(asio::deferred))
                .async_wait(asio::experimental::wait_for_one(), asio::deferred);
        if (order[0] == 1)
            co_return et ? classify(et) : wait_result::deadline;
        co_return classify(ec);
    }

    // What a finished wait's error code means.
    wait_result classify(const boost::system::error_code& ec) const noexcept
    {
        if (!ec)
            return wait_result::ready;
        if (close_requested_)
            return wait_result::closed;
        if (ec == asio::error::operation_aborted)
            return wait_result::cancelled;
        return wait_result::failed;
    }

private:
    asio::awaitable<wait_result> group_wait(wait_for what, clock::time_point deadline)
    {
        using namespace asio::experimental;
        using sd = pq_socket;
        if (deadline == no_deadline) // read_or_write
        {
            auto [order, e1, e2] =
                co_await make_parallel_group(socket_.async_wait(sd::wait_read, asio::deferred),
                                             socket_.async_wait(sd::wait_write, asio::deferred))
                    .async_wait(wait_for_one(), asio::deferred);
            co_return classify(order[0] == 0 ? e1 : e2);
        }
        timer_.expires_at(deadline);
        if (what == wait_for::read_or_write)
        {
            auto [order, e1, e2, et] =
                co_await make_parallel_group(socket_.async_wait(sd::wait_read, asio::deferred),
                                             socket_.async_wait(sd::wait_write, asio::deferred),
                                             timer_.async_wait(asio::deferred))
                    .async_wait(wait_for_one(), asio::deferred);
            if (order[0] == 2)
                co_return et ? classify(et) : wait_result::deadline;
            co_return classify(order[0] == 0 ? e1 : e2);
        }
        auto [order, es, et] =
            co_await make_parallel_group(
                what == wait_for::response
                    ? socket_.async_wait_response(asio::deferred)
                    : socket_.async_wait(what == wait_for::write ? sd::wait_write : sd::wait_read,
                                         asio::deferred),
                timer_.async_wait(asio::deferred))
                .async_wait(wait_for_one(), asio::deferred);
        if (order[0] == 1)
            co_return et ? classify(et) : wait_result::deadline;
        co_return classify(es);
    }

    pq_socket socket_; // a dup of PQsocket(); ours to close
    asio::steady_timer timer_;
    bool close_requested_ = false;
};

} // namespace pgcoro::detail

#endif // PGCORO_DETAIL_PQ_IO_HPP
