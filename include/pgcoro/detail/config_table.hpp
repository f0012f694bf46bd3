// SPDX-License-Identifier: BSL-1.0
// pgcoro/detail/config_table.hpp - the one table of settings: field, env var, URL parameter,
// kind and unit. The env reader, the URL parser, the docs and the tests all walk it.
#ifndef PGCORO_DETAIL_CONFIG_TABLE_HPP
#define PGCORO_DETAIL_CONFIG_TABLE_HPP

#include <pgcoro/connect_config.hpp>
#include <pgcoro/detail/config_parse.hpp>
#include <pgcoro/pool_config.hpp>
#include <pgcoro/profile.hpp>
#include <pgcoro/validate.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace pgcoro::detail
{

enum class value_kind
{
    count,
    duration,
    boolean,
    sslmode,
    text,
    level,
};

// A parsed value: `number` holds counts, milliseconds, bools and enums; `text` holds text.
struct setting_value
{
    std::int64_t number = 0;
    std::string text;
};

// What one setting writes into. Kept apart from `settings` so the URL parser needs no more.
struct config_target
{
    connect_config& connect;
    pool_config& pool;
    log_level& log;
};

struct setting_spec
{
    std::string_view field; // "pool.max_size" (also the key of validate()'s limits)
    std::string_view env;   // env var, or "" when none
    std::string_view param; // URL / conninfo parameter, or "" when none
    value_kind kind;
    std::chrono::milliseconds unit; // what a plain integer means, for durations
    void (*apply)(config_target&, const setting_value&);
};

using std::chrono::milliseconds;
inline constexpr milliseconds ms_unit{1};
inline constexpr milliseconds s_unit{1'000};

#define PGCORO_CONFIG_DURATION(obj, member)                                                        \
    [](config_target& t, const setting_value& v)                                                   \
    {                                                                                              \
        t.obj.member = milliseconds(v.number);                                                     \
    }
#define PGCORO_CONFIG_COUNT(obj, member)                                                           \
    [](config_target& t, const setting_value& v)                                                   \
    {                                                                                              \
        t.obj.member = static_cast<decltype(t.obj.member)>(v.number);                              \
    }
#define PGCORO_CONFIG_TEXT(obj, member)                                                            \
    [](config_target& t, const setting_value& v)                                                   \
    {                                                                                              \
        t.obj.member = v.text;                                                                     \
    }

// clang-format off
inline constexpr std::array<setting_spec, 28> setting_specs{{
    {"pool.min_size", "PGCORO_POOL_MIN_SIZE", "min_connections", value_kind::count, s_unit,
     PGCORO_CONFIG_COUNT(pool, min_size)},
    {"pool.max_size", "DATABASE_CONNECTION_LIMIT", "connection_limit", value_kind::count, s_unit,
     PGCORO_CONFIG_COUNT(pool, max_size)},
    {"pool.acquire_timeout", "DATABASE_POOL_TIMEOUT", "pool_timeout", value_kind::duration, s_unit,
     PGCORO_CONFIG_DURATION(pool, acquire_timeout)},
    {"pool.idle_timeout", "PGCORO_IDLE_TIMEOUT", "idle_timeout", value_kind::duration, s_unit,
     PGCORO_CONFIG_DURATION(pool, idle_timeout)},
    {"pool.max_lifetime", "PGCORO_MAX_LIFETIME", "max_lifetime", value_kind::duration, s_unit,
     PGCORO_CONFIG_DURATION(pool, max_lifetime)},
    {"pool.max_lifetime_jitter", "PGCORO_MAX_LIFETIME_JITTER", "max_lifetime_jitter",
     value_kind::duration, s_unit, PGCORO_CONFIG_DURATION(pool, max_lifetime_jitter)},
    {"pool.validate_after_idle", "PGCORO_VALIDATE_AFTER_IDLE", "validate_after_idle",
     value_kind::duration, s_unit, PGCORO_CONFIG_DURATION(pool, validate_after_idle)},
    {"pool.validation_timeout", "PGCORO_VALIDATION_TIMEOUT", "validation_timeout",
     value_kind::duration, s_unit, PGCORO_CONFIG_DURATION(pool, validation_timeout)},
    {"pool.keepalive_interval", "PGCORO_KEEPALIVE_INTERVAL", "keepalive_interval",
     value_kind::duration, s_unit, PGCORO_CONFIG_DURATION(pool, keepalive_interval)},
    {"pool.leak_threshold", "PGCORO_LEAK_THRESHOLD", "leak_threshold", value_kind::duration,
     s_unit, PGCORO_CONFIG_DURATION(pool, leak_threshold)},
    {"pool.max_waiters", "PGCORO_MAX_WAITERS", "max_waiters", value_kind::count, s_unit,
     PGCORO_CONFIG_COUNT(pool, max_waiters)},
    {"pool.slow_query_threshold", "PGCORO_SLOW_QUERY_THRESHOLD", "slow_query_threshold",
     value_kind::duration, ms_unit, PGCORO_CONFIG_DURATION(pool, slow_query_threshold)},
    {"pool.query_timeout", "PGCORO_QUERY_TIMEOUT", "query_timeout", value_kind::duration, ms_unit,
     PGCORO_CONFIG_DURATION(pool, query_timeout)},
    {"pool.max_concurrent_connects", "PGCORO_MAX_CONCURRENT_CONNECTS", "max_concurrent_connects",
     value_kind::count, s_unit, PGCORO_CONFIG_COUNT(pool, max_concurrent_connects)},
    {"pool.refill_backoff_initial", "PGCORO_REFILL_BACKOFF_INITIAL", "refill_backoff_initial",
     value_kind::duration, ms_unit, PGCORO_CONFIG_DURATION(pool, refill_backoff_initial)},
    {"pool.refill_backoff_max", "PGCORO_REFILL_BACKOFF_MAX", "refill_backoff_max",
     value_kind::duration, ms_unit, PGCORO_CONFIG_DURATION(pool, refill_backoff_max)},
    {"connect.connect_timeout", "PGCORO_CONNECT_TIMEOUT", "connect_timeout", value_kind::duration,
     s_unit, PGCORO_CONFIG_DURATION(connect, connect_timeout)},
    {"connect.statement_timeout", "PGCORO_STATEMENT_TIMEOUT", "statement_timeout",
     value_kind::duration, ms_unit, PGCORO_CONFIG_DURATION(connect, statement_timeout)},
    {"connect.cancel_timeout", "PGCORO_CANCEL_TIMEOUT", "cancel_timeout", value_kind::duration,
     s_unit, PGCORO_CONFIG_DURATION(connect, cancel_timeout)},
    {"connect.keepalives_idle", "PGCORO_KEEPALIVES_IDLE", "keepalives_idle", value_kind::duration,
     s_unit, [](config_target& t, const setting_value& v)
     { t.connect.keepalives_idle = std::chrono::seconds(v.number / 1000); }},
    {"connect.sslmode", "PGCORO_SSLMODE", "sslmode", value_kind::sslmode, s_unit,
     [](config_target& t, const setting_value& v)
     { t.connect.sslmode = static_cast<ssl_mode>(v.number); }},
    {"connect.sslrootcert", "PGCORO_SSLROOTCERT", "sslrootcert", value_kind::text, s_unit,
     PGCORO_CONFIG_TEXT(connect, sslrootcert)},
    {"connect.sslcert", "PGCORO_SSLCERT", "sslcert", value_kind::text, s_unit,
     PGCORO_CONFIG_TEXT(connect, sslcert)},
    {"connect.sslkey", "PGCORO_SSLKEY", "sslkey", value_kind::text, s_unit,
     PGCORO_CONFIG_TEXT(connect, sslkey)},
    {"connect.application_name", "PGCORO_APPLICATION_NAME", "application_name", value_kind::text,
     s_unit, PGCORO_CONFIG_TEXT(connect, application_name)},
    {"connect.pgbouncer", "PGCORO_PGBOUNCER", "pgbouncer", value_kind::boolean, s_unit,
     [](config_target& t, const setting_value& v) { t.connect.pgbouncer = v.number != 0; }},
    {"connect.statement_cache_size", "PGCORO_STATEMENT_CACHE_SIZE", "statement_cache_size",
     value_kind::count, s_unit, PGCORO_CONFIG_COUNT(connect, statement_cache_size)},
    {"log_level", "PGCORO_LOG_LEVEL", "", value_kind::level, s_unit,
     [](config_target& t, const setting_value& v) { t.log = static_cast<log_level>(v.number); }},
}};
// clang-format on

#undef PGCORO_CONFIG_DURATION
#undef PGCORO_CONFIG_COUNT
#undef PGCORO_CONFIG_TEXT

inline const setting_spec* find_spec_by_param(std::string_view param) noexcept
{
    for (const auto& s : setting_specs)
        if (!s.param.empty() && s.param == param)
            return &s;
    return nullptr;
}

inline const setting_spec* find_spec_by_env(std::string_view env) noexcept
{
    for (const auto& s : setting_specs)
        if (!s.env.empty() && s.env == env)
            return &s;
    return nullptr;
}

inline const setting_spec* find_spec_by_field(std::string_view field) noexcept
{
    for (const auto& s : setting_specs)
        if (s.field == field)
            return &s;
    return nullptr;
}

// Parses `text` as the value of `spec`, range-checked against validate()'s limits.
inline parsed<setting_value> parse_setting(const setting_spec& spec, std::string_view text)
{
    auto lim = limits_of(spec.field);
    switch (spec.kind)
    {
    case value_kind::count:
        return parse_count(text, lim.lo, lim.hi)
            .map(
                [](std::int64_t n) {
                    return setting_value{n, {}};
                });
    case value_kind::duration:
    {
        auto d = parse_duration(text, spec.unit, lim.lo, lim.hi);
        if (!d)
            return tl::unexpected<parse_failure>(d.error());
        // libpq takes keepalives_idle in whole seconds.
        if (spec.field == "connect.keepalives_idle" && d->count() % 1000 != 0)
            return parse_fail("not a whole number of seconds",
                              allowed_duration(lim.lo, lim.hi, spec.unit));
        return setting_value{d->count(), {}};
    }
    case value_kind::boolean:
        return parse_bool(text).map([](bool b) { return setting_value{b ? 1 : 0, {}}; });
    case value_kind::sslmode:
        return parse_sslmode(text).map(
            [](ssl_mode m) {
                return setting_value{static_cast<std::int64_t>(m), {}};
            });
    case value_kind::level:
    {
        auto l = parse_log_level(trim(text));
        if (!l)
            return parse_fail(trim(text).empty() ? "empty" : "unknown log level",
                              "trace, debug, info, warn, error, off");
        return setting_value{static_cast<std::int64_t>(*l), {}};
    }
    case value_kind::text:
        return setting_value{0, std::string(text)};
    }
    return parse_fail("unsupported");
}

} // namespace pgcoro::detail

#endif // PGCORO_DETAIL_CONFIG_TABLE_HPP
