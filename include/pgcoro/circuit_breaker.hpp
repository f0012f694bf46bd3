// SPDX-License-Identifier: BSL-1.0
// pgcoro/circuit_breaker.hpp - failing fast while the database is known to be down.
#ifndef PGCORO_CIRCUIT_BREAKER_HPP
#define PGCORO_CIRCUIT_BREAKER_HPP

#include <pgcoro/error.hpp>

#include <pgcoro/detail/resilience_breaker.hpp>
#include <pgcoro/detail/resilience_op.hpp>

#include <boost/asio/awaitable.hpp>

#include <algorithm>
#include <chrono>
#include <exception>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

namespace pgcoro
{

/// A circuit breaker: after repeated failures it *opens* and rejects calls at once with
/// `circuit_open`, so an outage is not made worse by every caller waiting on it; after
/// open_duration it lets a few probe calls through (*half-open*) and closes again when they
/// succeed. It opens on `failure_threshold` consecutive failures, or when the failure rate of
/// the last `window_size` calls reaches `failure_rate_threshold` with at least `minimum_calls`
/// in the window. Only errors for which `counts_as_failure` holds count (by default the
/// transient ones); any other completion, a 23505 for instance, proves the database answered
/// and counts as a success. A cancelled call counts as nothing.
///
/// `Clock` needs `time_point` and `now()` (static or not); tests pass a manual clock. Safe to
/// share between coroutines on several threads: the state sits behind a mutex held for a few
/// arithmetic operations, never across a suspension or a callback.
template <class Clock = std::chrono::steady_clock>
class basic_circuit_breaker
{
public:
    using clock_type = Clock;
    using time_point = typename Clock::time_point;

    /// A closed breaker with `cfg`, reading time from `clock`.
    explicit basic_circuit_breaker(breaker_config cfg = {}, Clock clock = Clock{})
        : cfg_(cfg), clock_(std::move(clock)), machine_(cfg_)
    {
    }
    basic_circuit_breaker(const basic_circuit_breaker&) = delete;
    basic_circuit_breaker& operator=(const basic_circuit_breaker&) = delete;

    /// Installs the function told about every state change. It runs on the thread that caused
    /// the change, outside the breaker's lock, and must not block. Not thread-safe: set it
    /// before sharing the breaker.
    void on_transition(std::function<void(const breaker_transition&)> handler)
    {
        on_transition_ = std::move(handler);
    }

    /// The current state (moving open to half-open first when open_duration has passed).
    breaker_state state()
    {
        std::optional<breaker_transition> change;
        breaker_state s = breaker_state::closed;
        {
            std::lock_guard lock(mutex_);
            change = machine_.advance(cfg_, clock_.now());
            s = machine_.state();
        }
        notify(change);
        return s;
    }

    /// The configuration the breaker was made with.
    const breaker_config& config() const noexcept { return cfg_; }

    /// Runs `op` (a callable returning asio::awaitable<expected<T>>) if the breaker admits it,
    /// and records how it went.
    ///
    /// Completes with: `op`'s result, unchanged.
    /// Errors: `circuit_open` at once, without calling `op`, while the breaker is open or all
    ///   half-open probe slots are taken; otherwise whatever `op` returns.
    /// Cancellation: passed through to `op`; a cancelled call is not counted.
    /// Resumes on: the awaiting coroutine's executor (the breaker never switches executor).
    /// Lifetime: the breaker must outlive the call; `op` is owned by it. An exception from
    ///   `op` gives back its probe slot and is rethrown.
    template <detail::expected_operation Op>
    auto run(Op op) -> boost::asio::awaitable<expected<detail::operation_value_t<Op>>>
    {
        std::optional<breaker_transition> change;
        typename detail::breaker_machine<time_point>::admission a;
        {
            std::lock_guard lock(mutex_);
            a = machine_.admit(cfg_, clock_.now());
        }
        notify(a.change);
        if (!a.admitted)
        {
            auto wait =
                std::chrono::duration_cast<std::chrono::milliseconds>(a.open_until - clock_.now());
            co_return fail(errc::circuit_open,
                           "circuit breaker open; next probe in " +
                               std::to_string(std::max<long long>(0, wait.count())) + " ms");
        }

        // Gives the probe slot back if this frame is destroyed while `op` runs (its io_context
        // destroyed, its parent frame gone): otherwise the half-open breaker would admit no
        // probe ever again.
        admitted_call admitted{*this, a.generation};
        const auto start = clock_.now();
        std::exception_ptr thrown;
        std::optional<expected<detail::operation_value_t<Op>>> r;
        try
        {
            r.emplace(co_await op());
        }
        catch (...)
        {
            thrown = std::current_exception();
        }
        const auto elapsed = clock_.now() - start;
        auto outcome = thrown ? detail::call_outcome::ignored : classify(*r, elapsed);
        {
            std::lock_guard lock(mutex_);
            change = machine_.complete(cfg_, a.generation, outcome, clock_.now());
            admitted.completed = true;
        }
        notify(change);
        if (thrown)
            std::rethrow_exception(thrown);
        co_return std::move(*r);
    }

private:
    // An admitted call that has not completed; its destructor completes it as `ignored`.
    struct admitted_call
    {
        basic_circuit_breaker& b;
        std::uint64_t generation;
        bool completed = false;
        ~admitted_call()
        {
            if (completed)
                return;
            try
            {
                std::lock_guard lock(b.mutex_);
                (void)b.machine_.complete(b.cfg_, generation, detail::call_outcome::ignored,
                                          b.clock_.now());
            }
            catch (...)
            {
            }
        }
    };

    template <class R>
    detail::call_outcome classify(const R& r, typename Clock::duration elapsed) const
    {
        if (!r && r.error().is(errc::cancelled))
            return detail::call_outcome::ignored;
        if (!r &&
            (cfg_.counts_as_failure ? cfg_.counts_as_failure(r.error()) : r.error().transient()))
            return detail::call_outcome::failure;
        if (cfg_.slow_call_threshold.count() > 0 && elapsed >= cfg_.slow_call_threshold)
            return detail::call_outcome::failure;
        return detail::call_outcome::success;
    }

    void notify(const std::optional<breaker_transition>& change) const
    {
        if (change && on_transition_)
            on_transition_(*change);
    }

    const breaker_config cfg_;
    Clock clock_;
    std::mutex mutex_;
    detail::breaker_machine<time_point> machine_;
    std::function<void(const breaker_transition&)> on_transition_;
};

/// The circuit breaker on std::chrono::steady_clock.
using circuit_breaker = basic_circuit_breaker<>;

} // namespace pgcoro

#endif // PGCORO_CIRCUIT_BREAKER_HPP
