// SPDX-License-Identifier: BSL-1.0
// pgcoro/detail/pool_policy.hpp - the pool's decisions as pure functions of (config, counts, now).
#ifndef PGCORO_DETAIL_POOL_POLICY_HPP
#define PGCORO_DETAIL_POOL_POLICY_HPP

#include <pgcoro/backoff.hpp>
#include <pgcoro/close_reason.hpp>
#include <pgcoro/pool_config.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <string_view>

namespace pgcoro::detail
{

// Where a pooled connection is in its life. Every transition happens in pool_core, in one
// place each, which is also where counters change and events fire.
enum class node_state
{
    connecting, // connect() in flight
    idle,       // on the idle stack
    leased,     // a lease holds it
    resetting,  // returned inside a transaction: ROLLBACK in flight
    validating, // a ping before hand-out or a background keepalive
};

constexpr std::string_view to_string(node_state s) noexcept
{
    switch (s)
    {
    case node_state::connecting:
        return "connecting";
    case node_state::idle:
        return "idle";
    case node_state::leased:
        return "leased";
    case node_state::resetting:
        return "resetting";
    case node_state::validating:
        return "validating";
    }
    return "unknown";
}

// Why a connection left the pool (public: observers see it too); each has its own counter.
using pgcoro::close_reason;

// A pooled connection that sent a statement larger than this (bytes) is closed when it is
// returned, not kept: libpq keeps an output buffer as large as its largest statement for the
// connection's life (a 64 MiB parameter would otherwise pin 64 MiB per pooled connection).
inline constexpr std::size_t pool_max_retained_bytes = 16 * 1024 * 1024;

// The gauges the decisions read.
struct pool_counts
{
    std::size_t total = 0;      // every connection the pool holds, connecting ones included
    std::size_t connecting = 0; // connects in flight
    std::size_t idle = 0;
    std::size_t waiters = 0;
};

// How many connects to start now: enough for the waiters not already covered by a connect in
// flight, and enough to reach min_size; never past max_size, never more than
// max_concurrent_connects in flight.
constexpr std::size_t connects_to_start(const pool_counts& c, const pool_config& cfg) noexcept
{
    if (c.total >= cfg.max_size || c.connecting >= cfg.max_concurrent_connects)
        return 0;
    std::size_t for_waiters = c.waiters > c.connecting ? c.waiters - c.connecting : 0;
    std::size_t for_min = cfg.min_size > c.total ? cfg.min_size - c.total : 0;
    std::size_t want = std::max(for_waiters, for_min);
    std::size_t room = std::min(cfg.max_size - c.total, cfg.max_concurrent_connects - c.connecting);
    return std::min(want, room);
}

// The delay before the next connect after `failures` consecutive failed ones: capped
// exponential with equal jitter (backoff() of backoff.hpp; `unit_random` in [0, 1)), so a dead
// server is retried at a bounded rate, never in a tight loop, and pools that failed together
// do not reconnect in lockstep. The delay lies in [base/2, base), base = min(max, initial ×
// 2^(n−1)).
constexpr std::chrono::milliseconds refill_delay(unsigned failures, const pool_config& cfg,
                                                 double unit_random) noexcept
{
    if (failures == 0)
        return std::chrono::milliseconds(0);
    const backoff_policy p{cfg.refill_backoff_initial, 2.0, cfg.refill_backoff_max,
                           jitter_kind::equal};
    return backoff(p, failures, std::chrono::milliseconds(0), unit_random);
}

// A connection's retirement time: max_lifetime shortened by a random fraction of the jitter
// (`unit_random` in [0, 1)), so connections opened together do not all reconnect together.
// time_point::max() when lifetime is unlimited.
template <class TimePoint>
constexpr TimePoint retire_at(TimePoint opened, const pool_config& cfg, double unit_random) noexcept
{
    if (cfg.max_lifetime.count() <= 0)
        return TimePoint::max();
    auto jitter = std::min(cfg.max_lifetime_jitter, cfg.max_lifetime);
    auto cut = std::chrono::milliseconds(
        static_cast<long long>(static_cast<double>(jitter.count()) * unit_random));
    return opened + (cfg.max_lifetime - cut);
}

// Closing an idle connection for idleness keeps at least min_size connections.
template <class Duration>
constexpr bool idle_expired(Duration idle_for, std::size_t total, const pool_config& cfg) noexcept
{
    return cfg.idle_timeout.count() > 0 && total > cfg.min_size && idle_for >= cfg.idle_timeout;
}

// How often the maintenance sweep runs: a quarter of the shortest enabled limit, between
// 10 ms and 1 s, so short test settings are observed promptly and production costs ~nothing.
constexpr std::chrono::milliseconds maintenance_interval(const pool_config& cfg) noexcept
{
    auto shortest = std::chrono::milliseconds(4000);
    for (auto d : {cfg.idle_timeout, cfg.max_lifetime, cfg.keepalive_interval, cfg.leak_threshold})
        if (d.count() > 0)
            shortest = std::min(shortest, d);
    return std::clamp(shortest / 4, std::chrono::milliseconds(10), std::chrono::milliseconds(1000));
}

} // namespace pgcoro::detail

#endif // PGCORO_DETAIL_POOL_POLICY_HPP
