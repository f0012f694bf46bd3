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

// The raw pieces of a connection string, not yet decoded (URI) or already unquoted (conninfo).
struct url_parts
{
    bool is_uri = false;
    std::string_view user;     // URI: still percent-encoded
    std::string_view password; // URI: still percent-encoded
    bool has_password = false;
    std::vector<std::pair<std::string_view, std::string_view>> hosts; // host, port (encoded)
    std::string_view path;                                            // URI: dbname, encoded
    bool has_path = false;
    std::vector<std::pair<std::string, std::string>> params; // key, value (URI: still encoded)
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

// Splits "[user[:password]@][host[:port][,...]][/dbname][?key=value&...]".
// User-info ends at the *last* '@' before the query: libpq would stop at the first one, but a
// password holding an unencoded '@' or '/' would then spill into the host part and be echoed by
// a host or port error. Taking the last '@' keeps the password out of every later message.
inline tl::expected<url_parts, url_syntax_error> split_uri(std::string_view s)
{
    url_parts out;
    out.is_uri = true;
    s.remove_prefix(uri_prefix_length(s));
    std::string_view query;
    if (auto q = s.find('?'); q != std::string_view::npos)
    {
        query = s.substr(q + 1);
        s = s.substr(0, q);
    }
    if (auto at = s.rfind('@'); at != std::string_view::npos)
    {
        std::string_view info = s.substr(0, at);
        s.remove_prefix(at + 1);
        auto colon = info.find(':');
        out.user = info.substr(0, colon);
        if (colon != std::string_view::npos)
        {
            out.password = info.substr(colon + 1);
            out.has_password = true;
        }
    }
    std::string_view hostspec = s;
    if (auto slash = s.find('/'); slash != std::string_view::npos)
    {
        hostspec = s.substr(0, slash);
        out.path = s.substr(slash + 1);
        out.has_path = true;
    }
    while (!hostspec.empty())
    {
        std::string_view host, port;
        std::size_t end = 0;
        if (hostspec.front() == '[')
        {
            auto close = hostspec.find(']');
            if (close == std::string_view::npos)
                return tl::unexpected(url_syntax_error{"host", std::string(hostspec),
                                                       "missing ']' after an IPv6 address"});
            host = hostspec.substr(1, close - 1);
            if (host.empty())
                return tl::unexpected(
                    url_syntax_error{"host", "[]", "empty IPv6 address in brackets"});
            end = close + 1;
            if (end < hostspec.size() && hostspec[end] != ':' && hostspec[end] != ',')
                return tl::unexpected(
                    url_syntax_error{"host", std::string(hostspec), "unexpected text after ']'"});
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
        std::string_view key = kv.substr(0, eq);
        if (eq == std::string_view::npos)
            return tl::unexpected(
                url_syntax_error{"parameter " + std::string(key), "", "missing '=' and value"});
        std::string_view value = kv.substr(eq + 1);
        if (value.find('=') != std::string_view::npos)
            return tl::unexpected(url_syntax_error{
                "parameter " + std::string(key), key == "password" ? "****" : std::string(value),
                "extra '=' in the value (percent-encode it as %3D)"});
        out.params.emplace_back(std::string(key), std::string(value));
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
        if (i >= s.size() || s[i] != '=')
            return tl::unexpected(
                url_syntax_error{"parameter " + key, "", "missing '=' after the keyword"});
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
                    url_syntax_error{"parameter " + key, "", "unterminated quoted string"});
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
        out.params.emplace_back(std::move(key), std::move(value));
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

// True when libpq knows `key` as a connection parameter.
inline bool is_libpq_keyword(std::string_view key)
{
    const auto& k = libpq_keywords();
    return std::find(k.begin(), k.end(), key) != k.end();
}

} // namespace pgcoro::detail

#endif // PGCORO_DETAIL_URL_PARSE_HPP
