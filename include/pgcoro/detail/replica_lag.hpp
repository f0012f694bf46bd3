// SPDX-License-Identifier: BSL-1.0
// pgcoro/detail/replica_lag.hpp - the replica set's pure decisions: how far behind a replica
// is (from the primary's sampled WAL positions), and which replica serves a read.
#ifndef PGCORO_DETAIL_REPLICA_LAG_HPP
#define PGCORO_DETAIL_REPLICA_LAG_HPP

#include <pgcoro/lsn.hpp>

#include <chrono>
#include <cstddef>
#include <deque>
#include <limits>
#include <optional>
#include <utility>
#include <vector>

namespace pgcoro::detail
{

// The primary's WAL position as sampled over time (increasing positions only). A replica that
// has replayed up to R lags by now − t, t the time of the first sample beyond R: it has been
// missing WAL the primary already had at t. Clock-free (no server timestamps compared), and a
// replica that is not behind lags 0 however long ago the last write was.
class lsn_history
{
public:
    using clock = std::chrono::steady_clock;

    // Records the primary at `at`; positions that did not advance are not kept. A position
    // before the last one is another server (a promoted replica after a failover): the
    // history starts again from it.
    void add(clock::time_point at, lsn position)
    {
        if (!samples_.empty() && position < samples_.back().second)
            samples_.clear();
        if (!samples_.empty() && position == samples_.back().second)
            return;
        samples_.emplace_back(at, position);
        while (samples_.size() > capacity)
            samples_.pop_front();
    }
    // The newest primary position, zero when none was sampled.
    lsn latest() const noexcept { return samples_.empty() ? lsn() : samples_.back().second; }

    // How long a replica at `replayed` has been behind, as of `now`.
    std::chrono::milliseconds lag(lsn replayed, clock::time_point now) const noexcept
    {
        for (const auto& [at, position] : samples_)
            if (position > replayed)
                return std::chrono::duration_cast<std::chrono::milliseconds>(
                    now > at ? now - at : clock::duration::zero());
        return std::chrono::milliseconds(0);
    }

    static constexpr std::size_t capacity = 4096; // at 100 ms sampling: ~7 min of history

private:
    std::deque<std::pair<clock::time_point, lsn>> samples_;
};

// One replica as routing sees it.
struct replica_choice
{
    bool in_rotation = false;
    std::size_t in_use = 0; // leased connections now
    lsn replayed;           // last sampled pg_last_wal_replay_lsn()
};

// The replica to read from: among those in rotation (and, when `min` is set, having replayed
// it by the last sample, if any has), the one with the fewest connections in use; ties go to
// the first at or after `start` (a rotating index, so equal replicas share the load).
inline std::optional<std::size_t> choose_replica(const std::vector<replica_choice>& rs,
                                                 std::size_t start, lsn min = lsn()) noexcept
{
    auto pick = [&](bool need_lsn) -> std::optional<std::size_t>
    {
        std::optional<std::size_t> best;
        for (std::size_t k = 0; k < rs.size(); ++k)
        {
            const std::size_t i = (start + k) % rs.size();
            if (!rs[i].in_rotation || (need_lsn && rs[i].replayed < min))
                continue;
            if (!best || rs[i].in_use < rs[*best].in_use)
                best = i;
        }
        return best;
    };
    if (min)
        if (auto i = pick(true))
            return i;
    return pick(false);
}

} // namespace pgcoro::detail

#endif // PGCORO_DETAIL_REPLICA_LAG_HPP
