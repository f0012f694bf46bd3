// SPDX-License-Identifier: BSL-1.0
// pgcoro/detail/config_parse.hpp - text to typed values for env vars and URL parameters.
#ifndef PGCORO_DETAIL_CONFIG_PARSE_HPP
#define PGCORO_DETAIL_CONFIG_PARSE_HPP

#include <pgcoro/connect_config.hpp>
#include <pgcoro/detail/hex.hpp>
#include <pgcoro/profile.hpp>

#include <tl/expected.hpp>

#include <charconv>
#include <chrono>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

namespace pgcoro::detail
{

// Why a text did not parse, in the words config_error wants.
struct parse_failure
{
    std::string problem;
    std::string allowed;
};

template <class T>
using parsed = tl::expected<T, parse_failure>;

inline tl::unexpected<parse_failure> parse_fail(std::string problem, std::string allowed = {})
{
    return tl::unexpected<parse_failure>(parse_failure{std::move(problem), std::move(allowed)});
}

constexpr bool is_space(char c) noexcept
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

constexpr std::string_view trim(std::string_view s) noexcept
{
    while (!s.empty() && is_space(s.front()))
        s.remove_prefix(1);
    while (!s.empty() && is_space(s.back()))
        s.remove_suffix(1);
    return s;
}

// "0", "250ms", "10s", "2min", "1h", "3d": the largest unit that divides evenly.
inline std::string format_duration(std::chrono::milliseconds d)
{
    std::int64_t ms = d.count();
    if (ms == 0)
        return "0";
    struct unit
    {
        std::int64_t ms;
        const char* name;
    };
    for (unit u :
         {unit{86'400'000, "d"}, unit{3'600'000, "h"}, unit{60'000, "min"}, unit{1'000, "s"}})
        if (ms % u.ms == 0)
            return std::to_string(ms / u.ms) + u.name;
    return std::to_string(ms) + "ms";
}

inline std::string unit_name(std::chrono::milliseconds unit)
{
    switch (unit.count())
    {
    case 1:
        return "milliseconds";
    case 1'000:
        return "seconds";
    case 60'000:
        return "minutes";
    default:
        return format_duration(unit);
    }
}

// "an integer in 1..10000"
inline std::string allowed_count(std::int64_t lo, std::int64_t hi)
{
    return "an integer in " + std::to_string(lo) + ".." + std::to_string(hi);
}

// "a duration in 1ms..1h: an integer (seconds) or a number with a unit ms, s, min, h, d"
inline std::string allowed_duration(std::int64_t lo_ms, std::int64_t hi_ms,
                                    std::chrono::milliseconds unit)
{
    std::string lo = lo_ms == 0 ? "0" : format_duration(std::chrono::milliseconds(lo_ms));
    return "a duration in " + lo + ".." + format_duration(std::chrono::milliseconds(hi_ms)) +
           ": an integer (" + unit_name(unit) + ") or an integer with a unit ms, s, min, h, d";
}

// A non-negative decimal integer, nothing else (no sign, no spaces inside, no fraction).
inline parsed<std::uint64_t> parse_unsigned(std::string_view s)
{
    s = trim(s);
    if (s.empty())
        return parse_fail("empty");
    if (s.front() == '-')
        return parse_fail("negative");
    std::uint64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec == std::errc::result_out_of_range)
        return parse_fail("out of range");
    if (ec != std::errc() || p != s.data() + s.size())
        return parse_fail("not a number");
    return v;
}

// A count (connections, waiters) within [lo, hi].
inline parsed<std::int64_t> parse_count(std::string_view s, std::int64_t lo, std::int64_t hi)
{
    auto v = parse_unsigned(s);
    if (!v)
        return parse_fail(v.error().problem, allowed_count(lo, hi));
    if (*v < static_cast<std::uint64_t>(lo) || *v > static_cast<std::uint64_t>(hi))
        return parse_fail("out of range", allowed_count(lo, hi));
    return static_cast<std::int64_t>(*v);
}

// A duration: "30" (in `unit`), "500ms", "10s", "10 s", "2min", "1h", "1d"; within [lo, hi] ms.
inline parsed<std::chrono::milliseconds>
parse_duration(std::string_view s, std::chrono::milliseconds unit, std::int64_t lo, std::int64_t hi)
{
    std::string allowed = allowed_duration(lo, hi, unit);
    s = trim(s);
    if (s.empty())
        return parse_fail("empty", allowed);
    if (s.front() == '-')
        return parse_fail("negative", allowed);
    std::size_t digits = 0;
    while (digits < s.size() && s[digits] >= '0' && s[digits] <= '9')
        ++digits;
    if (digits == 0)
        return parse_fail("not a number", allowed);
    std::string_view suffix = trim(s.substr(digits));
    std::int64_t factor = unit.count();
    if (!suffix.empty())
    {
        if (suffix == "ms")
            factor = 1;
        else if (suffix == "s")
            factor = 1'000;
        else if (suffix == "min")
            factor = 60'000;
        else if (suffix == "h")
            factor = 3'600'000;
        else if (suffix == "d")
            factor = 86'400'000;
        else if (suffix.front() == '.' || suffix.front() == ',')
            return parse_fail("not a whole number", allowed);
        else
            return parse_fail("unknown unit \"" + std::string(suffix) + "\"", allowed);
    }
    auto n = parse_unsigned(s.substr(0, digits));
    if (!n)
        return parse_fail(n.error().problem, allowed);
    if (*n > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max() / factor))
        return parse_fail("out of range", allowed);
    std::int64_t ms = static_cast<std::int64_t>(*n) * factor;
    if (ms < lo || ms > hi)
        return parse_fail("out of range", allowed);
    return std::chrono::milliseconds(ms);
}

inline constexpr std::string_view allowed_bool = "true, false, 1, 0, yes, no, on, off";

// true/false/1/0/yes/no/on/off, case-insensitive.
inline parsed<bool> parse_bool(std::string_view s)
{
    s = trim(s);
    if (s.empty())
        return parse_fail("empty", std::string(allowed_bool));
    for (std::string_view t : {"true", "1", "yes", "on"})
        if (iequals(s, t))
            return true;
    for (std::string_view f : {"false", "0", "no", "off"})
        if (iequals(s, f))
            return false;
    return parse_fail("not a boolean", std::string(allowed_bool));
}

inline constexpr std::string_view allowed_sslmode =
    "disable, allow, prefer, require, verify-ca, verify-full";

// libpq's sslmode spellings (exact, as libpq accepts them).
inline parsed<ssl_mode> parse_sslmode(std::string_view s)
{
    s = trim(s);
    if (s.empty())
        return parse_fail("empty", std::string(allowed_sslmode));
    for (ssl_mode m : {ssl_mode::disable, ssl_mode::allow, ssl_mode::prefer, ssl_mode::require,
                       ssl_mode::verify_ca, ssl_mode::verify_full})
        if (s == to_string(m))
            return m;
    return parse_fail("unknown sslmode", std::string(allowed_sslmode));
}

// RFC 3986 percent-decoding as libpq does it: "%2F" -> '/'; a bad escape or "%00" fails.
inline std::optional<std::string> percent_decode(std::string_view s)
{
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i)
    {
        if (s[i] != '%')
        {
            out += s[i];
            continue;
        }
        if (i + 2 >= s.size())
            return std::nullopt;
        int hi = hex_digit(s[i + 1]);
        int lo = hex_digit(s[i + 2]);
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
            return std::nullopt;
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
    }
    return out;
}

} // namespace pgcoro::detail

#endif // PGCORO_DETAIL_CONFIG_PARSE_HPP
