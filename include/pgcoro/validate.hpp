// SPDX-License-Identifier: BSL-1.0
// pgcoro/validate.hpp - constexpr checks of pool and connect settings (usable in static_assert).
#ifndef PGCORO_VALIDATE_HPP
#define PGCORO_VALIDATE_HPP

#include <pgcoro/connect_config.hpp>
#include <pgcoro/pool_config.hpp>
#include <pgcoro/profile.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace pgcoro
{

/// Which rule a setting breaks.
enum class config_rule
{
    out_of_range = 1,             ///< the value is outside [lo, hi]
    min_exceeds_max,              ///< min_size > max_size
    validation_not_below_acquire, ///< validation_timeout >= acquire_timeout
    keepalive_not_below_lifetime, ///< keepalive_interval >= max_lifetime (both set)
    jitter_not_below_lifetime,    ///< max_lifetime_jitter >= max_lifetime (lifetime set)
    backoff_initial_exceeds_max,  ///< refill_backoff_initial > refill_backoff_max
    statement_not_below_query,    ///< statement_timeout >= query_timeout (both set)
    no_hosts,                     ///< connect_config::hosts is empty
    port_zero,                    ///< a host's port is 0
    empty_host,                   ///< a host name is empty
    cache_with_pgbouncer,         ///< statement_cache_size > 0 with pgbouncer
};

/// What a rule demands, in words ("must be at most max_size").
constexpr std::string_view to_string(config_rule r) noexcept
{
    switch (r)
    {
    case config_rule::out_of_range:
        return "is out of range";
    case config_rule::min_exceeds_max:
        return "must not exceed max_size";
    case config_rule::validation_not_below_acquire:
        return "must be below acquire_timeout";
    case config_rule::keepalive_not_below_lifetime:
        return "must be below max_lifetime when both are set";
    case config_rule::jitter_not_below_lifetime:
        return "must be below max_lifetime when it is set";
    case config_rule::backoff_initial_exceeds_max:
        return "must not exceed refill_backoff_max";
    case config_rule::statement_not_below_query:
        return "must be below query_timeout when both are set";
    case config_rule::no_hosts:
        return "must name at least one host";
    case config_rule::port_zero:
        return "must be in 1..65535";
    case config_rule::empty_host:
        return "must not be empty";
    case config_rule::cache_with_pgbouncer:
        return "must be 0 with pgbouncer=true (transaction pooling mixes server sessions)";
    }
    return "is invalid";
}

/// One broken rule: the field ("pool.max_size"), the rule, and for out_of_range the allowed
/// range [lo, hi] in the field's unit (a count, or milliseconds when `is_duration`).
struct config_issue
{
    std::string_view field;
    config_rule rule = config_rule::out_of_range;
    std::int64_t lo = 0;
    std::int64_t hi = 0;
    bool is_duration = false;
};

/// Every issue found by one validate() call. Converts to true when there are none, so
/// `static_assert(pgcoro::validate(cfg))` works.
struct validation_report
{
    static constexpr std::size_t capacity = 32;
    std::array<config_issue, capacity> items{}; ///< the first `count` are meaningful
    std::size_t count = 0;                      ///< how many issues were found

    /// True when the configuration is valid.
    constexpr explicit operator bool() const noexcept { return count == 0; }
    /// True when the configuration is valid.
    constexpr bool ok() const noexcept { return count == 0; }
    /// Records an issue (silently drops past `capacity`, which no config reaches).
    constexpr void add(config_issue i) noexcept
    {
        if (count < capacity)
            items[count++] = i;
    }
    /// True when an issue names `field`.
    constexpr bool has(std::string_view field) const noexcept
    {
        for (std::size_t i = 0; i < count; ++i)
            if (items[i].field == field)
                return true;
        return false;
    }
    /// The issues, for runtime reporting.
    std::vector<config_issue> issues() const { return {items.begin(), items.begin() + count}; }
};

namespace detail
{
constexpr void check_count(validation_report& r, std::string_view field, std::size_t v,
                           std::int64_t lo, std::int64_t hi) noexcept
{
    if (static_cast<std::int64_t>(v) < lo || v > static_cast<std::size_t>(hi))
        r.add({field, config_rule::out_of_range, lo, hi, false});
}
constexpr void check_ms(validation_report& r, std::string_view field, std::int64_t ms,
                        std::int64_t lo, std::int64_t hi) noexcept
{
    if (ms < lo || ms > hi)
        r.add({field, config_rule::out_of_range, lo, hi, true});
}
inline constexpr std::int64_t ms_minute = 60'000;
inline constexpr std::int64_t ms_hour = 60 * ms_minute;
inline constexpr std::int64_t ms_day = 24 * ms_hour;

// The limits below are the single source of the ranges: the env/URL parsers read them too.
struct field_limits
{
    std::string_view field;
    std::int64_t lo;
    std::int64_t hi;
    bool is_duration;
};
inline constexpr std::array<field_limits, 22> all_limits{{
    {"pool.min_size", 0, 10'000, false},
    {"pool.max_size", 1, 10'000, false},
    {"pool.acquire_timeout", 1, ms_hour, true},
    {"pool.idle_timeout", 0, ms_day, true},
    {"pool.max_lifetime", 0, ms_day, true},
    {"pool.max_lifetime_jitter", 0, ms_hour, true},
    {"pool.validate_after_idle", 0, ms_hour, true},
    {"pool.validation_timeout", 1, ms_minute, true},
    {"pool.keepalive_interval", 0, ms_hour, true},
    {"pool.leak_threshold", 0, ms_day, true},
    {"pool.max_waiters", 0, 1'000'000, false},
    {"pool.slow_query_threshold", 0, ms_hour, true},
    {"pool.query_timeout", 0, ms_day, true},
    {"pool.max_concurrent_connects", 1, 1'000, false},
    {"pool.refill_backoff_initial", 1, ms_minute, true},
    {"pool.refill_backoff_max", 1, ms_hour, true},
    {"connect.connect_timeout", 0, ms_hour, true},
    {"connect.statement_timeout", 0, ms_day, true},
    {"connect.cancel_timeout", 1, ms_minute, true},
    {"connect.keepalives_idle", 0, 2 * ms_hour, true},
    {"connect.statement_cache_size", 0, 10'000, false},
    {"connect.port", 1, 65'535, false},
}};

/// The limits of `field`; {"" ,0, 0} when it has none.
constexpr field_limits limits_of(std::string_view field) noexcept
{
    for (const auto& l : all_limits)
        if (l.field == field)
            return l;
    return {"", 0, 0, false};
}
constexpr void check_field(validation_report& r, std::string_view field, std::int64_t v) noexcept
{
    auto l = limits_of(field);
    if (v < l.lo || v > l.hi)
        r.add({l.field, config_rule::out_of_range, l.lo, l.hi, l.is_duration});
}
constexpr void check_connect_timeouts(validation_report& r, std::chrono::milliseconds connect,
                                      std::chrono::milliseconds statement,
                                      std::chrono::milliseconds cancel) noexcept
{
    check_field(r, "connect.connect_timeout", connect.count());
    check_field(r, "connect.statement_timeout", statement.count());
    check_field(r, "connect.cancel_timeout", cancel.count());
}
} // namespace detail

/// Checks every range and cross-field rule of a pool_config and reports all issues at once.
/// constexpr: `static_assert(pgcoro::validate(my_pool_config))`.
constexpr validation_report validate(const pool_config& c) noexcept
{
    using detail::check_field;
    validation_report r;
    auto sz = [](std::size_t v)
    {
        return v > 1'000'000'000 ? std::int64_t{-1} : static_cast<std::int64_t>(v);
    };
    check_field(r, "pool.min_size", sz(c.min_size));
    check_field(r, "pool.max_size", sz(c.max_size));
    check_field(r, "pool.acquire_timeout", c.acquire_timeout.count());
    check_field(r, "pool.idle_timeout", c.idle_timeout.count());
    check_field(r, "pool.max_lifetime", c.max_lifetime.count());
    check_field(r, "pool.max_lifetime_jitter", c.max_lifetime_jitter.count());
    check_field(r, "pool.validate_after_idle", c.validate_after_idle.count());
    check_field(r, "pool.validation_timeout", c.validation_timeout.count());
    check_field(r, "pool.keepalive_interval", c.keepalive_interval.count());
    check_field(r, "pool.leak_threshold", c.leak_threshold.count());
    check_field(r, "pool.max_waiters", sz(c.max_waiters));
    check_field(r, "pool.slow_query_threshold", c.slow_query_threshold.count());
    check_field(r, "pool.query_timeout", c.query_timeout.count());
    check_field(r, "pool.max_concurrent_connects", sz(c.max_concurrent_connects));
    check_field(r, "pool.refill_backoff_initial", c.refill_backoff_initial.count());
    check_field(r, "pool.refill_backoff_max", c.refill_backoff_max.count());

    if (c.min_size > c.max_size)
        r.add({"pool.min_size", config_rule::min_exceeds_max});
    if (c.validation_timeout >= c.acquire_timeout)
        r.add({"pool.validation_timeout", config_rule::validation_not_below_acquire});
    if (c.keepalive_interval.count() > 0 && c.max_lifetime.count() > 0 &&
        c.keepalive_interval >= c.max_lifetime)
        r.add({"pool.keepalive_interval", config_rule::keepalive_not_below_lifetime});
    if (c.max_lifetime.count() > 0 && c.max_lifetime_jitter >= c.max_lifetime)
        r.add({"pool.max_lifetime_jitter", config_rule::jitter_not_below_lifetime});
    if (c.refill_backoff_initial > c.refill_backoff_max)
        r.add({"pool.refill_backoff_initial", config_rule::backoff_initial_exceeds_max});
    return r;
}

/// Checks the connect-level values of a preset (ranges of the timeouts).
constexpr validation_report validate(const connect_preset& p) noexcept
{
    validation_report r;
    detail::check_connect_timeouts(r, p.connect_timeout, p.statement_timeout, p.cancel_timeout);
    return r;
}

/// Checks a pool and connect preset together: both on their own, plus statement_timeout below
/// query_timeout when both are set (so the server cancels first and the connection survives).
constexpr validation_report validate(const pool_config& pool_cfg,
                                     const connect_preset& conn) noexcept
{
    validation_report r = validate(pool_cfg);
    auto c = validate(conn);
    for (std::size_t i = 0; i < c.count; ++i)
        r.add(c.items[i]);
    if (conn.statement_timeout.count() > 0 && pool_cfg.query_timeout.count() > 0 &&
        conn.statement_timeout >= pool_cfg.query_timeout)
        r.add({"connect.statement_timeout", config_rule::statement_not_below_query});
    return r;
}

/// Checks a runtime connect_config: at least one host, each non-empty with a port in
/// 1..65535, and the timeouts' ranges. Not constexpr (connect_config owns strings).
inline validation_report validate(const connect_config& c)
{
    validation_report r;
    if (c.hosts.empty())
        r.add({"connect.hosts", config_rule::no_hosts});
    for (const auto& h : c.hosts)
    {
        if (h.host.empty())
            r.add({"connect.host", config_rule::empty_host});
        if (h.port == 0)
            r.add({"connect.port", config_rule::port_zero});
    }
    detail::check_connect_timeouts(r, c.connect_timeout, c.statement_timeout, c.cancel_timeout);
    detail::check_field(r, "connect.keepalives_idle",
                        std::chrono::milliseconds(c.keepalives_idle).count());
    detail::check_field(r, "connect.statement_cache_size",
                        c.statement_cache_size > 1'000'000'000
                            ? std::int64_t{-1}
                            : static_cast<std::int64_t>(c.statement_cache_size));
    if (c.pgbouncer && c.statement_cache_size > 0)
        r.add({"connect.statement_cache_size", config_rule::cache_with_pgbouncer});
    return r;
}

/// True when sslmode `m` never lets a connection run without TLS: require, verify-ca,
/// verify-full. (disable never uses TLS; allow and prefer fall back to plain text, and prefer
/// does so silently when the server or a man in the middle offers no TLS.)
constexpr bool always_tls(ssl_mode m) noexcept
{
    return m == ssl_mode::require || m == ssl_mode::verify_ca || m == ssl_mode::verify_full;
}

/// True when a connection made with `c` may run unencrypted over the network: its sslmode is
/// disable, allow or prefer, and at least one of its hosts is reached over TCP. Unix-socket
/// directories (hosts starting with '/' or '@') never leave the machine and never use TLS, so
/// a config with only those is not insecure, unless a `hostaddr` sends libpq over TCP anyway.
/// `extra` is passed to libpq after pgcoro's own keys, so its sslmode, host and hostaddr win
/// and are what is judged. Service files and PG* variables are settings_from_env()'s part
/// (detail::find_plaintext_route). The production profile refuses such configs unless told
/// otherwise (settings_from_env(), PGCORO_ALLOW_INSECURE).
inline bool may_run_without_tls(const connect_config& c) noexcept
{
    std::string_view mode = to_string(c.sslmode), host_list, hostaddr;
    bool extra_host = false;
    for (const auto& [k, v] : c.extra)
    {
        if (v.empty()) // libpq ignores empty values in PQconnectStartParams' arrays
            continue;
        if (k == "sslmode")
            mode = v;
        else if (k == "host")
        {
            host_list = v;
            extra_host = true;
        }
        else if (k == "hostaddr")
            hostaddr = v;
    }
    if (mode == "require" || mode == "verify-ca" || mode == "verify-full")
        return false;
    if (!hostaddr.empty())
        return true;
    auto tcp = [](std::string_view h)
    {
        return h.empty() || (h.front() != '/' && h.front() != '@');
    };
    if (extra_host)
    {
        while (true)
        {
            auto comma = host_list.find(',');
            if (tcp(host_list.substr(0, comma)))
                return true;
            if (comma == std::string_view::npos)
                return false;
            host_list.remove_prefix(comma + 1);
        }
    }
    for (const auto& h : c.hosts)
        if (tcp(h.host))
            return true;
    return c.hosts.empty();
}

/// Checks a pool_config and a connect_config together (as validate(pool, connect_preset)).
inline validation_report validate(const pool_config& pool_cfg, const connect_config& conn)
{
    validation_report r = validate(pool_cfg);
    auto c = validate(conn);
    for (std::size_t i = 0; i < c.count; ++i)
        r.add(c.items[i]);
    if (conn.statement_timeout.count() > 0 && pool_cfg.query_timeout.count() > 0 &&
        conn.statement_timeout >= pool_cfg.query_timeout)
        r.add({"connect.statement_timeout", config_rule::statement_not_below_query});
    return r;
}

namespace detail
{
// Not constexpr on purpose: calling one during constant evaluation fails to compile, and the
// compiler's message then names the broken rule (C++20 has no computed static_assert text).
inline void pgcoro_config_error_value_out_of_range() {}
inline void pgcoro_config_error_min_size_exceeds_max_size() {}
inline void pgcoro_config_error_validation_timeout_not_below_acquire_timeout() {}
inline void pgcoro_config_error_keepalive_interval_not_below_max_lifetime() {}
inline void pgcoro_config_error_max_lifetime_jitter_not_below_max_lifetime() {}
inline void pgcoro_config_error_refill_backoff_initial_exceeds_max() {}
inline void pgcoro_config_error_statement_timeout_not_below_query_timeout() {}
inline void pgcoro_config_error_invalid() {}

constexpr void fail_compile(config_rule r)
{
    switch (r)
    {
    case config_rule::out_of_range:
        pgcoro_config_error_value_out_of_range();
        break;
    case config_rule::min_exceeds_max:
        pgcoro_config_error_min_size_exceeds_max_size();
        break;
    case config_rule::validation_not_below_acquire:
        pgcoro_config_error_validation_timeout_not_below_acquire_timeout();
        break;
    case config_rule::keepalive_not_below_lifetime:
        pgcoro_config_error_keepalive_interval_not_below_max_lifetime();
        break;
    case config_rule::jitter_not_below_lifetime:
        pgcoro_config_error_max_lifetime_jitter_not_below_max_lifetime();
        break;
    case config_rule::backoff_initial_exceeds_max:
        pgcoro_config_error_refill_backoff_initial_exceeds_max();
        break;
    case config_rule::statement_not_below_query:
        pgcoro_config_error_statement_timeout_not_below_query_timeout();
        break;
    default:
        pgcoro_config_error_invalid();
        break;
    }
}
} // namespace detail

/// Returns `c` unchanged when valid; otherwise fails to compile, and the diagnostic names the
/// first broken rule (e.g. `pgcoro_config_error_min_size_exceeds_max_size`).
/// `constexpr auto cfg = pgcoro::checked(pgcoro::pool_config{.min_size = 3, .max_size = 2});`
consteval pool_config checked(pool_config c)
{
    auto r = validate(c);
    if (!r)
        detail::fail_compile(r.items[0].rule);
    return c;
}

} // namespace pgcoro

#endif // PGCORO_VALIDATE_HPP
