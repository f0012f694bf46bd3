// SPDX-License-Identifier: BSL-1.0
// pgcoro/detail/url_redact.hpp - which URL keys and values may be shown (in errors and by
// redact_url()), and redact_url()'s two halves, URI and key=value.
#ifndef PGCORO_DETAIL_URL_REDACT_HPP
#define PGCORO_DETAIL_URL_REDACT_HPP

#include <pgcoro/detail/config_parse.hpp>
#include <pgcoro/detail/config_table.hpp>
#include <pgcoro/detail/url_parse.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pgcoro::detail
{

// True for the keys parse_database_url() accepts: pgcoro's own and libpq's.
inline bool is_known_param(std::string_view key)
{
    return key == "ssl" || key == "load_balance_hosts" || find_spec_by_param(key) != nullptr ||
           is_libpq_keyword(key);
}

// True when `key` may be named in an error: it looks like a keyword ([A-Za-z_][A-Za-z0-9_]*,
// at most 40 characters, as all of libpq's are). Anything else is more likely the tail of a
// password that held '&', '=' or a space than a misspelled keyword, so it is not printed.
constexpr bool looks_like_keyword(std::string_view key) noexcept
{
    if (key.empty() || key.size() > 40 || (key[0] >= '0' && key[0] <= '9'))
        return false;
    for (char c : key)
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return false;
    return true;
}

// True when `s` is a URI scheme ("mysql", "jdbc:postgresql" is not: ':' is excluded here).
constexpr bool is_scheme(std::string_view s) noexcept
{
    if (s.empty() || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
        return false;
    for (char c : s)
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '-' || c == '.'))
            return false;
    return true;
}

inline std::optional<std::uint16_t> parse_port(std::string_view s)
{
    auto v = parse_count(s, 1, 65'535);
    if (!v)
        return std::nullopt;
    return static_cast<std::uint16_t>(*v);
}
// After a secret value, a known key's value is shown by redact_url() only when it is a valid
// value of a pgcoro setting (sslmode=require): a password's tail that happens to read as one
// is what libpq will use anyway. Anything else there may be the tail of the password.
inline bool shown_after_secret(std::string_view key, std::string_view value)
{
    const setting_spec* spec = find_spec_by_param(key);
    return spec != nullptr && parse_setting(*spec, value).has_value();
}

// redact_url() of a URI: user-info password and the values of secret, unknown and
// undecodable keys replaced by "****", and everything after the first of those, or after a
// parameter without '=' or with a second '=', replaced by one "****" (it may be part of a
// password that held '&' or '='). An ambiguous URI (a stray '@') is not shown at all.
inline std::string redact_uri(std::string_view t)
{
    std::size_t prefix = uri_prefix_length(t);
    std::string_view rest = t.substr(prefix);
    std::size_t info = userinfo_length(rest);
    auto parts = split_uri(t);
    if (!parts || parts->ambiguous)
        return "(connection string not shown)";
    // Without user-info, "u:pw" reads as host and port: a port that is no number may be a
    // password that lost its '@'.
    if (!parts->has_userinfo)
        for (const auto& hp : parts->hosts)
            if (!hp.second.empty() && !parse_port(hp.second))
                return "(connection string not shown)";
    std::string out(t.substr(0, prefix));
    if (info != 0)
    {
        std::string_view userinfo = rest.substr(0, info - 1);
        auto colon = userinfo.find(':');
        out += userinfo.substr(0, colon);
        if (colon != std::string_view::npos)
            out += ":****";
        out += '@';
        rest.remove_prefix(info);
    }
    auto q = rest.find('?');
    out += rest.substr(0, q);
    if (q == std::string_view::npos)
        return out;
    out += '?';
    bool first = true;
    bool after_secret = false;
    for (const auto& p : parts->params)
    {
        if (!first)
            out += '&';
        first = false;
        auto key = percent_decode(p.key);
        if (!p.has_eq || p.extra_eq || !key)
        {
            out += "****";
            return out;
        }
        if (!is_known_param(*key))
        {
            // Maybe a misspelled password key, or the tail of a password that held '&'.
            out += after_secret || !looks_like_keyword(*key) ? "****" : *key + "=****";
            return out;
        }
        out += p.key + '=';
        auto value = percent_decode(p.value);
        const bool secret = is_secret_key(*key) || p.key != *key; // pass%77ord, see above
        const bool show = !secret && (!after_secret || (value && shown_after_secret(*key, *value)));
        out += show ? p.value : std::string("****");
        after_secret = after_secret || secret;
    }
    return out;
}

// redact_url() of a key=value string: values of secret and unknown keys replaced by "****",
// and after a secret, unknown keys and values not valid for a pgcoro setting too (an unquoted
// "password=ab cd=x" leaves half of the password as a key). Unparsable text is not shown.
inline std::string redact_conninfo(std::string_view t)
{
    auto parts = split_conninfo(t);
    if (!parts || is_scheme(t.substr(0, t.find("://"))))
        return "(connection string not shown)";
    std::string out;
    bool after_secret = false;
    for (const auto& p : parts->params)
    {
        if (!out.empty())
            out += ' ';
        const bool known = is_known_param(p.key);
        // An unquoted "password=ab cd=x" leaves "cd" as a key: half of the password.
        if (!looks_like_keyword(p.key) || (!known && after_secret))
        {
            out += "****";
            continue;
        }
        std::string value = p.value;
        if (is_secret_key(p.key) || !known || (after_secret && !shown_after_secret(p.key, p.value)))
            value = "****";
        after_secret = after_secret || is_secret_key(p.key);
        out += p.key + "='";
        for (char c : value)
        {
            if (c == '\'' || c == '\\')
                out += '\\';
            out += c;
        }
        out += '\'';
    }
    return out;
}

} // namespace pgcoro::detail

#endif // PGCORO_DETAIL_URL_REDACT_HPP
