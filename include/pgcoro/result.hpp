// SPDX-License-Identifier: BSL-1.0
// pgcoro/result.hpp - the rows a statement returned, with checked, typed field access.
#ifndef PGCORO_RESULT_HPP
#define PGCORO_RESULT_HPP

#include <pgcoro/detail/pq_handles.hpp>
#include <pgcoro/detail/text_codec.hpp>
#include <pgcoro/error.hpp>

#include <libpq-fe.h>

#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pgcoro
{

class result;

/// One field of one row. Reading never has undefined behaviour: a bad index, a NULL read as a
/// non-optional type or a type mismatch come back as an error.
class field
{
public:
    /// True when the field is SQL NULL (or the index was out of range).
    bool is_null() const noexcept
    {
        return !valid() || PQgetisnull(res_, static_cast<int>(row_), static_cast<int>(col_));
    }
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

    /// The value as T: bool, an integer, a floating-point type, std::string, std::string_view
    /// (pointing into the result) or std::optional of those (NULL gives nullopt).
    /// Errors: out_of_range (bad index or value too large), unexpected_null, type_mismatch.
    template <class T>
    expected<T> get() const
    {
        if (!valid())
            return fail(errc::out_of_range, "row or column index out of range");
        if constexpr (detail::is_optional<T>::value)
        {
            if (is_null())
                return T{};
            return get<typename T::value_type>().map([](auto v) { return T(std::move(v)); });
        }
        else
        {
            if (is_null())
                return fail(errc::unexpected_null, "field is NULL; read it as std::optional");
            return detail::decode_field<T>(text(), type());
        }
    }

private:
    friend class row;
    field(const PGresult* res, std::size_t row, std::size_t col, bool valid) noexcept
        : res_(res), row_(row), col_(col), valid_(valid)
    {
    }
    bool valid() const noexcept { return valid_; }

    const PGresult* res_;
    std::size_t row_;
    std::size_t col_;
    bool valid_;
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
    field operator[](std::string_view name) const { return (*this)[column_index(name)]; }
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
    /// Number of columns.
    std::size_t size() const noexcept { return res_ ? PQnfields(res_) : 0; }
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
    std::size_t size() const noexcept { return res_ ? PQntuples(res_.get()) : 0; }
    /// True when there are no rows.
    bool empty() const noexcept { return size() == 0; }
    /// Number of columns.
    std::size_t columns() const noexcept { return res_ ? PQnfields(res_.get()) : 0; }
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
