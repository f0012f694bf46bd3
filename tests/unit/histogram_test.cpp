// Unit tests for pgcoro/histogram.hpp: bucket layout, percentiles, merging, concurrent records.
#include <pgcoro/histogram.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using pgcoro::histogram_layout;
using pgcoro::histogram_snapshot;
using pgcoro::latency_histogram;
using ns = std::chrono::nanoseconds;

namespace
{

// The true value must be at most the reported percentile, and the report at most 1/16 above.
void expect_within_bucket(ns reported, ns truth)
{
    EXPECT_GE(reported.count(), truth.count());
    EXPECT_LE(static_cast<double>(reported.count()), static_cast<double>(truth.count()) * 1.0625);
}

} // namespace

TEST(Histogram, LayoutBoundsContainEveryValue)
{
    // Every value lies inside the bucket index_of() picks, and buckets tile without gaps.
    for (std::uint64_t v : {0ull, 1ull, 15ull, 16ull, 17ull, 31ull, 32ull, 1000ull, 999'999ull,
                            1'000'000ull, 123'456'789ull, (1ull << 39) - 1})
    {
        const std::size_t i = histogram_layout::index_of(v);
        EXPECT_LE(histogram_layout::lower_bound(i), v) << v;
        EXPECT_GE(histogram_layout::upper_bound(i), v) << v;
    }
    for (std::size_t i = 0; i + 1 < histogram_layout::overflow_index; ++i)
    {
        EXPECT_EQ(histogram_layout::index_of(histogram_layout::lower_bound(i)), i);
        EXPECT_EQ(histogram_layout::upper_bound(i) + 1, histogram_layout::lower_bound(i + 1));
    }
    EXPECT_EQ(histogram_layout::index_of(1ull << 39), histogram_layout::overflow_index);
}

TEST(Histogram, EmptyReportsZero)
{
    latency_histogram h;
    EXPECT_EQ(h.count(), 0u);
    EXPECT_EQ(h.sum(), 0ns);
    EXPECT_EQ(h.max(), 0ns);
    EXPECT_EQ(h.percentile(0.99), 0ns);
    EXPECT_EQ(h.snapshot().mean_ns(), 0.0);
}

TEST(Histogram, SmallValuesAreExact)
{
    // Setup: 1..10 ns, each in its own bucket.
    latency_histogram h;
    for (int i = 1; i <= 10; ++i)
        h.record(ns(i));
    // Check: ranks map straight to values.
    EXPECT_EQ(h.count(), 10u);
    EXPECT_EQ(h.sum(), 55ns);
    EXPECT_EQ(h.max(), 10ns);
    EXPECT_EQ(h.percentile(0.5), 5ns);
    EXPECT_EQ(h.percentile(0.9), 9ns);
    EXPECT_EQ(h.percentile(0.99), 10ns);
    EXPECT_EQ(h.percentile(0.0), 1ns);
    EXPECT_EQ(h.percentile(1.0), 10ns);
}

TEST(Histogram, PercentilesOfOneToThousandMilliseconds)
{
    // Setup: 1 ms, 2 ms, ..., 1000 ms.
    latency_histogram h;
    for (int i = 1; i <= 1000; ++i)
        h.record(std::chrono::milliseconds(i));
    // Check: p50/p90/p99 at or just above 500/900/990 ms; max and mean exact.
    expect_within_bucket(h.percentile(0.5), 500ms);
    expect_within_bucket(h.percentile(0.9), 900ms);
    expect_within_bucket(h.percentile(0.99), 990ms);
    EXPECT_EQ(h.percentile(1.0), 1000ms);
    EXPECT_EQ(h.max(), 1000ms);
    EXPECT_EQ(h.sum(), std::chrono::milliseconds(500'500));
    EXPECT_DOUBLE_EQ(h.snapshot().mean_ns(), 500.5e6);
}

TEST(Histogram, PercentileIsCappedAtMax)
{
    // 1'000'001 ns sits in a bucket ending above it; the report never exceeds the max seen.
    latency_histogram h;
    h.record(ns(1'000'001));
    EXPECT_EQ(h.percentile(0.5), ns(1'000'001));
    EXPECT_EQ(h.percentile(0.99), ns(1'000'001));
}

TEST(Histogram, NegativeCountsAsZeroAndHugeGoesToOverflow)
{
    latency_histogram h;
    h.record(ns(-5));
    h.record(std::chrono::hours(1));
    const histogram_snapshot s = h.snapshot();
    EXPECT_EQ(s.count, 2u);
    EXPECT_EQ(s.buckets[0], 1u);
    EXPECT_EQ(s.buckets[histogram_layout::overflow_index], 1u);
    EXPECT_EQ(s.percentile(0.99), std::chrono::hours(1));
    EXPECT_EQ(h.max(), std::chrono::hours(1));
}

TEST(Histogram, OutOfRangePercentileIsClamped)
{
    latency_histogram h;
    h.record(3ns);
    h.record(7ns);
    EXPECT_EQ(h.percentile(-1.0), 3ns);
    EXPECT_EQ(h.percentile(2.0), 7ns);
}

TEST(Histogram, SnapshotsMergeLikeOneHistogram)
{
    // Setup: values split over two histograms, and all of them in a third.
    latency_histogram a;
    latency_histogram b;
    latency_histogram all;
    for (int i = 1; i <= 200; ++i)
    {
        (i % 2 ? a : b).record(std::chrono::microseconds(i * 37));
        all.record(std::chrono::microseconds(i * 37));
    }
    // Act
    histogram_snapshot merged = a.snapshot();
    merged.merge(b.snapshot());
    // Check: identical buckets, totals and percentiles.
    const histogram_snapshot expect = all.snapshot();
    EXPECT_EQ(merged.buckets, expect.buckets);
    EXPECT_EQ(merged.count, expect.count);
    EXPECT_EQ(merged.sum_ns, expect.sum_ns);
    EXPECT_EQ(merged.max_ns, expect.max_ns);
    EXPECT_EQ(merged.percentile(0.9), expect.percentile(0.9));
}

TEST(Histogram, CountAtOrBelowNeverOverCounts)
{
    latency_histogram h;
    for (int i = 0; i < 3; ++i)
        h.record(1ms);
    for (int i = 0; i < 2; ++i)
        h.record(10ms);
    const histogram_snapshot s = h.snapshot();
    EXPECT_EQ(s.count_at_or_below(500'000), 0u);    // 0.5 ms
    EXPECT_EQ(s.count_at_or_below(5'000'000), 3u);  // 5 ms
    EXPECT_EQ(s.count_at_or_below(10'000'000), 5u); // the max: everything
    EXPECT_EQ(s.count_at_or_below(1'000'000), 0u);  // 1 ms shares a bucket with values above it
    EXPECT_EQ(s.count_at_or_below(1'015'807), 3u);  // that bucket's upper end
}

TEST(Histogram, ConcurrentRecordersLoseNothing)
{
    // Setup: 4 threads record 100'000 values each into one histogram.
    latency_histogram h;
    constexpr int threads = 4;
    constexpr int per_thread = 100'000;
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
        pool.emplace_back(
            [&h, t]
            {
                for (int i = 0; i < per_thread; ++i)
                    h.record(ns(1000 * (t + 1) + i % 100));
            });
    for (auto& th : pool)
        th.join();
    // Check: exact count, sum and max.
    std::uint64_t sum = 0;
    for (int t = 0; t < threads; ++t)
        for (int i = 0; i < per_thread; ++i)
            sum += static_cast<std::uint64_t>(1000 * (t + 1) + i % 100);
    EXPECT_EQ(h.count(), std::uint64_t{threads} * per_thread);
    EXPECT_EQ(static_cast<std::uint64_t>(h.sum().count()), sum);
    EXPECT_EQ(h.max(), ns(4099));
}
