// SPDX-License-Identifier: BSL-1.0
// pgcoro/detail/config_env.hpp - helpers of settings_from_env(): where each value came from,
// secret files, and turning validate()'s issues into config_errors.
#ifndef PGCORO_DETAIL_CONFIG_ENV_HPP
#define PGCORO_DETAIL_CONFIG_ENV_HPP

#include <pgcoro/config_error.hpp>
#include <pgcoro/connect_config.hpp>
#include <pgcoro/detail/config_parse.hpp>
#include <pgcoro/detail/config_table.hpp>
#include <pgcoro/detail/secret_file.hpp>
#include <pgcoro/pool_config.hpp>
#include <pgcoro/validate.hpp>

#include <tl/expected.hpp>

#include <map>
#include <string>
#include <string_view>

namespace pgcoro::detail
{

// field -> "env DATABASE_POOL_TIMEOUT" / "DATABASE_URL parameter pool_timeout" / "code" /
// "profile production default". Last writer wins, like the values themselves.
using origin_map = std::map<std::string, std::string, std::less<>>;

inline std::string origin_of(const origin_map& m, std::string_view field)
{
    auto it = m.find(field);
    return it == m.end() ? std::string("default") : it->second;
}

// The current value of a field, as text (for error messages).
inline std::string field_value(const pool_config& p, const connect_config& c,
                               std::string_view field)
{
    using ms = std::chrono::milliseconds;
    struct pool_ms
    {
        std::string_view field;
        ms pool_config::*member;
    };
    static constexpr pool_ms durations[] = {
        {"pool.acquire_timeout", &pool_config::acquire_timeout},
        {"pool.idle_timeout", &pool_config::idle_timeout},
        {"pool.max_lifetime", &pool_config::max_lifetime},
        {"pool.max_lifetime_jitter", &pool_config::max_lifetime_jitter},
        {"pool.validate_after_idle", &pool_config::validate_after_idle},
        {"pool.validation_timeout", &pool_config::validation_timeout},
        {"pool.keepalive_interval", &pool_config::keepalive_interval},
        {"pool.leak_threshold", &pool_config::leak_threshold},
        {"pool.slow_query_threshold", &pool_config::slow_query_threshold},
        {"pool.query_timeout", &pool_config::query_timeout},
        {"pool.refill_backoff_initial", &pool_config::refill_backoff_initial},
        {"pool.refill_backoff_max", &pool_config::refill_backoff_max},
    };
    for (const auto& d : durations)
        if (d.field == field)
            return format_duration(p.*(d.member));
    if (field == "pool.min_size")
        return std::to_string(p.min_size);
    if (field == "pool.max_size")
        return std::to_string(p.max_size);
    if (field == "pool.max_waiters")
        return std::to_string(p.max_waiters);
    if (field == "pool.max_concurrent_connects")
        return std::to_string(p.max_concurrent_connects);
    if (field == "connect.connect_timeout")
        return format_duration(c.connect_timeout);
    if (field == "connect.statement_timeout")
        return format_duration(c.statement_timeout);
    if (field == "connect.cancel_timeout")
        return format_duration(c.cancel_timeout);
    if (field == "connect.keepalives_idle")
        return format_duration(c.keepalives_idle);
    if (field == "connect.hosts")
        return std::to_string(c.hosts.size()) + " hosts";
    if (field == "connect.statement_cache_size")
        return std::to_string(c.statement_cache_size);
    if (field == "connect.pgbouncer")
        return c.pgbouncer ? "true" : "false";
    return "";
}

// The field a cross-field rule compares against.
constexpr std::string_view other_field(config_rule r) noexcept
{
    switch (r)
    {
    case config_rule::min_exceeds_max:
        return "pool.max_size";
    case config_rule::validation_not_below_acquire:
        return "pool.acquire_timeout";
    case config_rule::keepalive_not_below_lifetime:
        return "pool.max_lifetime";
    case config_rule::jitter_not_below_lifetime:
        return "pool.max_lifetime";
    case config_rule::backoff_initial_exceeds_max:
        return "pool.refill_backoff_max";
    case config_rule::statement_not_below_query:
        return "pool.query_timeout";
    case config_rule::cache_with_pgbouncer:
        return "connect.pgbouncer";
    default:
        return "";
    }
}

// validate()'s issues as config_errors, each naming where its value came from.
inline void add_issues(config_errors& errs, const validation_report& r, const pool_config& p,
                       const connect_config& c, const origin_map& origins,
                       std::string_view source_override = {})
{
    for (const auto& i : r.issues())
    {
        config_error e;
        e.field = std::string(i.field);
        e.source =
            source_override.empty() ? origin_of(origins, i.field) : std::string(source_override);
        e.value = field_value(p, c, i.field);
        e.problem = std::string(to_string(i.rule));
        if (i.rule == config_rule::out_of_range)
        {
            const setting_spec* spec = find_spec_by_field(i.field);
            auto unit = spec ? spec->unit : std::chrono::milliseconds(1);
            e.allowed =
                i.is_duration ? allowed_duration(i.lo, i.hi, unit) : allowed_count(i.lo, i.hi);
        }
        if (auto other = other_field(i.rule); !other.empty())
        {
            e.problem += " (" + std::string(other) + " = " + field_value(p, c, other) + ", from " +
                         origin_of(origins, other) + ")";
            bool inclusive = i.rule == config_rule::min_exceeds_max ||
                             i.rule == config_rule::backoff_initial_exceeds_max;
            e.allowed = (inclusive ? "at most " : "below ") + field_value(p, c, other);
            if (i.rule == config_rule::keepalive_not_below_lifetime ||
                i.rule == config_rule::statement_not_below_query)
                e.allowed += ", or 0 (off) for either";
            if (i.rule == config_rule::cache_with_pgbouncer)
                e.allowed = "0 (off) with pgbouncer";
        }
        errs.add(std::move(e));
    }
}

} // namespace pgcoro::detail

#endif // PGCORO_DETAIL_CONFIG_ENV_HPP
