// SPDX-License-Identifier: BSL-1.0
// pgcoro/server_activity.hpp - what the server sees: client connections from pg_stat_activity.
#ifndef PGCORO_SERVER_ACTIVITY_HPP
#define PGCORO_SERVER_ACTIVITY_HPP

#include <pgcoro/connection.hpp>
#include <pgcoro/detail/render_text.hpp>
#include <pgcoro/error.hpp>

#include <boost/asio/awaitable.hpp>

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

namespace pgcoro
{

/// Client connections as the server counts them (every client, not only this process's pools).
struct server_activity_report
{
    std::size_t total = 0;               ///< client backends (pg_stat_activity)
    std::size_t active = 0;              ///< running a statement
    std::size_t idle = 0;                ///< waiting for a statement
    std::size_t idle_in_transaction = 0; ///< inside a transaction, waiting (incl. aborted)
    std::size_t max_connections = 0;     ///< the server's max_connections setting
    double utilization = 0.0;            ///< total / max_connections (0 when unknown)
    /// Connections per application_name, most first ("" for clients that set none).
    std::vector<std::pair<std::string, std::size_t>> by_application;
};

/// Reads pg_stat_activity and max_connections over `conn` (two statements; the current
/// connection counts itself). Only client backends are counted. Rows of other users' sessions
/// are visible to superusers and members of pg_read_all_stats; others see them without detail,
/// which still counts.
/// Completes with: the report. Errors: whatever connection::query() reports.
/// Cancellation: as connection::query(). Resumes on: the connection's executor.
/// Lifetime: `conn` must outlive the operation.
inline boost::asio::awaitable<expected<server_activity_report>> server_activity(connection& conn)
{
    auto counts =
        co_await conn.query("SELECT count(*), count(*) FILTER (WHERE state = 'active'), "
                            "count(*) FILTER (WHERE state = 'idle'), "
                            "count(*) FILTER (WHERE state LIKE 'idle in transaction%'), "
                            "current_setting('max_connections')::bigint "
                            "FROM pg_stat_activity WHERE backend_type = 'client backend'");
    if (!counts)
        co_return tl::unexpected(std::move(counts.error()));
    server_activity_report r;
    std::size_t* fields[] = {&r.total, &r.active, &r.idle, &r.idle_in_transaction,
                             &r.max_connections};
    for (std::size_t i = 0; i < 5; ++i)
    {
        auto v = counts->get<std::int64_t>(0, i);
        if (!v)
            co_return tl::unexpected(std::move(v.error()));
        *fields[i] = static_cast<std::size_t>(*v);
    }
    if (r.max_connections > 0)
        r.utilization = static_cast<double>(r.total) / static_cast<double>(r.max_connections);

    auto apps =
        co_await conn.query("SELECT coalesce(application_name, ''), count(*) FROM pg_stat_activity "
                            "WHERE backend_type = 'client backend' GROUP BY 1 ORDER BY 2 DESC, 1");
    if (!apps)
        co_return tl::unexpected(std::move(apps.error()));
    for (const auto& row : *apps)
    {
        auto name = row.get<std::string>(0);
        auto n = row.get<std::int64_t>(1);
        if (!name || !n)
            co_return fail(errc::type_mismatch, "unexpected pg_stat_activity row");
        r.by_application.emplace_back(std::move(*name), static_cast<std::size_t>(*n));
    }
    co_return r;
}

/// The report as one JSON object: {"total":12,"active":1,"idle":10,"idle_in_transaction":1,
/// "max_connections":100,"utilization":0.12,"by_application":{"api":10,"psql":2}}.
inline std::string to_json(const server_activity_report& r)
{
    using detail::append_uint;
    std::string out = "{\"total\":";
    append_uint(out, r.total);
    out += ",\"active\":";
    append_uint(out, r.active);
    out += ",\"idle\":";
    append_uint(out, r.idle);
    out += ",\"idle_in_transaction\":";
    append_uint(out, r.idle_in_transaction);
    out += ",\"max_connections\":";
    append_uint(out, r.max_connections);
    out += ",\"utilization\":";
    detail::append_double(out, detail::round_to(r.utilization, 4));
    out += ",\"by_application\":{";
    for (std::size_t i = 0; i < r.by_application.size(); ++i)
    {
        if (i != 0)
            out += ',';
        detail::append_json_string(out, r.by_application[i].first);
        out += ':';
        append_uint(out, r.by_application[i].second);
    }
    out += "}}";
    return out;
}

} // namespace pgcoro

#endif // PGCORO_SERVER_ACTIVITY_HPP
