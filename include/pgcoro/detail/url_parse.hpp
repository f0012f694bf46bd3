// SPDX-License-Identifier: BSL-1.0
// pgcoro/detail/url_parse.hpp - splitting postgres:// URIs and key=value conninfo strings into
// raw pieces, the way libpq's conninfo_uri_parse_options() and conninfo_parse() do.
#ifndef PGCORO_DETAIL_URL_PARSE_HPP
#define PGCORO_DETAIL_URL_PARSE_HPP

#include <pgcoro/detail/config_parse.hpp>

#include <libpq-fe.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pgcoro::detail
{

// One query parameter of a URI as written: still percent-encoded, not yet checked.
struct raw_param
{
    std::string key;
    std::string value;
    bool has_eq = true;    // false: "key" with no '=' at all
    bool extra_eq = false; // true: "key=a=b", a second '=' in the value
};

// The raw pieces of a connection string, not yet decoded (URI) or already unquoted (conninfo).
struct url_parts
{
    bool is_uri = false;
    std::string_view user;     // URI: still percent-encoded
    std::string_view password; // URI: still percent-encoded
    bool has_password = false;
    bool has_userinfo = false; // URI: an '@' ended user-info (else "u:pw" may read as host:port)
    std::vector<std::pair<std::string_view, std::string_view>> hosts; // host, port (encoded)
    std::string_view path;                                            // URI: dbname, encoded
    bool has_path = false;
    std::vector<raw_param> params; // URI: still encoded; conninfo: unquoted, has_eq always true
    // URI: an '@' outside user-info (in the query), or no user-info but an '@' somewhere. Part
    // of a password may then sit in a host, port or parameter, so errors echo none of them.
    bool ambiguous = false;
};

// A syntax error; `where` names the part ("host", "port", "parameter options"). Never carries
// the text of the user-info part, which may hold a password.
struct url_syntax_error
{
    std::string where;
    std::string value;
    std::string problem;
};

inline constexpr std::string_view uri_prefixes[] = {"postgresql://", "postgres://"};

// The length of a postgres:// or postgresql:// prefix, or 0.
constexpr std::size_t uri_prefix_length(std::string_view s) noexcept
{
    for (auto p : uri_prefixes)
        if (s.substr(0, p.size()) == p)
            return p.size();
    return 0;
}

// The length of the user-info of `s` (the URI after its scheme), '@' included; 0 when none.
// libpq (conninfo_uri_parse_options) ends user-info at the first '@' that comes before any
// '/': '?', '#' and ':' do not end it, so "u:ab?cd@h" is user u, password "ab?cd", and a
// '/' in the password means there is no user-info at all (checked with PQconninfoParse, libpq
// 15). One extension: when the host part that follows (up to '/' or '?') holds more '@',
// user-info runs to the last of them ("u:p@ss@h" is password "p@ss"); libpq would take host
// "ss@h", which no server can have, and print it in its error.
constexpr std::size_t userinfo_length(std::string_view s) noexcept
{
    auto first = s.find_first_of("@/");
    if (first == std::string_view::npos || s[first] != '@')
        return 0;
    auto host_end = s.find_first_of("/?", first + 1);
    auto host = s.substr(0, host_end);
    return host.rfind('@') + 1;
}

// Splits "[user[:password]@][host[:port][,...]][/dbname][?key=value&...]" as libpq does
// (userinfo_length() says where user-info ends). Query parameters are split at '&' and their
// first '='; the caller reports missing or extra '=' (it knows which keys are secret).
inline tl::expected<url_parts, url_syntax_error> split_uri(std::string_view s)
{
    url_parts out;
    out.is_uri = true;
    s.remove_prefix(uri_prefix_length(s));
    if (auto n = userinfo_length(s); n != 0)
    {
        std::string_view info = s.substr(0, n - 1);
        s.remove_prefix(n);
        out.has_userinfo = true;
        auto colon = info.find(':');
        out.user = info.substr(0, colon);
        if (colon != std::string_view::npos)
        {
            out.password = info.substr(colon + 1);
            out.has_password = true;
        }
    }
    else
        out.ambiguous = s.find('@') != std::string_view::npos;
    std::string_view query;
    if (auto q = s.find('?'); q != std::string_view::npos)
    {
        query = s.substr(q + 1);
        s = s.substr(0, q);
        out.ambiguous = out.ambiguous || query.find('@') != std::string_view::npos;
    }
    std::string_view hostspec = s;
    if (auto slash = s.find('/'); slash != std::string_view::npos)
    {
        hostspec = s.substr(0, slash);
        out.path = s.substr(slash + 1);
        out.has_path = true;
        // libpq would take "x@h/db" as a database name; when user-info holds a '/', that is
        // the tail of the password. No database name needs an unencoded '@'.
        if (out.path.find('@') != std::string_view::npos)
            return tl::unexpected(url_syntax_error{
                "dbname", "(not shown)",
                "unencoded '@' after the host: percent-encode '/', '@' and '?' in the user name "
                "and password (%2F, %40, %3F) and '@' in the database name (%40)"});
    }
    // Without user-info, "u:pw" before '/' reads as host and port: echo neither.
    auto shown = [&](std::string_view v)
    {
        return out.ambiguous || !out.has_userinfo ? "(not shown)" : std::string(v);
    };
    while (!hostspec.empty())
    {
        std::string_view host, port;
        std::size_t end = 0;
        if (hostspec.front() == '[')
        {
            auto close = hostspec.find(']');
            if (close == std::string_view::npos)
                return tl::unexpected(
                    url_syntax_error{"host", shown(hostspec), "missing ']' after an IPv6 address"});
            host = hostspec.substr(1, close - 1);
            if (host.empty())
                return tl::unexpected(
                    url_syntax_error{"host", "[]", "empty IPv6 address in brackets"});
            end = close + 1;
            if (end < hostspec.size() && hostspec[end] != ':' && hostspec[end] != ',')
                return tl::unexpected(
                    url_syntax_error{"host", shown(hostspec), "unexpected text after ']'"});
        }
        else
        {
            end = std::min(hostspec.find(':'), hostspec.find(','));
            end = std::min(end, hostspec.size());
            host = hostspec.substr(0, end);
        }
        if (end < hostspec.size() && hostspec[end] == ':')
        {
            auto comma = hostspec.find(',', end);
            port = hostspec.substr(end + 1, comma == std::string_view::npos ? std::string_view::npos
                                                                            : comma - end - 1);
            end = comma == std::string_view::npos ? hostspec.size() : comma;
        }
        out.hosts.emplace_back(host, port);
        if (end >= hostspec.size())
            break;
        hostspec.remove_prefix(end + 1); // past ','
        if (hostspec.empty())
            out.hosts.emplace_back(std::string_view(), std::string_view()); // trailing ','
    }
    while (!query.empty())
    {
        auto amp = query.find('&');
        std::string_view kv = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
        if (kv.empty())
            continue;
        auto eq = kv.find('=');
        raw_param p;
        p.key = std::string(kv.substr(0, eq));
        p.has_eq = eq != std::string_view::npos;
        if (p.has_eq)
        {
            p.value = std::string(kv.substr(eq + 1));
            p.extra_eq = p.value.find('=') != std::string::npos;
        }
        out.params.push_back(std::move(p));
    }
    return out;
}

// Splits "key = value key2='quoted \' value'" as libpq's conninfo_parse() does. The values
// come back unquoted and unescaped; host/port lists are left for the caller.
inline tl::expected<url_parts, url_syntax_error> split_conninfo(std::string_view s)
{
    url_parts out;
    std::size_t i = 0;
    auto skip_space = [&]
    {
        while (i < s.size() && is_space(s[i]))
            ++i;
    };
    while (true)
    {
        skip_space();
        if (i >= s.size())
            break;
        std::size_t start = i;
        while (i < s.size() && s[i] != '=' && !is_space(s[i]))
            ++i;
        std::string key(s.substr(start, i - start));
        skip_space();
        // The word is not shown: after an unquoted "password=ab cd" it is half the password.
        if (i >= s.size() || s[i] != '=')
            return tl::unexpected(url_syntax_error{
                "parameter #" + std::to_string(out.params.size() + 1), "(not shown)",
                "missing '=' after the keyword (quote values holding spaces: key='a b')"});
        ++i;
        skip_space();
        std::string value;
        if (i < s.size() && s[i] == '\'')
        {
            ++i;
            bool closed = false;
            while (i < s.size())
            {
                if (s[i] == '\\' && i + 1 < s.size())
                {
                    value += s[i + 1];
                    i += 2;
                    continue;
                }
                if (s[i] == '\'')
                {
                    closed = true;
                    ++i;
                    break;
                }
                value += s[i++];
            }
            if (!closed)
                return tl::unexpected(
                    url_syntax_error{"parameter #" + std::to_string(out.params.size() + 1),
                                     "(not shown)", "unterminated quoted string"});
        }
        else
        {
            while (i < s.size() && !is_space(s[i]))
            {
                if (s[i] == '\\' && i + 1 < s.size())
                    ++i;
                value += s[i++];
            }
        }
        out.params.push_back(raw_param{std::move(key), std::move(value)});
    }
    return out;
}

// Keywords this libpq knows, from PQconndefaults() (no I/O besides reading the environment).
inline const std::vector<std::string>& libpq_keywords()
{
    static const std::vector<std::string> keywords = []
    {
        std::vector<std::string> k;
        std::unique_ptr<PQconninfoOption, decltype(&PQconninfoFree)> opts(PQconndefaults(),
                                                                          &PQconninfoFree);
        if (opts)
            for (const PQconninfoOption* o = opts.get(); o->keyword != nullptr; ++o)
                k.emplace_back(o->keyword);
        else // out of memory: fall back to the keywords every libpq >= 10 knows
            for (const char* kw : {"host",
                                   "hostaddr",
                                   "port",
                                   "dbname",
                                   "user",
                                   "password",
                                   "passfile",
                                   "connect_timeout",
                                   "client_encoding",
                                   "options",
                                   "application_name",
                                   "fallback_application_name",
                                   "keepalives",
                                   "keepalives_idle",
                                   "keepalives_interval",
                                   "keepalives_count",
                                   "sslmode",
                                   "sslcert",
                                   "sslkey",
                                   "sslrootcert",
                                   "sslcrl",
                                   "requirepeer",
                                   "krbsrvname",
                                   "gsslib",
                                   "service",
                                   "target_session_attrs",
                                   "tcp_user_timeout",
                                   "gssencmode",
                                   "sslcompression",
                                   "ssl_min_protocol_version",
                                   "ssl_max_protocol_version",
                                   "sslpassword",
                                   "sslsni",
                                   "sslcrldir",
                                   "channel_binding"})
                k.emplace_back(kw);
        return k;
    }();
    return keywords;
}

// Keys whose values are secrets, never printed: password, sslpassword, and any other keyword
// PQconndefaults() marks with dispchar '*' ("password field - hide value").
inline bool is_secret_key(std::string_view key)
{
    static const std::vector<std::string> secret = []
    {
        std::vector<std::string> k{"password", "sslpassword"};
        std::unique_ptr<PQconninfoOption, decltype(&PQconninfoFree)> opts(PQconndefaults(),
                                                                          &PQconninfoFree);
        if (opts)
            for (const PQconninfoOption* o = opts.get(); o->keyword != nullptr; ++o)
                if (o->dispchar &&
                    std::string_view(o->dispchar).find('*') != std::string_view::npos)
                    k.emplace_back(o->keyword);
        return k;
    }();
    return std::find(secret.begin(), secret.end(), key) != secret.end();
}

// True when libpq knows `key` as a connection parameter.
inline bool is_libpq_keyword(std::string_view key)
{
    const auto& k = libpq_keywords();
    return std::find(k.begin(), k.end(), key) != k.end();
}

} // namespace pgcoro::detail

#endif // PGCORO_DETAIL_URL_PARSE_HPP
