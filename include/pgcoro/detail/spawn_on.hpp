// SPDX-License-Identifier: BSL-1.0
// pgcoro/detail/spawn_on.hpp - run a coroutine on another executor (a strand) and await it,
// forwarding the caller's cancellation without Boost 1.81's dangling-pointer race.
#ifndef PGCORO_DETAIL_SPAWN_ON_HPP
#define PGCORO_DETAIL_SPAWN_ON_HPP

#include <boost/asio/awaitable.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <memory>
#include <utility>

namespace pgcoro::detail
{

// Why not plain `co_await co_spawn(ex, op, use_awaitable)`: when the caller is cancelled, Boost
// 1.81's co_spawn cancellation handler dispatches `emit` to `ex` with a pointer to a signal it
// owns; if `op` finishes before that runs, the handler is gone and the emit is a use-after-free
// (seen under a 4-thread stress test: a segfault in cancellation_signal::emit). Here the signal
// lives in state shared with the posted emission, and the emission is skipped once `op` is done;
// both `done` and the emission are only touched on `ex`.
struct forwarded_cancellation
{
    boost::asio::cancellation_signal signal;
    bool done = false; // on `ex` only
};

template <class Executor>
struct forward_cancellation
{
    std::shared_ptr<forwarded_cancellation> state;
    Executor ex;
    void operator()(boost::asio::cancellation_type_t type) const
    {
        boost::asio::post(ex,
                          [s = state, type]
                          {
                              if (!s->done)
                                  s->signal.emit(type);
                          });
    }
};

template <class T>
boost::asio::awaitable<T> run_marking_done(boost::asio::awaitable<T> op,
                                           std::shared_ptr<forwarded_cancellation> state)
{
    struct mark
    {
        forwarded_cancellation& s;
        ~mark() { s.done = true; }
    } m{*state};
    co_return co_await std::move(op);
}

// Runs `op` as its own coroutine on `ex` and returns its result; the caller resumes on its own
// executor. The caller's cancellation reaches `op` (posted to `ex`) while `op` runs.
template <class T, class Executor>
boost::asio::awaitable<T> spawn_on(const Executor& ex, boost::asio::awaitable<T> op)
{
    namespace asio = boost::asio;
    auto cs = co_await asio::this_coro::cancellation_state;
    auto state = std::make_shared<forwarded_cancellation>();
    auto slot = cs.slot();
    if (slot.is_connected())
        slot.template emplace<forward_cancellation<Executor>>(
            forward_cancellation<Executor>{state, ex});
    auto r = co_await asio::co_spawn(
        ex, run_marking_done(std::move(op), state),
        asio::bind_cancellation_slot(state->signal.slot(), asio::use_awaitable));
    if (slot.is_connected())
        slot.clear();
    co_return r;
}

} // namespace pgcoro::detail

#endif // PGCORO_DETAIL_SPAWN_ON_HPP
