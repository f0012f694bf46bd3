// SPDX-License-Identifier: BSL-1.0
// pgcoro/json.hpp - renders a health_report as JSON for a health endpoint.
#ifndef PGCORO_JSON_HPP
#define PGCORO_JSON_HPP

#include <pgcoro/detail/render_text.hpp>
#include <pgcoro/health.hpp>

#include <chrono>
#include <string>

namespace pgcoro
{

/// `report` as one line of JSON, keys in this order (later versions only append keys):
/// {"status":"healthy","connections":{"current":12,"max":200,"utilization":0.06,"in_use":12,
/// "idle":0,"waiters":0},"metrics":{"success_rate":0.992,"avg_response_time_ms":45,
/// "p99_ms":120.5,"last_failure":"2026-03-01T12:34:56.789Z"},"circuit_breaker":"closed",
/// "checks":[{"name":"ping","status":"healthy","detail":"ok"}]}
/// Ratios are rounded to 4 decimals and milliseconds to 3; last_failure and circuit_breaker
/// are null when absent; strings are escaped per RFC 8259. Carries no error message text.
inline std::string to_json(const health_report& report)
{
    using detail::append_double;
    using detail::append_json_string;
    using detail::append_uint;
    using detail::round_to;
    std::string out;
    out.reserve(512);
    out += "{\"status\":";
    append_json_string(out, to_string(report.status));
    out += ",\"connections\":{\"current\":";
    append_uint(out, report.connections.current);
    out += ",\"max\":";
    append_uint(out, report.connections.max);
    out += ",\"utilization\":";
    append_double(out, round_to(report.connections.utilization, 4));
    out += ",\"in_use\":";
    append_uint(out, report.connections.in_use);
    out += ",\"idle\":";
    append_uint(out, report.connections.idle);
    out += ",\"waiters\":";
    append_uint(out, report.connections.waiters);
    out += "},\"metrics\":{\"success_rate\":";
    append_double(out, round_to(report.metrics.success_rate, 4));
    out += ",\"avg_response_time_ms\":";
    append_double(out, round_to(report.metrics.avg_response_time_ms, 3));
    out += ",\"p99_ms\":";
    append_double(out, round_to(report.metrics.p99_ms, 3));
    out += ",\"last_failure\":";
    if (report.metrics.last_failure)
    {
        out += '"';
        detail::append_iso8601(out, *report.metrics.last_failure);
        out += '"';
    }
    else
        out += "null";
    out += "},\"circuit_breaker\":";
    if (report.breaker)
        append_json_string(out, to_string(*report.breaker));
    else
        out += "null";
    out += ",\"checks\":[";
    for (std::size_t i = 0; i < report.checks.size(); ++i)
    {
        const health_check& c = report.checks[i];
        if (i != 0)
            out += ',';
        out += "{\"name\":";
        append_json_string(out, c.name);
        out += ",\"status\":";
        append_json_string(out, to_string(c.status));
        out += ",\"detail\":";
        append_json_string(out, c.detail);
        out += '}';
    }
    out += "]}";
    return out;
}

/// `tp` as ISO-8601 UTC with milliseconds, e.g. "2026-03-01T12:34:56.789Z".
inline std::string to_iso8601(std::chrono::system_clock::time_point tp)
{
    std::string out;
    detail::append_iso8601(out, tp);
    return out;
}

/// `report` in exactly the shape of the services' design notes, nothing more:
/// {"status":"healthy","connections":{"current":12,"max":200,"utilization":0.06},
/// "metrics":{"success_rate":0.992,"avg_response_time":45,"last_failure":null}}
/// status is "healthy" or "unhealthy" (a degraded pool still serves: "healthy");
/// avg_response_time is in milliseconds (3 decimals), last_failure null or ISO-8601 UTC.
/// to_json() gives the richer report (checks, p99, breaker).
inline std::string to_service_json(const health_report& report)
{
    using detail::append_double;
    using detail::round_to;
    std::string out;
    out.reserve(192);
    out += report.status == health_status::unhealthy ? "{\"status\":\"unhealthy\""
                                                     : "{\"status\":\"healthy\"";
    out += ",\"connections\":{\"current\":";
    detail::append_uint(out, report.connections.current);
    out += ",\"max\":";
    detail::append_uint(out, report.connections.max);
    out += ",\"utilization\":";
    append_double(out, round_to(report.connections.utilization, 4));
    out += "},\"metrics\":{\"success_rate\":";
    append_double(out, round_to(report.metrics.success_rate, 4));
    out += ",\"avg_response_time\":";
    append_double(out, round_to(report.metrics.avg_response_time_ms, 3));
    out += ",\"last_failure\":";
    if (report.metrics.last_failure)
        out += '"' + to_iso8601(*report.metrics.last_failure) + '"';
    else
        out += "null";
    out += "}}";
    return out;
}

} // namespace pgcoro

#endif // PGCORO_JSON_HPP
