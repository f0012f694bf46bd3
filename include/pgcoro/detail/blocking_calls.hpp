// SPDX-License-Identifier: BSL-1.0
// pgcoro/detail/blocking_calls.hpp - the few calls that must block (getaddrinfo, PG 15's
// PQcancel), run on a small set of helper threads and awaited with a deadline.
#ifndef PGCORO_DETAIL_BLOCKING_CALLS_HPP
#define PGCORO_DETAIL_BLOCKING_CALLS_HPP

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/execution/context.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/query.hpp>
#include <boost/system/error_code.hpp>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace pgcoro::detail
{

namespace asio = boost::asio;

// Why a facility and not a thread per io_context: one call that never returns (a cancel request
// to a server that accepts and stays silent, a resolver that does not answer) must not delay
// any other connection's call, nor io_context destruction, nor program exit.
//
// - Calls run on up to max_threads detached helper threads, started on demand; a thread idle for
//   idle_exit ends. A stuck call ties up one thread; the others go on.
// - A call queued behind max_threads stuck ones is skipped when its caller's deadline has passed
//   (the caller gave up already); past max_queued waiting calls, a new one is refused at once.
// - The facility is never destroyed (a detached thread may still be inside getaddrinfo or
//   PQcancel when main() returns), and a call's state is shared with its caller, so neither side
//   outlives what it touches.
// - A caller waits with async_wait(call, token): the completion is posted to the caller's
//   executor, never run on the helper thread; per-operation cancellation (all types) ends the
//   wait at once, leaving the call to finish on its own. Waits pending when their io_context
//   is destroyed are destroyed with it (as Asio destroys its own pending operations).

// Whether an execution context still takes posted work, and the waits pending in it.
struct blocking_context
{
    std::mutex mu;
    bool alive = true;
    std::vector<struct blocking_call*> waiting; // calls with a stored handler
};

// A caller's pending wait on a blocking call, type-erased. (Not any_completion_handler: its
// move assignment in Boost 1.81 wraps instead of moving, and its executor cannot be required
// to be blocking.never.)
struct wait_handler_base
{
    virtual ~wait_handler_base() = default;
    // Posts the handler with `ec` to its associated executor (consumes it).
    virtual void post(boost::system::error_code ec) = 0;
};

// The completion goes to the handler's associated executor, or else to the waiting I/O
// object's executor: never to Asio's system executor (a handler without an executor of its own,
// such as a parallel group's, would then run on a thread of its own, beside the io_context).
template <class Handler>
struct wait_handler final : wait_handler_base
{
    wait_handler(Handler&& h, const asio::any_io_executor& io_ex)
        : ex_(asio::get_associated_executor(h, io_ex)), h_(std::move(h))
    {
    }
    void post(boost::system::error_code ec) override
    {
        asio::post(ex_, [h = std::move(h_), ec]() mutable { std::move(h)(ec); });
    }
    asio::associated_executor_t<Handler, asio::any_io_executor> ex_;
    Handler h_;
};

// One blocking call: what the helper thread reports and the caller's wait, if any.
struct blocking_call
{
    using handler_type = std::unique_ptr<wait_handler_base>;

    explicit blocking_call(std::shared_ptr<blocking_context> c) : ctx(std::move(c)) {}
    virtual ~blocking_call() = default;
    blocking_call(const blocking_call&) = delete;
    blocking_call& operator=(const blocking_call&) = delete;

    // Runs on the helper thread. Writes only the derived call's result members.
    virtual void run() noexcept = 0;

    std::shared_ptr<blocking_context> ctx;
    std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
    bool done = false;    // under ctx->mu
    bool skipped = false; // the deadline passed before a thread took it (under ctx->mu)
    handler_type handler; // the caller's pending wait (under ctx->mu)
};

// Registers per execution context; its shutdown (first thing in ~io_context) stops posting
// into it and destroys the waits still pending there.
class blocking_context_service : public asio::execution_context::service
{
public:
    using key_type = blocking_context_service;
    inline static asio::execution_context::id id;

    explicit blocking_context_service(asio::execution_context& c)
        : asio::execution_context::service(c)
    {
    }
    const std::shared_ptr<blocking_context>& context() const noexcept { return ctx_; }

private:
    void shutdown() override
    {
        std::vector<blocking_call::handler_type> doomed;
        {
            std::lock_guard lk(ctx_->mu);
            ctx_->alive = false;
            for (blocking_call* c : ctx_->waiting)
                doomed.push_back(std::move(c->handler));
            ctx_->waiting.clear();
        }
        // Destroyed outside the lock: a handler owns a coroutine frame whose destruction may
        // start another call.
    }

    std::shared_ptr<blocking_context> ctx_ = std::make_shared<blocking_context>();
};

class blocking_calls
{
public:
    static constexpr std::size_t max_threads = 8;
    static constexpr std::size_t max_queued = 256;
    static constexpr std::chrono::seconds idle_exit{10};

    // The process's facility (never destroyed: see above).
    static blocking_calls& instance()
    {
        static blocking_calls* p = new blocking_calls;
        return *p;
    }

    // Queues `c` to run on a helper thread. False when refused (max_queued calls waiting, or no
    // thread could be started); then nothing of `c` runs.
    bool submit(std::shared_ptr<blocking_call> c)
    {
        std::unique_lock lk(mu_);
        if (queue_.size() >= max_queued)
            return false;
        queue_.push_back(std::move(c));
        if (idle_ > queue_.size() - 1)
        {
            cv_.notify_one();
            return true;
        }
        if (threads_ < max_threads)
        {
            try
            {
                std::thread([this] { work(); }).detach();
                ++threads_;
            }
            catch (...)
            {
                if (threads_ == 0)
                {
                    queue_.pop_back();
                    return false;
                }
            }
        }
        return true;
    }

private:
    blocking_calls() = default;

    void work() noexcept
    {
        std::unique_lock lk(mu_);
        for (;;)
        {
            ++idle_;
            const bool got = cv_.wait_for(lk, idle_exit, [this] { return !queue_.empty(); });
            --idle_;
            if (!got)
            {
                --threads_;
                return;
            }
            auto c = std::move(queue_.front());
            queue_.pop_front();
            lk.unlock();
            if (std::chrono::steady_clock::now() < c->deadline)
                c->run();
            else
            {
                std::lock_guard clk(c->ctx->mu);
                c->skipped = true;
            }
            finish(*c);
            c.reset(); // the caller may hold the last other reference; free it off the lock
            lk.lock();
        }
    }

    // Marks `c` done and posts its waiter's completion, if it still waits in a live context.
    static void finish(blocking_call& c) noexcept
    {
        std::lock_guard lk(c.ctx->mu);
        c.done = true;
        if (!c.handler)
            return;
        std::erase(c.ctx->waiting, &c);
        if (!c.ctx->alive)
            return; // the context's shutdown destroys nothing of ours: it took no handler
        auto h = std::move(c.handler);
        try
        {
            h->post({});
        }
        catch (...)
        {
            // post() allocates; out of memory the waiter's frame is destroyed with the handler
            // and its deadline cannot fire any more: nothing better can be done here.
        }
    }

    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::shared_ptr<blocking_call>> queue_;
    std::size_t threads_ = 0;
    std::size_t idle_ = 0;
};

// The blocking_context of the io_context behind `ex`.
inline std::shared_ptr<blocking_context> blocking_context_of(const asio::any_io_executor& ex)
{
    return asio::use_service<blocking_context_service>(asio::query(ex, asio::execution::context))
        .context();
}

namespace blocking_detail
{
struct cancel_wait
{
    std::shared_ptr<blocking_call> c;
    void operator()(asio::cancellation_type_t) const
    {
        blocking_call::handler_type h;
        {
            std::lock_guard lk(c->ctx->mu);
            if (!c->handler)
                return;
            h = std::move(c->handler);
            std::erase(c->ctx->waiting, c.get());
        }
        h->post(asio::error::operation_aborted);
    }
};

struct initiate_wait
{
    template <class Handler>
    void operator()(Handler&& handler, std::shared_ptr<blocking_call> c,
                    const asio::any_io_executor& io_ex) const
    {
        auto slot = asio::get_associated_cancellation_slot(handler);
        blocking_call::handler_type h = std::make_unique<wait_handler<std::decay_t<Handler>>>(
            std::forward<Handler>(handler), io_ex);
        {
            std::lock_guard lk(c->ctx->mu);
            if (!c->done && c->ctx->alive)
            {
                if (slot.is_connected())
                    slot.template emplace<cancel_wait>(cancel_wait{c});
                c->handler = std::move(h);
                c->ctx->waiting.push_back(c.get());
                return;
            }
        }
        h->post({});
    }
};
} // namespace blocking_detail

// Waits until `c` has run (or was skipped). Signature void(error_code): success when it is done,
// operation_aborted when the wait was cancelled. The completion is posted, never inline, to the
// handler's associated executor or else to `io_ex` (the waiting I/O object's executor).
template <class Token>
auto async_wait_call(std::shared_ptr<blocking_call> c, const asio::any_io_executor& io_ex,
                     Token&& token)
{
    return asio::async_initiate<Token, void(boost::system::error_code)>(
        blocking_detail::initiate_wait{}, token, std::move(c), io_ex);
}

// Whether `c` has run (or was skipped).
inline bool is_done(const blocking_call& c)
{
    std::lock_guard lk(c.ctx->mu);
    return c.done;
}

} // namespace pgcoro::detail

#endif // PGCORO_DETAIL_BLOCKING_CALLS_HPP
