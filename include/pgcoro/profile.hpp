// SPDX-License-Identifier: BSL-1.0
// pgcoro/profile.hpp - per-environment presets: development, staging, production.
#ifndef PGCORO_PROFILE_HPP
#define PGCORO_PROFILE_HPP

#include <pgcoro/connect_config.hpp>
#include <pgcoro/pool_config.hpp>

#include <chrono>
#include <optional>
#include <string_view>

namespace pgcoro
{

/// The environment a program runs in; picks the preset defaults. Env PGCORO_ENV, else APP_ENV;
/// development when neither is set.
enum class profile
{
    development, ///< a laptop: small pool, loud logs, TLS when offered
    staging,     ///< production-like sizes and deadlines, TLS without certificate checks
    production,  ///< verified TLS, bounded everything, quiet logs
};

/// "development", "staging" or "production".
constexpr std::string_view to_string(profile p) noexcept
{
    switch (p)
    {
    case profile::development:
        return "development";
    case profile::staging:
        return "staging";
    case profile::production:
        return "production";
    }
    return "development";
}

/// How much the pool logs. The order is most to least verbose.
enum class log_level
{
    trace, ///< every statement with its parameters' types (never values)
    debug, ///< every statement and every pool transition
    info,  ///< connects, closes, slow statements
    warn,  ///< timeouts, leaks, reconnects
    error, ///< failures only
    off,   ///< nothing
};

/// "trace", "debug", "info", "warn", "error" or "off".
constexpr std::string_view to_string(log_level l) noexcept
{
    switch (l)
    {
    case log_level::trace:
        return "trace";
    case log_level::debug:
        return "debug";
    case log_level::info:
        return "info";
    case log_level::warn:
        return "warn";
    case log_level::error:
        return "error";
    case log_level::off:
        return "off";
    }
    return "info";
}

namespace detail
{
constexpr bool iequals(std::string_view a, std::string_view b) noexcept
{
    if (a.size() != b.size())
        return false;
    for (std::size_t i = 0; i < a.size(); ++i)
    {
        char x = a[i] >= 'A' && a[i] <= 'Z' ? static_cast<char>(a[i] - 'A' + 'a') : a[i];
        char y = b[i] >= 'A' && b[i] <= 'Z' ? static_cast<char>(b[i] - 'A' + 'a') : b[i];
        if (x != y)
            return false;
    }
    return true;
}
} // namespace detail

/// Parses a profile name, case-insensitively; also accepts dev, stage and prod.
constexpr std::optional<profile> parse_profile(std::string_view s) noexcept
{
    using detail::iequals;
    if (iequals(s, "development") || iequals(s, "dev"))
        return profile::development;
    if (iequals(s, "staging") || iequals(s, "stage"))
        return profile::staging;
    if (iequals(s, "production") || iequals(s, "prod"))
        return profile::production;
    return std::nullopt;
}

/// Parses a log level, case-insensitively; also accepts "warning".
constexpr std::optional<log_level> parse_log_level(std::string_view s) noexcept
{
    using detail::iequals;
    for (log_level l : {log_level::trace, log_level::debug, log_level::info, log_level::warn,
                        log_level::error, log_level::off})
        if (iequals(s, to_string(l)))
            return l;
    if (iequals(s, "warning"))
        return log_level::warn;
    return std::nullopt;
}

/// The connect-level values a profile chooses (the rest of connect_config is where to connect,
/// which no profile can know). A literal type, so presets can be checked in static_assert.
struct connect_preset
{
    ssl_mode sslmode = ssl_mode::prefer;               ///< see connect_config::sslmode
    std::chrono::milliseconds connect_timeout{30'000}; ///< see connect_config::connect_timeout
    std::chrono::milliseconds statement_timeout{0};    ///< see connect_config::statement_timeout
    std::chrono::milliseconds cancel_timeout{5'000};   ///< see connect_config::cancel_timeout
    log_level log = log_level::info;                   ///< pool log level; env PGCORO_LOG_LEVEL

    /// Member-wise equality.
    friend constexpr bool operator==(const connect_preset&, const connect_preset&) = default;
};

/// The pool preset of a profile. Why these values: docs/configuration.md, "Profiles".
/// development: 5 connections (a laptop server has ~100 slots shared by every tool), a 5 s
/// acquire timeout so a leak shows up fast, leak reports after 10 s, slow-query reports from
/// 100 ms. staging: production's deadlines with 10 connections. production: 15 connections
/// (2 x cores + 1 for an 8-core box, and 6 replicas x 15 stays under max_connections = 100),
/// 10 s acquire timeout, 1 min keepalive, 2 min lifetime jitter, 60 s client query deadline
/// above the 30 s server statement_timeout, at most 1000 waiting acquires.
constexpr pool_config pool_preset(profile p) noexcept
{
    using std::chrono::milliseconds;
    using namespace std::chrono_literals;
    pool_config c{};
    switch (p)
    {
    case profile::development:
        c.min_size = 0;
        c.max_size = 5;
        c.acquire_timeout = 5s;
        c.idle_timeout = 5min;
        c.max_lifetime = 30min;
        c.max_lifetime_jitter = 0s;
        c.validate_after_idle = 1s;
        c.validation_timeout = 2s;
        c.keepalive_interval = 0s;
        c.leak_threshold = 10s;
        c.slow_query_threshold = 100ms;
        c.query_timeout = 0s;
        c.max_concurrent_connects = 2;
        c.refill_backoff_initial = 100ms;
        c.refill_backoff_max = 5s;
        break;
    case profile::staging:
        c.min_size = 1;
        c.max_size = 10;
        c.acquire_timeout = 10s;
        c.idle_timeout = 10min;
        c.max_lifetime = 30min;
        c.max_lifetime_jitter = 2min;
        c.validate_after_idle = 5s;
        c.validation_timeout = 2s;
        c.keepalive_interval = 60s;
        c.leak_threshold = 30s;
        c.slow_query_threshold = 500ms;
        c.query_timeout = 60s;
        c.max_concurrent_connects = 2;
        c.refill_backoff_initial = 250ms;
        c.refill_backoff_max = 10s;
        break;
    case profile::production:
        c.min_size = 2;
        c.max_size = 15;
        c.acquire_timeout = 10s;
        c.idle_timeout = 10min;
        c.max_lifetime = 30min;
        c.max_lifetime_jitter = 2min;
        c.validate_after_idle = 5s;
        c.validation_timeout = 2s;
        c.keepalive_interval = 60s;
        c.leak_threshold = 60s;
        c.slow_query_threshold = 1s;
        c.query_timeout = 60s;
        c.max_concurrent_connects = 4;
        c.refill_backoff_initial = 500ms;
        c.refill_backoff_max = 30s;
        c.max_waiters = 1000; // ~2 KiB each: an unbounded queue is unbounded memory
        break;
    }
    return c;
}

/// The connect-level preset of a profile. development: sslmode prefer, 10 s connect timeout,
/// no statement timeout (long local experiments), debug logging. staging: sslmode require, 30 s
/// connect and statement timeouts, info logging. production: sslmode verify-full (TLS with
/// certificate and host-name checks), 30 s connect and statement timeouts, warn logging.
constexpr connect_preset connect_preset_for(profile p) noexcept
{
    using namespace std::chrono_literals;
    switch (p)
    {
    case profile::development:
        return {ssl_mode::prefer, 10s, 0s, 5s, log_level::debug};
    case profile::staging:
        return {ssl_mode::require, 30s, 30s, 5s, log_level::info};
    case profile::production:
        return {ssl_mode::verify_full, 30s, 30s, 5s, log_level::warn};
    }
    return {};
}

} // namespace pgcoro

#endif // PGCORO_PROFILE_HPP
