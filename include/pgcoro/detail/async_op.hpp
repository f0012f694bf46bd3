// SPDX-License-Identifier: BSL-1.0
// pgcoro/detail/async_op.hpp - one of pgcoro's coroutine operations as an Asio asynchronous
// operation that takes any completion token (callbacks, use_future, deferred, as_tuple,
// parallel_group, use_awaitable, ...).
#ifndef PGCORO_DETAIL_ASYNC_OP_HPP
#define PGCORO_DETAIL_ASYNC_OP_HPP

#include <pgcoro/detail/spawn_on.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_allocator.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/strand.hpp>

#include <cstddef>
#include <exception>
#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>

namespace pgcoro::detail
{

// The handler's cancellation slot while the operation owns it: it holds a
// forward_cancellation with the operation's executor, so it is cleared before the handler
// runs, and also when the handler is destroyed without running (its io_context went away):
// that executor must not outlive its context in the caller's slot.
template <class Slot>
class slot_owner
{
public:
    explicit slot_owner(Slot s) noexcept : slot_(std::move(s)) {}
    slot_owner(slot_owner&& o) noexcept : slot_(std::move(o.slot_)), owned_(o.owned_)
    {
        o.owned_ = false;
    }
    slot_owner& operator=(slot_owner&&) = delete;
    ~slot_owner() { clear(); }
    // Disconnects the slot (once).
    void clear() noexcept
    {
        if (std::exchange(owned_, false) && slot_.is_connected())
            slot_.clear();
    }

private:
    Slot slot_;
    bool owned_ = true;
};

// Delivers an operation's outcome (`value...`: none when it yields void) to `handler` through
// `work` (the handler's executor, its work counted) with the handler's allocator; there the
// handler's cancellation slot (`slot`) is disconnected first.
template <class Handler, class Work, class Slot, class... Value>
void deliver(Handler handler, Work work, slot_owner<Slot> slot, Value... value)
{
    namespace asio = boost::asio;
    auto alloc = asio::get_associated_allocator(handler);
    asio::dispatch(work, asio::bind_allocator(alloc,
                                              [handler = std::move(handler), slot = std::move(slot),
                                               ... value = std::move(value)]() mutable
                                              {
                                                  slot.clear();
                                                  std::move(handler)(std::move(value)...);
                                              }));
}

// co_spawn's completion handler for an operation yielding T (`void(exception_ptr[, T])`).
// pgcoro's operations report errors as values: only bad_alloc and the like are rethrown.
// `state` owns the signal co_spawn's cancellation slot is bound to: Boost 1.81's awaitable
// thread clears that slot each time it resumes, until its entry point hands this handler
// over, so the handler (kept in the entry point's frame until then) keeps the signal alive.
template <class T, class Handler, class Work, class Slot>
auto make_completion(Handler handler, Work work, slot_owner<Slot> slot,
                     std::shared_ptr<forwarded_cancellation> state)
{
    if constexpr (std::is_void_v<T>)
        return [handler = std::move(handler), work = std::move(work), slot = std::move(slot),
                state = std::move(state)](std::exception_ptr e) mutable
        {
            if (e)
                std::rethrow_exception(e);
            deliver(std::move(handler), std::move(work), std::move(slot));
        };
    else
        return [handler = std::move(handler), work = std::move(work), slot = std::move(slot),
                state = std::move(state)](std::exception_ptr e, T value) mutable
        {
            if (e)
                std::rethrow_exception(e);
            deliver(std::move(handler), std::move(work), std::move(slot), std::move(value));
        };
}

// The initiation of async_run: starts `op` on `ex` (on a strand of `ex` when `own_strand`)
// from a posted function (so the handler never runs inside the initiating function), forwards
// the handler's cancellation slot to it (posted there, dropped once `op` is done: see
// spawn_on.hpp for why), and delivers the result to the handler through its associated
// executor (default: `ex`) and allocator, keeping that executor's work counted until then.
struct async_run_initiation
{
    template <class Handler, class T>
    void operator()(Handler handler, boost::asio::any_io_executor ex, boost::asio::awaitable<T> op,
                    bool own_strand) const
    {
        namespace asio = boost::asio;
        asio::any_io_executor runner =
            own_strand ? asio::any_io_executor(asio::make_strand(ex)) : ex;
        auto state = std::make_shared<forwarded_cancellation>();
        auto slot = asio::get_associated_cancellation_slot(handler);
        if (slot.is_connected())
            slot.template emplace<forward_cancellation<asio::any_io_executor>>(
                forward_cancellation<asio::any_io_executor>{state, runner});
        slot_owner<decltype(slot)> owner(slot);
        auto work = asio::prefer(asio::get_associated_executor(handler, ex),
                                 asio::execution::outstanding_work.tracked);
        asio::post(runner,
                   [runner, state, op = std::move(op), handler = std::move(handler),
                    work = std::move(work), owner = std::move(owner)]() mutable
                   {
                       auto done = make_completion<T>(std::move(handler), std::move(work),
                                                      std::move(owner), state);
                       asio::co_spawn(
                           runner, run_marking_done(std::move(op), state),
                           asio::bind_cancellation_slot(state->signal.slot(), std::move(done)));
                   });
    }
};

template <class T>
struct completion_signature
{
    using type = void(T);
};
template <>
struct completion_signature<void>
{
    using type = void();
};

// Runs the awaitable `op` (which yields T) as an asynchronous operation completing with
// `void(T)` (`void()` when T is void) through `token`. `op` runs on a strand of `ex` (or on
// `ex` itself when the object requires all its calls there: `own_strand` false); the handler
// is invoked as Asio's rules say: never from within this call, on its associated executor
// (default `ex`). Precondition: `ex` is not empty.
template <class T, class Token>
auto async_run(boost::asio::any_io_executor ex, boost::asio::awaitable<T> op, Token&& token,
               bool own_strand = true)
{
    using signature = typename completion_signature<T>::type;
    return boost::asio::async_initiate<Token, signature>(async_run_initiation{}, token,
                                                         std::move(ex), std::move(op), own_strand);
}

// Calls `f(token, args...)` for arguments `(args..., token)`: the Asio convention of the
// completion token last, after a variadic parameter list.
template <class F, class... Args>
decltype(auto) with_token_last(F&& f, Args&&... args)
{
    static_assert(sizeof...(Args) >= 1, "the last argument must be a completion token");
    auto refs = std::forward_as_tuple(std::forward<Args>(args)...);
    constexpr std::size_t n = sizeof...(Args) - 1;
    return [&]<std::size_t... I>(std::index_sequence<I...>)->decltype(auto)
    {
        return std::forward<F>(f)(std::get<n>(std::move(refs)), std::get<I>(std::move(refs))...);
    }
    (std::make_index_sequence<n>{});
}

// An object's `async_query(sql, params..., token)`: `start(params...)` makes the statement's
// awaitable, which async_run() runs on `ex` with the token that ends `args`.
template <class Start, class... ParamsThenToken>
auto async_statement(boost::asio::any_io_executor ex, bool own_strand, Start start,
                     ParamsThenToken&&... args)
{
    return with_token_last(
        [&](auto&& token, auto&&... params)
        {
            return async_run(std::move(ex), start(std::forward<decltype(params)>(params)...),
                             std::forward<decltype(token)>(token), own_strand);
        },
        std::forward<ParamsThenToken>(args)...);
}

} // namespace pgcoro::detail

#endif // PGCORO_DETAIL_ASYNC_OP_HPP
