// SPDX-License-Identifier: BSL-1.0
// pgcoro/pool_stats.hpp - a snapshot of a pool's gauges and totals.
#ifndef PGCORO_POOL_STATS_HPP
#define PGCORO_POOL_STATS_HPP

#include <cstddef>
#include <cstdint>
#include <ostream>

namespace pgcoro
{

/// What pool::stats() returns: gauges now, and totals since the pool was created.
struct pool_stats
{
    std::size_t max_size = 0;   ///< pool_config::max_size now (set_max_size() changes it)
    std::size_t size = 0;       ///< connections held, connecting ones included
    std::size_t idle = 0;       ///< ready to hand out
    std::size_t leased = 0;     ///< held by leases (and being reset or validated)
    std::size_t connecting = 0; ///< connects in flight
    std::size_t waiters = 0;    ///< acquire() calls waiting

    std::uint64_t acquired_immediately = 0; ///< acquires served from the idle stack
    std::uint64_t acquired_after_wait = 0;  ///< acquires that had to wait
    std::uint64_t timed_out = 0;            ///< acquires that failed with pool_timeout
    std::uint64_t cancelled = 0;            ///< waiting acquires cancelled by their caller
    std::uint64_t rejected = 0; ///< acquires refused: too_many_waiters, pool_closed, or a connect
                                ///< error retrying cannot fix
    std::uint64_t opened = 0;   ///< successful connects
    std::uint64_t connect_failures = 0;  ///< failed connects
    std::uint64_t closed_idle = 0;       ///< closed after idle_timeout
    std::uint64_t closed_lifetime = 0;   ///< closed after max_lifetime
    std::uint64_t closed_broken = 0;     ///< closed because broken or returned mid-statement
    std::uint64_t closed_validation = 0; ///< closed because a validation ping failed
    std::uint64_t closed_shutdown = 0;   ///< closed by close() or the pool's destruction
    std::uint64_t leaks_reported = 0;    ///< leases reported as held past leak_threshold
    /// Of closed_broken: returned connections of a read-write (or primary) pool whose server
    /// had become read-only or a standby (after a failover), closed instead of reused.
    std::uint64_t closed_read_only = 0;

    /// Adds another pool's (or shard's) gauges and totals to these; max_size stays as it is.
    pool_stats& operator+=(const pool_stats& o) noexcept
    {
        size += o.size;
        idle += o.idle;
        leased += o.leased;
        connecting += o.connecting;
        waiters += o.waiters;
        acquired_immediately += o.acquired_immediately;
        acquired_after_wait += o.acquired_after_wait;
        timed_out += o.timed_out;
        cancelled += o.cancelled;
        rejected += o.rejected;
        opened += o.opened;
        connect_failures += o.connect_failures;
        closed_idle += o.closed_idle;
        closed_lifetime += o.closed_lifetime;
        closed_broken += o.closed_broken;
        closed_validation += o.closed_validation;
        closed_shutdown += o.closed_shutdown;
        leaks_reported += o.leaks_reported;
        closed_read_only += o.closed_read_only;
        return *this;
    }

    /// One line, "size=3 idle=2 leased=1 ...", for logs and test output.
    friend std::ostream& operator<<(std::ostream& os, const pool_stats& s)
    {
        return os << "max_size=" << s.max_size << " size=" << s.size << " idle=" << s.idle
                  << " leased=" << s.leased << " connecting=" << s.connecting
                  << " waiters=" << s.waiters << " acquired_immediately=" << s.acquired_immediately
                  << " acquired_after_wait=" << s.acquired_after_wait
                  << " timed_out=" << s.timed_out << " cancelled=" << s.cancelled
                  << " rejected=" << s.rejected << " opened=" << s.opened
                  << " connect_failures=" << s.connect_failures << " closed_idle=" << s.closed_idle
                  << " closed_lifetime=" << s.closed_lifetime
                  << " closed_broken=" << s.closed_broken
                  << " closed_validation=" << s.closed_validation
                  << " closed_shutdown=" << s.closed_shutdown
                  << " leaks_reported=" << s.leaks_reported
                  << " closed_read_only=" << s.closed_read_only;
    }
};

} // namespace pgcoro

#endif // PGCORO_POOL_STATS_HPP
