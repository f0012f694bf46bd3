// SPDX-License-Identifier: BSL-1.0
// pgcoro/detail/text_codec.hpp - C++ values to and from PostgreSQL's text format.
#ifndef PGCORO_DETAIL_TEXT_CODEC_HPP
#define PGCORO_DETAIL_TEXT_CODEC_HPP

#include <pgcoro/error.hpp>

#include <libpq-fe.h>

#include <charconv>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

namespace pgcoro::detail
{

// Type OIDs from pg_type.dat; stable across server versions.
inline constexpr Oid oid_unknown = 0;
inline constexpr Oid oid_bool = 16;
inline constexpr Oid oid_int8 = 20;
inline constexpr Oid oid_int2 = 21;
inline constexpr Oid oid_int4 = 23;
inline constexpr Oid oid_oid = 26;
inline constexpr Oid oid_float4 = 700;
inline constexpr Oid oid_float8 = 701;
inline constexpr Oid oid_numeric = 1700;

template <class T>
struct is_optional : std::false_type
{
};
template <class T>
struct is_optional<std::optional<T>> : std::true_type
{
};

template <class T>
concept integer = std::integral<T> && !std::same_as<T, bool> && !std::same_as<T, char>;

template <class T>
concept string_like = std::convertible_to<const T&, std::string_view>;

// ---- encoding (parameters) ------------------------------------------------------------------
// A parameter is appended to `out` as NUL-terminated text (libpq's text format reads C strings),
// so the connection can reuse one buffer across queries with no allocation in steady state.

/// Outcome of encoding one parameter: its type OID and whether it is SQL NULL.
struct encoded_param
{
    Oid type = oid_unknown;
    bool is_null = false;
};

template <integer T>
constexpr Oid integer_oid() noexcept
{
    if constexpr (std::is_signed_v<T>)
        return sizeof(T) <= 2 ? oid_int2 : sizeof(T) <= 4 ? oid_int4 : oid_int8;
    else
        return sizeof(T) < 2 ? oid_int2 : sizeof(T) < 4 ? oid_int4 : oid_int8;
}

template <class T>
concept encodable = std::same_as<T, bool> || integer<T> || std::floating_point<T> ||
    string_like<T> || std::same_as<T, std::nullopt_t> || is_optional<T>::value;

template <class T>
expected<encoded_param> encode_param(const T& v, std::string& out)
{
    if constexpr (std::same_as<T, std::nullopt_t>)
    {
        return encoded_param{oid_unknown, true};
    }
    else if constexpr (is_optional<T>::value)
    {
        if (!v)
            return encoded_param{oid_unknown, true};
        return encode_param(*v, out);
    }
    else if constexpr (std::same_as<T, bool>)
    {
        out.append(v ? "t" : "f", 2); // includes the NUL
        return encoded_param{oid_bool, false};
    }
    else if constexpr (integer<T>)
    {
        if constexpr (std::is_unsigned_v<T> && sizeof(T) >= 8)
            if (v > static_cast<T>(std::numeric_limits<std::int64_t>::max()))
                return fail(errc::invalid_argument, "unsigned parameter exceeds bigint range");
        char buf[24];
        auto r = std::to_chars(buf, buf + sizeof buf, v);
        out.append(buf, r.ptr);
        out.push_back('\0');
        return encoded_param{integer_oid<T>(), false};
    }
    else if constexpr (std::floating_point<T>)
    {
        if (std::isnan(v))
            out.append("NaN", 4);
        else if (std::isinf(v))
            v > 0 ? out.append("Infinity", 9) : out.append("-Infinity", 10);
        else
        {
            char buf[40];
            auto r = std::to_chars(buf, buf + sizeof buf, v); // shortest round-trip form
            out.append(buf, r.ptr);
            out.push_back('\0');
        }
        return encoded_param{sizeof(T) == 4 ? oid_float4 : oid_float8, false};
    }
    else
    {
        std::string_view s(v);
        if (s.find('\0') != std::string_view::npos)
            return fail(errc::invalid_argument, "text parameter contains an embedded NUL byte");
        out.append(s);
        out.push_back('\0');
        // Unknown type: the server infers it from context, as for a quoted literal.
        return encoded_param{oid_unknown, false};
    }
}

// ---- decoding (result fields) ---------------------------------------------------------------

inline constexpr bool is_integer_oid(Oid t) noexcept
{
    return t == oid_int2 || t == oid_int4 || t == oid_int8 || t == oid_oid;
}

template <class T>
concept decodable = std::same_as<T, bool> || integer<T> || std::floating_point<T> ||
    std::same_as<T, std::string> || std::same_as<T, std::string_view>;

/// Converts one non-NULL text field of type `type` to T. A string_view points into the result.
template <decodable T>
expected<T> decode_field(std::string_view text, Oid type)
{
    if constexpr (std::same_as<T, std::string> || std::same_as<T, std::string_view>)
    {
        return T(text);
    }
    else if constexpr (std::same_as<T, bool>)
    {
        if (type != oid_bool)
            return fail(errc::type_mismatch, "column is not boolean");
        if (text == "t")
            return true;
        if (text == "f")
            return false;
        return fail(errc::type_mismatch, "invalid boolean text");
    }
    else if constexpr (integer<T>)
    {
        if (!is_integer_oid(type))
            return fail(errc::type_mismatch, "column is not an integer type");
        T value{};
        auto r = std::from_chars(text.data(), text.data() + text.size(), value);
        if (r.ec == std::errc::result_out_of_range)
            return fail(errc::out_of_range, "integer value does not fit the requested type");
        if (r.ec != std::errc{} || r.ptr != text.data() + text.size())
            return fail(errc::type_mismatch, "invalid integer text");
        return value;
    }
    else
    {
        if (type != oid_float4 && type != oid_float8 && type != oid_numeric &&
            !is_integer_oid(type))
            return fail(errc::type_mismatch, "column is not a numeric type");
        if (text == "NaN")
            return std::numeric_limits<T>::quiet_NaN();
        if (text == "Infinity")
            return std::numeric_limits<T>::infinity();
        if (text == "-Infinity")
            return -std::numeric_limits<T>::infinity();
        T value{};
        auto r = std::from_chars(text.data(), text.data() + text.size(), value);
        if (r.ec != std::errc{} || r.ptr != text.data() + text.size())
            return fail(errc::type_mismatch, "invalid floating-point text");
        return value;
    }
}

} // namespace pgcoro::detail

#endif // PGCORO_DETAIL_TEXT_CODEC_HPP
