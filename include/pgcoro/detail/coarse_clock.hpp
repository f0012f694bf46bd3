// SPDX-License-Identifier: BSL-1.0
// pgcoro/detail/coarse_clock.hpp - steady_clock's time at the last kernel tick, for cheap stamps.
#ifndef PGCORO_DETAIL_COARSE_CLOCK_HPP
#define PGCORO_DETAIL_COARSE_CLOCK_HPP

#include <chrono>

#if defined(__linux__)
#include <time.h>
#endif

namespace pgcoro::detail
{

// A clock on steady_clock's epoch that reads the kernel's last timer tick: on Linux
// CLOCK_MONOTONIC_COARSE (~7 ns through the vDSO, against ~25-30 ns for steady_clock::now()),
// elsewhere steady_clock itself. Its reading trails steady_clock::now() by less than one tick
// (resolution(); 1-4 ms with CONFIG_HZ 1000-250), so it is only for stamps where that error is
// harmless: idle and lease bookkeeping, never deadlines, waits or reported durations.
struct coarse_clock
{
    // steady_clock's types: its time points and this clock's compare and subtract directly.
    using duration = std::chrono::steady_clock::duration;
    using rep = duration::rep;
    using period = duration::period;
    using time_point = std::chrono::steady_clock::time_point;
    // Never goes back (CLOCK_MONOTONIC_COARSE is monotonic).
    static constexpr bool is_steady = true;

    // The time at the last tick: never later than a steady_clock::now() read after it.
    static time_point now() noexcept
    {
#if defined(__linux__) && defined(CLOCK_MONOTONIC_COARSE)
        // libstdc++'s and libc++'s steady_clock read CLOCK_MONOTONIC, whose epoch this shares.
        timespec ts;
        ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
        return time_point(std::chrono::duration_cast<duration>(
            std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec)));
#else
        return std::chrono::steady_clock::now();
#endif
    }

    // How far a reading may trail steady_clock::now(): the tick length.
    static duration resolution() noexcept
    {
#if defined(__linux__) && defined(CLOCK_MONOTONIC_COARSE)
        timespec ts;
        if (::clock_getres(CLOCK_MONOTONIC_COARSE, &ts) == 0)
            return std::chrono::duration_cast<duration>(std::chrono::seconds(ts.tv_sec) +
                                                        std::chrono::nanoseconds(ts.tv_nsec));
#endif
        return duration(1);
    }
};

} // namespace pgcoro::detail

#endif // PGCORO_DETAIL_COARSE_CLOCK_HPP
