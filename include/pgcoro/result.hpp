// SPDX-License-Identifier: BSL-1.0
// pgcoro/result.hpp - the rows a statement returned, with checked, typed field access.
#ifndef PGCORO_RESULT_HPP
#define PGCORO_RESULT_HPP

#include <pgcoro/array.hpp>
#include <pgcoro/bytea.hpp>
#include <pgcoro/chrono.hpp>
#include <pgcoro/detail/pq_handles.hpp>
#include <pgcoro/detail/row_mapping.hpp>
#include <pgcoro/error.hpp>
#include <pgcoro/numeric.hpp>
#include <pgcoro/uuid.hpp>

#include <libpq-fe.h>

#include <charconv>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace pgcoro
{

class result;

/// One field of one row. Reading never has undefined behaviour: a bad index, a NULL read as a
/// non-optional type or a type mismatch come back as an error.
class field
{
public:
    /// True when the field is SQL NULL. Throws std::out_of_range (naming the column) when the
    /// field does not exist: a typo is not a NULL.
    bool is_null() const
    {
        if (!valid())
            throw std::out_of_range("pgcoro: " + missing());
        return PQgetisnull(res_, static_cast<int>(row_), static_cast<int>(col_));
    }
    /// True when the row and column exist.
    bool exists() const noexcept { return valid(); }
    /// The field's text as the server sent it ("" for NULL). Valid while the result lives.
    std::string_view text() const noexcept
    {
        if (!valid())
            return {};
        return {PQgetvalue(res_, static_cast<int>(row_), static_cast<int>(col_)),
                static_cast<std::size_t>(
                    PQgetlength(res_, static_cast<int>(row_), static_cast<int>(col_)))};
    }
    /// The column's type OID (0 when out of range).
    Oid type() const noexcept { return valid() ? PQftype(res_, static_cast<int>(col_)) : 0; }

    /// The value as T (any type with value_traits: see docs/api.md "Supported C++ types"), or
    /// std::optional<T> (NULL gives nullopt). Errors, naming the column, its type and T:
    /// out_of_range (no such row or column, value too large for T), unexpected_null, type_mismatch.
    template <class T>
    expected<T> get() const
    {
        detail::require_field_type<T>();
        if constexpr (detail::field_type<T>)
        {
            if (!valid())
                return fail(errc::out_of_range, missing());
            const int c = static_cast<int>(col_);
            if (auto ok = detail::check_column<T>(res_, c); !ok)
                return tl::unexpected(std::move(ok.error()));
            return detail::read_cell<T>(res_, static_cast<int>(row_), c);
        }
        else
            return fail(errc::type_mismatch, "unsupported field type");
    }

private:
    friend class row;
    field(const PGresult* res, std::size_t row, std::size_t col, bool valid,
          std::string_view name = {})
        : res_(res), row_(row), col_(col), valid_(valid), name_(name)
    {
    }
    bool valid() const noexcept { return valid_; }
    std::string missing() const
    {
        if (!name_.empty())
            return "no column named \"" + std::string(name_) + "\"";
        if (!res_)
            return "row index out of range";
        return "column index " + std::to_string(col_) + " out of range (" +
               std::to_string(PQnfields(res_)) + " columns)";
    }

    const PGresult* res_;
    std::size_t row_;
    std::size_t col_;
    bool valid_;
    std::string name_; // the name asked for, when it matched no column
};

/// One row of a result: fields by position or by column name.
class row
{
public:
    /// The field at column `col`; an out-of-range index gives a field whose get() fails.
    field operator[](std::size_t col) const noexcept
    {
        return field(res_, row_, col, res_ && col < static_cast<std::size_t>(PQnfields(res_)));
    }
    /// The field in the column named `name`; an unknown name gives a field whose get() fails.
    field operator[](std::string_view name) const
    {
        const auto col = column_index(name);
        if (col == static_cast<std::size_t>(-1))
            return field(res_, row_, col, false, name.empty() ? std::string_view("\"\"") : name);
        return (*this)[col];
    }
    /// Shorthand for `(*this)[col].get<T>()`.
    template <class T>
    expected<T> get(std::size_t col) const
    {
        return (*this)[col].template get<T>();
    }
    /// Shorthand for `(*this)[name].get<T>()`.
    template <class T>
    expected<T> get(std::string_view name) const
    {
        return (*this)[name].template get<T>();
    }
    /// The row as T: a readable type (one column), std::tuple (by position), a struct
    /// described with BOOST_DESCRIBE_STRUCT (by column name) or an aggregate (by position).
    template <class T>
    expected<T> as() const
    {
        if (!res_)
            return fail(errc::out_of_range, "row index out of range");
        auto plan = detail::plan_rows<T>(res_);
        if (!plan)
            return tl::unexpected(std::move(plan.error()));
        return detail::read_row<T>(res_, static_cast<int>(row_), *plan);
    }
    /// Number of columns.
    std::size_t size() const noexcept
    {
        return res_ ? static_cast<std::size_t>(PQnfields(res_)) : 0;
    }
    /// This row's index in its result.
    std::size_t index() const noexcept { return row_; }

private:
    friend class result;
    row(const PGresult* res, std::size_t r) noexcept : res_(res), row_(r) {}
    std::size_t column_index(std::string_view name) const
    {
        for (std::size_t i = 0; i < size(); ++i)
            if (name == PQfname(res_, static_cast<int>(i)))
                return i;
        return static_cast<std::size_t>(-1);
    }

    const PGresult* res_;
    std::size_t row_;
};

/// The complete result of one statement. Owns its PGresult; move-only.
class result
{
public:
    result() = default;
    /// Takes ownership of a PGresult (for pgcoro internals and tests).
    explicit result(detail::pgresult_ptr r) noexcept : res_(std::move(r)) {}

    /// Number of rows.
    std::size_t size() const noexcept
    {
        return res_ ? static_cast<std::size_t>(PQntuples(res_.get())) : 0;
    }
    /// True when there are no rows.
    bool empty() const noexcept { return size() == 0; }
    /// Number of columns.
    std::size_t columns() const noexcept
    {
        return res_ ? static_cast<std::size_t>(PQnfields(res_.get())) : 0;
    }
    /// The name of column `col`, or "" when out of range.
    std::string_view column_name(std::size_t col) const noexcept
    {
        if (col >= columns())
            return {};
        return PQfname(res_.get(), static_cast<int>(col));
    }
    /// Rows affected by INSERT/UPDATE/DELETE/MERGE/SELECT/COPY... (PQcmdTuples); 0 otherwise.
    std::uint64_t affected_rows() const noexcept
    {
        if (!res_)
            return 0;
        std::string_view s = PQcmdTuples(res_.get());
        std::uint64_t n = 0;
        std::from_chars(s.data(), s.data() + s.size(), n);
        return n;
    }
    /// The command tag ("INSERT 0 1", "SELECT 3").
    std::string_view command_tag() const noexcept { return res_ ? PQcmdStatus(res_.get()) : ""; }

    /// Row `r`; rows past the end give fields whose get() fails with out_of_range.
    pgcoro::row operator[](std::size_t r) const noexcept
    {
        return pgcoro::row(r < size() ? res_.get() : nullptr, r);
    }
    /// Shorthand for `(*this)[r][c].get<T>()`.
    template <class T>
    expected<T> get(std::size_t r, std::size_t c) const
    {
        return (*this)[r][c].template get<T>();
    }

    /// Every row as T (see row::as), checked once (columns, types), then read. Errors name the
    /// column and row: type_mismatch, unexpected_null, out_of_range.
    template <class T>
    expected<std::vector<T>> as() const
    {
        std::vector<T> out;
        if (!res_)
            return out;
        auto plan = detail::plan_rows<T>(res_.get());
        if (!plan)
            return tl::unexpected(std::move(plan.error()));
        const int n = PQntuples(res_.get());
        out.reserve(static_cast<std::size_t>(n));
        for (int r = 0; r < n; ++r)
        {
            auto v = detail::read_row<T>(res_.get(), r, *plan);
            if (!v)
                return tl::unexpected(std::move(v.error()));
            out.push_back(std::move(*v));
        }
        return out;
    }
    /// The only row as T. Error out_of_range when there is not exactly one row.
    template <class T>
    expected<T> one() const
    {
        if (size() != 1)
            return fail(errc::out_of_range, "expected exactly one row, the statement returned " +
                                                std::to_string(size()));
        return (*this)[0].template as<T>();
    }
    /// The row as T, or nullopt when there is none. Error out_of_range for more than one row.
    template <class T>
    expected<std::optional<T>> opt() const
    {
        if (size() > 1)
            return fail(errc::out_of_range, "expected at most one row, the statement returned " +
                                                std::to_string(size()));
        if (size() == 0)
            return std::optional<T>{};
        return (*this)[0].template as<T>().map([](T v) { return std::optional<T>(std::move(v)); });
    }

    /// Iterates rows.
    class iterator
    {
    public:
        using value_type = pgcoro::row;
        using difference_type = std::ptrdiff_t;
        iterator() = default;
        pgcoro::row operator*() const noexcept { return (*owner_)[i_]; }
        iterator& operator++() noexcept
        {
            ++i_;
            return *this;
        }
        iterator operator++(int) noexcept
        {
            auto t = *this;
            ++i_;
            return t;
        }
        bool operator==(const iterator& o) const noexcept { return i_ == o.i_; }

    private:
        friend class result;
        iterator(const result* o, std::size_t i) noexcept : owner_(o), i_(i) {}
        const result* owner_ = nullptr;
        std::size_t i_ = 0;
    };
    iterator begin() const noexcept { return iterator(this, 0); }
    iterator end() const noexcept { return iterator(this, size()); }

    /// The underlying PGresult, for what pgcoro does not wrap. Owned by this result.
    const PGresult* native_handle() const noexcept { return res_.get(); }

private:
    detail::pgresult_ptr res_;
};

} // namespace pgcoro

#endif // PGCORO_RESULT_HPP
