// SPDX-License-Identifier: BSL-1.0
// pgcoro/settings.hpp - everything a program needs to open a pool, from code, env and URL.
#ifndef PGCORO_SETTINGS_HPP
#define PGCORO_SETTINGS_HPP

#include <pgcoro/config_error.hpp>
#include <pgcoro/connect_config.hpp>
#include <pgcoro/database_url.hpp>
#include <pgcoro/detail/config_env.hpp>
#include <pgcoro/detail/config_table.hpp>
#include <pgcoro/detail/libpq_target.hpp>
#include <pgcoro/pool_config.hpp>
#include <pgcoro/profile.hpp>
#include <pgcoro/secret.hpp>
#include <pgcoro/validate.hpp>

#include <tl/expected.hpp>

#include <chrono>
#include <cstdlib>
#include <functional>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace pgcoro
{

/// A validated configuration: the profile, where and how to connect, and the pool's limits.
struct settings
{
    pgcoro::profile prof = profile::development; ///< from PGCORO_ENV / APP_ENV
    connect_config connect;                      ///< from DATABASE_URL and env vars
    /// From DIRECT_DATABASE_URL: a connection that bypasses the pooler (migrations, admin).
    std::optional<connect_config> direct;
    pool_config pool;                ///< from the profile, URL parameters and env vars
    log_level log = log_level::info; ///< from the profile or PGCORO_LOG_LEVEL
    /// Whether logs and the last-failure message may carry the server's message and DETAIL
    /// of a failed statement, which quote data values (e-mail addresses, a failing row). Pass
    /// it to logging_observer and stats_collector_options::server_messages. Default: true in
    /// development, false in staging and production; env PGCORO_LOG_SERVER_MESSAGES.
    bool log_server_messages = false;
    /// Problems that do not stop start-up ("env PGCORO_PASSWORD_FILE: the file /run/pw is
    /// accessible by group or others ..."), one line each, for the caller to log at warn.
    std::vector<std::string> warnings;

    /// Multi-line description with URLs redacted ("****" for passwords).
    std::string to_string() const
    {
        using detail::format_duration;
        std::string s = "profile: " + std::string(pgcoro::to_string(prof)) + "\n";
        s += "log_level: " + std::string(pgcoro::to_string(log)) + "\n";
        s += std::string("log_server_messages: ") + (log_server_messages ? "true" : "false") + "\n";
        s += "connect: " + to_url(connect) + "\n";
        if (direct)
            s += "direct: " + to_url(*direct) + "\n";
        s += "pool: min_size=" + std::to_string(pool.min_size) +
             " max_size=" + std::to_string(pool.max_size) +
             " acquire_timeout=" + format_duration(pool.acquire_timeout) +
             " idle_timeout=" + format_duration(pool.idle_timeout) +
             " max_lifetime=" + format_duration(pool.max_lifetime) +
             " max_lifetime_jitter=" + format_duration(pool.max_lifetime_jitter) +
             " validate_after_idle=" + format_duration(pool.validate_after_idle) +
             " validation_timeout=" + format_duration(pool.validation_timeout) +
             " keepalive_interval=" + format_duration(pool.keepalive_interval) +
             " leak_threshold=" + format_duration(pool.leak_threshold) +
             " max_waiters=" + std::to_string(pool.max_waiters) +
             " slow_query_threshold=" + format_duration(pool.slow_query_threshold) +
             " query_timeout=" + format_duration(pool.query_timeout) +
             " max_concurrent_connects=" + std::to_string(pool.max_concurrent_connects) +
             " refill_backoff_initial=" + format_duration(pool.refill_backoff_initial) +
             " refill_backoff_max=" + format_duration(pool.refill_backoff_max) + "\n";
        return s;
    }
    friend std::ostream& operator<<(std::ostream& os, const settings& s)
    {
        return os << s.to_string();
    }
};

/// "Values set in code": every engaged field beats env vars, URL parameters and the profile.
struct settings_overrides
{
    std::optional<pgcoro::profile> prof;            ///< beats PGCORO_ENV / APP_ENV
    std::optional<std::string> database_url;        ///< beats DATABASE_URL
    std::optional<std::string> direct_database_url; ///< beats DIRECT_DATABASE_URL
    std::optional<pgcoro::secret> password;         ///< beats *_PASSWORD_FILE and the URL
    std::optional<log_level> log;                   ///< beats PGCORO_LOG_LEVEL
    std::optional<std::size_t> min_size, max_size, max_waiters, max_concurrent_connects;
    std::optional<std::chrono::milliseconds> acquire_timeout, idle_timeout, max_lifetime,
        max_lifetime_jitter, validate_after_idle, validation_timeout, keepalive_interval,
        leak_threshold, slow_query_threshold, query_timeout, refill_backoff_initial,
        refill_backoff_max; ///< pool_config fields of the same name
    std::optional<std::chrono::milliseconds> connect_timeout, statement_timeout, cancel_timeout;
    std::optional<std::chrono::seconds> keepalives_idle; ///< connect_config::keepalives_idle
    std::optional<ssl_mode> sslmode;                     ///< connect_config::sslmode
    std::optional<bool> pgbouncer;                       ///< connect_config::pgbouncer
    std::optional<std::size_t> statement_cache_size;     ///< connect_config::statement_cache_size
    std::optional<std::string> application_name, sslrootcert, sslcert, sslkey;
    /// Beats PGCORO_ALLOW_INSECURE: true lets the production profile connect over TCP with an
    /// sslmode that may run without TLS (disable, allow, prefer).
    std::optional<bool> allow_insecure;
    /// Beats PGCORO_LOG_SERVER_MESSAGES (settings::log_server_messages).
    std::optional<bool> log_server_messages;
};

/// Looks up one environment variable; nullopt when unset. Injectable for tests.
using env_lookup = std::function<std::optional<std::string>(std::string_view)>;

/// An env_lookup over a map (tests, or a parsed .env file).
inline env_lookup env_from_map(std::map<std::string, std::string, std::less<>> vars)
{
    return [vars = std::move(vars)](std::string_view name) -> std::optional<std::string>
    {
        auto it = vars.find(name);
        return it == vars.end() ? std::nullopt : std::optional<std::string>(it->second);
    };
}

/// The process environment (std::getenv).
inline env_lookup process_env()
{
    return [](std::string_view name) -> std::optional<std::string>
    {
        const char* v = std::getenv(std::string(name).c_str());
        return v ? std::optional<std::string>(v) : std::nullopt;
    };
}

namespace detail
{
template <class T, class U>
void override_field(const std::optional<T>& o, U& field, origin_map& origins, std::string_view name)
{
    if (o)
    {
        field = *o;
        origins[std::string(name)] = "code (settings_overrides)";
    }
}

inline void apply_overrides(const settings_overrides& o, settings& s, origin_map& m)
{
    override_field(o.log, s.log, m, "log_level");
    override_field(o.min_size, s.pool.min_size, m, "pool.min_size");
    override_field(o.max_size, s.pool.max_size, m, "pool.max_size");
    override_field(o.max_waiters, s.pool.max_waiters, m, "pool.max_waiters");
    override_field(o.max_concurrent_connects, s.pool.max_concurrent_connects, m,
                   "pool.max_concurrent_connects");
    override_field(o.acquire_timeout, s.pool.acquire_timeout, m, "pool.acquire_timeout");
    override_field(o.idle_timeout, s.pool.idle_timeout, m, "pool.idle_timeout");
    override_field(o.max_lifetime, s.pool.max_lifetime, m, "pool.max_lifetime");
    override_field(o.max_lifetime_jitter, s.pool.max_lifetime_jitter, m,
                   "pool.max_lifetime_jitter");
    override_field(o.validate_after_idle, s.pool.validate_after_idle, m,
                   "pool.validate_after_idle");
    override_field(o.validation_timeout, s.pool.validation_timeout, m, "pool.validation_timeout");
    override_field(o.keepalive_interval, s.pool.keepalive_interval, m, "pool.keepalive_interval");
    override_field(o.leak_threshold, s.pool.leak_threshold, m, "pool.leak_threshold");
    override_field(o.slow_query_threshold, s.pool.slow_query_threshold, m,
                   "pool.slow_query_threshold");
    override_field(o.query_timeout, s.pool.query_timeout, m, "pool.query_timeout");
    override_field(o.refill_backoff_initial, s.pool.refill_backoff_initial, m,
                   "pool.refill_backoff_initial");
    override_field(o.refill_backoff_max, s.pool.refill_backoff_max, m, "pool.refill_backoff_max");
    override_field(o.connect_timeout, s.connect.connect_timeout, m, "connect.connect_timeout");
    override_field(o.statement_timeout, s.connect.statement_timeout, m,
                   "connect.statement_timeout");
    override_field(o.cancel_timeout, s.connect.cancel_timeout, m, "connect.cancel_timeout");
    override_field(o.keepalives_idle, s.connect.keepalives_idle, m, "connect.keepalives_idle");
    override_field(o.sslmode, s.connect.sslmode, m, "connect.sslmode");
    override_field(o.pgbouncer, s.connect.pgbouncer, m, "connect.pgbouncer");
    override_field(o.statement_cache_size, s.connect.statement_cache_size, m,
                   "connect.statement_cache_size");
    override_field(o.application_name, s.connect.application_name, m, "connect.application_name");
    override_field(o.sslrootcert, s.connect.sslrootcert, m, "connect.sslrootcert");
    override_field(o.sslcert, s.connect.sslcert, m, "connect.sslcert");
    override_field(o.sslkey, s.connect.sslkey, m, "connect.sslkey");
    override_field(o.password, s.connect.password, m, "connect.password");
}

// The URL to use: code beats env; "" in env is an error rather than "unset".
inline std::optional<std::string> pick_url(const std::optional<std::string>& code,
                                           const env_lookup& env, std::string_view var,
                                           config_errors& errs)
{
    if (code)
        return code;
    auto v = env(var);
    if (v && trim(*v).empty())
    {
        errs.add({"env " + std::string(var), "", "", "empty",
                  "a postgres:// URL or key=value string, or leave it unset"});
        return std::nullopt;
    }
    return v;
}

// The password from PGCORO_PASSWORD_FILE or DATABASE_PASSWORD_FILE (both set: an error);
// what is worth a warning about the file goes to `warnings`.
inline std::optional<secret> password_from_files(const env_lookup& env, config_errors& errs,
                                                 std::vector<std::string>& warnings)
{
    auto a = env("PGCORO_PASSWORD_FILE");
    auto b = env("DATABASE_PASSWORD_FILE");
    if (a && b && *a != *b)
    {
        errs.add({"env PGCORO_PASSWORD_FILE and DATABASE_PASSWORD_FILE", "connect.password",
                  *a + " / " + *b, "both are set to different files", "set at most one"});
        return std::nullopt;
    }
    std::string var = a ? "PGCORO_PASSWORD_FILE" : "DATABASE_PASSWORD_FILE";
    auto path = a ? a : b;
    if (!path)
        return std::nullopt;
    if (path->empty())
    {
        errs.add({"env " + var, "connect.password", "", "empty", "the path of a readable file"});
        return std::nullopt;
    }
    auto content = read_secret_file(*path);
    if (!content)
    {
        errs.add({"env " + var, "connect.password", *path, "the file " + content.error(),
                  "a readable regular file holding the password on one line (one trailing "
                  "newline is removed)"});
        return std::nullopt;
    }
    for (const auto& w : content->warnings)
        warnings.push_back("env " + var + ": the file " + *path + " " + w);
    return secret(std::move(content->value));
}

// The production profile refuses connections that may run without TLS over TCP (sslmode
// disable, allow or prefer), unless PGCORO_ALLOW_INSECURE=1 or settings_overrides::
// allow_insecure says so. The decision is libpq's: `extra` (passed last, so it wins), a
// hostaddr from the URL, a service file or PGHOSTADDR turns a unix-socket host into TCP
// (detail::find_plaintext_route). `url_var` names the connection (DATABASE_URL,
// DIRECT_DATABASE_URL) and `origin` where its sslmode came from.
inline void check_production_tls(const connect_config& c, std::string_view url_var,
                                 std::string origin, const env_lookup& env, config_errors& errs)
{
    std::string problem;
    auto route = find_plaintext_route(c, env, problem);
    if (!problem.empty())
    {
        errs.add({std::string(url_var), "connect.sslmode", std::string(to_string(c.sslmode)),
                  "cannot tell whether the connection runs over TCP without TLS: " + problem,
                  "require, verify-ca, verify-full; a service that exists; or set "
                  "PGCORO_ALLOW_INSECURE=1"});
        return;
    }
    if (!route)
        return;
    if (extra_value(c, "sslmode"))
        origin = std::string(url_var) + " connect.extra sslmode";
    errs.add({std::move(origin), "connect.sslmode", route->sslmode,
              std::string(url_var) + " sslmode=" + route->sslmode +
                  " is not allowed in the production profile (the connection to " + route->target +
                  " could run without TLS)",
              "require, verify-ca, verify-full; or set PGCORO_ALLOW_INSECURE=1 to allow it"});
}

// Refuses a libpq parameter in `extra` that pgcoro also passes from a field of its own:
// passed later, it would silently override the field and the rules that check it.
inline void check_extra_duplicates(const connect_config& c, std::string_view url_var,
                                   config_errors& errs)
{
    for (const auto& [k, v] : c.extra)
        for (std::string_view own : keys_set_by_pgcoro)
            if (k == own)
                errs.add({std::string(url_var) + " parameter " + k, "connect.extra", "(not shown)",
                          "pgcoro passes " + k +
                              " itself (client_encoding is always UTF8); "
                              "a second value would override it",
                          "the setting of the same name (docs/configuration.md)"});
}

// A boolean env var, with the value set in code on top; `fallback` when neither is set.
inline bool env_bool(const env_lookup& env, const char* var, const std::optional<bool>& code,
                     bool fallback, config_errors& errs)
{
    if (code)
        return *code;
    auto v = env(var);
    if (!v)
        return fallback;
    auto b = parse_bool(*v);
    if (!b)
    {
        errs.add({"env " + std::string(var), "", *v, b.error().problem, b.error().allowed});
        return fallback;
    }
    return *b;
}

// PGCORO_ALLOW_INSECURE (a boolean), with the value set in code on top; false when unset.
inline bool allow_insecure(const env_lookup& env, const settings_overrides& code,
                           config_errors& errs)
{
    if (code.allow_insecure)
        return *code.allow_insecure;
    auto v = env("PGCORO_ALLOW_INSECURE");
    if (!v)
        return false;
    auto b = parse_bool(*v);
    if (!b)
    {
        errs.add({"env PGCORO_ALLOW_INSECURE", "", *v, b.error().problem, b.error().allowed});
        return false;
    }
    return *b;
}
} // namespace detail

/// Builds and validates settings from `env`, with `code` on top. Precedence per field: code >
/// env vars > URL parameters > profile defaults. Reads PGCORO_ENV (else APP_ENV), DATABASE_URL,
/// DIRECT_DATABASE_URL, DATABASE_CONNECTION_LIMIT, DATABASE_POOL_TIMEOUT, the PGCORO_* vars of
/// docs/configuration.md and PGCORO_PASSWORD_FILE / DATABASE_PASSWORD_FILE. The production
/// profile refuses an sslmode that may run without TLS over TCP (disable, allow, prefer)
/// unless PGCORO_ALLOW_INSECURE is true; TCP as libpq decides it (a hostaddr from the URL, a
/// service file or PGHOSTADDR sends even a unix-socket host over TCP). A URL parameter that
/// pgcoro passes itself (client_encoding) is refused. File warnings go to settings::warnings.
/// Reports every problem at once; no message contains a password. Does not throw (except
/// std::bad_alloc).
inline tl::expected<settings, config_errors> settings_from_env(const env_lookup& env,
                                                               const settings_overrides& code = {})
{
    using namespace detail;
    config_errors errs;
    settings s;
    origin_map origins;

    // 1. Profile, and its defaults.
    std::string profile_source = "default";
    if (code.prof)
    {
        s.prof = *code.prof;
        profile_source = "code";
    }
    else
        for (std::string_view var : {"PGCORO_ENV", "APP_ENV"})
            if (auto v = env(var))
            {
                if (auto p = parse_profile(trim(*v)))
                    s.prof = *p;
                else
                    errs.add({"env " + std::string(var), "profile", *v,
                              trim(*v).empty() ? "empty" : "unknown profile",
                              "development, staging, production (or dev, stage, prod)"});
                profile_source = "env " + std::string(var);
                break;
            }
    s.pool = pool_preset(s.prof);
    const connect_preset cp = connect_preset_for(s.prof);
    auto apply_preset = [&cp](connect_config& c)
    {
        c.sslmode = cp.sslmode;
        c.connect_timeout = cp.connect_timeout;
        c.statement_timeout = cp.statement_timeout;
        c.cancel_timeout = cp.cancel_timeout;
    };
    apply_preset(s.connect);
    s.log = cp.log;
    for (const auto& spec : setting_specs)
        origins[std::string(spec.field)] = "profile " + std::string(to_string(s.prof)) + " default";

    // 2. DATABASE_URL: where to connect, then its typed parameters over the profile.
    if (auto url = pick_url(code.database_url, env, "DATABASE_URL", errs))
    {
        auto parsed = parse_database_url(*url, "DATABASE_URL");
        if (parsed)
        {
            s.connect = parsed->connect;
            apply_preset(s.connect);
            config_target t{s.connect, s.pool, s.log};
            for (const auto& u : parsed->settings)
            {
                u.spec->apply(t, u.value);
                origins[std::string(u.spec->field)] =
                    "DATABASE_URL parameter " + std::string(u.spec->param);
            }
        }
        else
            errs.append(parsed.error());
    }

    // 3. Environment variables over the URL.
    for (const auto& spec : setting_specs)
    {
        if (spec.env.empty())
            continue;
        auto v = env(spec.env);
        if (!v)
            continue;
        auto parsed = parse_setting(spec, *v);
        if (!parsed)
        {
            errs.add({"env " + std::string(spec.env), std::string(spec.field), *v,
                      parsed.error().problem, parsed.error().allowed});
            continue;
        }
        config_target t{s.connect, s.pool, s.log};
        spec.apply(t, *parsed);
        origins[std::string(spec.field)] = "env " + std::string(spec.env);
    }
    auto file_password = password_from_files(env, errs, s.warnings);
    if (file_password)
        s.connect.password = *file_password;

    // 4. Code over everything.
    detail::apply_overrides(code, s, origins);
    // Server messages quote data values: only development logs them unless told otherwise.
    s.log_server_messages = env_bool(env, "PGCORO_LOG_SERVER_MESSAGES", code.log_server_messages,
                                     s.prof == profile::development, errs);

    // 5. DIRECT_DATABASE_URL: the main connection's settings, its own address, no pooler.
    std::string direct_sslmode_origin = origin_of(origins, "connect.sslmode");
    if (auto url = pick_url(code.direct_database_url, env, "DIRECT_DATABASE_URL", errs))
    {
        auto parsed = parse_database_url(*url, "DIRECT_DATABASE_URL");
        if (parsed)
        {
            connect_config d = s.connect;
            d.hosts = parsed->connect.hosts;
            d.dbname = parsed->connect.dbname;
            d.user = parsed->connect.user;
            d.extra = parsed->connect.extra;
            d.password = parsed->has_password
                             ? parsed->connect.password
                             : code.password.value_or(file_password.value_or(secret()));
            d.pgbouncer = false;
            pool_config unused_pool;
            log_level unused_log = s.log;
            parsed->apply(d, unused_pool, unused_log);
            for (const auto& u : parsed->settings)
                if (u.spec->field == "connect.sslmode")
                    direct_sslmode_origin =
                        "DIRECT_DATABASE_URL parameter " + std::string(u.spec->param);
            auto r = validate(d);
            add_issues(errs, r, s.pool, d, origins, "DIRECT_DATABASE_URL");
            s.direct = std::move(d);
        }
        else
            errs.append(parsed.error());
    }

    // 6. One validation over the merged result; each issue names its value's origin.
    add_issues(errs, validate(s.pool, s.connect), s.pool, s.connect, origins);
    check_extra_duplicates(s.connect, "DATABASE_URL", errs);
    if (s.direct)
        check_extra_duplicates(*s.direct, "DIRECT_DATABASE_URL", errs);

    // 7. Production means TLS on every TCP connection, unless explicitly allowed otherwise.
    if (!detail::allow_insecure(env, code, errs) && s.prof == profile::production)
    {
        check_production_tls(s.connect, "DATABASE_URL", origin_of(origins, "connect.sslmode"), env,
                             errs);
        if (s.direct)
            check_production_tls(*s.direct, "DIRECT_DATABASE_URL", direct_sslmode_origin, env,
                                 errs);
    }
    (void)profile_source;
    if (!errs.empty())
        return tl::unexpected(std::move(errs));
    return s;
}

/// settings_from_env() over the process environment.
inline tl::expected<settings, config_errors> settings_from_env(const settings_overrides& code = {})
{
    return settings_from_env(process_env(), code);
}

} // namespace pgcoro

#endif // PGCORO_SETTINGS_HPP
