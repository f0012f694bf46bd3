// SPDX-License-Identifier: BSL-1.0
// pgcoro/detail/type_oids.hpp - built-in type OIDs, their names and their array types.
#ifndef PGCORO_DETAIL_TYPE_OIDS_HPP
#define PGCORO_DETAIL_TYPE_OIDS_HPP

#include <libpq-fe.h>

#include <string>
#include <string_view>

namespace pgcoro::detail
{

// Type OIDs from PostgreSQL's pg_type.dat; stable across server versions.
inline constexpr Oid oid_unknown = 0;
inline constexpr Oid oid_bool = 16;
inline constexpr Oid oid_bytea = 17;
inline constexpr Oid oid_char = 18;
inline constexpr Oid oid_name = 19;
inline constexpr Oid oid_int8 = 20;
inline constexpr Oid oid_int2 = 21;
inline constexpr Oid oid_int4 = 23;
inline constexpr Oid oid_text = 25;
inline constexpr Oid oid_oid = 26;
inline constexpr Oid oid_json = 114;
inline constexpr Oid oid_float4 = 700;
inline constexpr Oid oid_float8 = 701;
inline constexpr Oid oid_bpchar = 1042;
inline constexpr Oid oid_varchar = 1043;
inline constexpr Oid oid_date = 1082;
inline constexpr Oid oid_time = 1083;
inline constexpr Oid oid_timestamp = 1114;
inline constexpr Oid oid_timestamptz = 1184;
inline constexpr Oid oid_interval = 1186;
inline constexpr Oid oid_numeric = 1700;
inline constexpr Oid oid_uuid = 2950;
inline constexpr Oid oid_jsonb = 3802;
inline constexpr Oid first_user_oid = 16384; // FirstNormalObjectId: enums, domains, extensions

struct type_entry
{
    Oid type;
    Oid array;
    std::string_view name;
};

// The built-in types pgcoro maps, with their one-dimensional array types.
inline constexpr type_entry type_table[] = {
    {oid_bool, 1000, "boolean"},
    {oid_bytea, 1001, "bytea"},
    {oid_char, 1002, "\"char\""},
    {oid_name, 1003, "name"},
    {oid_int8, 1016, "bigint"},
    {oid_int2, 1005, "smallint"},
    {oid_int4, 1007, "integer"},
    {oid_text, 1009, "text"},
    {oid_oid, 1028, "oid"},
    {oid_json, 199, "json"},
    {oid_float4, 1021, "real"},
    {oid_float8, 1022, "double precision"},
    {oid_bpchar, 1014, "character"},
    {oid_varchar, 1015, "character varying"},
    {oid_date, 1182, "date"},
    {oid_time, 1183, "time"},
    {oid_timestamp, 1115, "timestamp"},
    {oid_timestamptz, 1185, "timestamptz"},
    {oid_interval, 1187, "interval"},
    {oid_numeric, 1231, "numeric"},
    {oid_uuid, 2951, "uuid"},
    {oid_jsonb, 3807, "jsonb"},
};

// The array type of element type `t`, or 0 when pgcoro does not know it.
constexpr Oid array_oid_of(Oid t) noexcept
{
    for (const auto& e : type_table)
        if (e.type == t)
            return e.array;
    return oid_unknown;
}

// The element type of array type `t`, or 0 when `t` is not a known array type.
constexpr Oid element_oid_of(Oid t) noexcept
{
    for (const auto& e : type_table)
        if (e.array == t)
            return e.type;
    return oid_unknown;
}

// True for enum, domain and extension types (their OIDs are assigned at CREATE time).
constexpr bool is_user_oid(Oid t) noexcept
{
    return t >= first_user_oid;
}

// A type's name for messages: "timestamptz", "integer[]", or "type 16385".
inline std::string type_name(Oid t)
{
    for (const auto& e : type_table)
    {
        if (e.type == t)
            return std::string(e.name);
        if (e.array == t)
            return std::string(e.name) + "[]";
    }
    return "type " + std::to_string(t);
}

} // namespace pgcoro::detail

#endif // PGCORO_DETAIL_TYPE_OIDS_HPP
