// SPDX-License-Identifier: BSL-1.0
// pgcoro/detail/hex.hpp - hexadecimal digits both ways.
#ifndef PGCORO_DETAIL_HEX_HPP
#define PGCORO_DETAIL_HEX_HPP

#include <string>
#include <string_view>

namespace pgcoro::detail
{

inline constexpr char hex_digits[] = "0123456789abcdef";

// The value of one hex digit, or -1.
constexpr int hex_digit(char c) noexcept
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

// Appends two lowercase hex digits per byte of `bytes`.
inline void append_hex(std::string_view bytes, std::string& out)
{
    for (char ch : bytes)
    {
        const auto c = static_cast<unsigned char>(ch);
        out += hex_digits[c >> 4];
        out += hex_digits[c & 15];
    }
}

} // namespace pgcoro::detail

#endif // PGCORO_DETAIL_HEX_HPP
