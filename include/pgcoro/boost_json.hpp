// SPDX-License-Identifier: BSL-1.0
// pgcoro/boost_json.hpp - opt-in: json / jsonb <-> boost::json::value. Include it where wanted,
// and link Boost.JSON (or include <boost/json/src.hpp> in exactly one source file). Without it,
// json and jsonb read and send as std::string (their raw text).
#ifndef PGCORO_BOOST_JSON_HPP
#define PGCORO_BOOST_JSON_HPP

#include <pgcoro/detail/type_oids.hpp>
#include <pgcoro/error.hpp>
#include <pgcoro/value_traits.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <string>
#include <string_view>

namespace pgcoro
{

/// boost::json::value <-> json / jsonb (sent as jsonb). Reading parses the text; invalid JSON
/// is a type_mismatch (it cannot come from a json column, but text columns are accepted too).
template <>
struct value_traits<boost::json::value>
{
    static constexpr std::string_view name = "boost::json::value";
    static constexpr Oid oid = detail::oid_jsonb;
    static expected<void> encode(const boost::json::value& v, std::string& out)
    {
        out += boost::json::serialize(v);
        return {};
    }
    static bool accepts(Oid t) noexcept
    {
        return t == detail::oid_json || t == detail::oid_jsonb || t == detail::oid_text ||
               t == detail::oid_varchar || detail::is_user_oid(t);
    }
    static expected<boost::json::value> decode(std::string_view text, Oid)
    {
        boost::system::error_code ec;
        auto v = boost::json::parse(text, ec);
        if (ec)
            return fail(errc::type_mismatch, "invalid JSON text");
        return v;
    }
};

} // namespace pgcoro

#endif // PGCORO_BOOST_JSON_HPP
