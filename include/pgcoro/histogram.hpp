// SPDX-License-Identifier: BSL-1.0
// pgcoro/histogram.hpp - a lock-free log-linear latency histogram and its mergeable snapshot.
#ifndef PGCORO_HISTOGRAM_HPP
#define PGCORO_HISTOGRAM_HPP

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>

namespace pgcoro
{

/// The bucket layout shared by latency_histogram and histogram_snapshot. Values are
/// nanoseconds. 0..15 ns get a bucket each; every power of two above is split into 16 equal
/// buckets, so a bucket's width is at most 1/16 (6.25 %) of its values. The last regular
/// bucket ends at 2^39 ns (about 9 minutes); longer values land in one overflow bucket.
struct histogram_layout
{
    /// log2 of the number of linear sub-buckets per power of two.
    static constexpr unsigned sub_bucket_bits = 4;
    /// Linear sub-buckets per power of two (16).
    static constexpr std::uint64_t sub_buckets = std::uint64_t{1} << sub_bucket_bits;
    /// The highest power of two with regular buckets (values up to 2^(max_exponent+1) - 1).
    static constexpr unsigned max_exponent = 38;
    /// Index of the overflow bucket (values of 2^(max_exponent+1) ns and more).
    static constexpr std::size_t overflow_index =
        sub_buckets + (max_exponent - sub_bucket_bits + 1) * sub_buckets;
    /// Number of buckets, the overflow bucket included.
    static constexpr std::size_t bucket_count = overflow_index + 1;

    /// The bucket holding `ns`.
    static constexpr std::size_t index_of(std::uint64_t ns) noexcept
    {
        if (ns < sub_buckets)
            return static_cast<std::size_t>(ns);
        const unsigned e = static_cast<unsigned>(std::bit_width(ns)) - 1;
        if (e > max_exponent)
            return overflow_index;
        const unsigned shift = e - sub_bucket_bits;
        return static_cast<std::size_t>(sub_buckets + (e - sub_bucket_bits) * sub_buckets +
                                        ((ns >> shift) - sub_buckets));
    }
    /// The smallest value bucket `i` holds.
    static constexpr std::uint64_t lower_bound(std::size_t i) noexcept
    {
        if (i < sub_buckets)
            return i;
        if (i >= overflow_index)
            return std::uint64_t{1} << (max_exponent + 1);
        const std::size_t k = i - sub_buckets;
        const unsigned shift = static_cast<unsigned>(k / sub_buckets);
        return (sub_buckets + k % sub_buckets) << shift;
    }
    /// The largest value bucket `i` holds (UINT64_MAX for the overflow bucket).
    static constexpr std::uint64_t upper_bound(std::size_t i) noexcept
    {
        if (i >= overflow_index)
            return std::numeric_limits<std::uint64_t>::max();
        return lower_bound(i + 1) - 1;
    }
};

/// A point-in-time copy of a latency_histogram: plain numbers, cheap to merge and render.
struct histogram_snapshot
{
    /// Count per bucket (see histogram_layout).
    std::array<std::uint64_t, histogram_layout::bucket_count> buckets{};
    std::uint64_t count = 0;  ///< values recorded (the sum of `buckets`)
    std::uint64_t sum_ns = 0; ///< their sum, in nanoseconds
    std::uint64_t max_ns = 0; ///< the largest value, in nanoseconds; 0 when empty

    /// The value below or at which a fraction `p` (0..1; 0.99 for p99) of the values lie:
    /// the upper end of the bucket holding that rank, capped at max(), so within 6.25 % above
    /// the true value (exact below 16 ns). 0 when empty; p is clamped to 0..1.
    std::chrono::nanoseconds percentile(double p) const noexcept
    {
        if (count == 0)
            return std::chrono::nanoseconds(0);
        if (!(p > 0.0)) // also catches NaN
            p = 0.0;
        if (p > 1.0)
            p = 1.0;
        auto rank = static_cast<std::uint64_t>(std::ceil(p * static_cast<double>(count)));
        rank = std::clamp<std::uint64_t>(rank, 1, count);
        std::uint64_t seen = 0;
        for (std::size_t i = 0; i < buckets.size(); ++i)
        {
            seen += buckets[i];
            if (seen >= rank)
                return to_ns(std::min(histogram_layout::upper_bound(i), max_ns));
        }
        return to_ns(max_ns);
    }
    /// The largest value recorded; 0 when empty.
    std::chrono::nanoseconds max() const noexcept { return to_ns(max_ns); }
    /// The sum of the values recorded.
    std::chrono::nanoseconds sum() const noexcept { return to_ns(sum_ns); }
    /// The arithmetic mean, in nanoseconds; 0 when empty.
    double mean_ns() const noexcept
    {
        return count == 0 ? 0.0 : static_cast<double>(sum_ns) / static_cast<double>(count);
    }
    /// How many values are at most `ns`: exact when `ns` ends a bucket or is at least max();
    /// otherwise the bucket straddling `ns` is left out, so it never over-counts.
    std::uint64_t count_at_or_below(std::uint64_t ns) const noexcept
    {
        if (ns >= max_ns)
            return count;
        std::uint64_t n = 0;
        for (std::size_t i = 0; i < buckets.size() && histogram_layout::upper_bound(i) <= ns; ++i)
            n += buckets[i];
        return n;
    }
    /// Adds `other`'s values to this snapshot (e.g. to combine pools or threads).
    histogram_snapshot& merge(const histogram_snapshot& other) noexcept
    {
        for (std::size_t i = 0; i < buckets.size(); ++i)
            buckets[i] += other.buckets[i];
        count += other.count;
        sum_ns += other.sum_ns;
        max_ns = std::max(max_ns, other.max_ns);
        return *this;
    }

private:
    static std::chrono::nanoseconds to_ns(std::uint64_t v) noexcept
    {
        constexpr auto cap = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
        return std::chrono::nanoseconds(static_cast<std::int64_t>(std::min(v, cap)));
    }
};

/// A lock-free latency histogram: record() from any number of threads, read percentiles,
/// max, count and sum at any time. Log-linear buckets (see histogram_layout), one relaxed
/// atomic add per bucket, one for the sum and a compare-exchange only when the max grows.
/// Readers see each counter exactly but not all counters at one instant; snapshot() copies
/// them (count is the sum of the copied buckets, so it always agrees with them). About 4.6 KiB.
class latency_histogram
{
public:
    /// An empty histogram.
    latency_histogram() noexcept = default;
    latency_histogram(const latency_histogram&) = delete;
    latency_histogram& operator=(const latency_histogram&) = delete;

    /// Records one value; negative durations count as 0. Wait-free except for the max update.
    void record(std::chrono::nanoseconds d) noexcept
    {
        const std::uint64_t v = d.count() < 0 ? 0 : static_cast<std::uint64_t>(d.count());
        buckets_[histogram_layout::index_of(v)].fetch_add(1, std::memory_order_relaxed);
        sum_.fetch_add(v, std::memory_order_relaxed);
        std::uint64_t cur = max_.load(std::memory_order_relaxed);
        while (v > cur && !max_.compare_exchange_weak(cur, v, std::memory_order_relaxed))
        {
        }
    }
    /// A copy of every counter, for percentiles, rendering and merging.
    histogram_snapshot snapshot() const noexcept
    {
        histogram_snapshot s;
        for (std::size_t i = 0; i < buckets_.size(); ++i)
        {
            s.buckets[i] = buckets_[i].load(std::memory_order_relaxed);
            s.count += s.buckets[i];
        }
        s.sum_ns = sum_.load(std::memory_order_relaxed);
        s.max_ns = max_.load(std::memory_order_relaxed);
        return s;
    }
    /// Values recorded so far.
    std::uint64_t count() const noexcept
    {
        std::uint64_t n = 0;
        for (const auto& b : buckets_)
            n += b.load(std::memory_order_relaxed);
        return n;
    }
    /// The sum of the values recorded so far.
    std::chrono::nanoseconds sum() const noexcept
    {
        return std::chrono::nanoseconds(
            static_cast<std::int64_t>(sum_.load(std::memory_order_relaxed)));
    }
    /// The largest value recorded so far; 0 when empty.
    std::chrono::nanoseconds max() const noexcept
    {
        return std::chrono::nanoseconds(
            static_cast<std::int64_t>(max_.load(std::memory_order_relaxed)));
    }
    /// See histogram_snapshot::percentile (p50: 0.5, p90: 0.9, p99: 0.99).
    std::chrono::nanoseconds percentile(double p) const noexcept
    {
        return snapshot().percentile(p);
    }

private:
    std::array<std::atomic<std::uint64_t>, histogram_layout::bucket_count> buckets_{};
    std::atomic<std::uint64_t> sum_{0};
    std::atomic<std::uint64_t> max_{0};
};

} // namespace pgcoro

#endif // PGCORO_HISTOGRAM_HPP
