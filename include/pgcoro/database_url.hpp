// SPDX-License-Identifier: BSL-1.0
// pgcoro/database_url.hpp - DATABASE_URL: postgres:// URIs and libpq key=value strings.
#ifndef PGCORO_DATABASE_URL_HPP
#define PGCORO_DATABASE_URL_HPP

#include <pgcoro/config_error.hpp>
#include <pgcoro/connect_config.hpp>
#include <pgcoro/detail/config_table.hpp>
#include <pgcoro/detail/session_attrs.hpp>
#include <pgcoro/detail/url_parse.hpp>
#include <pgcoro/detail/url_redact.hpp>
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

// Applies one decoded key=value (URI query parameter or conninfo pair): a known key
// (is_known_param()) with its decoded value; `show` says whether an error may echo the value (false
// for secrets and for anything after a secret or an unknown key).
inline void url_param(database_url& out, config_errors& errs, std::string_view source,
                      const std::string& key, std::string value, bool show,
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
    else if (key == "ssl") // libpq's JDBC-compatible spelling; libpq refuses any other value
    {
        if (value == "true")
            out.settings.push_back(
                {find_spec_by_param("sslmode"),
                 setting_value{static_cast<std::int64_t>(ssl_mode::require), {}}});
        else
            url_error(errs, source, where, show ? value : "(not shown)", "unsupported value",
                      "ssl=true (libpq's spelling of sslmode=require), or use sslmode");
    }
    else if (key == "load_balance_hosts") // libpq 16's; pgcoro orders the hosts itself
    {
        if (value == "random" || value == "disable")
            out.connect.load_balance_hosts = value == "random";
        else
            url_error(errs, source, where, show ? value : "(not shown)", "unsupported value",
                      "disable or random");
    }
    else if (key == "target_session_attrs" && !valid_session_attrs(value))
        url_error(errs, source, where, show ? value : "(not shown)", "unsupported value",
                  "any, read-write, read-only, primary, standby, prefer-standby");
    else if (const setting_spec* spec = find_spec_by_param(key))
    {
        auto v = parse_setting(*spec, value);
        if (v)
            out.settings.push_back({spec, std::move(*v)});
        else
        {
            // Problems may quote part of the value ("unknown unit \"xyz\""): cut that too.
            std::string problem = v.error().problem;
            if (!show)
                problem = problem.substr(0, problem.find(" \""));
            url_error(errs, source, where, show ? value : "(not shown)", std::move(problem),
                      v.error().allowed);
        }
    }
    else
        out.connect.extra.emplace_back(key, std::move(value));
}

} // namespace detail

/// Parses a `postgres://` / `postgresql://` URI or a libpq `key=value` string, as libpq accepts
/// them: percent-decoding, `[IPv6]` hosts, several `host:port` pairs, unix-socket directories
/// (`host=/run/postgresql` or a percent-encoded path as host), query parameters, user-info up
/// to the first '@' before any '/' (so a password may hold unencoded '?', '#' and ':'). pgcoro's
/// own parameters are taken out into `settings`; any other must be a PQconndefaults() keyword.
/// `source` names the text in errors ("DATABASE_URL"). Every problem is reported. No error
/// echoes a password, the value of an unknown or secret key (named only, as libpq does), or
/// anything that could be part of a password (text after a secret or unknown key, or after a
/// stray '@'). Differences from libpq: no host means localhost over TCP, not libpq's default
/// socket directory; user-info runs to the last '@' of the host part ("u:p@ss@h" is password
/// "p@ss"); an unencoded '@' in the database name is refused.
inline tl::expected<database_url, config_errors>
parse_database_url(std::string_view text, std::string_view source = "DATABASE_URL")
{
    using namespace detail;
    config_errors errs;
    database_url out;
    std::string_view trimmed = trim(text);
    bool uri = uri_prefix_length(trimmed) != 0;
    if (auto sep = trimmed.find("://");
        !uri && sep != std::string_view::npos && is_scheme(trimmed.substr(0, sep)))
    {
        url_error(errs, source, "scheme", std::string(trimmed.substr(0, sep)), "unsupported scheme",
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
    // Once a secret or unknown key was seen, or when an '@' makes the split uncertain, what
    // follows may be part of a password: errors then echo no value and no odd-looking name.
    bool tainted = parts->ambiguous;
    auto decode = [&](std::string_view s, const std::string& where, bool show)
    {
        if (!uri)
            return std::optional<std::string>(std::string(s));
        auto d = percent_decode(s);
        if (!d)
            url_error(errs, source, where, show ? std::string(s) : "(not shown)",
                      "invalid percent-encoding", "%XX with two hex digits, not %00");
        return d;
    };
    out.connect.user = decode(parts->user, "user", !tainted).value_or("");
    if (parts->has_password)
    {
        out.connect.password = secret(decode(parts->password, "password", false).value_or(""));
        out.has_password = !out.connect.password.empty();
    }
    if (parts->has_path)
        out.connect.dbname = decode(parts->path, "dbname", !tainted).value_or("");

    // Without user-info, a URI's "host:port" may be a "user:password" that lost its '@'.
    const bool show_host = !tainted && (!uri || parts->has_userinfo);
    std::vector<std::string> hosts, ports;
    for (auto [h, p] : parts->hosts)
    {
        hosts.push_back(decode(h, "host", show_host).value_or(""));
        ports.push_back(decode(p, "port", show_host).value_or(""));
    }
    bool hosts_param = false, ports_param = false;
    std::vector<std::string> query_hosts, query_ports;
    std::size_t index = 0;
    for (const auto& p : parts->params)
    {
        const std::string numbered = "parameter #" + std::to_string(++index);
        if (!p.has_eq)
        {
            url_error(errs, source, numbered, "(not shown)", "missing '=' and value",
                      "key=value; percent-encode '&' and '=' inside values (%26, %3D)");
            tainted = true;
            continue;
        }
        auto key = decode(p.key, numbered + " name", false);
        if (!key)
        {
            tainted = true;
            continue;
        }
        const bool known = is_known_param(*key);
        const bool named = known || (!tainted && looks_like_keyword(*key));
        const std::string where = named ? "parameter " + *key : numbered;
        // A percent-encoded key is treated as secret whatever it decodes to: encoding a key
        // name has no use but hiding it (pass%77ord).
        const bool secret_value = is_secret_key(*key) || !known || p.key != *key;
        if (p.extra_eq)
        {
            url_error(errs, source, where, "(not shown)",
                      "extra '=' in the value (percent-encode it as %3D)");
            tainted = true;
            continue;
        }
        if (!known)
        {
            url_error(errs, source, where, "(not shown)",
                      named ? "unknown parameter" : "unknown parameter (name not shown)",
                      "a libpq connection parameter or a pgcoro parameter (docs/configuration.md)");
            tainted = true;
            continue;
        }
        const bool show = !secret_value && !tainted;
        auto value = decode(p.value, where, show);
        if (value)
            url_param(out, errs, source, *key, std::move(*value), show, query_hosts, query_ports,
                      hosts_param, ports_param);
        if (secret_value)
            tainted = true;
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
                url_error(errs, source, "port",
                          tainted || !show_host ? "(not shown)" : std::string(port), "invalid port",
                          "an integer in 1..65535");
        }
        out.connect.hosts.push_back(std::move(hp));
    }
    if (!errs.empty())
        return tl::unexpected(errs);
    return out;
}

/// `text` with every secret replaced by "****", for log lines and messages: the user-info
/// password (split as parse_database_url() does, so a password may hold '?'), the values of
/// `password`, `sslpassword` and unknown (possibly misspelled) keys, and, in a URI, whatever
/// follows a key that may be part of a password. Text that does not parse, or a URI whose '@'
/// leaves it unclear where the password ends, is not echoed at all.
inline std::string redact_url(std::string_view text)
{
    using namespace detail;
    std::string_view t = trim(text);
    if (uri_prefix_length(t) != 0)
        return redact_uri(t);
    return redact_conninfo(t);
}

/// A postgresql:// URL describing `c`, with the password shown as "****" (for messages and
/// to_string(settings)). Typed settings appear as query parameters.
inline std::string to_url(const connect_config& c)
{
    auto enc = [](std::string_view s)
    {
        std::string out;
        for (char raw : s)
        {
            const auto ch = static_cast<unsigned char>(raw);
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
    if (c.load_balance_hosts)
        out += "&load_balance_hosts=random";
    if (c.statement_cache_size > 0)
        out += "&statement_cache_size=" + std::to_string(c.statement_cache_size);
    if (!c.application_name.empty())
        out += "&application_name=" + enc(c.application_name);
    for (const auto& [k, v] : c.extra)
        out += '&' + enc(k) + '=' + (detail::is_secret_key(k) ? "****" : enc(v));
    return out;
}

} // namespace pgcoro

#endif // PGCORO_DATABASE_URL_HPP
