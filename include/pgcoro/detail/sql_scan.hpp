// SPDX-License-Identifier: BSL-1.0
// pgcoro/detail/sql_scan.hpp - PostgreSQL's lexical rules, as far as pgcoro needs them:
// skipping literals and comments, and finding a statement's $n placeholders.
#ifndef PGCORO_DETAIL_SQL_SCAN_HPP
#define PGCORO_DETAIL_SQL_SCAN_HPP

#include <cstddef>
#include <optional>
#include <string_view>

namespace pgcoro::detail
{

// PostgreSQL's identifier characters ($ may continue an identifier; bytes >= 0x80 are letters).
constexpr bool sql_ident_char(char c) noexcept
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '$' || static_cast<unsigned char>(c) >= 0x80;
}

constexpr bool sql_space(char c) noexcept
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

constexpr bool sql_digit(char c) noexcept
{
    return c >= '0' && c <= '9';
}

// Skips a '...' literal whose opening quote is at s[i]; returns the index past the closing
// quote (or s.size() when unterminated: the rest is swallowed, never echoed). '' is an
// escaped quote; with `backslash` (E'...') so is \'.
constexpr std::size_t skip_quoted(std::string_view s, std::size_t i, bool backslash) noexcept
{
    for (++i; i < s.size(); ++i)
    {
        if (backslash && s[i] == '\\')
        {
            ++i;
            continue;
        }
        if (s[i] == '\'')
        {
            if (i + 1 < s.size() && s[i + 1] == '\'')
            {
                ++i;
                continue;
            }
            return i + 1;
        }
    }
    return s.size();
}

// The length of a dollar-quote tag ($$ or $tag$) starting at s[i], or 0 when there is none.
constexpr std::size_t dollar_tag(std::string_view s, std::size_t i) noexcept
{
    std::size_t j = i + 1;
    if (j < s.size() && s[j] == '$')
        return 2;
    if (j >= s.size() || sql_digit(s[j]) || !sql_ident_char(s[j]))
        return 0;
    while (j < s.size() && s[j] != '$' && sql_ident_char(s[j]))
        ++j;
    return j < s.size() && s[j] == '$' ? j + 1 - i : 0;
}

// The index past a "quoted identifier" whose opening quote is at s[i] ("" is an escaped
// quote), or s.size() when unterminated.
constexpr std::size_t skip_quoted_ident(std::string_view s, std::size_t i) noexcept
{
    for (++i; i < s.size(); ++i)
        if (s[i] == '"')
        {
            if (i + 1 < s.size() && s[i + 1] == '"')
            {
                ++i;
                continue;
            }
            return i + 1;
        }
    return s.size();
}

// The index past a block comment opening at s[i] (they nest), or s.size() when unterminated.
constexpr std::size_t skip_block_comment(std::string_view s, std::size_t i) noexcept
{
    int depth = 0;
    while (i < s.size())
    {
        if (s[i] == '/' && i + 1 < s.size() && s[i + 1] == '*')
        {
            ++depth;
            i += 2;
        }
        else if (s[i] == '*' && i + 1 < s.size() && s[i + 1] == '/')
        {
            i += 2;
            if (--depth == 0)
                return i;
        }
        else
            ++i;
    }
    return s.size();
}

// True when `s`, a statement whose first word is COPY, names STDIN or STDOUT outside literals,
// quoted identifiers and comments: COPY ... FROM STDIN / TO STDOUT, which needs the COPY API
// (query() cannot serve the COPY protocol). Other COPYs (to or from a server file or program)
// are plain commands.
constexpr bool is_client_copy(std::string_view s) noexcept
{
    auto lower = [](char c)
    {
        return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
    };
    auto word_at = [&](std::size_t i, std::string_view w)
    {
        if (i + w.size() > s.size() || (i > 0 && sql_ident_char(s[i - 1])))
            return false;
        for (std::size_t k = 0; k < w.size(); ++k)
            if (lower(s[i + k]) != w[k])
                return false;
        return i + w.size() == s.size() || !sql_ident_char(s[i + w.size()]);
    };
    bool first = true;
    std::size_t i = 0;
    while (i < s.size())
    {
        const char c = s[i];
        if (sql_space(c))
            ++i;
        else if (c == '-' && i + 1 < s.size() && s[i + 1] == '-')
        {
            const auto nl = s.find('\n', i);
            i = nl == std::string_view::npos ? s.size() : nl;
        }
        else if (c == '/' && i + 1 < s.size() && s[i + 1] == '*')
            i = skip_block_comment(s, i);
        else if (first)
        {
            if (!word_at(i, "copy"))
                return false;
            first = false;
            i += 4;
        }
        else if (c == '\'' || c == 'e' || c == 'E')
            i = c == '\'' ? skip_quoted(s, i, false)
                : (i + 1 < s.size() && s[i + 1] == '\'' && !(i > 0 && sql_ident_char(s[i - 1])))
                    ? skip_quoted(s, i + 1, true)
                    : i + 1;
        else if (c == '"')
            i = skip_quoted_ident(s, i);
        else if (word_at(i, "stdin") || word_at(i, "stdout"))
            return true;
        else
            ++i;
    }
    return false;
}

// The highest $n placeholder in `sql` (0 when there is none), skipping what PostgreSQL's lexer
// skips: 'string' and E'escaped' literals, "quoted identifiers", $tag$dollar quotes$tag$,
// -- line and nested /* block */ comments, and identifiers that contain '$' (a$1). nullopt
// when the text ends inside a literal or comment, or a number is absurd: the server decides.
constexpr std::optional<unsigned> highest_placeholder(std::string_view s) noexcept
{
    unsigned highest = 0;
    const std::size_t n = s.size();
    std::size_t i = 0;
    while (i < n)
    {
        const char c = s[i];
        const bool after_ident = i > 0 && sql_ident_char(s[i - 1]);
        std::size_t next = i + 1;
        if (c == '\'' || (!after_ident && (c == 'e' || c == 'E') && i + 1 < n && s[i + 1] == '\''))
        {
            const bool e = c != '\'';
            next = skip_quoted(s, e ? i + 1 : i, e);
            if (next >= n && s[n - 1] != '\'')
                return std::nullopt;
        }
        else if (c == '"')
        {
            next = skip_quoted_ident(s, i);
            if (next >= n && (n - i < 2 || s[n - 1] != '"'))
                return std::nullopt;
        }
        else if (c == '-' && i + 1 < n && s[i + 1] == '-')
        {
            next = s.find('\n', i);
            next = next == std::string_view::npos ? n : next;
        }
        else if (c == '/' && i + 1 < n && s[i + 1] == '*')
        {
            next = skip_block_comment(s, i);
            if (next >= n && (n < 2 || s[n - 1] != '/' || s[n - 2] != '*'))
                return std::nullopt;
        }
        else if (c == '$' && !after_ident && i + 1 < n && sql_digit(s[i + 1]))
        {
            unsigned v = 0;
            for (next = i + 1; next < n && sql_digit(s[next]); ++next)
                if ((v = v * 10 + static_cast<unsigned>(s[next] - '0')) > 65535)
                    return std::nullopt;
            highest = v > highest ? v : highest;
        }
        else if (c == '$' && !after_ident && dollar_tag(s, i) != 0)
        {
            const std::size_t len = dollar_tag(s, i);
            const std::size_t close = s.find(s.substr(i, len), i + len);
            if (close == std::string_view::npos)
                return std::nullopt;
            next = close + len;
        }
        i = next;
    }
    return highest;
}

} // namespace pgcoro::detail

#endif // PGCORO_DETAIL_SQL_SCAN_HPP
