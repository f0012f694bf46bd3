// SPDX-License-Identifier: BSL-1.0
// pgcoro/retry.hpp - retrying an operation on transient failures, with backoff and a budget.
#ifndef PGCORO_RETRY_HPP
#define PGCORO_RETRY_HPP

#include <pgcoro/backoff.hpp>
#include <pgcoro/error.hpp>
#include <pgcoro/with_timeout.hpp>

#include <pgcoro/detail/resilience_op.hpp>
#include <pgcoro/detail/resilience_random.hpp>

#include <boost/asio/awaitable.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

namespace pgcoro
{

/// When and how often retry() tries an operation again. A literal type, so a policy can be a
/// `constexpr` preset. The defaults follow the design notes: at most 3 attempts, waiting about
/// 1 s, then 2 s (4 s with a 4th attempt), retrying only transient failures that cannot have
/// written anything.
///
/// The double-write hazard: when a statement fails *after it was sent* - the connection broke
/// (`connection_lost`) or a deadline passed (`timeout`) - nobody knows whether the server
/// committed it. Running an INSERT again may insert twice. So those two errors are retried
/// only when `idempotent` is true (the statement may safely run twice: a SELECT, an UPSERT, an
/// UPDATE setting absolute values) or when the operation re-runs a whole transaction, which
/// transact() does for serialization failures. Failures that prove nothing was done are
/// retried by default: `connect_failed`, `pool_timeout`, `too_many_waiters`, 40001, 40P01,
/// 53300, 57P01-57P03 (see is_transient()). `circuit_open` is not: an open breaker fails the
/// call at once instead of sleeping through backoffs it will refuse again (set `retry_if` to
/// retry it).
struct retry_policy
{
    /// Total number of attempts, the first included. Default 3; range 1..100; 1 never retries.
    unsigned max_attempts = 3;
    /// Delays between attempts. Default 1 s initial, ×2, capped at 30 s, equal jitter.
    backoff_policy backoff{};
    /// Overall deadline for all attempts and sleeps, measured from the call. Default 0 (none);
    /// range 0..24 h. No retry starts whose sleep would end past it, and each attempt is given
    /// at most the time left (expiry then reads as `timeout`).
    std::chrono::milliseconds deadline{0};
    /// Deadline of each single attempt (with_timeout around it). Default 0 (none); range
    /// 0..24 h. A timed-out attempt is only retried when `idempotent` is true.
    std::chrono::milliseconds attempt_timeout{0};
    /// True when the operation may run twice without harm, which allows retrying
    /// `connection_lost` and `timeout`. Default false.
    bool idempotent = false;
    /// Which failures to retry; nullptr (the default) means error::transient() except
    /// `circuit_open`. The `idempotent` rule and `max_attempts` apply on top, and `cancelled`
    /// is never retried.
    bool (*retry_if)(const error&) = nullptr;
};

/// True when `e` leaves unknown whether a statement that was sent took effect:
/// `connection_lost` or `timeout`.
inline bool outcome_unknown(const error& e) noexcept
{
    return e.is(errc::connection_lost) || e.is(errc::timeout);
}

/// Whether `policy` retries failure `e`, ignoring attempts, deadline and budget. Pure.
inline bool is_retryable(const retry_policy& policy, const error& e) noexcept
{
    if (e.is(errc::cancelled))
        return false;
    if (!policy.idempotent && outcome_unknown(e))
        return false;
    if (policy.retry_if)
        return policy.retry_if(e);
    return e.transient() && !e.is(errc::circuit_open); // an open breaker fails fast
}

/// Configuration of a retry_budget. A literal type.
struct retry_budget_config
{
    /// Retries allowed per call made, over the window. Default 0.2 (20% extra load at most);
    /// range 0.0..10.0; 0 allows only `min_retries`.
    double ratio = 0.2;
    /// How long a call keeps counting. Default 10 s; range 10 ms..1 h; measured in tenths of it.
    std::chrono::milliseconds window{std::chrono::seconds(10)};
    /// Retries allowed per window whatever the traffic, so a quiet client can still retry.
    /// Default 10; range 0..1,000,000.
    unsigned min_retries = 10;
};

/// Keeps retries from amplifying an outage: over a sliding window, retries may not exceed
/// `min_retries + ratio × calls`. Token-bucket style: every call deposits `ratio` of a token
/// that expires after the window; every retry withdraws one whole token. Share one budget
/// between all retry() calls that hit the same database. Thread-safe (a short mutex).
class retry_budget
{
public:
    using clock = std::chrono::steady_clock;

    /// A budget with `cfg` (see retry_budget_config for ranges).
    explicit retry_budget(retry_budget_config cfg = {}) noexcept : cfg_(cfg)
    {
        auto width = cfg_.window / slots;
        slot_width_ = width.count() > 0 ? width : std::chrono::milliseconds(1);
    }
    retry_budget(const retry_budget&) = delete;
    retry_budget& operator=(const retry_budget&) = delete;

    /// Counts one call (retry() does this once per call, not per attempt).
    void record_call(clock::time_point now) noexcept
    {
        std::lock_guard lock(mutex_);
        slot_at(now).calls++;
    }

    /// Takes one retry token if the window has one; false means "do not retry".
    bool try_withdraw(clock::time_point now) noexcept
    {
        std::lock_guard lock(mutex_);
        auto [calls, retries] = totals(now);
        if (static_cast<double>(retries) + 1.0 >
            static_cast<double>(cfg_.min_retries) + cfg_.ratio * static_cast<double>(calls))
            return false;
        slot_at(now).retries++;
        return true;
    }

    /// Retry tokens left at `now` (may be fractional).
    double available(clock::time_point now) const noexcept
    {
        std::lock_guard lock(mutex_);
        auto [calls, retries] = totals(now);
        return std::max(0.0, static_cast<double>(cfg_.min_retries) +
                                 cfg_.ratio * static_cast<double>(calls) -
                                 static_cast<double>(retries));
    }

private:
    // Ten slots of window/10: counts age out in steps of a tenth of the window, which is exact
    // enough for a budget and needs no per-call allocation.
    static constexpr int slots = 10;
    struct slot
    {
        std::int64_t epoch = -1; // which slot_width_ interval this slot currently counts
        std::uint64_t calls = 0;
        std::uint64_t retries = 0;
    };

    std::int64_t epoch_of(clock::time_point now) const noexcept
    {
        return static_cast<std::int64_t>(now.time_since_epoch() / slot_width_);
    }
    slot& slot_at(clock::time_point now) noexcept
    {
        auto e = epoch_of(now);
        auto& s = ring_[static_cast<std::size_t>(((e % slots) + slots) % slots)];
        if (s.epoch != e)
            s = slot{e, 0, 0};
        return s;
    }
    std::pair<std::uint64_t, std::uint64_t> totals(clock::time_point now) const noexcept
    {
        auto e = epoch_of(now);
        std::uint64_t calls = 0, retries = 0;
        for (const auto& s : ring_)
            if (s.epoch > e - slots && s.epoch <= e)
            {
                calls += s.calls;
                retries += s.retries;
            }
        return {calls, retries};
    }

    retry_budget_config cfg_;
    std::chrono::milliseconds slot_width_;
    mutable std::mutex mutex_;
    std::array<slot, slots> ring_{};
};

/// What retry() tells its observer before each retry.
struct retry_event
{
    unsigned attempt = 0;               ///< the attempt that just failed (1 = the first)
    std::chrono::milliseconds delay{0}; ///< how long retry() now sleeps before the next one
    error failure;                      ///< why that attempt failed
};

/// What retry() needs from the outside world, injectable so that tests control time and
/// randomness. Every member may be left empty for the default.
struct retry_hooks
{
    /// Limits retries across calls; empty: no budget.
    std::shared_ptr<retry_budget> budget;
    /// Called before each retry's sleep, on the awaiting coroutine's thread; must not block.
    std::function<void(const retry_event&)> on_retry;
    /// The current time; empty: std::chrono::steady_clock::now.
    std::function<std::chrono::steady_clock::time_point()> now;
    /// Waits between attempts, returning `cancelled` when interrupted; empty: a steady_timer
    /// on the awaiting coroutine's executor. Tests pass one that records and returns at once.
    std::function<boost::asio::awaitable<expected<void>>(std::chrono::milliseconds)> sleep;
    /// A uniform sample in [0, 1) for jitter; empty: a per-thread std::mt19937_64.
    std::function<double()> uniform;
};

/// Runs `op` (a callable returning asio::awaitable<expected<T>>), calling it again after a
/// backoff delay while it fails with a retryable error (see is_retryable()), until it
/// succeeds, `max_attempts` is reached, the deadline would pass or the budget is spent.
///
/// Completes with: the first successful result.
/// Errors: the last attempt's error when retrying stops; `timeout` when an attempt exceeded
///   attempt_timeout or the overall deadline; `cancelled` when the awaiting coroutine was
///   cancelled during a sleep.
/// Cancellation: terminal cancellation of the awaiting coroutine reaches the running attempt
///   (or the sleep) and stops retrying; an attempt that returns `cancelled` is not retried.
/// Resumes on: the awaiting coroutine's executor.
/// Lifetime: `op` and `hooks` are owned by the call; what `op` refers to must outlive it.
///   Exceptions thrown by `op` propagate and end the retrying.
template <detail::expected_operation Op>
auto retry(retry_policy policy, Op op, retry_hooks hooks = {})
    -> boost::asio::awaitable<expected<detail::operation_value_t<Op>>>
{
    using clock = std::chrono::steady_clock;
    auto now = [&]
    {
        return hooks.now ? hooks.now() : clock::now();
    };
    const auto start = now();
    const bool has_deadline = policy.deadline.count() > 0;
    const auto deadline_at = start + policy.deadline;
    if (hooks.budget)
        hooks.budget->record_call(start);

    std::chrono::milliseconds previous{0};
    for (unsigned attempt = 1;; ++attempt)
    {
        // The attempt gets the smaller of its own timeout and what is left of the deadline.
        auto limit = clock::duration::max();
        if (policy.attempt_timeout.count() > 0)
            limit = policy.attempt_timeout;
        if (has_deadline)
            limit = std::min(limit, std::max(clock::duration::zero(), deadline_at - now()));
        // No co_await inside ?: or || in here: GCC 12 miscompiles the temporaries of that form.
        std::optional<expected<detail::operation_value_t<Op>>> r;
        if (limit == clock::duration::max())
            r.emplace(co_await op());
        else
            r.emplace(co_await with_timeout(limit, std::ref(op)));
        if (r->has_value() || attempt >= policy.max_attempts || !is_retryable(policy, r->error()))
            co_return std::move(*r);
        const bool cancelled = co_await detail::cancellation_requested();
        if (cancelled)
            co_return std::move(*r);

        auto delay = backoff(policy.backoff, attempt, previous,
                             hooks.uniform ? hooks.uniform() : detail::default_uniform01());
        if (has_deadline && now() + delay >= deadline_at)
            co_return std::move(*r); // we would wake up with no time left for the next attempt
        if (hooks.budget && !hooks.budget->try_withdraw(now()))
            co_return std::move(*r);
        if (hooks.on_retry)
            hooks.on_retry(retry_event{attempt, delay, r->error()});
        expected<void> slept;
        if (hooks.sleep)
            slept = co_await hooks.sleep(delay);
        else
            slept = co_await detail::steady_sleep(delay);
        if (!slept)
            co_return tl::unexpected(std::move(slept.error()));
        previous = delay;
    }
}

} // namespace pgcoro

#endif // PGCORO_RETRY_HPP
