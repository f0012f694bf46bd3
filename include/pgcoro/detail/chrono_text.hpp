// SPDX-License-Identifier: BSL-1.0
// pgcoro/detail/chrono_text.hpp - PostgreSQL's ISO date/time text (DateStyle ISO, IntervalStyle
// postgres, the server defaults) to and from day and microsecond counts.
#ifndef PGCORO_DETAIL_CHRONO_TEXT_HPP
#define PGCORO_DETAIL_CHRONO_TEXT_HPP

#include <pgcoro/error.hpp>

#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>

namespace pgcoro::detail
{

inline constexpr std::int64_t usec_per_sec = 1'000'000;
inline constexpr std::int64_t usec_per_day = 86'400 * usec_per_sec;

// Days since 1970-01-01 of a proleptic Gregorian date (year 0 = 1 BC); H. Hinnant's algorithm.
constexpr std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) noexcept
{
    y -= m <= 2;
    const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
    const auto yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

struct civil_date
{
    std::int64_t year; // astronomical: 0 = 1 BC
    unsigned month;
    unsigned day;
};

constexpr civil_date civil_from_days(std::int64_t z) noexcept
{
    z += 719468;
    const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const auto doe = static_cast<unsigned>(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const std::int64_t y = static_cast<std::int64_t>(yoe) + era * 400;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    const unsigned d = doy - (153 * mp + 2) / 5 + 1;
    const unsigned m = mp < 10 ? mp + 3 : mp - 9;
    return {y + (m <= 2), m, d};
}

// A small cursor over date/time text.
struct text_cursor
{
    std::string_view s;
    std::size_t i = 0;
    bool done() const noexcept { return i >= s.size(); }
    bool eat(char c) noexcept
    {
        if (i < s.size() && s[i] == c)
        {
            ++i;
            return true;
        }
        return false;
    }
    bool eat(std::string_view w) noexcept
    {
        if (s.substr(i, w.size()) == w)
        {
            i += w.size();
            return true;
        }
        return false;
    }
    // An unsigned decimal number of at least one digit.
    bool number(std::int64_t& v) noexcept
    {
        const char* b = s.data() + i;
        auto r = std::from_chars(b, s.data() + s.size(), v);
        if (r.ec != std::errc{} || r.ptr == b || *b == '-' || *b == '+')
            return false;
        i += static_cast<std::size_t>(r.ptr - b);
        return true;
    }
    // ".ffffff" (1 to 6 digits) as microseconds; nothing when there is no point.
    bool fraction(std::int64_t& us) noexcept
    {
        us = 0;
        if (!eat('.'))
            return true;
        int n = 0;
        while (i < s.size() && s[i] >= '0' && s[i] <= '9')
        {
            if (n == 6)
                return false;
            us = us * 10 + (s[i++] - '0');
            ++n;
        }
        if (n == 0)
            return false;
        for (; n < 6; ++n)
            us *= 10;
        return true;
    }
};

inline auto bad_datetime(std::string_view what)
{
    return fail(errc::type_mismatch,
                "invalid " + std::string(what) + " text (pgcoro reads DateStyle ISO)");
}

// "YYYY-MM-DD" as days since the epoch (the " BC" suffix is handled by the caller).
inline bool parse_ymd(text_cursor& c, std::int64_t& y, std::int64_t& m, std::int64_t& d)
{
    return c.number(y) && c.eat('-') && c.number(m) && c.eat('-') && c.number(d) && m >= 1 &&
           m <= 12 && d >= 1 && d <= 31;
}

// "HH:MM:SS[.ffffff]" as microseconds.
inline bool parse_hms(text_cursor& c, std::int64_t& us)
{
    std::int64_t h = 0, mi = 0, sec = 0, frac = 0;
    if (!(c.number(h) && c.eat(':') && c.number(mi) && c.eat(':') && c.number(sec) &&
          c.fraction(frac)))
        return false;
    if (mi > 59 || sec > 60)
        return false;
    us = ((h * 60 + mi) * 60 + sec) * usec_per_sec + frac;
    return true;
}

enum class infinity_kind
{
    none,
    positive,
    negative
};

inline infinity_kind infinity_of(std::string_view t) noexcept
{
    if (t == "infinity")
        return infinity_kind::positive;
    if (t == "-infinity")
        return infinity_kind::negative;
    return infinity_kind::none;
}

// date text: days since 1970-01-01. Infinity is reported through `inf`.
inline expected<std::int64_t> parse_date(std::string_view t, infinity_kind& inf)
{
    inf = infinity_of(t);
    if (inf != infinity_kind::none)
        return 0;
    text_cursor c{t};
    std::int64_t y, m, d;
    if (!parse_ymd(c, y, m, d))
        return bad_datetime("date");
    if (c.eat(" BC"))
        y = 1 - y;
    if (!c.done())
        return bad_datetime("date");
    return days_from_civil(y, static_cast<unsigned>(m), static_cast<unsigned>(d));
}

// timestamp / timestamptz text: microseconds since 1970-01-01 00:00 (UTC for timestamptz, whose
// text carries the session's offset "+HH[:MM[:SS]]").
inline expected<std::int64_t> parse_timestamp(std::string_view t, bool with_zone,
                                              infinity_kind& inf)
{
    const char* what = with_zone ? "timestamptz" : "timestamp";
    inf = infinity_of(t);
    if (inf != infinity_kind::none)
        return 0;
    text_cursor c{t};
    std::int64_t y, m, d, us;
    if (!parse_ymd(c, y, m, d) || !c.eat(' ') || !parse_hms(c, us))
        return bad_datetime(what);
    std::int64_t offset = 0;
    if (with_zone)
    {
        const bool neg = c.eat('-');
        if (!neg && !c.eat('+'))
            return bad_datetime(what);
        std::int64_t oh = 0, om = 0, os = 0;
        if (!c.number(oh) || (c.eat(':') && !c.number(om)) || (c.eat(':') && !c.number(os)))
            return bad_datetime(what);
        offset = ((oh * 60 + om) * 60 + os) * usec_per_sec * (neg ? -1 : 1);
    }
    if (c.eat(" BC"))
        y = 1 - y;
    if (!c.done())
        return bad_datetime(what);
    return days_from_civil(y, static_cast<unsigned>(m), static_cast<unsigned>(d)) * usec_per_day +
           us - offset;
}

// time text: microseconds since midnight.
inline expected<std::int64_t> parse_time(std::string_view t)
{
    text_cursor c{t};
    std::int64_t us;
    if (!parse_hms(c, us) || !c.done())
        return bad_datetime("time");
    return us;
}

// Appends "YYYY-MM-DD" (" BC" added by the caller through `bc`).
inline void append_ymd(std::int64_t days, std::string& out, bool& bc)
{
    auto cd = civil_from_days(days);
    bc = cd.year <= 0;
    const std::int64_t y = bc ? 1 - cd.year : cd.year;
    char buf[32];
    auto r = std::to_chars(buf, buf + sizeof buf, y);
    for (auto n = r.ptr - buf; n < 4; ++n)
        out.push_back('0');
    out.append(buf, r.ptr);
    out.push_back('-');
    out.push_back(static_cast<char>('0' + cd.month / 10));
    out.push_back(static_cast<char>('0' + cd.month % 10));
    out.push_back('-');
    out.push_back(static_cast<char>('0' + cd.day / 10));
    out.push_back(static_cast<char>('0' + cd.day % 10));
}

inline void append_2(std::int64_t v, std::string& out)
{
    out.push_back(static_cast<char>('0' + v / 10));
    out.push_back(static_cast<char>('0' + v % 10));
}

// Appends "HH:MM:SS.ffffff" for a non-negative count of microseconds (hours may pass 24).
inline void append_hms(std::int64_t us, std::string& out)
{
    const std::int64_t h = us / (3600 * usec_per_sec);
    if (h < 10)
        out.push_back('0');
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof buf, h);
    out.append(buf, r.ptr);
    out.push_back(':');
    append_2(us / (60 * usec_per_sec) % 60, out);
    out.push_back(':');
    append_2(us / usec_per_sec % 60, out);
    out.push_back('.');
    std::int64_t f = us % usec_per_sec;
    char frac[6];
    for (int k = 5; k >= 0; --k, f /= 10)
        frac[k] = static_cast<char>('0' + f % 10);
    out.append(frac, 6);
}

// Appends a timestamp of `us` microseconds since the epoch; "+00" when `utc` (timestamptz).
inline void append_timestamp(std::int64_t us, bool utc, std::string& out)
{
    std::int64_t days = us / usec_per_day;
    std::int64_t rem = us % usec_per_day;
    if (rem < 0)
    {
        rem += usec_per_day;
        --days;
    }
    bool bc = false;
    append_ymd(days, out, bc);
    out.push_back(' ');
    append_hms(rem, out);
    if (utc)
        out.append("+00");
    if (bc)
        out.append(" BC");
}

// interval text in IntervalStyle postgres ("1 year 2 mons -3 days +04:05:06.5").
struct interval_parts
{
    std::int32_t months = 0;
    std::int32_t days = 0;
    std::int64_t microseconds = 0;
};

inline expected<interval_parts> parse_interval(std::string_view t)
{
    interval_parts p;
    text_cursor c{t};
    while (!c.done())
    {
        const bool neg = c.eat('-');
        const bool pos = !neg && c.eat('+');
        (void)pos;
        std::int64_t n = 0;
        if (!c.number(n))
            return bad_datetime("interval (IntervalStyle postgres)");
        if (c.eat(':'))
        {
            std::int64_t mi = 0, sec = 0, frac = 0;
            if (!c.number(mi) || !c.eat(':') || !c.number(sec) || !c.fraction(frac))
                return bad_datetime("interval");
            const std::int64_t us = ((n * 60 + mi) * 60 + sec) * usec_per_sec + frac;
            p.microseconds += neg ? -us : us;
        }
        else
        {
            const std::int64_t v = neg ? -n : n;
            if (!c.eat(' '))
                return bad_datetime("interval");
            if (c.eat("years") || c.eat("year"))
                p.months += static_cast<std::int32_t>(v * 12);
            else if (c.eat("mons") || c.eat("mon"))
                p.months += static_cast<std::int32_t>(v);
            else if (c.eat("days") || c.eat("day"))
                p.days += static_cast<std::int32_t>(v);
            else
                return bad_datetime("interval (IntervalStyle postgres)");
        }
        if (!c.done() && !c.eat(' '))
            return bad_datetime("interval");
    }
    return p;
}

inline void append_interval(const interval_parts& p, std::string& out)
{
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof buf, p.months);
    out.append(buf, r.ptr);
    out.append(" mons ");
    r = std::to_chars(buf, buf + sizeof buf, p.days);
    out.append(buf, r.ptr);
    out.append(" days ");
    std::int64_t us = p.microseconds;
    if (us < 0)
    {
        out.push_back('-');
        us = -us; // INT64_MIN is out of interval's range; refused by the caller
    }
    append_hms(us, out);
}

} // namespace pgcoro::detail

#endif // PGCORO_DETAIL_CHRONO_TEXT_HPP
