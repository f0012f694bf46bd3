// Unit tests for pgcoro/detail/pool_policy.hpp: the pool's pure sizing and lifetime decisions.
#include <pgcoro/detail/pool_policy.hpp>

#include <gtest/gtest.h>

using namespace pgcoro::detail;
using namespace std::chrono_literals;

namespace
{
pgcoro::pool_config cfg(std::size_t min, std::size_t max, std::size_t concurrent = 2)
{
    pgcoro::pool_config c;
    c.min_size = min;
    c.max_size = max;
    c.max_concurrent_connects = concurrent;
    return c;
}
} // namespace

TEST(PoolPolicy, ConnectsCoverWaitersNotAlreadyCovered)
{
    // 3 waiters, 1 connect in flight, room for 10, 4 concurrent: start 2 more.
    EXPECT_EQ(connects_to_start({2, 1, 0, 3}, cfg(0, 10, 4)), 2u);
    // Waiters already covered by connects in flight: nothing.
    EXPECT_EQ(connects_to_start({2, 2, 0, 2}, cfg(0, 10, 4)), 0u);
}

TEST(PoolPolicy, ConnectsNeverPassMaxSizeOrConcurrency)
{
    EXPECT_EQ(connects_to_start({9, 0, 0, 5}, cfg(0, 10, 4)), 1u);  // max_size
    EXPECT_EQ(connects_to_start({10, 0, 0, 5}, cfg(0, 10, 4)), 0u); // full
    EXPECT_EQ(connects_to_start({0, 0, 0, 50}, cfg(0, 10, 2)), 2u); // concurrency cap
    EXPECT_EQ(connects_to_start({0, 2, 0, 50}, cfg(0, 10, 2)), 0u);
}

TEST(PoolPolicy, ConnectsRefillToMinSize)
{
    EXPECT_EQ(connects_to_start({1, 0, 1, 0}, cfg(3, 10, 4)), 2u);
    EXPECT_EQ(connects_to_start({3, 0, 3, 0}, cfg(3, 10, 4)), 0u);
}

TEST(PoolPolicy, RefillDelayIsCappedExponentialWithEqualJitter)
{
    auto c = cfg(0, 10);
    c.refill_backoff_initial = 100ms;
    c.refill_backoff_max = 1s;
    EXPECT_EQ(refill_delay(0, c, 0.5), 0ms);
    // u = 0: half the nominal delay; u -> 1: just under it.
    EXPECT_EQ(refill_delay(1, c, 0.0), 50ms);
    EXPECT_EQ(refill_delay(1, c, 0.999), 99ms);
    EXPECT_EQ(refill_delay(2, c, 0.0), 100ms);
    EXPECT_EQ(refill_delay(4, c, 0.5), 600ms);
    EXPECT_EQ(refill_delay(5, c, 0.0), 500ms);
    EXPECT_EQ(refill_delay(500, c, 0.999), 999ms);
    // Never above the cap, never below half of it once capped.
    for (double u : {0.0, 0.25, 0.5, 0.75, 0.9999})
    {
        EXPECT_LE(refill_delay(50, c, u), 1s);
        EXPECT_GE(refill_delay(50, c, u), 500ms);
    }
}

TEST(PoolPolicy, LifetimeJitterShortensWithinBounds)
{
    using tp = std::chrono::steady_clock::time_point;
    auto c = cfg(0, 10);
    c.max_lifetime = 30min;
    c.max_lifetime_jitter = 5min;
    tp t0{};
    EXPECT_EQ(retire_at(t0, c, 0.0), t0 + 30min);
    EXPECT_EQ(retire_at(t0, c, 0.5), t0 + 30min - 150s);
    EXPECT_GT(retire_at(t0, c, 0.999), t0 + 25min);
    c.max_lifetime = 0ms; // unlimited
    EXPECT_EQ(retire_at(t0, c, 0.5), tp::max());
}

TEST(PoolPolicy, IdleTimeoutKeepsMinSize)
{
    auto c = cfg(2, 10);
    c.idle_timeout = 1s;
    EXPECT_TRUE(idle_expired(2s, 3, c));
    EXPECT_FALSE(idle_expired(2s, 2, c)); // at min_size
    EXPECT_FALSE(idle_expired(500ms, 3, c));
    c.idle_timeout = 0ms; // never
    EXPECT_FALSE(idle_expired(10h, 3, c));
}

TEST(PoolPolicy, MaintenanceIntervalFollowsTheShortestLimit)
{
    auto c = cfg(0, 10);
    c.idle_timeout = 200ms;
    EXPECT_EQ(maintenance_interval(c), 50ms);
    c.idle_timeout = 10min;
    c.max_lifetime = 30min;
    EXPECT_EQ(maintenance_interval(c), 1s);
    c.leak_threshold = 20ms;
    EXPECT_EQ(maintenance_interval(c), 10ms);
}
