// Unit tests for pgcoro/backoff.hpp: nominal delays, caps, and each jitter kind's bounds.
#include <pgcoro/backoff.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <vector>

using namespace std::chrono_literals;
using pgcoro::backoff_policy;
using pgcoro::jitter_kind;
using ms = std::chrono::milliseconds;

namespace
{

backoff_policy policy(jitter_kind j, ms initial = 1s, double mult = 2.0, ms cap = 30s)
{
    return backoff_policy{initial, mult, cap, j};
}

// The delays of the first `n` retries, drawing from `rng`.
template <class Rng>
std::vector<ms> sequence(const backoff_policy& p, unsigned n, Rng& rng)
{
    std::vector<ms> out;
    ms prev{0};
    for (unsigned a = 1; a <= n; ++a)
    {
        prev = pgcoro::backoff(p, a, prev, rng);
        out.push_back(prev);
    }
    return out;
}

} // namespace

// The defaults are usable at compile time and give the design notes' 1 s, 2 s, 4 s.
static_assert(pgcoro::backoff_base(backoff_policy{}, 1) == 1s);
static_assert(pgcoro::backoff_base(backoff_policy{}, 2) == 2s);
static_assert(pgcoro::backoff_base(backoff_policy{}, 3) == 4s);

TEST(Backoff, NoJitterDoublesFromInitial)
{
    // Setup
    std::mt19937_64 rng(42);
    // Act
    auto d = sequence(policy(jitter_kind::none), 5, rng);
    // Check: 1 s, 2 s, 4 s, 8 s, 16 s
    EXPECT_EQ(d, (std::vector<ms>{1s, 2s, 4s, 8s, 16s}));
}

TEST(Backoff, CapBoundsEveryDelay)
{
    std::mt19937_64 rng(42);
    auto d = sequence(policy(jitter_kind::none, 1s, 2.0, 5s), 6, rng);
    EXPECT_EQ(d, (std::vector<ms>{1s, 2s, 4s, 5s, 5s, 5s}));
    // A huge attempt number neither overflows nor loops for long.
    EXPECT_EQ(pgcoro::backoff_base(policy(jitter_kind::none, 1s, 2.0, 5s), 4'000'000'000u), 5s);
}

TEST(Backoff, ZeroCapSaturatesAtOneDay)
{
    auto p = policy(jitter_kind::none, 1s, 10.0, 0ms);
    EXPECT_EQ(pgcoro::backoff_base(p, 3), 100s);
    EXPECT_EQ(pgcoro::backoff_base(p, 1000), std::chrono::hours(24));
}

TEST(Backoff, MultiplierOneOrLessKeepsDelayConstant)
{
    EXPECT_EQ(pgcoro::backoff_base(policy(jitter_kind::none, 250ms, 1.0), 7), 250ms);
    EXPECT_EQ(pgcoro::backoff_base(policy(jitter_kind::none, 250ms, 0.5), 7), 250ms);
    EXPECT_EQ(pgcoro::backoff_base(policy(jitter_kind::none, 0ms), 7), 0ms);
}

TEST(Backoff, AttemptZeroIsTreatedAsFirst)
{
    EXPECT_EQ(pgcoro::backoff_base(policy(jitter_kind::none), 0), 1s);
}

TEST(Backoff, FullJitterStaysInZeroToBase)
{
    std::mt19937_64 rng(7);
    auto p = policy(jitter_kind::full);
    for (unsigned a = 1; a <= 6; ++a)
    {
        auto base = pgcoro::backoff_base(p, a);
        ms lo = base, hi = 0ms;
        for (int i = 0; i < 2000; ++i)
        {
            auto d = pgcoro::backoff(p, a, 0ms, rng);
            lo = std::min(lo, d);
            hi = std::max(hi, d);
        }
        // Check: in [0, base) and spread over most of it.
        EXPECT_GE(lo, 0ms);
        EXPECT_LT(hi, base);
        EXPECT_LT(lo, base / 10) << "attempt " << a;
        EXPECT_GT(hi, base * 9 / 10) << "attempt " << a;
    }
}

TEST(Backoff, EqualJitterStaysInHalfToBase)
{
    std::mt19937_64 rng(7);
    auto p = policy(jitter_kind::equal);
    for (unsigned a = 1; a <= 6; ++a)
    {
        auto base = pgcoro::backoff_base(p, a);
        for (int i = 0; i < 2000; ++i)
        {
            auto d = pgcoro::backoff(p, a, 0ms, rng);
            EXPECT_GE(d, base / 2);
            EXPECT_LT(d, base);
        }
    }
}

TEST(Backoff, DecorrelatedStaysBetweenInitialAndThreeTimesPrevious)
{
    std::mt19937_64 rng(11);
    auto p = policy(jitter_kind::decorrelated, 100ms, 2.0, 10s);
    ms prev{0};
    bool reached_cap = false;
    for (unsigned a = 1; a <= 200; ++a)
    {
        auto d = pgcoro::backoff(p, a, prev, rng);
        ms upper = std::min<ms>(std::max<ms>(100ms, (prev.count() ? prev : 100ms) * 3), 10s);
        EXPECT_GE(d, 100ms);
        EXPECT_LE(d, upper);
        reached_cap = reached_cap || d > 5s;
        prev = d;
    }
    EXPECT_TRUE(reached_cap); // it grows towards the cap, never past it
}

TEST(Backoff, UniformSampleEdgesGiveTheBounds)
{
    auto full = policy(jitter_kind::full);
    auto equal = policy(jitter_kind::equal);
    auto deco = policy(jitter_kind::decorrelated);
    EXPECT_EQ(pgcoro::backoff(full, 3, 0ms, 0.0), 0ms);
    EXPECT_EQ(pgcoro::backoff(full, 3, 0ms, 0.5), 2s);
    EXPECT_EQ(pgcoro::backoff(equal, 3, 0ms, 0.0), 2s);
    EXPECT_EQ(pgcoro::backoff(equal, 3, 0ms, 0.999999), 3999ms);
    EXPECT_EQ(pgcoro::backoff(deco, 1, 0ms, 0.0), 1s);
    EXPECT_EQ(pgcoro::backoff(deco, 2, 2s, 0.5), 3500ms); // 1 s + 0.5 × (6 s − 1 s)
    // Out-of-range samples are clamped into [0, 1).
    EXPECT_EQ(pgcoro::backoff(full, 1, 0ms, -3.0), 0ms);
    EXPECT_LT(pgcoro::backoff(full, 1, 0ms, 7.0), 1s);
}

TEST(Backoff, SameSeedGivesSameSequence)
{
    for (auto j : {jitter_kind::full, jitter_kind::equal, jitter_kind::decorrelated})
    {
        std::mt19937_64 a(1234), b(1234), c(99);
        auto sa = sequence(policy(j), 8, a);
        EXPECT_EQ(sa, sequence(policy(j), 8, b)) << to_string(j);
        EXPECT_NE(sa, sequence(policy(j), 8, c)) << to_string(j);
    }
}

TEST(Backoff, JitterKindToString)
{
    EXPECT_EQ(to_string(jitter_kind::none), "none");
    EXPECT_EQ(to_string(jitter_kind::full), "full");
    EXPECT_EQ(to_string(jitter_kind::equal), "equal");
    EXPECT_EQ(to_string(jitter_kind::decorrelated), "decorrelated");
}
