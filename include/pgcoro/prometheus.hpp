// SPDX-License-Identifier: BSL-1.0
// pgcoro/prometheus.hpp - renders a metrics_snapshot in the Prometheus text format 0.0.4.
#ifndef PGCORO_PROMETHEUS_HPP
#define PGCORO_PROMETHEUS_HPP

#include <pgcoro/detail/render_text.hpp>
#include <pgcoro/detail/resilience_breaker.hpp>
#include <pgcoro/events.hpp>
#include <pgcoro/histogram.hpp>
#include <pgcoro/stats_collector.hpp>

#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>

namespace pgcoro
{

/// The `le` bounds, in seconds, of every histogram to_prometheus() renders (+Inf is added).
inline constexpr std::array<double, 17> prometheus_buckets_seconds = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1,    0.25,    0.5,    1,     2.5,    5,     10,   30};

/// pgcoro_circuit_breaker_state's value for `s`: 0 closed, 1 half-open, 2 open.
constexpr int prometheus_value(breaker_state s) noexcept
{
    switch (s)
    {
    case breaker_state::closed:
        return 0;
    case breaker_state::half_open:
        return 1;
    case breaker_state::open:
        return 2;
    }
    return 2;
}

namespace detail
{

// Renders one family at a time; `pool_` (already escaped) is prepended to every label set.
class prometheus_writer
{
public:
    prometheus_writer(std::string& out, std::string_view pool) : out_(out)
    {
        if (!pool.empty())
        {
            pool_ = "pool=\"";
            for (const char c : pool)
            {
                if (c == '\\')
                    pool_ += "\\\\";
                else if (c == '"')
                    pool_ += "\\\"";
                else if (c == '\n')
                    pool_ += "\\n";
                else
                    pool_ += c;
            }
            pool_ += '"';
        }
    }

    void family(std::string_view name, std::string_view type, std::string_view help)
    {
        out_ += "# HELP ";
        out_ += name;
        out_ += ' ';
        out_ += help;
        out_ += "\n# TYPE ";
        out_ += name;
        out_ += ' ';
        out_ += type;
        out_ += '\n';
    }

    // name{pool="..",label} value  (label is `key="value"` or empty)
    void sample(std::string_view name, std::string_view label, std::uint64_t v)
    {
        head(name, label);
        append_uint(out_, v);
        out_ += '\n';
    }
    void sample(std::string_view name, std::string_view label, double v)
    {
        head(name, label);
        if (std::isnan(v))
            out_ += "NaN";
        else if (std::isinf(v))
            out_ += v > 0 ? "+Inf" : "-Inf";
        else
            append_double(out_, v);
        out_ += '\n';
    }

    void histogram(std::string_view name, std::string_view help, const histogram_snapshot& h)
    {
        family(name, "histogram", help);
        const std::string bucket = std::string(name) + "_bucket";
        std::string le;
        for (const double b : prometheus_buckets_seconds)
        {
            le = "le=\"";
            append_double(le, b);
            le += '"';
            const auto ns = static_cast<std::uint64_t>(std::llround(b * 1e9));
            sample(bucket, le, h.count_at_or_below(ns));
        }
        sample(bucket, "le=\"+Inf\"", h.count);
        sample(std::string(name) + "_sum", {}, static_cast<double>(h.sum_ns) / 1e9);
        sample(std::string(name) + "_count", {}, h.count);
    }

private:
    void head(std::string_view name, std::string_view label)
    {
        out_ += name;
        if (!pool_.empty() || !label.empty())
        {
            out_ += '{';
            out_ += pool_;
            if (!pool_.empty() && !label.empty())
                out_ += ',';
            out_ += label;
            out_ += '}';
        }
        out_ += ' ';
    }

    std::string& out_;
    std::string pool_;
};

} // namespace detail

/// `m` in the Prometheus text exposition format 0.0.4 (Content-Type
/// `text/plain; version=0.0.4`), every family with HELP and TYPE, names in base units and
/// counters ending in _total, so `promtool check metrics` passes. With a non-empty
/// `pool_name`, every sample carries a pool="<pool_name>" label (to tell pools apart).
/// Families: pgcoro_pool_connections{state=idle|leased|connecting} and pgcoro_pool_waiters
/// (only when `m.pool` is set), pgcoro_acquires_total{outcome}, pgcoro_pool_timeouts_total,
/// pgcoro_acquire_wait_seconds, pgcoro_queries_total{outcome}, pgcoro_slow_queries_total,
/// pgcoro_query_duration_seconds, pgcoro_connects_total{outcome=success|failure},
/// pgcoro_connect_duration_seconds, pgcoro_connections_closed_total{reason},
/// pgcoro_retries_total, pgcoro_leaks_suspected_total, pgcoro_success_ratio,
/// pgcoro_circuit_breaker_transitions_total and pgcoro_circuit_breaker_state (0 closed,
/// 1 half-open, 2 open; only once a transition was seen). Histogram buckets are cumulative
/// counts at prometheus_buckets_seconds (see histogram_snapshot::count_at_or_below).
inline std::string to_prometheus(const metrics_snapshot& m, std::string_view pool_name = {})
{
    std::string out;
    out.reserve(8192);
    detail::prometheus_writer w(out, pool_name);

    if (m.pool)
    {
        w.family("pgcoro_pool_connections", "gauge", "Connections held by the pool, by state.");
        w.sample("pgcoro_pool_connections", "state=\"idle\"", std::uint64_t{m.pool->idle});
        w.sample("pgcoro_pool_connections", "state=\"leased\"", std::uint64_t{m.pool->leased});
        w.sample("pgcoro_pool_connections", "state=\"connecting\"",
                 std::uint64_t{m.pool->connecting});
        w.family("pgcoro_pool_waiters", "gauge", "acquire() calls waiting for a connection.");
        w.sample("pgcoro_pool_waiters", {}, std::uint64_t{m.pool->waiters});
    }

    w.family("pgcoro_acquires_total", "counter", "acquire() calls finished, by outcome.");
    w.sample("pgcoro_acquires_total", "outcome=\"immediate\"", m.acquired_immediately);
    w.sample("pgcoro_acquires_total", "outcome=\"waited\"", m.acquired_after_wait);
    w.sample("pgcoro_acquires_total", "outcome=\"timed_out\"", m.acquire_timeouts);
    w.sample("pgcoro_acquires_total", "outcome=\"cancelled\"", m.acquire_cancelled);
    w.sample("pgcoro_acquires_total", "outcome=\"rejected\"", m.acquire_rejected);
    w.family("pgcoro_pool_timeouts_total", "counter",
             "acquire() calls that failed with pool_timeout.");
    w.sample("pgcoro_pool_timeouts_total", {}, m.acquire_timeouts);
    w.histogram("pgcoro_acquire_wait_seconds", "Time acquire() waited for a connection.",
                m.acquire_wait);

    w.family("pgcoro_queries_total", "counter", "Statements finished, by outcome.");
    w.sample("pgcoro_queries_total", "outcome=\"success\"", m.queries_succeeded);
    w.sample("pgcoro_queries_total", "outcome=\"failed\"", m.queries_failed);
    w.sample("pgcoro_queries_total", "outcome=\"timed_out\"", m.queries_timed_out);
    w.sample("pgcoro_queries_total", "outcome=\"cancelled\"", m.queries_cancelled);
    w.family("pgcoro_slow_queries_total", "counter",
             "Statements that ran at least slow_query_threshold.");
    w.sample("pgcoro_slow_queries_total", {}, m.slow_queries);
    w.histogram("pgcoro_query_duration_seconds", "Statement duration, every outcome.",
                m.query_duration);

    w.family("pgcoro_connects_total", "counter", "Connects finished, by outcome.");
    w.sample("pgcoro_connects_total", "outcome=\"success\"", m.connects_succeeded);
    w.sample("pgcoro_connects_total", "outcome=\"failure\"", m.connects_failed);
    w.histogram("pgcoro_connect_duration_seconds", "Duration of successful connects.",
                m.connect_time);
    w.family("pgcoro_connections_closed_total", "counter",
             "Connections the pool closed, by reason.");
    for (std::size_t i = 0; i < close_reason_count; ++i)
    {
        std::string label = "reason=\"";
        label += to_string(static_cast<close_reason>(i));
        label += '"';
        w.sample("pgcoro_connections_closed_total", label, m.closed[i]);
    }

    w.family("pgcoro_retries_total", "counter", "Retries made by retry().");
    w.sample("pgcoro_retries_total", {}, m.retries);
    w.family("pgcoro_leaks_suspected_total", "counter", "Leases held longer than leak_threshold.");
    w.sample("pgcoro_leaks_suspected_total", {}, m.leaks_suspected);
    w.family("pgcoro_success_ratio", "gauge",
             "Successes over outcomes in the rolling window (1 when empty).");
    w.sample("pgcoro_success_ratio", {}, m.success_rate);
    w.family("pgcoro_circuit_breaker_transitions_total", "counter",
             "Circuit breaker state changes.");
    w.sample("pgcoro_circuit_breaker_transitions_total", {}, m.breaker_transitions);
    if (m.breaker)
    {
        w.family("pgcoro_circuit_breaker_state", "gauge",
                 "Circuit breaker state: 0 closed, 1 half-open, 2 open.");
        w.sample("pgcoro_circuit_breaker_state", {},
                 std::uint64_t{static_cast<unsigned>(prometheus_value(*m.breaker))});
    }
    return out;
}

} // namespace pgcoro

#endif // PGCORO_PROMETHEUS_HPP
