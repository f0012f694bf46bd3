// SPDX-License-Identifier: BSL-1.0
// pgcoro/chrono.hpp - date, time, timestamp, timestamptz and interval <-> std::chrono.
#ifndef PGCORO_CHRONO_HPP
#define PGCORO_CHRONO_HPP

#include <pgcoro/detail/chrono_text.hpp>
#include <pgcoro/detail/type_oids.hpp>
#include <pgcoro/error.hpp>
#include <pgcoro/value_traits.hpp>

#include <chrono>
#include <cstdint>
#include <limits>
#include <ratio>
#include <string>
#include <string_view>

namespace pgcoro
{

/// interval: months, days and microseconds kept apart, as PostgreSQL does (a month is not a
/// fixed duration, nor is a day across a DST change).
struct interval
{
    std::int32_t months = 0;           ///< years * 12 + months
    std::int32_t days = 0;             ///< days
    std::chrono::microseconds time{0}; ///< hours, minutes, seconds
    bool operator==(const interval&) const = default;
};

namespace detail
{

template <class D>
concept sub_day_duration = !std::same_as<D, std::chrono::days>;

// Microseconds to a time_point of duration D: exact, or out_of_range (D coarser than the value).
template <class TP>
expected<TP> from_micros(std::int64_t us, infinity_kind inf)
{
    if (inf == infinity_kind::positive)
        return TP::max();
    if (inf == infinity_kind::negative)
        return TP::min();
    if constexpr (std::ratio_less_v<typename TP::period, std::micro>) // finer: may overflow
    {
        constexpr auto limit =
            std::chrono::duration_cast<std::chrono::microseconds>(TP::duration::max()).count();
        if (us > limit || us < -limit)
            return fail(errc::out_of_range, "value is past the requested duration's range");
    }
    const std::chrono::microseconds d(us);
    const auto v = std::chrono::floor<typename TP::duration>(d);
    if (v != d)
        return fail(errc::out_of_range, "value has more precision than the requested duration");
    return TP(v);
}

// time_point to microseconds: infinity for max()/min() (the documented sentinels).
template <class TP>
expected<void> append_time_point(const TP& tp, bool utc, std::string& out)
{
    if (tp == TP::max())
        out.append("infinity");
    else if (tp == TP::min())
        out.append("-infinity");
    else
    {
        const auto us = std::chrono::floor<std::chrono::microseconds>(tp.time_since_epoch());
        append_timestamp(us.count(), utc, out);
    }
    return {};
}

} // namespace detail

/// std::chrono::sys_days <-> date. sys_days::max()/min() <-> infinity/-infinity; BC dates as
/// years <= 0 (1 BC is year 0, as std::chrono counts).
template <>
struct value_traits<std::chrono::sys_days>
{
    static constexpr std::string_view name = "std::chrono::sys_days";
    static constexpr Oid oid = detail::oid_date;
    static expected<void> encode(std::chrono::sys_days v, std::string& out)
    {
        if (v == std::chrono::sys_days::max())
            out.append("infinity");
        else if (v == std::chrono::sys_days::min())
            out.append("-infinity");
        else
        {
            bool bc = false;
            detail::append_ymd(v.time_since_epoch().count(), out, bc);
            if (bc)
                out.append(" BC");
        }
        return {};
    }
    static bool accepts(Oid t) noexcept { return t == detail::oid_date || detail::is_user_oid(t); }
    static expected<std::chrono::sys_days> decode(std::string_view text, Oid)
    {
        detail::infinity_kind inf;
        auto d = detail::parse_date(text, inf);
        if (!d)
            return tl::unexpected(std::move(d.error()));
        if (inf != detail::infinity_kind::none)
            return inf == detail::infinity_kind::positive ? std::chrono::sys_days::max()
                                                          : std::chrono::sys_days::min();
        return std::chrono::sys_days(std::chrono::days(*d));
    }
};

/// std::chrono::year_month_day <-> date. Infinity, and years past std::chrono::year's range,
/// are an out_of_range error: read such columns as sys_days.
template <>
struct value_traits<std::chrono::year_month_day>
{
    static constexpr std::string_view name = "std::chrono::year_month_day";
    static constexpr Oid oid = detail::oid_date;
    static expected<void> encode(std::chrono::year_month_day v, std::string& out)
    {
        if (!v.ok())
            return fail(errc::invalid_argument, "year_month_day parameter is not a valid date");
        return value_traits<std::chrono::sys_days>::encode(std::chrono::sys_days(v), out);
    }
    static bool accepts(Oid t) noexcept { return t == detail::oid_date || detail::is_user_oid(t); }
    static expected<std::chrono::year_month_day> decode(std::string_view text, Oid t)
    {
        auto d = value_traits<std::chrono::sys_days>::decode(text, t);
        if (!d)
            return tl::unexpected(std::move(d.error()));
        if (*d == std::chrono::sys_days::max() || *d == std::chrono::sys_days::min())
            return fail(errc::out_of_range, "date is infinity; read it as std::chrono::sys_days");
        const auto c = detail::civil_from_days(d->time_since_epoch().count());
        if (c.year < -32767 || c.year > 32767)
            return fail(errc::out_of_range, "date is past std::chrono::year's range");
        return std::chrono::year_month_day(*d);
    }
};

/// std::chrono::sys_time<D> <-> timestamptz, in UTC whatever the session's TimeZone (D finer
/// than a day: system_clock::time_point, sys_time<microseconds>...; sent truncated to
/// microseconds, read exactly or out_of_range). max()/min() <-> infinity/-infinity.
template <detail::sub_day_duration D>
struct value_traits<std::chrono::time_point<std::chrono::system_clock, D>>
{
    using type = std::chrono::time_point<std::chrono::system_clock, D>;
    static constexpr std::string_view name = "std::chrono::sys_time";
    static constexpr Oid oid = detail::oid_timestamptz;
    static expected<void> encode(const type& v, std::string& out)
    {
        return detail::append_time_point(v, true, out);
    }
    static bool accepts(Oid t) noexcept
    {
        return t == detail::oid_timestamptz || detail::is_user_oid(t);
    }
    static expected<type> decode(std::string_view text, Oid)
    {
        detail::infinity_kind inf;
        auto us = detail::parse_timestamp(text, true, inf);
        if (!us)
            return tl::unexpected(std::move(us.error()));
        return detail::from_micros<type>(*us, inf);
    }
};

/// std::chrono::local_time<D> <-> timestamp (without time zone); as sys_time otherwise.
template <class D>
struct value_traits<std::chrono::local_time<D>>
{
    using type = std::chrono::local_time<D>;
    static constexpr std::string_view name = "std::chrono::local_time";
    static constexpr Oid oid = detail::oid_timestamp;
    static expected<void> encode(const type& v, std::string& out)
    {
        return detail::append_time_point(v, false, out);
    }
    static bool accepts(Oid t) noexcept
    {
        return t == detail::oid_timestamp || detail::is_user_oid(t);
    }
    static expected<type> decode(std::string_view text, Oid)
    {
        detail::infinity_kind inf;
        auto us = detail::parse_timestamp(text, false, inf);
        if (!us)
            return tl::unexpected(std::move(us.error()));
        return detail::from_micros<type>(*us, inf);
    }
};

/// std::chrono::microseconds <-> time (time of day since midnight, 00:00:00 to 24:00:00).
template <>
struct value_traits<std::chrono::microseconds>
{
    static constexpr std::string_view name = "std::chrono::microseconds";
    static constexpr Oid oid = detail::oid_time;
    static expected<void> encode(std::chrono::microseconds v, std::string& out)
    {
        if (v.count() < 0 || v > std::chrono::hours(24))
            return fail(errc::invalid_argument, "time parameter is outside 00:00 to 24:00");
        detail::append_hms(v.count(), out);
        return {};
    }
    static bool accepts(Oid t) noexcept { return t == detail::oid_time || detail::is_user_oid(t); }
    static expected<std::chrono::microseconds> decode(std::string_view text, Oid)
    {
        return detail::parse_time(text).map([](std::int64_t us)
                                            { return std::chrono::microseconds(us); });
    }
};

/// pgcoro::interval <-> interval (IntervalStyle postgres, the server default).
template <>
struct value_traits<interval>
{
    static constexpr std::string_view name = "pgcoro::interval";
    static constexpr Oid oid = detail::oid_interval;
    static expected<void> encode(const interval& v, std::string& out)
    {
        if (v.time.count() == std::numeric_limits<std::int64_t>::min())
            return fail(errc::invalid_argument, "interval parameter is out of range");
        detail::append_interval({v.months, v.days, v.time.count()}, out);
        return {};
    }
    static bool accepts(Oid t) noexcept
    {
        return t == detail::oid_interval || detail::is_user_oid(t);
    }
    static expected<interval> decode(std::string_view text, Oid)
    {
        return detail::parse_interval(text).map(
            [](const detail::interval_parts& p) {
                return interval{p.months, p.days, std::chrono::microseconds(p.microseconds)};
            });
    }
};

} // namespace pgcoro

#endif // PGCORO_CHRONO_HPP
