// SPDX-License-Identifier: BSL-1.0
// pgcoro/array.hpp - one-dimensional arrays <-> std::vector<T> (std::optional<T> for NULLs).
#ifndef PGCORO_ARRAY_HPP
#define PGCORO_ARRAY_HPP

#include <pgcoro/detail/hex.hpp>
#include <pgcoro/detail/text_codec.hpp>
#include <pgcoro/detail/type_oids.hpp>
#include <pgcoro/error.hpp>
#include <pgcoro/value_traits.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pgcoro
{
namespace detail
{

template <class T>
struct array_element
{
    using value = T;
    static constexpr bool nullable = false;
};
template <class T>
struct array_element<std::optional<T>>
{
    using value = T;
    static constexpr bool nullable = true;
};

// Appends one element quoted as an array literal needs ("a\"b" for a"b).
inline void append_quoted_element(std::string_view v, std::string& out)
{
    out.push_back('"');
    for (char c : v)
    {
        if (c == '"' || c == '\\')
            out.push_back('\\');
        out.push_back(c);
    }
    out.push_back('"');
}

// Splits an array's text ("{1,NULL,\"a b\"}", optionally "[0:2]={...}") into its elements;
// calls f(text, is_null) for each. Errors: type_mismatch (bad text, more than one dimension).
template <class F>
expected<void> split_array(std::string_view t, F&& f)
{
    if (!t.empty() && t.front() == '[')
    {
        const auto eq = t.find('=');
        if (eq == t.npos || t.substr(0, eq).find("][") != t.npos)
            return fail(errc::type_mismatch, "multi-dimensional arrays are not supported");
        t.remove_prefix(eq + 1);
    }
    if (t.size() < 2 || t.front() != '{' || t.back() != '}')
        return fail(errc::type_mismatch, "invalid array text");
    t = t.substr(1, t.size() - 2);
    if (t.empty())
        return {};
    std::string element;
    std::size_t i = 0;
    for (;;)
    {
        while (i < t.size() && t[i] == ' ')
            ++i;
        element.clear();
        bool quoted = false;
        if (i < t.size() && t[i] == '{')
            return fail(errc::type_mismatch, "multi-dimensional arrays are not supported");
        if (i < t.size() && t[i] == '"')
        {
            quoted = true;
            for (++i; i < t.size() && t[i] != '"'; ++i)
            {
                if (t[i] == '\\' && i + 1 < t.size())
                    ++i;
                element.push_back(t[i]);
            }
            if (i == t.size())
                return fail(errc::type_mismatch, "invalid array text (unterminated quote)");
            ++i;
        }
        else
        {
            for (; i < t.size() && t[i] != ','; ++i)
            {
                if (t[i] == '\\' && i + 1 < t.size())
                    ++i;
                element.push_back(t[i]);
            }
            while (!element.empty() && element.back() == ' ')
                element.pop_back();
        }
        while (i < t.size() && t[i] == ' ')
            ++i;
        const bool null = !quoted && element.size() == 4 && (element[0] | 0x20) == 'n' &&
                          (element[1] | 0x20) == 'u' && (element[2] | 0x20) == 'l' &&
                          (element[3] | 0x20) == 'l';
        if (auto r = f(std::string_view(element), null); !r)
            return r;
        if (i == t.size())
            return {};
        if (t[i] != ',')
            return fail(errc::type_mismatch, "invalid array text");
        ++i;
    }
}

template <class E>
concept array_value =
    !std::same_as<E, std::byte> && !std::same_as<E, char> && !std::same_as<E, unsigned char>;

} // namespace detail

/// std::vector<T> <-> T's one-dimensional array type (integer[], text[], timestamptz[]...);
/// std::vector<std::optional<T>> when elements may be NULL. Sent with the array's OID when
/// pgcoro knows T's (so `= ANY($1)` works), untyped otherwise. std::vector<std::byte> is bytea.
template <detail::array_value E>
struct value_traits<std::vector<E>>
{
    using element = typename detail::array_element<E>::value;
    static constexpr bool nullable = detail::array_element<E>::nullable;
    static constexpr std::string_view name = "std::vector";
    // string_view elements would point into a temporary: read text[] as std::string.
    static constexpr bool readable_element =
        readable<element> && !std::same_as<element, std::string_view>;
    static constexpr Oid oid = []
    {
        if constexpr (sendable<element>)
            return detail::array_oid_of(value_traits<element>::oid);
        else
            return Oid{0};
    }();

    static expected<void> encode(const std::vector<E>& v,
                                 std::string& out) requires sendable<element>
    {
        out.push_back('{');
        std::string tmp;
        for (std::size_t i = 0; i < v.size(); ++i)
        {
            if (i)
                out.push_back(',');
            tmp.clear();
            expected<void> r;
            if constexpr (nullable)
            {
                if (!v[i])
                {
                    out.append("NULL");
                    continue;
                }
                r = value_traits<element>::encode(*v[i], tmp);
            }
            else
                r = value_traits<element>::encode(v[i], tmp); // vector<bool>: a bool
            if (!r)
                return r;
            if constexpr (detail::is_binary<element>::value)
            { // bytea elements travel as hex text inside the literal
                std::string hex = "\\x";
                detail::append_hex(tmp, hex);
                tmp.swap(hex);
            }
            detail::append_quoted_element(tmp, out);
        }
        out.push_back('}');
        return {};
    }

    static bool accepts(Oid t) noexcept requires readable_element
    {
        if (detail::is_user_oid(t))
            return true;
        const Oid el = detail::element_oid_of(t);
        return el != 0 && value_traits<element>::accepts(el);
    }

    static expected<std::vector<E>> decode(std::string_view text, Oid t) requires readable_element
    {
        const Oid el = detail::element_oid_of(t);
        std::vector<E> out;
        std::size_t index = 0;
        auto r = detail::split_array(
            text,
            [&](std::string_view item, bool null) -> expected<void>
            {
                ++index;
                if (null)
                {
                    if constexpr (nullable)
                    {
                        out.emplace_back();
                        return {};
                    }
                    else
                        return fail(errc::unexpected_null,
                                    "array element " + std::to_string(index) +
                                        " is NULL; read it as std::vector<std::optional<T>>");
                }
                auto v = value_traits<element>::decode(item, el);
                if (!v)
                {
                    v.error().message =
                        "array element " + std::to_string(index) + ": " + v.error().message;
                    return tl::unexpected(std::move(v.error()));
                }
                out.emplace_back(std::move(*v));
                return {};
            });
        if (!r)
            return tl::unexpected(std::move(r.error()));
        return out;
    }
};

} // namespace pgcoro

#endif // PGCORO_ARRAY_HPP
