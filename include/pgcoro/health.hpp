// SPDX-License-Identifier: BSL-1.0
// pgcoro/health.hpp - a health report and the pure rules that grade a pool from its metrics.
#ifndef PGCORO_HEALTH_HPP
#define PGCORO_HEALTH_HPP

#include <pgcoro/detail/render_text.hpp>
#include <pgcoro/detail/resilience_breaker.hpp>
#include <pgcoro/pool_stats.hpp>
#include <pgcoro/stats_collector.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pgcoro
{

/// A pool's overall health, from best to worst.
enum class health_status
{
    healthy,   ///< every check passed
    degraded,  ///< serving, but near a limit or failing more than usual
    unhealthy, ///< not serving: the database is unreachable, the breaker is open, or most
               ///< operations fail
};

/// "healthy", "degraded" or "unhealthy".
constexpr std::string_view to_string(health_status s) noexcept
{
    switch (s)
    {
    case health_status::healthy:
        return "healthy";
    case health_status::degraded:
        return "degraded";
    case health_status::unhealthy:
        return "unhealthy";
    }
    return "unhealthy";
}

/// When evaluate() calls a pool degraded or unhealthy. A literal type; every rule can be
/// switched off. Utilization is leased / max_size: idle connections do not count.
struct health_thresholds
{
    /// Utilization at or above which the pool is degraded. Default 0.8; range 0..1;
    /// a value above 1 disables the rule.
    double degraded_utilization = 0.8;
    /// Success rate below which the pool is degraded. Default 0.95; range 0..1; 0 disables.
    double degraded_success_rate = 0.95;
    /// Success rate below which the pool is unhealthy. Default 0.5; range 0..1; 0 disables.
    double unhealthy_success_rate = 0.5;
    /// The success-rate rules apply only once the window holds this many outcomes, so one
    /// early failure cannot flip a fresh pool. Default 10; 0 is treated as 1.
    std::size_t minimum_outcomes = 10;
    /// p99 statement duration at or above which the pool is degraded. Default 0 (disabled).
    std::chrono::milliseconds degraded_p99{0};
    /// Waiting acquires at or above which the pool is degraded. Default 0 (disabled).
    std::size_t degraded_waiters = 0;
    /// Whether a half-open breaker (probing after an outage) makes the pool degraded.
    /// Default true. An open breaker always makes it unhealthy.
    bool half_open_is_degraded = true;
};

/// One named rule's verdict inside a health_report.
struct health_check
{
    std::string name;                              ///< "ping", "circuit_breaker", ...
    health_status status = health_status::healthy; ///< this check's verdict
    std::string detail;                            ///< what was measured, e.g. "0.85 >= 0.8"
};

/// The connection figures of a health_report.
struct connection_health
{
    std::size_t current = 0;  ///< connections held (pool_stats::size), connecting included
    std::size_t max = 0;      ///< pool_config::max_size
    double utilization = 0.0; ///< in_use / max (0 when max is 0)
    std::size_t in_use = 0;   ///< leased connections
    std::size_t idle = 0;     ///< idle connections
    std::size_t waiters = 0;  ///< acquires waiting
};

/// The metric figures of a health_report.
struct metric_health
{
    double success_rate = 1.0;         ///< see metrics_snapshot::success_rate
    double avg_response_time_ms = 0.0; ///< mean statement duration, milliseconds
    double p99_ms = 0.0;               ///< 99th percentile statement duration, milliseconds
    /// When the last failure happened (rendered ISO-8601 UTC); empty if never.
    std::optional<std::chrono::system_clock::time_point> last_failure;
};

/// What a health check reports: an overall status (the worst check), figures and checks.
struct health_report
{
    health_status status = health_status::healthy; ///< the worst of `checks`
    connection_health connections;                 ///< pool figures
    metric_health metrics;                         ///< statement figures
    std::optional<breaker_state> breaker;          ///< breaker state, when there is a breaker
    std::vector<health_check> checks;              ///< each rule's verdict, in a fixed order
};

namespace detail
{
inline std::string health_detail(double value, std::string_view op, double limit)
{
    std::string s;
    append_double(s, round_to(value, 4));
    s += ' ';
    s += op;
    s += ' ';
    append_double(s, limit);
    return s;
}
} // namespace detail

/// Grades a pool from its metrics, gauges, a ping's outcome and its breaker's state; pure.
/// Unhealthy when the ping failed, the breaker is open, or the success rate is below
/// unhealthy_success_rate; else degraded when utilization, success rate, p99, waiters or a
/// half-open breaker cross their thresholds; else healthy. `max_size` is
/// pool_config::max_size (pool_stats does not carry it). Checks appear in the order ping,
/// circuit_breaker, success_rate, utilization, waiters, latency (disabled rules omitted).
inline health_report evaluate(const metrics_snapshot& m, const pool_stats& stats,
                              std::size_t max_size, bool ping_ok,
                              std::optional<breaker_state> breaker, const health_thresholds& t = {})
{
    using detail::health_detail;
    health_report r;
    r.connections.current = stats.size;
    r.connections.max = max_size;
    r.connections.in_use = stats.leased;
    r.connections.idle = stats.idle;
    r.connections.waiters = stats.waiters;
    r.connections.utilization =
        max_size == 0 ? 0.0 : static_cast<double>(stats.leased) / static_cast<double>(max_size);
    r.metrics.success_rate = m.success_rate;
    r.metrics.avg_response_time_ms = m.query_duration.mean_ns() / 1e6;
    r.metrics.p99_ms = static_cast<double>(m.query_duration.percentile(0.99).count()) / 1e6;
    r.metrics.last_failure = m.last_failure;
    r.breaker = breaker;

    auto check = [&](std::string name, health_status s, std::string detail)
    {
        r.status = std::max(r.status, s);
        r.checks.push_back(health_check{std::move(name), s, std::move(detail)});
    };

    check("ping", ping_ok ? health_status::healthy : health_status::unhealthy,
          ping_ok ? "ok" : "failed");

    if (breaker)
    {
        health_status s = health_status::healthy;
        if (*breaker == breaker_state::open)
            s = health_status::unhealthy;
        else if (*breaker == breaker_state::half_open && t.half_open_is_degraded)
            s = health_status::degraded;
        check("circuit_breaker", s, std::string(to_string(*breaker)));
    }

    if (t.degraded_success_rate > 0.0 || t.unhealthy_success_rate > 0.0)
    {
        const std::size_t needed = std::max<std::size_t>(t.minimum_outcomes, 1);
        health_status s = health_status::healthy;
        std::string detail;
        if (m.window_outcomes < needed)
        {
            detail = "too few outcomes (";
            detail::append_uint(detail, m.window_outcomes);
            detail += ')';
        }
        else if (m.success_rate < t.unhealthy_success_rate)
        {
            s = health_status::unhealthy;
            detail = health_detail(m.success_rate, "<", t.unhealthy_success_rate);
        }
        else if (m.success_rate < t.degraded_success_rate)
        {
            s = health_status::degraded;
            detail = health_detail(m.success_rate, "<", t.degraded_success_rate);
        }
        else
            detail = health_detail(m.success_rate, ">=", t.degraded_success_rate);
        check("success_rate", s, std::move(detail));
    }

    if (t.degraded_utilization <= 1.0)
    {
        const bool high = max_size != 0 && r.connections.utilization >= t.degraded_utilization;
        check("utilization", high ? health_status::degraded : health_status::healthy,
              health_detail(r.connections.utilization, high ? ">=" : "<", t.degraded_utilization));
    }

    if (t.degraded_waiters != 0)
    {
        const bool many = stats.waiters >= t.degraded_waiters;
        check("waiters", many ? health_status::degraded : health_status::healthy,
              health_detail(static_cast<double>(stats.waiters), many ? ">=" : "<",
                            static_cast<double>(t.degraded_waiters)));
    }

    if (t.degraded_p99.count() > 0)
    {
        const double limit = static_cast<double>(t.degraded_p99.count());
        const bool slow = r.metrics.p99_ms >= limit;
        check("latency", slow ? health_status::degraded : health_status::healthy,
              health_detail(r.metrics.p99_ms, slow ? ">=" : "<", limit));
    }
    return r;
}

} // namespace pgcoro

#endif // PGCORO_HEALTH_HPP
