// SPDX-License-Identifier: BSL-1.0
// pgcoro/detail/row_mapping.hpp - reading fields through value_traits with messages that name
// the column, and rows into tuples, aggregates (Boost.PFR) and described structs
// (Boost.Describe), checked once per result.
#ifndef PGCORO_DETAIL_ROW_MAPPING_HPP
#define PGCORO_DETAIL_ROW_MAPPING_HPP

#include <pgcoro/detail/text_codec.hpp>
#include <pgcoro/detail/type_oids.hpp>
#include <pgcoro/error.hpp>
#include <pgcoro/value_traits.hpp>

#include <boost/describe/members.hpp>
#include <boost/mp11/algorithm.hpp>
#include <boost/pfr/core.hpp>
#include <boost/pfr/tuple_size.hpp>

#include <libpq-fe.h>

#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace pgcoro::detail
{

template <class T>
struct unwrap_optional
{
    using type = T;
};
template <class T>
struct unwrap_optional<std::optional<T>>
{
    using type = T;
};

// A field type: readable, or std::optional of readable.
template <class T>
concept field_type = readable<typename unwrap_optional<T>::type>;

template <class T>
std::string cpp_name()
{
    using V = typename unwrap_optional<T>::type;
    std::string n(value_traits<V>::name);
    return is_optional<T>::value ? "std::optional<" + n + ">" : n;
}

// `column 2 "created_at"`
inline std::string column_label(const PGresult* r, int col)
{
    std::string s = "column " + std::to_string(col);
    if (r && col >= 0 && col < PQnfields(r))
    {
        s += " \"";
        s += PQfname(r, col);
        s += '"';
    }
    return s;
}

template <class T>
void require_field_type()
{
    static_assert(field_type<T>,
                  "pgcoro: this type cannot be read from a field. Supported: bool, integers, "
                  "float, double, std::string, std::string_view, std::vector<std::byte> (bytea), "
                  "std::chrono::sys_days / year_month_day (date), sys_time (timestamptz), "
                  "local_time (timestamp), microseconds (time), pgcoro::interval, "
                  "pgcoro::numeric, boost::uuids::uuid, std::vector<T> (arrays) and "
                  "std::optional<T>. To add a type, specialise pgcoro::value_traits<T> "
                  "(pgcoro/value_traits.hpp).");
}

// Checks once that column `col` can be read as T. Error: type_mismatch naming both types.
template <class T>
expected<void> check_column(const PGresult* r, int col)
{
    using V = typename unwrap_optional<T>::type;
    const Oid t = PQftype(r, col);
    if (value_traits<V>::accepts(t))
        return {};
    return fail(errc::type_mismatch,
                column_label(r, col) + " is " + type_name(t) + ", cannot read as " + cpp_name<T>());
}

// Reads one field whose column check_column<T>() accepted.
template <class T>
expected<T> read_cell(const PGresult* r, int row, int col)
{
    using V = typename unwrap_optional<T>::type;
    if (PQgetisnull(r, row, col))
    {
        if constexpr (is_optional<T>::value)
            return T{};
        else
            return fail(errc::unexpected_null, column_label(r, col) + " is NULL in row " +
                                                   std::to_string(row) + "; read it as " +
                                                   "std::optional<" + cpp_name<T>() + ">");
    }
    const std::string_view text(PQgetvalue(r, row, col),
                                static_cast<std::size_t>(PQgetlength(r, row, col)));
    auto v = value_traits<V>::decode(text, PQftype(r, col));
    if (!v)
    {
        error e = std::move(v.error());
        e.message = column_label(r, col) + " (" + type_name(PQftype(r, col)) + ") as " +
                    cpp_name<T>() + ": " + e.message;
        return tl::unexpected(std::move(e));
    }
    if constexpr (is_optional<T>::value)
        return T(std::move(*v));
    else
        return std::move(*v);
}

template <class T>
struct is_tuple : std::false_type
{
};
template <class... Ts>
struct is_tuple<std::tuple<Ts...>> : std::true_type
{
};

// How a row maps onto T: a single field, a tuple by position, a described struct by column
// name, or an aggregate by position.
enum class mapping_kind
{
    single,
    tuple,
    described,
    aggregate,
    unsupported
};

template <class T>
constexpr mapping_kind kind_of() noexcept
{
    if constexpr (field_type<T>)
        return mapping_kind::single;
    else if constexpr (is_tuple<T>::value)
        return mapping_kind::tuple;
    else if constexpr (boost::describe::has_describe_members<T>::value)
        return mapping_kind::described;
    else if constexpr (std::is_aggregate_v<T> && std::is_default_constructible_v<T>)
        return mapping_kind::aggregate;
    else
        return mapping_kind::unsupported;
}

template <class T>
constexpr std::size_t width_of() noexcept
{
    constexpr auto k = kind_of<T>();
    if constexpr (k == mapping_kind::single)
        return 1;
    else if constexpr (k == mapping_kind::tuple)
        return std::tuple_size_v<T>;
    else if constexpr (k == mapping_kind::described)
        return boost::mp11::mp_size<
            boost::describe::describe_members<T, boost::describe::mod_public>>::value;
    else
        return boost::pfr::tuple_size_v<T>;
}

// The type of the I-th mapped member.
template <class T, std::size_t I>
struct member_type
{
    using type = std::remove_cvref_t<decltype(boost::pfr::get<I>(std::declval<T&>()))>;
};
template <class... Ts, std::size_t I>
struct member_type<std::tuple<Ts...>, I>
{
    using type = std::tuple_element_t<I, std::tuple<Ts...>>;
};

template <class T, std::size_t I>
auto& member_ref(T& t)
{
    constexpr auto k = kind_of<T>();
    if constexpr (k == mapping_kind::tuple)
        return std::get<I>(t);
    else if constexpr (k == mapping_kind::described)
    {
        using D =
            boost::mp11::mp_at_c<boost::describe::describe_members<T, boost::describe::mod_public>,
                                 I>;
        return t.*D::pointer;
    }
    else
        return boost::pfr::get<I>(t);
}

template <class T, std::size_t I>
using mapped_type = std::remove_cvref_t<decltype(member_ref<T, I>(std::declval<T&>()))>;

// The columns T's members come from, checked once per result.
template <class T>
struct row_plan
{
    std::array<int, width_of<T>() + 1> columns{};
};

template <class T>
expected<row_plan<T>> plan_rows(const PGresult* r)
{
    constexpr auto k = kind_of<T>();
    static_assert(k != mapping_kind::unsupported,
                  "pgcoro: a row maps onto a readable type (one column), std::tuple, a struct "
                  "described with BOOST_DESCRIBE_STRUCT, or an aggregate (by position)");
    constexpr std::size_t n = width_of<T>();
    const int ncols = PQnfields(r);
    row_plan<T> plan;
    if constexpr (k == mapping_kind::described)
    {
        std::string missing;
        std::vector<bool> used(static_cast<std::size_t>(ncols));
        std::size_t i = 0;
        boost::mp11::mp_for_each<boost::describe::describe_members<T, boost::describe::mod_public>>(
            [&](auto d)
            {
                int found = -1;
                for (int c = 0; c < ncols; ++c)
                    if (std::string_view(PQfname(r, c)) == d.name)
                        found = c;
                plan.columns[i++] = found;
                if (found < 0)
                    missing += (missing.empty() ? "\"" : ", \"") + std::string(d.name) + "\"";
                else
                    used[static_cast<std::size_t>(found)] = true;
            });
        std::string extra;
        for (int c = 0; c < ncols; ++c)
            if (!used[static_cast<std::size_t>(c)])
                extra += (extra.empty() ? "\"" : ", \"") + std::string(PQfname(r, c)) + "\"";
        if (!missing.empty() || !extra.empty())
            return fail(
                errc::type_mismatch,
                "columns do not match the struct's members:" +
                    (missing.empty() ? "" : " missing " + missing) +
                    (extra.empty() ? "" : (missing.empty() ? " extra " : "; extra ") + extra));
    }
    else
    {
        if (static_cast<std::size_t>(ncols) != n)
            return fail(errc::type_mismatch, "the result has " + std::to_string(ncols) +
                                                 " columns, the row type " + std::to_string(n));
        for (std::size_t i = 0; i < n; ++i)
            plan.columns[i] = static_cast<int>(i);
    }
    expected<void> ok;
    if constexpr (k == mapping_kind::single)
        ok = check_column<T>(r, 0);
    else
        [&]<std::size_t... I>(std::index_sequence<I...>)
        {
            (void)((ok = check_column<mapped_type<T, I>>(r, plan.columns[I])) && ...);
        }
    (std::make_index_sequence<n>{});
    if (!ok)
        return tl::unexpected(std::move(ok.error()));
    return plan;
}

// Reads row `row` as T along a checked plan.
template <class T>
expected<T> read_row(const PGresult* r, int row, const row_plan<T>& plan)
{
    constexpr auto k = kind_of<T>();
    if constexpr (k == mapping_kind::single)
        return read_cell<T>(r, row, 0);
    else
    {
        T out{};
        std::optional<error> bad;
        [&]<std::size_t... I>(std::index_sequence<I...>)
        {
            (void)(
                [&]
                {
                    auto v = read_cell<mapped_type<T, I>>(r, row, plan.columns[I]);
                    if (!v)
                    {
                        bad = std::move(v.error());
                        return false;
                    }
                    member_ref<T, I>(out) = std::move(*v);
                    return true;
                }() &&
                ...);
        }
        (std::make_index_sequence<width_of<T>()>{});
        if (bad)
            return tl::unexpected(std::move(*bad));
        return out;
    }
}

} // namespace pgcoro::detail

#endif // PGCORO_DETAIL_ROW_MAPPING_HPP
