// SPDX-License-Identifier: BSL-1.0
// pgcoro/fingerprint.hpp - a statement's fingerprint: its SQL with every literal replaced.
#ifndef PGCORO_FINGERPRINT_HPP
#define PGCORO_FINGERPRINT_HPP

#include <pgcoro/detail/sql_scan.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace pgcoro
{

namespace detail
{

// The scanner behind fingerprint() and fingerprint_hash(): calls `out(char)` for each
// character of the normalised text. Comments are dropped, whitespace runs become one space,
// string, bit-string, dollar-quoted and numeric literals become `?`; identifiers, quoted
// identifiers, keywords and $n placeholders are kept as written. An unterminated literal
// swallows the rest of the text, so a truncated statement cannot leak a value either.
template <class Out>
constexpr void normalize_sql(std::string_view s, Out&& out)
{
    bool space = false; // whitespace or a comment seen since the last emitted character
    bool any = false;   // something emitted (no leading space)
    auto emit = [&](char c)
    {
        if (space && any)
            out(' ');
        space = false;
        any = true;
        out(c);
    };
    std::size_t i = 0;
    const std::size_t n = s.size();
    while (i < n)
    {
        const char c = s[i];
        const bool after_ident = i > 0 && sql_ident_char(s[i - 1]);
        if (sql_space(c))
        {
            space = true;
            ++i;
        }
        else if (c == '-' && i + 1 < n && s[i + 1] == '-')
        {
            while (i < n && s[i] != '\n')
                ++i;
            space = true;
        }
        else if (c == '/' && i + 1 < n && s[i + 1] == '*')
        {
            i = skip_block_comment(s, i);
            space = true;
        }
        else if (c == '\'')
        {
            i = skip_quoted(s, i, false);
            emit('?');
        }
        else if (!after_ident && i + 1 < n && s[i + 1] == '\'' &&
                 (c == 'e' || c == 'E' || c == 'b' || c == 'B' || c == 'x' || c == 'X' ||
                  c == 'n' || c == 'N'))
        {
            i = skip_quoted(s, i + 1, c == 'e' || c == 'E');
            emit('?');
        }
        else if (c == '"')
        {
            emit(c); // a quoted identifier is a name, not a value: kept
            for (++i; i < n; ++i)
            {
                out(s[i]);
                if (s[i] == '"')
                {
                    if (i + 1 < n && s[i + 1] == '"')
                    {
                        out(s[++i]);
                        continue;
                    }
                    ++i;
                    break;
                }
            }
        }
        else if (c == '$' && i + 1 < n && sql_digit(s[i + 1]))
        {
            emit('$'); // a placeholder: its value never appears in the text
            for (++i; i < n && sql_digit(s[i]); ++i)
                out(s[i]);
        }
        else if (c == '$' && !after_ident && dollar_tag(s, i) != 0)
        {
            const std::size_t len = dollar_tag(s, i);
            const std::string_view tag = s.substr(i, len);
            const std::size_t close = s.find(tag, i + len);
            i = close == std::string_view::npos ? n : close + len;
            emit('?');
        }
        else if (!after_ident && (sql_digit(c) || (c == '.' && i + 1 < n && sql_digit(s[i + 1]))))
        {
            // 42, 3.14, .5, 1e-5, 0x1F, 1_000: letters, digits, '.', '_' and an exponent sign.
            ++i;
            while (i < n)
            {
                const char d = s[i];
                const char p = s[i - 1];
                if (sql_ident_char(d) || d == '.')
                    ++i;
                else if ((d == '+' || d == '-') && (p == 'e' || p == 'E') && i + 1 < n &&
                         sql_digit(s[i + 1]))
                    ++i;
                else
                    break;
            }
            emit('?');
        }
        else
        {
            emit(c);
            ++i;
        }
    }
}

} // namespace detail

/// The fingerprint of a statement: its SQL with comments removed, whitespace runs collapsed to
/// one space and every literal (strings, numbers, E'', B'', X'', $$-quoted) replaced by `?`.
/// `select * from t where id = 42 and name = 'bob'` -> `select * from t where id = ? and name
/// = ?`. Placeholders ($1) and identifiers stay. Safe to log: it never contains a value.
inline std::string fingerprint(std::string_view sql)
{
    std::string out;
    out.reserve(sql.size());
    detail::normalize_sql(sql, [&](char c) { out.push_back(c); });
    return out;
}

/// A 64-bit FNV-1a hash of fingerprint(sql), computed without allocating. Statements that
/// differ only in literals, comments or whitespace hash alike.
constexpr std::uint64_t fingerprint_hash(std::string_view sql) noexcept
{
    std::uint64_t h = 0xcbf29ce484222325ull;
    detail::normalize_sql(sql,
                          [&](char c)
                          {
                              h ^= static_cast<unsigned char>(c);
                              h *= 0x100000001b3ull;
                          });
    return h;
}

/// How an event names its statement: a view of the SQL that only hands out its fingerprint
/// (or hash), so no observer can print a literal. Valid only while the hook runs.
class statement_ref
{
public:
    constexpr statement_ref() noexcept = default;
    /// Refers to `sql`, which must outlive every use of this object.
    constexpr explicit statement_ref(std::string_view sql) noexcept : sql_(sql) {}
    /// True when no statement is attached (e.g. an event from a pipeline or a ping).
    constexpr bool empty() const noexcept { return sql_.empty(); }
    /// The normalised text (see pgcoro::fingerprint); allocates.
    std::string fingerprint() const { return pgcoro::fingerprint(sql_); }
    /// The fingerprint's hash (see pgcoro::fingerprint_hash); no allocation.
    constexpr std::uint64_t hash() const noexcept { return fingerprint_hash(sql_); }

private:
    std::string_view sql_;
};

} // namespace pgcoro

#endif // PGCORO_FINGERPRINT_HPP
