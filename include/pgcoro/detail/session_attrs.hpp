// SPDX-License-Identifier: BSL-1.0
// pgcoro/detail/session_attrs.hpp - target_session_attrs and load_balance_hosts on pgcoro's
// side: pgcoro connects one resolved address at a time, so libpq sees a single host and the
// choice among hosts (order, a second pass for prefer-standby) is made here.
#ifndef PGCORO_DETAIL_SESSION_ATTRS_HPP
#define PGCORO_DETAIL_SESSION_ATTRS_HPP

#include <pgcoro/connect_config.hpp>

#include <libpq-fe.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <string_view>
#include <vector>

namespace pgcoro::detail
{

// The values libpq 15 accepts for target_session_attrs.
inline constexpr std::string_view session_attrs_values[] = {
    "any", "read-write", "read-only", "primary", "standby", "prefer-standby"};

constexpr bool valid_session_attrs(std::string_view v) noexcept
{
    for (auto s : session_attrs_values)
        if (s == v)
            return true;
    return false;
}

// The configured target_session_attrs (passed through in `extra`), or "any".
inline std::string_view session_attrs_of(const connect_config& c) noexcept
{
    std::string_view v = "any";
    for (const auto& [k, val] : c.extra)
        if (k == "target_session_attrs")
            v = val; // libpq keeps the last value of a repeated key
    return v;
}

// True when a connection of `c` must be on a writable server: read-write or primary.
inline bool requires_writable(const connect_config& c) noexcept
{
    const auto v = session_attrs_of(c);
    return v == "read-write" || v == "primary";
}

// True when `conn`'s server says (ParameterStatus, PostgreSQL 14+) it no longer matches
// `attrs`: in hot standby (it is a replica now), or, for read-write, read-only by default.
inline bool server_mismatch(PGconn* conn, std::string_view attrs) noexcept
{
    if (!conn)
        return false;
    auto on = [conn](const char* name)
    {
        const char* v = PQparameterStatus(conn, name);
        return v && std::strcmp(v, "on") == 0;
    };
    if (attrs == "read-write")
        return on("in_hot_standby") || on("default_transaction_read_only");
    if (attrs == "primary")
        return on("in_hot_standby");
    return false;
}

// The hosts in the order to try them: as configured, or shuffled per attempt with
// load_balance_hosts (libpq 16's `random`).
inline std::vector<host_port> host_order(const connect_config& c)
{
    std::vector<host_port> v = c.hosts;
    if (c.load_balance_hosts && v.size() > 1)
    {
        thread_local std::mt19937 rng{std::random_device{}()};
        std::shuffle(v.begin(), v.end(), rng);
    }
    return v;
}

} // namespace pgcoro::detail

#endif // PGCORO_DETAIL_SESSION_ATTRS_HPP
