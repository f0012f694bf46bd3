// SPDX-License-Identifier: BSL-1.0
// pgcoro/detail/render_text.hpp - number, time and string formatting shared by the renderers.
#ifndef PGCORO_DETAIL_RENDER_TEXT_HPP
#define PGCORO_DETAIL_RENDER_TEXT_HPP

#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <pgcoro/detail/chrono_text.hpp>
#include <string>
#include <string_view>

namespace pgcoro::detail
{

// std::to_chars, not printf: locale-independent and shortest round-trip, so a rendered
// document is byte-for-byte stable (the renderers' tests compare exact text).
inline void append_uint(std::string& out, std::uint64_t v)
{
    char buf[24];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, r.ptr);
}

// Shortest fixed-point representation ("0.06", "45", "0.0001", never "1e-04"); non-finite
// values become `nonfinite` (JSON has no NaN; the Prometheus writer spells NaN/+Inf itself).
inline void append_double(std::string& out, double v, std::string_view nonfinite = "0")
{
    if (!std::isfinite(v))
    {
        out += nonfinite;
        return;
    }
    if (v == 0.0)
        v = 0.0; // no "-0"
    char buf[64];
    const auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed);
    if (r.ec != std::errc{}) // beyond 1e30: no duration or ratio gets here
    {
        const auto g = std::to_chars(buf, buf + sizeof buf, v);
        out.append(buf, g.ptr);
        return;
    }
    out.append(buf, r.ptr);
}

// Rounds to `decimals` places, so "45.000000001" renders as "45".
inline double round_to(double v, int decimals) noexcept
{
    if (!std::isfinite(v))
        return v;
    const double scale = std::pow(10.0, decimals);
    return std::round(v * scale) / scale;
}

inline void append_padded(std::string& out, std::uint64_t v, int width)
{
    char buf[24];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    for (auto len = static_cast<int>(r.ptr - buf); len < width; ++len)
        out += '0';
    out.append(buf, r.ptr);
}

// ISO-8601 in UTC with milliseconds and a 'Z': "2026-03-01T12:34:56.789Z".
inline void append_iso8601(std::string& out, std::chrono::system_clock::time_point tp)
{
    using namespace std::chrono;
    const auto ms = floor<milliseconds>(tp).time_since_epoch().count();
    const std::int64_t day_ms = 86'400'000;
    std::int64_t days = ms / day_ms;
    std::int64_t rem = ms % day_ms;
    if (rem < 0)
    {
        rem += day_ms;
        --days;
    }
    const civil_date d = civil_from_days(days);
    if (d.year < 0)
        out += '-';
    append_padded(out, static_cast<std::uint64_t>(d.year < 0 ? -d.year : d.year), 4);
    out += '-';
    append_padded(out, d.month, 2);
    out += '-';
    append_padded(out, d.day, 2);
    out += 'T';
    append_padded(out, static_cast<std::uint64_t>(rem / 3'600'000), 2);
    out += ':';
    append_padded(out, static_cast<std::uint64_t>(rem / 60'000 % 60), 2);
    out += ':';
    append_padded(out, static_cast<std::uint64_t>(rem / 1000 % 60), 2);
    out += '.';
    append_padded(out, static_cast<std::uint64_t>(rem % 1000), 3);
    out += 'Z';
}

// A JSON string literal, quotes included: escapes ", \ and every control character (RFC 8259);
// other bytes pass through (the input is UTF-8).
inline void append_json_string(std::string& out, std::string_view s)
{
    static constexpr char hex[] = "0123456789abcdef";
    out += '"';
    for (const char c : s)
    {
        switch (c)
        {
        case '"':
            out += "\\\"";
            break;
        case '\\':
            out += "\\\\";
            break;
        case '\b':
            out += "\\b";
            break;
        case '\f':
            out += "\\f";
            break;
        case '\n':
            out += "\\n";
            break;
        case '\r':
            out += "\\r";
            break;
        case '\t':
            out += "\\t";
            break;
        default:
            if (static_cast<unsigned char>(c) < 0x20)
            {
                out += "\\u00";
                out += hex[(static_cast<unsigned char>(c) >> 4) & 0xf];
                out += hex[static_cast<unsigned char>(c) & 0xf];
            }
            else
                out += c;
        }
    }
    out += '"';
}

} // namespace pgcoro::detail

#endif // PGCORO_DETAIL_RENDER_TEXT_HPP
