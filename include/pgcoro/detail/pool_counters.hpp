// SPDX-License-Identifier: BSL-1.0
// pgcoro/detail/pool_counters.hpp - the pool's gauges and totals: written under the pool's
// lock, read from any thread.
#ifndef PGCORO_DETAIL_POOL_COUNTERS_HPP
#define PGCORO_DETAIL_POOL_COUNTERS_HPP

#include <pgcoro/close_reason.hpp>
#include <pgcoro/events.hpp>
#include <pgcoro/pool_stats.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace pgcoro::detail
{

// Relaxed atomics: stats() reads a consistent-enough snapshot without the lock.
struct pool_counters
{
    // Counters change only under the driver's lock: a plain load and store, not a locked
    // read-modify-write (stats() reads them relaxed from any thread).
    static void bump(std::atomic<std::uint64_t>& c) noexcept
    {
        c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    }

    // Gauges and totals, from any thread.
    pool_stats stats() const noexcept
    {
        pool_stats s;
        s.max_size = gauges.max_size.load(std::memory_order_relaxed);
        s.size = gauges.size.load(std::memory_order_relaxed);
        s.idle = gauges.idle.load(std::memory_order_relaxed);
        s.leased = gauges.leased.load(std::memory_order_relaxed);
        s.connecting = gauges.connecting.load(std::memory_order_relaxed);
        s.waiters = gauges.waiters.load(std::memory_order_relaxed);
        s.acquired_immediately = totals.acquired_immediately.load(std::memory_order_relaxed);
        s.acquired_after_wait = totals.acquired_after_wait.load(std::memory_order_relaxed);
        s.timed_out = totals.timed_out.load(std::memory_order_relaxed);
        s.cancelled = totals.cancelled.load(std::memory_order_relaxed);
        s.rejected = totals.rejected.load(std::memory_order_relaxed);
        s.opened = totals.opened.load(std::memory_order_relaxed);
        s.connect_failures = totals.connect_failures.load(std::memory_order_relaxed);
        s.closed_idle = totals.closed_idle.load(std::memory_order_relaxed);
        s.closed_lifetime = totals.closed_lifetime.load(std::memory_order_relaxed);
        s.closed_broken = totals.closed_broken.load(std::memory_order_relaxed);
        s.closed_validation = totals.closed_validation.load(std::memory_order_relaxed);
        s.closed_shutdown = totals.closed_shutdown.load(std::memory_order_relaxed);
        s.leaks_reported = totals.leaks_reported.load(std::memory_order_relaxed);
        return s;
    }

    // The total that counts closes for `why`.
    std::atomic<std::uint64_t>& closed(close_reason why) noexcept
    {
        switch (why)
        {
        case close_reason::idle_timeout:
            return totals.closed_idle;
        case close_reason::lifetime:
            return totals.closed_lifetime;
        case close_reason::validation_failed:
            return totals.closed_validation;
        case close_reason::shutdown:
            return totals.closed_shutdown;
        case close_reason::broken:
            break;
        }
        return totals.closed_broken;
    }

    // How an acquire ended.
    void count(acquire_outcome how) noexcept
    {
        switch (how)
        {
        case acquire_outcome::immediate:
            bump(totals.acquired_immediately);
            break;
        case acquire_outcome::waited:
            bump(totals.acquired_after_wait);
            break;
        case acquire_outcome::timed_out:
            bump(totals.timed_out);
            break;
        case acquire_outcome::cancelled:
            bump(totals.cancelled);
            break;
        case acquire_outcome::rejected:
            bump(totals.rejected);
            break;
        }
    }

    struct
    {
        std::atomic<std::size_t> max_size{0}, size{0}, idle{0}, leased{0}, connecting{0},
            waiters{0};
    } gauges;
    struct
    {
        std::atomic<std::uint64_t> acquired_immediately{0}, acquired_after_wait{0}, timed_out{0},
            cancelled{0}, rejected{0}, opened{0}, connect_failures{0}, closed_idle{0},
            closed_lifetime{0}, closed_broken{0}, closed_validation{0}, closed_shutdown{0},
            leaks_reported{0};
    } totals;
};

} // namespace pgcoro::detail

#endif // PGCORO_DETAIL_POOL_COUNTERS_HPP
