// SPDX-License-Identifier: BSL-1.0
// pgcoro/lsn.hpp - a PostgreSQL WAL position (pg_lsn): parsed from and printed as "X/Y".
#ifndef PGCORO_LSN_HPP
#define PGCORO_LSN_HPP

#include <compare>
#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>

namespace pgcoro
{

/// A write-ahead log position, as pg_current_wal_lsn() and pg_last_wal_replay_lsn() return it.
/// The zero LSN (the default) means "none". Ordered: a later position compares greater.
class lsn
{
public:
    /// The zero LSN ("0/0"): no position.
    constexpr lsn() noexcept = default;
    /// The position with this 64-bit value.
    constexpr explicit lsn(std::uint64_t v) noexcept : v_(v) {}

    /// Parses PostgreSQL's text form "16/B374D848" (two hex numbers of up to 8 digits);
    /// nullopt for anything else.
    static constexpr std::optional<lsn> parse(std::string_view s) noexcept
    {
        const auto slash = s.find('/');
        if (slash == std::string_view::npos)
            return std::nullopt;
        auto hex = [](std::string_view h) -> std::optional<std::uint64_t>
        {
            if (h.empty() || h.size() > 8)
                return std::nullopt;
            std::uint64_t v = 0;
            for (char c : h)
            {
                std::uint64_t d = 0;
                if (c >= '0' && c <= '9')
                    d = static_cast<std::uint64_t>(c - '0');
                else if (c >= 'A' && c <= 'F')
                    d = static_cast<std::uint64_t>(c - 'A' + 10);
                else if (c >= 'a' && c <= 'f')
                    d = static_cast<std::uint64_t>(c - 'a' + 10);
                else
                    return std::nullopt;
                v = v * 16 + d;
            }
            return v;
        };
        const auto hi = hex(s.substr(0, slash));
        const auto lo = hex(s.substr(slash + 1));
        if (!hi || !lo)
            return std::nullopt;
        return lsn((*hi << 32) | *lo);
    }

    /// The 64-bit value (what pg_wal_lsn_diff() subtracts).
    constexpr std::uint64_t value() const noexcept { return v_; }
    /// True for any position but zero.
    constexpr explicit operator bool() const noexcept { return v_ != 0; }
    /// Bytes from `earlier` to this position; 0 when `earlier` is not before it.
    constexpr std::uint64_t bytes_after(lsn earlier) const noexcept
    {
        return v_ > earlier.v_ ? v_ - earlier.v_ : 0;
    }

    /// PostgreSQL's text form, upper-case hex: "16/B374D848".
    std::string to_string() const
    {
        const char* digits = "0123456789ABCDEF";
        auto hex = [digits](std::uint64_t v)
        {
            std::string out;
            do
            {
                out.insert(out.begin(), digits[v & 15]);
                v >>= 4;
            } while (v != 0);
            return out;
        };
        return hex(v_ >> 32) + "/" + hex(v_ & 0xFFFFFFFFu);
    }

    friend constexpr auto operator<=>(lsn, lsn) noexcept = default;
    /// Writes to_string().
    friend std::ostream& operator<<(std::ostream& os, lsn l) { return os << l.to_string(); }

private:
    std::uint64_t v_ = 0;
};

} // namespace pgcoro

#endif // PGCORO_LSN_HPP
