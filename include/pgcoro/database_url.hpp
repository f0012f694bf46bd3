// pgcoro/database_url.hpp - DATABASE_URL: postgres:// URIs and libpq key=value strings.
#ifndef PGCORO_DATABASE_URL_HPP
#define PGCORO_DATABASE_URL_HPP

#include <pgcoro/config_error.hpp>
#include <pgcoro/connect_config.hpp>
#include <pgcoro/detail/config_table.hpp>
#include <pgcoro/detail/url_parse.hpp>
#include <pgcoro/pool_config.hpp>

#include <tl/expected.hpp>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pgcoro
{

/// One pgcoro setting a URL carried (`connection_limit=20`), parsed and range-checked.
struct url_setting
{
    const detail::setting_spec* spec = nullptr; ///< which setting (field, env var, unit)
    detail::setting_value value;                ///< the parsed value
};

/// A parsed DATABASE_URL. `connect` holds where to connect (hosts, dbname, user, password) and
/// the libpq parameters passed through untouched (`extra`); `settings` holds the typed
/// parameters (pgcoro's own and the libpq ones pgcoro models, e.g. sslmode, connect_timeout),
/// kept apart so the caller can layer them under env vars and over profile defaults.
struct database_url
{
    connect_config connect;            ///< where to connect; typed settings NOT yet applied
    std::vector<url_setting> settings; ///< typed parameters in URL order (later ones win)
    bool has_password = false;         ///< true when the URL carried a password

    /// Writes the typed parameters into `c`, `p` and `l` (in order, so later ones win).
    void apply(connect_config& c, pool_config& p, log_level& l) const
    {
        detail::config_target t{c, p, l};
        for (const auto& s : settings)
            s.spec->apply(t, s.value);
    }
    /// `connect` with the typed connect-level parameters applied over libpq's defaults.
    connect_config connect_config_with_settings() const
    {
        connect_config c = connect;
        pool_config p;
        log_level l = log_level::info;
        apply(c, p, l);
        return c;
    }
};

namespace detail
{
inline void url_error(config_errors& errs, std::string_view source, std::string where,
                      std::string value, std::string problem, std::string allowed = {})
{
    errs.add({std::string(source) + " " + where, "", std::move(value), std::move(problem),
              std::move(allowed)});
}

// Applies one decoded key=value (URI query parameter or conninfo pair).
inline void url_param(database_url& out, config_errors& errs, std::string_view source,
                      const std::string& key, std::string value,
                      std::vector<std::string>& query_hosts, std::vector<std::string>& ports,
                      bool& hosts_from_param, bool& ports_from_param)
{
    auto split = [](std::string_view list)
    {
        std::vector<std::string> v;
        while (true)
        {
            auto comma = list.find(',');
            v.emplace_back(list.substr(0, comma));
            if (comma == std::string_view::npos)
                return v;
            list.remove_prefix(comma + 1);
        }
    };
    std::string where = "parameter " + key;
    if (key == "host")
    {
        query_hosts = split(value);
        hosts_from_param = true;
    }
    else if (key == "port")
    {
        ports = split(value);
        ports_from_param = true;
    }
    else if (key == "dbname")
        out.connect.dbname = std::move(value);
    else if (key == "user")
        out.connect.user = std::move(value);
    else if (key == "password")
    {
        out.connect.password = secret(std::move(value));
        out.has_password = !out.connect.password.empty();
    }
    else if (key == "ssl" && value == "true") // libpq's JDBC-compatible spelling
        out.settings.push_back({find_spec_by_param("sslmode"),
                                setting_value{static_cast<std::int64_t>(ssl_mode::require), {}}});
    else if (const setting_spec* spec = find_spec_by_param(key))
    {
        auto v = parse_setting(*spec, value);
        if (v)
            out.settings.push_back({spec, std::move(*v)});
        else
            url_error(errs, source, where, value, v.error().problem, v.error().allowed);
    }
    else if (is_libpq_keyword(key))
        out.connect.extra.emplace_back(key, std::move(value));
    else
        url_error(errs, source, where, value, "unknown parameter",
                  "a libpq connection parameter or a pgcoro parameter (docs/configuration.md)");
}

inline std::optional<std::uint16_t> parse_port(std::string_view s)
{
    auto v = parse_count(s, 1, 65'535);
    if (!v)
        return std::nullopt;
    return static_cast<std::uint16_t>(*v);
}
} // namespace detail

/// Parses a `postgres://` / `postgresql://` URI or a libpq `key=value` string, as libpq accepts
/// them: percent-decoding, `[IPv6]` hosts, several `host:port` pairs, unix-socket directories
/// (`host=/run/postgresql` or a percent-encoded path as host), query parameters. pgcoro's own
/// parameters are taken out into `settings`; any other must be a PQconndefaults() keyword.
/// `source` names the text in errors ("DATABASE_URL"). Every problem is reported, none echoes
/// the password. Differences from libpq: no host means localhost over TCP, not libpq's default
/// socket directory; user-info ends at the last '@' (libpq: the first).
inline tl::expected<database_url, config_errors>
parse_database_url(std::string_view text, std::string_view source = "DATABASE_URL")
{
    using namespace detail;
    config_errors errs;
    database_url out;
    std::string_view trimmed = trim(text);
    bool uri = uri_prefix_length(trimmed) != 0;
    if (!uri && trimmed.find("://") != std::string_view::npos)
    {
        std::string scheme(trimmed.substr(0, trimmed.find("://")));
        url_error(errs, source, "scheme", scheme, "unsupported scheme",
                  "postgres:// or postgresql://, or a libpq key=value string");
        return tl::unexpected(errs);
    }
    if (!uri && !trimmed.empty() && trimmed.find('=') == std::string_view::npos)
    {
        url_error(errs, source, "", "(not shown)", "neither a URL nor key=value pairs",
                  "postgres://user:password@host:port/dbname?param=value, or host=... dbname=...");
        return tl::unexpected(errs);
    }
    auto parts = uri ? split_uri(trimmed) : split_conninfo(trimmed);
    if (!parts)
    {
        url_error(errs, source, parts.error().where, parts.error().value, parts.error().problem);
        return tl::unexpected(errs);
    }
    auto decode = [&](std::string_view s, const char* where, bool secret_value)
    {
        if (!uri)
            return std::string(s);
        auto d = percent_decode(s);
        if (!d)
        {
            url_error(errs, source, where, secret_value ? "****" : std::string(s),
                      "invalid percent-encoding", "%XX with two hex digits, not %00");
            return std::string();
        }
        return *d;
    };
    out.connect.user = decode(parts->user, "user", false);
    if (parts->has_password)
    {
        out.connect.password = secret(decode(parts->password, "password", true));
        out.has_password = !out.connect.password.empty();
    }
    if (parts->has_path)
        out.connect.dbname = decode(parts->path, "dbname", false);

    std::vector<std::string> hosts, ports;
    for (auto [h, p] : parts->hosts)
    {
        hosts.push_back(decode(h, "host", false));
        ports.push_back(decode(p, "port", false));
    }
    bool hosts_param = false, ports_param = false;
    std::vector<std::string> query_hosts, query_ports;
    for (auto& [k, v] : parts->params)
    {
        std::string key = decode(k, "parameter name", false);
        std::string value = decode(v, ("parameter " + key).c_str(), key == "password");
        url_param(out, errs, source, key, std::move(value), query_hosts, query_ports, hosts_param,
                  ports_param);
    }
    if (hosts_param)
        hosts = query_hosts;
    if (ports_param)
    {
        if (query_ports.size() != 1 && !hosts.empty() && query_ports.size() != hosts.size())
            url_error(errs, source, "parameter port",
                      std::to_string(query_ports.size()) + " ports for " +
                          std::to_string(hosts.size()) + " hosts",
                      "port count does not match host count", "one port, or one per host");
        else
            ports = query_ports;
    }
    if (hosts.empty())
        hosts.emplace_back();
    out.connect.hosts.clear();
    for (std::size_t i = 0; i < hosts.size(); ++i)
    {
        host_port hp;
        if (!hosts[i].empty())
            hp.host = hosts[i];
        // Explicit views: `cond ? ports[i] : ""` would be a std::string temporary (fuzzer-found).
        std::string_view port;
        if (ports.size() == 1)
            port = ports[0];
        else if (i < ports.size())
            port = ports[i];
        if (!port.empty())
        {
            if (auto n = parse_port(port))
                hp.port = *n;
            else
                url_error(errs, source, "port", std::string(port), "invalid port",
                          "an integer in 1..65535");
        }
        out.connect.hosts.push_back(std::move(hp));
    }
    if (!errs.empty())
        return tl::unexpected(errs);
    return out;
}

/// `text` with its password replaced by "****" (user-info and `password=` parameters), for log
/// lines and messages. Text that does not parse is not echoed at all.
inline std::string redact_url(std::string_view text)
{
    using namespace detail;
    std::string_view t = trim(text);
    if (uri_prefix_length(t) != 0)
    {
        std::string out(t);
        auto q = out.find('?');
        auto at = out.rfind('@', q == std::string::npos ? std::string::npos : q);
        auto start = uri_prefix_length(t);
        if (at != std::string::npos && at >= start)
            if (auto colon = out.find(':', start); colon != std::string::npos && colon < at)
                out.replace(colon + 1, at - colon - 1, "****");
        q = out.find('?');
        if (q == std::string::npos)
            return out;
        std::string result = out.substr(0, q + 1);
        std::string_view query = std::string_view(out).substr(q + 1);
        bool first = true;
        while (true)
        {
            auto amp = query.find('&');
            std::string_view kv = query.substr(0, amp);
            auto eq = kv.find('=');
            auto key = percent_decode(kv.substr(0, eq));
            if (!first)
                result += '&';
            first = false;
            if (!key || *key == "password" || eq == std::string_view::npos)
                result += std::string(kv.substr(0, eq)) + "=****";
            else
                result += kv;
            if (amp == std::string_view::npos)
                return result;
            query.remove_prefix(amp + 1);
        }
    }
    auto parts = split_conninfo(t);
    if (!parts || t.find("://") != std::string_view::npos)
        return "(connection string not shown)";
    std::string out;
    for (const auto& [k, v] : parts->params)
    {
        if (!out.empty())
            out += ' ';
        std::string value = v;
        if (k == "password")
            value = "****";
        out += k + "='";
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

/// A postgresql:// URL describing `c`, with the password shown as "****" (for messages and
/// to_string(settings)). Typed settings appear as query parameters.
inline std::string to_url(const connect_config& c)
{
    auto enc = [](std::string_view s)
    {
        std::string out;
        for (unsigned char ch : s)
        {
            if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                ch == '-' || ch == '.' || ch == '_' || ch == '~')
                out += static_cast<char>(ch);
            else
            {
                const char* hex = "0123456789ABCDEF";
                out += '%';
                out += hex[ch >> 4];
                out += hex[ch & 15];
            }
        }
        return out;
    };
    std::string out = "postgresql://";
    if (!c.user.empty() || !c.password.empty())
    {
        out += enc(c.user);
        if (!c.password.empty())
            out += ":****";
        out += '@';
    }
    for (std::size_t i = 0; i < c.hosts.size(); ++i)
    {
        if (i)
            out += ',';
        const auto& h = c.hosts[i].host;
        out += h.find(':') != std::string::npos ? "[" + h + "]" : enc(h);
        out += ':' + std::to_string(c.hosts[i].port);
    }
    out += '/' + enc(c.dbname);
    out += "?sslmode=" + std::string(to_string(c.sslmode));
    out += "&connect_timeout=" + detail::format_duration(c.connect_timeout);
    out += "&statement_timeout=" + detail::format_duration(c.statement_timeout);
    if (c.pgbouncer)
        out += "&pgbouncer=true";
    if (c.statement_cache_size > 0)
        out += "&statement_cache_size=" + std::to_string(c.statement_cache_size);
    if (!c.application_name.empty())
        out += "&application_name=" + enc(c.application_name);
    for (const auto& [k, v] : c.extra)
        out += '&' + enc(k) + '=' + (k == "password" || k == "sslpassword" ? "****" : enc(v));
    return out;
}

} // namespace pgcoro

#endif // PGCORO_DATABASE_URL_HPP
