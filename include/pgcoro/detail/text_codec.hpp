// SPDX-License-Identifier: BSL-1.0
// pgcoro/detail/text_codec.hpp - value_traits for bool, integers, floating point and strings,
// and the dispatch that encodes parameters and decodes fields through value_traits.
#ifndef PGCORO_DETAIL_TEXT_CODEC_HPP
#define PGCORO_DETAIL_TEXT_CODEC_HPP

#include <pgcoro/detail/type_oids.hpp>
#include <pgcoro/error.hpp>
#include <pgcoro/value_traits.hpp>

#include <libpq-fe.h>

#include <charconv>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

namespace pgcoro::detail
{

template <class T>
struct is_optional : std::false_type
{
};
template <class T>
struct is_optional<std::optional<T>> : std::true_type
{
};

template <class T>
concept integer =
    std::integral<T> && !std::same_as<T, bool> && !std::same_as<T, char> &&
    !std::same_as<T, signed char> && !std::same_as<T, unsigned char> && !std::same_as<T, char8_t> &&
    !std::same_as<T, char16_t> && !std::same_as<T, char32_t> && !std::same_as<T, wchar_t>;

template <class T>
concept c_string = std::same_as < std::decay_t<T>,
const char* > || std::same_as<std::decay_t<T>, char*>;

inline constexpr bool is_integer_oid(Oid t) noexcept
{
    return t == oid_int2 || t == oid_int4 || t == oid_int8 || t == oid_oid;
}

template <integer T>
constexpr Oid integer_oid() noexcept
{
    if constexpr (std::is_signed_v<T>)
        return sizeof(T) <= 2 ? oid_int2 : sizeof(T) <= 4 ? oid_int4 : oid_int8;
    else
        return sizeof(T) < 2 ? oid_int2 : sizeof(T) < 4 ? oid_int4 : oid_int8;
}

template <integer T>
constexpr std::string_view integer_name() noexcept
{
    constexpr bool s = std::is_signed_v<T>;
    switch (sizeof(T))
    {
    case 2:
        return s ? "int16_t" : "uint16_t";
    case 4:
        return s ? "int32_t" : "uint32_t";
    default:
        return s ? "int64_t" : "uint64_t";
    }
}

// Appends the decimal form of an integer.
template <class T>
void append_integer(T v, std::string& out)
{
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, r.ptr);
}

// Parses all of `text` as an integer T; out_of_range when it does not fit.
template <class T>
expected<T> parse_integer(std::string_view text)
{
    T value{};
    if constexpr (std::is_unsigned_v<T>)
        if (!text.empty() && text.front() == '-')
        {
            const auto digits = text.substr(1);
            if (!digits.empty() && digits.find_first_not_of("0123456789") == digits.npos)
            {
                if (digits.find_first_not_of('0') == digits.npos)
                    return T{0}; // "-0"
                return fail(errc::out_of_range,
                            "negative value cannot be read as " + std::string(integer_name<T>()));
            }
            return fail(errc::type_mismatch, "invalid integer text");
        }
    auto r = std::from_chars(text.data(), text.data() + text.size(), value);
    if (r.ec == std::errc::result_out_of_range)
        return fail(errc::out_of_range,
                    "value is out of range for " + std::string(integer_name<T>()));
    if (r.ec != std::errc{} || r.ptr != text.data() + text.size())
        return fail(errc::type_mismatch, "invalid integer text");
    return value;
}

// A decimal number reduced to sign, significant digits and exponent (value = 0.digits * 10^exp),
// so two spellings of one value compare equal ("1.50" and "1.5e0"). nullopt: not a number.
struct canonical_decimal
{
    bool negative = false;
    std::string digits; // no leading or trailing zeros; empty for zero
    long exponent = 0;
    bool operator==(const canonical_decimal&) const = default;
};

inline std::optional<canonical_decimal> canonicalize(std::string_view s)
{
    canonical_decimal c;
    std::size_t i = 0;
    if (i < s.size() && (s[i] == '-' || s[i] == '+'))
        c.negative = s[i++] == '-';
    long point = -1;
    long count = 0;
    bool any = false;
    for (; i < s.size(); ++i)
    {
        const char ch = s[i];
        if (ch == '.' && point < 0)
            point = count;
        else if (ch >= '0' && ch <= '9')
        {
            any = true;
            if (c.digits.empty() && ch == '0')
            {
                if (point >= 0)
                    --c.exponent; // a leading zero after the point
                continue;
            }
            c.digits.push_back(ch);
            if (point < 0)
                ++count;
        }
        else
            break;
    }
    if (!any)
        return std::nullopt;
    long exp10 = 0;
    if (i < s.size() && (s[i] == 'e' || s[i] == 'E'))
    {
        auto r = std::from_chars(s.data() + i + 1 + (i + 1 < s.size() && s[i + 1] == '+'),
                                 s.data() + s.size(), exp10);
        if (r.ec != std::errc{} || r.ptr != s.data() + s.size())
            return std::nullopt;
    }
    else if (i != s.size())
        return std::nullopt;
    while (!c.digits.empty() && c.digits.back() == '0')
        c.digits.pop_back();
    if (c.digits.empty())
        return canonical_decimal{};
    c.exponent += count + exp10;
    return c;
}

// True when the decimal text `numeric` names exactly the double `v` would print as
// (shortest round-trip form): reading the numeric as double loses nothing.
inline bool round_trips(std::string_view numeric, double v)
{
    char buf[40];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    auto a = canonicalize(numeric);
    auto b = canonicalize(std::string_view(buf, static_cast<std::size_t>(r.ptr - buf)));
    return a && b && *a == *b;
}

} // namespace pgcoro::detail

namespace pgcoro
{

/// bool <-> boolean.
template <>
struct value_traits<bool>
{
    static constexpr std::string_view name = "bool";
    static constexpr Oid oid = detail::oid_bool;
    static expected<void> encode(bool v, std::string& out)
    {
        out.push_back(v ? 't' : 'f');
        return {};
    }
    static bool accepts(Oid t) noexcept { return t == detail::oid_bool || detail::is_user_oid(t); }
    static expected<bool> decode(std::string_view text, Oid)
    {
        if (text == "t")
            return true;
        if (text == "f")
            return false;
        return fail(errc::type_mismatch, "invalid boolean text");
    }
};

/// Integers <-> smallint / integer / bigint (by size); reading checks the range.
template <detail::integer T>
struct value_traits<T>
{
    static constexpr std::string_view name = detail::integer_name<T>();
    static constexpr Oid oid = detail::integer_oid<T>();
    static expected<void> encode(T v, std::string& out)
    {
        if constexpr (std::is_unsigned_v<T> && sizeof(T) >= 8)
            if (v > static_cast<T>(std::numeric_limits<std::int64_t>::max()))
                return fail(errc::invalid_argument, "unsigned parameter exceeds bigint range");
        detail::append_integer(v, out);
        return {};
    }
    static bool accepts(Oid t) noexcept
    {
        return detail::is_integer_oid(t) || detail::is_user_oid(t);
    }
    static expected<T> decode(std::string_view text, Oid) { return detail::parse_integer<T>(text); }
};

/// float / double <-> real / double precision (NaN and +-Infinity included). Reading also
/// takes integers and numeric, but only values the C++ type holds exactly (an int8 past 2^53,
/// or a numeric that does not round-trip, is an error, not a silent rounding).
template <std::floating_point T>
struct value_traits<T>
{
    static constexpr std::string_view name = sizeof(T) == 4 ? "float" : "double";
    static constexpr Oid oid = sizeof(T) == 4 ? detail::oid_float4 : detail::oid_float8;
    static expected<void> encode(T v, std::string& out)
    {
        if (std::isnan(v))
            out.append("NaN");
        else if (std::isinf(v))
            out.append(v > 0 ? "Infinity" : "-Infinity");
        else
        {
            char buf[40];
            auto r = std::to_chars(buf, buf + sizeof buf, v); // shortest round-trip form
            out.append(buf, r.ptr);
        }
        return {};
    }
    static bool accepts(Oid t) noexcept
    {
        return t == detail::oid_float4 || t == detail::oid_float8 || t == detail::oid_numeric ||
               detail::is_integer_oid(t) || detail::is_user_oid(t);
    }
    static expected<T> decode(std::string_view text, Oid type)
    {
        if (text == "NaN")
            return std::numeric_limits<T>::quiet_NaN();
        if (text == "Infinity")
            return std::numeric_limits<T>::infinity();
        if (text == "-Infinity")
            return -std::numeric_limits<T>::infinity();
        if (detail::is_integer_oid(type))
        {
            auto i = detail::parse_integer<std::int64_t>(text);
            if (!i)
                return tl::unexpected(std::move(i.error()));
            constexpr std::int64_t exact = std::int64_t{1} << std::numeric_limits<T>::digits;
            if (*i > exact || *i < -exact)
                return fail(errc::out_of_range,
                            "integer value cannot be represented exactly as " + std::string(name));
            return static_cast<T>(*i);
        }
        T value{};
        auto r = std::from_chars(text.data(), text.data() + text.size(), value);
        if (r.ec == std::errc::result_out_of_range)
            return fail(errc::out_of_range, "value is out of range for " + std::string(name));
        if (r.ec != std::errc{} || r.ptr != text.data() + text.size())
            return fail(errc::type_mismatch, "invalid floating-point text");
        if (type == detail::oid_numeric && !detail::round_trips(text, static_cast<double>(value)))
            return fail(errc::out_of_range, "numeric value cannot be represented exactly as " +
                                                std::string(name) + "; read it as pgcoro::numeric");
        return value;
    }
};

/// std::string_view: any column's text (pointing into the result); sent untyped (the server
/// infers the type from context, as for a quoted literal).
template <>
struct value_traits<std::string_view>
{
    static constexpr std::string_view name = "std::string_view";
    static constexpr Oid oid = detail::oid_unknown;
    static expected<void> encode(std::string_view v, std::string& out)
    {
        out.append(v);
        return {};
    }
    static bool accepts(Oid) noexcept { return true; }
    static expected<std::string_view> decode(std::string_view text, Oid) { return text; }
};

/// std::string: as std::string_view, owning.
template <>
struct value_traits<std::string>
{
    static constexpr std::string_view name = "std::string";
    static constexpr Oid oid = detail::oid_unknown;
    static expected<void> encode(const std::string& v, std::string& out)
    {
        out.append(v);
        return {};
    }
    static bool accepts(Oid) noexcept { return true; }
    static expected<std::string> decode(std::string_view text, Oid) { return std::string(text); }
};

/// A C string, sent untyped. A null pointer is sent as SQL NULL.
template <detail::c_string T>
struct value_traits<T>
{
    static constexpr std::string_view name = "const char*";
    static constexpr Oid oid = detail::oid_unknown;
    static expected<void> encode(const char* v, std::string& out)
    {
        if (v)
            out.append(v);
        return {};
    }
};

} // namespace pgcoro

namespace pgcoro::detail
{

/// Outcome of encoding one parameter: its type OID, whether it is SQL NULL, whether its bytes
/// are in binary format.
struct encoded_param
{
    Oid type = oid_unknown;
    bool is_null = false;
    bool binary = false;
};

template <class T>
    struct is_binary : std::bool_constant < requires
{
    requires value_traits<T>::binary;
} > {};

template <class T>
concept encodable_value = sendable<T> || std::same_as<T, std::nullopt_t> ||
    (is_optional<T>::value&& sendable<typename T::value_type>);

// encode_param() for a type with value_traits.
template <class T>
expected<encoded_param> encode_sendable(const T& v, std::string& out)
{
    const std::size_t start = out.size();
    auto r = value_traits<T>::encode(v, out);
    if (!r)
    {
        out.resize(start);
        return tl::unexpected(std::move(r.error()));
    }
    if constexpr (is_binary<T>::value)
        return encoded_param{value_traits<T>::oid, false, true};
    else
    {
        if (std::memchr(out.data() + start, '\0', out.size() - start) != nullptr)
        {
            out.resize(start);
            return fail(errc::invalid_argument,
                        "text parameter contains an embedded NUL byte (send bytes as "
                        "std::vector<std::byte> or std::span<const std::byte>: bytea)");
        }
        out.push_back('\0');
        return encoded_param{value_traits<T>::oid, false};
    }
}

// Appends parameter `v` to `out`: text followed by a NUL (libpq reads text parameters as C
// strings), or raw bytes for a binary type. Errors: invalid_argument (embedded NUL, range).
template <class T>
expected<encoded_param> encode_param(const T& v, std::string& out)
{
    if constexpr (std::same_as<T, std::nullopt_t>)
        return encoded_param{oid_unknown, true};
    else if constexpr (is_optional<T>::value)
    {
        if (!v)
            return encoded_param{value_traits<typename T::value_type>::oid, true};
        return encode_param(*v, out);
    }
    else
    {
        static_assert(sendable<T>,
                      "pgcoro: this type cannot be sent as a parameter. Supported: bool, integers, "
                      "float, double, std::string, std::string_view, const char*, "
                      "std::vector<std::byte> and std::span<const std::byte> (bytea), "
                      "std::chrono dates, times and time points, pgcoro::interval, "
                      "pgcoro::numeric, boost::uuids::uuid, std::vector<T> (arrays), "
                      "std::optional<T>, std::nullopt and pgcoro::params. To add a type, "
                      "specialise pgcoro::value_traits<T> (pgcoro/value_traits.hpp).");
        if constexpr (!sendable<T>)
            return fail(errc::invalid_argument, "unsupported parameter type");
        else
        {
            if constexpr (c_string<T>)
                if (!v)
                    return encoded_param{oid_unknown, true};
            return encode_sendable(v, out);
        }
    }
}

// Converts one non-NULL text field of column type `type` to T through value_traits<T>.
template <class T>
expected<T> decode_field(std::string_view text, Oid type)
{
    if (!value_traits<T>::accepts(type))
        return fail(errc::type_mismatch, "column is " + type_name(type) + ", cannot read as " +
                                             std::string(value_traits<T>::name));
    return value_traits<T>::decode(text, type);
}

} // namespace pgcoro::detail

#endif // PGCORO_DETAIL_TEXT_CODEC_HPP
