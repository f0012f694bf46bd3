// SPDX-License-Identifier: BSL-1.0
// pgcoro/numeric.hpp - numeric, exactly: a decimal kept as its text, converted only losslessly.
#ifndef PGCORO_NUMERIC_HPP
#define PGCORO_NUMERIC_HPP

#include <pgcoro/detail/text_codec.hpp>
#include <pgcoro/detail/type_oids.hpp>
#include <pgcoro/error.hpp>
#include <pgcoro/value_traits.hpp>

#include <compare>
#include <string>
#include <string_view>

namespace pgcoro
{

/// An exact decimal (PostgreSQL numeric), kept as its text: "-12.3400", "NaN", "Infinity".
/// Converting to a C++ number refuses to lose anything (see to<T>()).
class numeric
{
public:
    /// Zero.
    numeric() : text_("0") {}
    /// Parses decimal text ("12.5", "-3", "1e-5", "NaN", "Infinity", "-Infinity").
    /// Errors: invalid_argument.
    static expected<numeric> parse(std::string_view text)
    {
        if (text == "NaN" || text == "Infinity" || text == "-Infinity" ||
            detail::canonicalize(text))
            return numeric(std::string(text), 0);
        return fail(errc::invalid_argument, "invalid numeric text");
    }
    /// The exact value of an integer.
    template <detail::integer T>
    static numeric from(T v)
    {
        std::string s;
        detail::append_integer(v, s);
        return numeric(std::move(s), 0);
    }
    /// The text as the server sent it (or as given to parse()).
    std::string_view str() const noexcept { return text_; }

    /// The value as T, only when exact: an integer type for a whole number in its range, a
    /// floating-point type when the decimal is the value's shortest round-trip form (0.1 reads
    /// as double; 0.10000000000000001 does not). Errors: out_of_range, type_mismatch.
    template <class T>
    expected<T> to() const
    {
        if constexpr (detail::integer<T>)
        {
            auto c = detail::canonicalize(text_);
            if (!c)
                return fail(errc::out_of_range, "numeric NaN or infinity is not an integer");
            if (c->exponent < static_cast<long>(c->digits.size()))
                return fail(errc::out_of_range, "numeric value has a fractional part");
            std::string whole = c->negative ? "-" : "";
            whole += c->digits;
            whole.append(static_cast<std::size_t>(c->exponent) - c->digits.size(), '0');
            if (c->digits.empty())
                whole = "0";
            return detail::parse_integer<T>(whole);
        }
        else
        {
            static_assert(std::floating_point<T>,
                          "numeric::to<T>: T is an integer or floating-point type");
            return value_traits<T>::decode(text_, detail::oid_numeric);
        }
    }
    /// Equal when the text is equal after normalising ("1.50" == "1.5").
    friend bool operator==(const numeric& a, const numeric& b)
    {
        auto x = detail::canonicalize(a.text_);
        auto y = detail::canonicalize(b.text_);
        return x && y ? *x == *y : a.text_ == b.text_;
    }

private:
    numeric(std::string s, int) : text_(std::move(s)) {}
    std::string text_;
};

/// pgcoro::numeric <-> numeric (also reads integer and floating-point columns exactly).
template <>
struct value_traits<numeric>
{
    static constexpr std::string_view name = "pgcoro::numeric";
    static constexpr Oid oid = detail::oid_numeric;
    static expected<void> encode(const numeric& v, std::string& out)
    {
        out.append(v.str());
        return {};
    }
    static bool accepts(Oid t) noexcept
    {
        return t == detail::oid_numeric || detail::is_integer_oid(t) || t == detail::oid_float4 ||
               t == detail::oid_float8 || detail::is_user_oid(t);
    }
    static expected<numeric> decode(std::string_view text, Oid)
    {
        return numeric::parse(text).map_error(
            [](error e)
            {
                e.code = make_error_code(errc::type_mismatch);
                return e;
            });
    }
};

} // namespace pgcoro

#endif // PGCORO_NUMERIC_HPP
