// SPDX-License-Identifier: BSL-1.0
// pgcoro/member_status.hpp - one member of a replica set as its health report shows it.
#ifndef PGCORO_MEMBER_STATUS_HPP
#define PGCORO_MEMBER_STATUS_HPP

#include <pgcoro/lsn.hpp>
#include <pgcoro/pool_stats.hpp>

#include <chrono>
#include <cstdint>
#include <ostream>
#include <string>

namespace pgcoro
{

/// A member's role in the set.
enum class member_role
{
    primary, ///< the read-write pool (whichever host is primary now)
    replica, ///< one replica's pool
};

/// One member in the health report (replica_set::members()).
struct member_status
{
    std::string name;                        ///< "primary", "replica1", "replica2", ...
    member_role role = member_role::replica; ///< primary or replica
    std::string url;                         ///< where it connects, password hidden
    bool healthy = false;                    ///< the last check succeeded
    bool in_rotation = false;                ///< replicas: serving reads now
    std::string reason; ///< why not healthy or not in rotation; empty when both
    lsn position;       ///< primary: pg_current_wal_lsn(); replica: pg_last_wal_replay_lsn()
    std::uint64_t bytes_behind = 0;   ///< replicas: WAL bytes the primary has beyond position
    std::chrono::milliseconds lag{0}; ///< replicas: how long it has been behind the primary
    bool replay_paused = false;       ///< replicas: pg_wal_replay_pause() is in effect
    pool_stats pool;                  ///< the member's pool

    /// One line: "replica1 in_rotation lag=0ms behind=0B position=0/3000060 ...".
    friend std::ostream& operator<<(std::ostream& os, const member_status& m)
    {
        os << m.name << (m.role == member_role::primary ? " primary" : "")
           << (m.healthy ? " healthy" : " unhealthy");
        if (m.role == member_role::replica)
            os << (m.in_rotation ? " in_rotation" : " out_of_rotation") << " lag=" << m.lag.count()
               << "ms behind=" << m.bytes_behind << "B"
               << (m.replay_paused ? " replay_paused" : "");
        os << " position=" << m.position << " leased=" << m.pool.leased << " size=" << m.pool.size;
        if (!m.reason.empty())
            os << " (" << m.reason << ")";
        return os << " " << m.url;
    }
};

} // namespace pgcoro

#endif // PGCORO_MEMBER_STATUS_HPP
