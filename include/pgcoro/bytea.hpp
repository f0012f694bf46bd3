// SPDX-License-Identifier: BSL-1.0
// pgcoro/bytea.hpp - bytea <-> std::vector<std::byte> (sent in binary format: no hex inflation).
#ifndef PGCORO_BYTEA_HPP
#define PGCORO_BYTEA_HPP

#include <pgcoro/detail/hex.hpp>
#include <pgcoro/detail/type_oids.hpp>
#include <pgcoro/error.hpp>
#include <pgcoro/value_traits.hpp>

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace pgcoro
{

/// A non-owning view of bytes to send as bytea.
using bytes_view = std::span<const std::byte>;

namespace detail
{

// bytea's text output: hex ("\x0aff", bytea_output = hex, the default) or escape format
// (printable bytes as they are, "\\" for a backslash, "\ooo" octal for the others).
inline expected<std::vector<std::byte>> parse_bytea(std::string_view t)
{
    std::vector<std::byte> out;
    if (t.size() >= 2 && t[0] == '\\' && t[1] == 'x')
    {
        if (t.size() % 2 != 0)
            return fail(errc::type_mismatch, "invalid bytea hex text");
        out.reserve((t.size() - 2) / 2);
        for (std::size_t i = 2; i < t.size(); i += 2)
        {
            const int hi = hex_digit(t[i]);
            const int lo = hex_digit(t[i + 1]);
            if (hi < 0 || lo < 0)
                return fail(errc::type_mismatch, "invalid bytea hex text");
            out.push_back(static_cast<std::byte>(hi * 16 + lo));
        }
        return out;
    }
    out.reserve(t.size());
    for (std::size_t i = 0; i < t.size(); ++i)
    {
        if (t[i] != '\\')
            out.push_back(static_cast<std::byte>(t[i]));
        else if (i + 1 < t.size() && t[i + 1] == '\\')
        {
            out.push_back(std::byte{'\\'});
            ++i;
        }
        else if (i + 3 < t.size() && t[i + 1] >= '0' && t[i + 1] <= '3' && t[i + 2] >= '0' &&
                 t[i + 2] <= '7' && t[i + 3] >= '0' && t[i + 3] <= '7')
        {
            out.push_back(static_cast<std::byte>((t[i + 1] - '0') * 64 + (t[i + 2] - '0') * 8 +
                                                 (t[i + 3] - '0')));
            i += 3;
        }
        else
            return fail(errc::type_mismatch, "invalid bytea escape text");
    }
    return out;
}

struct bytea_sender
{
    static constexpr Oid oid = oid_bytea;
    static constexpr bool binary = true;
    static expected<void> encode(std::span<const std::byte> v, std::string& out)
    {
        out.append(reinterpret_cast<const char*>(v.data()), v.size());
        return {};
    }
};

} // namespace detail

/// std::vector<std::byte> <-> bytea, every byte value (NUL included) both ways.
template <>
struct value_traits<std::vector<std::byte>> : detail::bytea_sender
{
    static constexpr std::string_view name = "std::vector<std::byte>";
    static bool accepts(Oid t) noexcept { return t == detail::oid_bytea || detail::is_user_oid(t); }
    static expected<std::vector<std::byte>> decode(std::string_view text, Oid)
    {
        return detail::parse_bytea(text);
    }
};

/// std::span<const std::byte> (pgcoro::bytes_view): bytes sent as bytea without a copy.
template <>
struct value_traits<std::span<const std::byte>> : detail::bytea_sender
{
    static constexpr std::string_view name = "std::span<const std::byte>";
};

/// std::span<std::byte>: as std::span<const std::byte>.
template <>
struct value_traits<std::span<std::byte>> : detail::bytea_sender
{
    static constexpr std::string_view name = "std::span<std::byte>";
};

} // namespace pgcoro

#endif // PGCORO_BYTEA_HPP
