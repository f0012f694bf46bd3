// SPDX-License-Identifier: BSL-1.0
// pgcoro/pool_config.hpp - how many connections a pool keeps, and how long everything may take.
#ifndef PGCORO_POOL_CONFIG_HPP
#define PGCORO_POOL_CONFIG_HPP

#include <chrono>
#include <cstddef>

namespace pgcoro
{

/// Sizing, deadlines and lifetime limits of a connection pool. An aggregate: the default member
/// initializers are the compile-time defaults (see also pool_preset() in profile.hpp). Durations
/// carry their unit in the type. Ranges are enforced by validate() (validate.hpp); every field
/// can be set from the environment or from a DATABASE_URL parameter (docs/configuration.md).
///
/// Resolution: a pool without an observer stamps idle and lease times on its acquire and
/// release fast paths with a coarse clock (on Linux CLOCK_MONOTONIC_COARSE, one kernel tick:
/// 1-4 ms), so validate_after_idle, idle_timeout, max_lifetime and leak_threshold may act up
/// to one tick early or late. acquire_timeout, validation_timeout, query_timeout and every
/// duration reported to an observer use steady_clock.
struct pool_config
{
    /// Connections opened by warmup() and kept open even when idle. Default 0; range
    /// 0..max_size. Env PGCORO_POOL_MIN_SIZE; URL `min_connections`.
    std::size_t min_size = 0;

    /// Most connections open at once (idle + leased + connecting). Default 10; range 1..10000;
    /// zero is invalid. Env DATABASE_CONNECTION_LIMIT; URL `connection_limit`.
    std::size_t max_size = 10;

    /// How long acquire() waits for a connection before failing with pool_timeout. Default 10 s;
    /// range 1 ms..1 h; zero is invalid (every wait has a deadline).
    /// Env DATABASE_POOL_TIMEOUT; URL `pool_timeout` (plain integers are seconds).
    std::chrono::milliseconds acquire_timeout{std::chrono::seconds(10)};

    /// An idle connection above min_size is closed after this long. Default 10 min; range
    /// 0..24 h; 0 = never close for idleness. Env PGCORO_IDLE_TIMEOUT; URL `idle_timeout`.
    std::chrono::milliseconds idle_timeout{std::chrono::minutes(10)};

    /// A connection is closed (when next idle) after being open this long. Default 30 min;
    /// range 0..24 h; 0 = unlimited. Env PGCORO_MAX_LIFETIME; URL `max_lifetime`.
    std::chrono::milliseconds max_lifetime{std::chrono::minutes(30)};

    /// Each connection's lifetime is shortened by a random amount in [0, jitter], so a pool
    /// opened at once does not reconnect at once. Default 0; range 0..1 h and below
    /// max_lifetime; 0 = no jitter. Env PGCORO_MAX_LIFETIME_JITTER; URL `max_lifetime_jitter`.
    std::chrono::milliseconds max_lifetime_jitter{0};

    /// A connection idle at least this long is checked (a cheap round trip) before acquire()
    /// hands it out; a dead one is replaced. Default 5 s; range 0..1 h; 0 = never check on
    /// borrow. Env PGCORO_VALIDATE_AFTER_IDLE; URL `validate_after_idle`.
    std::chrono::milliseconds validate_after_idle{std::chrono::seconds(5)};

    /// Deadline of that check. Default 2 s; range 1 ms..1 min and below acquire_timeout.
    /// Env PGCORO_VALIDATION_TIMEOUT; URL `validation_timeout`.
    std::chrono::milliseconds validation_timeout{std::chrono::seconds(2)};

    /// Idle connections are pinged in the background this often. Default 0; range 0..1 h and
    /// below max_lifetime; 0 = no background keepalive. Env PGCORO_KEEPALIVE_INTERVAL;
    /// URL `keepalive_interval`.
    std::chrono::milliseconds keepalive_interval{0};

    /// A lease held longer than this is reported as a suspected leak (with the source location
    /// of its acquire()). Default 0; range 0..24 h; 0 = off. Env PGCORO_LEAK_THRESHOLD;
    /// URL `leak_threshold`.
    std::chrono::milliseconds leak_threshold{0};

    /// Most coroutines waiting in acquire(); one more fails at once with too_many_waiters.
    /// Default 0; range 0..1000000; 0 = unlimited. Env PGCORO_MAX_WAITERS; URL `max_waiters`.
    std::size_t max_waiters = 0;

    /// A statement that runs longer is reported to the observer as slow. Default 0; range
    /// 0..1 h; 0 = off. Env PGCORO_SLOW_QUERY_THRESHOLD; URL `slow_query_threshold`.
    std::chrono::milliseconds slow_query_threshold{0};

    /// Client-side deadline of one statement (a call may override it); the statement is
    /// cancelled when it passes. Default 0; range 0..24 h; 0 = none. Must exceed the server's
    /// statement_timeout when both are set. Env PGCORO_QUERY_TIMEOUT; URL `query_timeout`.
    std::chrono::milliseconds query_timeout{0};

    /// Most connects in flight at once (warmup, refill). Default 2; range 1..1000.
    /// Env PGCORO_MAX_CONCURRENT_CONNECTS; URL `max_concurrent_connects`.
    std::size_t max_concurrent_connects = 2;

    /// First delay before retrying a failed refill connect; doubles up to refill_backoff_max.
    /// Default 100 ms; range 1 ms..1 min. Env PGCORO_REFILL_BACKOFF_INITIAL;
    /// URL `refill_backoff_initial`.
    std::chrono::milliseconds refill_backoff_initial{100};

    /// Cap of that delay. Default 10 s; range 1 ms..1 h and at least refill_backoff_initial.
    /// Env PGCORO_REFILL_BACKOFF_MAX; URL `refill_backoff_max`.
    std::chrono::milliseconds refill_backoff_max{std::chrono::seconds(10)};

    /// Member-wise equality (presets are compared in tests).
    friend constexpr bool operator==(const pool_config&, const pool_config&) = default;
};

} // namespace pgcoro

#endif // PGCORO_POOL_CONFIG_HPP
