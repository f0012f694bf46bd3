// SPDX-License-Identifier: BSL-1.0
// pgcoro/backoff.hpp - the backoff policy and the pure function that turns it into delays.
#ifndef PGCORO_BACKOFF_HPP
#define PGCORO_BACKOFF_HPP

#include <pgcoro/detail/resilience_random.hpp>

#include <algorithm>
#include <chrono>
#include <random>
#include <string_view>

namespace pgcoro
{

/// How a backoff delay is randomised, so that many clients failing together do not retry
/// together. The formulas are those of the AWS Architecture Blog's "Exponential Backoff And
/// Jitter"; `base` is min(cap, initial × multiplier^(attempt−1)) and u is uniform in [0, 1).
enum class jitter_kind
{
    none,         ///< exactly `base`: 1 s, 2 s, 4 s, ...
    full,         ///< u × base: anywhere in [0, base)
    equal,        ///< base/2 + u × base/2: in [base/2, base); keeps at least half the wait
    decorrelated, ///< initial + u × (3 × previous − initial), capped; grows from the last delay
};

/// A short, stable name for a jitter kind ("equal"), for logs and tests.
constexpr std::string_view to_string(jitter_kind k) noexcept
{
    switch (k)
    {
    case jitter_kind::none:
        return "none";
    case jitter_kind::full:
        return "full";
    case jitter_kind::equal:
        return "equal";
    case jitter_kind::decorrelated:
        return "decorrelated";
    }
    return "unknown";
}

/// Exponential backoff: how long to wait before each retry. A literal type, so a policy can be
/// a `constexpr` preset. The defaults give the nominal sequence 1 s, 2 s, 4 s, ...
struct backoff_policy
{
    /// Nominal delay before the first retry; the floor of decorrelated jitter.
    /// Default 1 s; range 0..cap; 0 retries at once.
    std::chrono::milliseconds initial{std::chrono::seconds(1)};
    /// Growth factor from one retry to the next. Default 2.0; range 1.0..10.0 (1.0 keeps the
    /// delay constant; values below 1.0 are treated as 1.0). Decorrelated jitter ignores it.
    double multiplier = 2.0;
    /// Upper bound of every delay, jitter included. Default 30 s; range initial..24 h;
    /// 0 means no cap (delays still saturate at 24 h).
    std::chrono::milliseconds cap{std::chrono::seconds(30)};
    /// Randomisation of each delay. Default `equal`: never less than half the nominal delay.
    jitter_kind jitter = jitter_kind::equal;
};

namespace detail
{
// The largest delay backoff() returns; keeps the double arithmetic far from overflow.
inline constexpr double backoff_limit_ms = 24.0 * 3600.0 * 1000.0;

constexpr double backoff_cap_ms(const backoff_policy& p) noexcept
{
    double cap = static_cast<double>(p.cap.count());
    return cap <= 0.0 || cap > backoff_limit_ms ? backoff_limit_ms : cap;
}

constexpr std::chrono::milliseconds backoff_ms(double ms) noexcept
{
    ms = ms < 0.0 ? 0.0 : ms;
    return std::chrono::milliseconds(static_cast<std::chrono::milliseconds::rep>(ms));
}
} // namespace detail

/// The nominal delay before retry `attempt` (1 = the first retry; 0 is treated as 1), without
/// jitter: min(cap, initial × multiplier^(attempt−1)).
constexpr std::chrono::milliseconds backoff_base(const backoff_policy& p, unsigned attempt) noexcept
{
    const double cap = detail::backoff_cap_ms(p);
    double d = static_cast<double>(std::max<std::chrono::milliseconds::rep>(p.initial.count(), 0));
    // A loop, not std::pow, so this stays constexpr; it stops as soon as the cap is reached,
    // so its length is bounded by log(cap / initial) / log(multiplier).
    if (p.multiplier > 1.0 && d > 0.0)
        for (unsigned i = 1; i < attempt && d < cap; ++i)
            d *= p.multiplier;
    return detail::backoff_ms(std::min(d, cap));
}

/// The delay before retry `attempt` (1-based) for a uniform sample `u` in [0, 1); `previous`
/// is the delay returned for the attempt before (0 for the first), used by decorrelated
/// jitter only. Pure: the same arguments always give the same delay.
constexpr std::chrono::milliseconds backoff(const backoff_policy& p, unsigned attempt,
                                            std::chrono::milliseconds previous, double u) noexcept
{
    u = u < 0.0 ? 0.0 : (u >= 1.0 ? 0.999999999 : u);
    const double cap = detail::backoff_cap_ms(p);
    const double base = static_cast<double>(backoff_base(p, attempt).count());
    switch (p.jitter)
    {
    case jitter_kind::none:
        return detail::backoff_ms(base);
    case jitter_kind::full:
        return detail::backoff_ms(u * base);
    case jitter_kind::equal:
        return detail::backoff_ms(base / 2.0 + u * base / 2.0);
    case jitter_kind::decorrelated:
    {
        const double lo = std::min(
            static_cast<double>(std::max<std::chrono::milliseconds::rep>(p.initial.count(), 0)),
            cap);
        const double prev = previous.count() > 0 ? static_cast<double>(previous.count()) : lo;
        const double hi = std::min(std::max(lo, prev * 3.0), cap);
        return detail::backoff_ms(lo + u * (hi - lo));
    }
    }
    return detail::backoff_ms(base);
}

/// backoff() drawing `u` from a uniform random bit generator (tests pass a seeded
/// std::mt19937_64; the same seed gives the same delays with every standard library).
template <std::uniform_random_bit_generator Rng>
std::chrono::milliseconds backoff(const backoff_policy& p, unsigned attempt,
                                  std::chrono::milliseconds previous, Rng& rng)
{
    return backoff(p, attempt, previous, detail::uniform01(rng));
}

} // namespace pgcoro

#endif // PGCORO_BACKOFF_HPP
