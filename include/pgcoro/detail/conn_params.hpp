// SPDX-License-Identifier: BSL-1.0
// pgcoro/detail/conn_params.hpp - connect_config to libpq keyword/value arrays.
#ifndef PGCORO_DETAIL_CONN_PARAMS_HPP
#define PGCORO_DETAIL_CONN_PARAMS_HPP

#include <pgcoro/connect_config.hpp>

#include <deque>
#include <string>
#include <string_view>
#include <vector>

namespace pgcoro::detail
{

// Owns the strings that PQconnectStartParams reads; libpq copies them, so this lives only for
// the duration of the start call. The password is wiped when it goes away.
class conn_params
{
public:
    // One attempt at one address: `host` as configured (used for TLS host-name checks and
    // .pgpass), `hostaddr` the numeric address we resolved (keeps libpq from doing DNS), or
    // empty for unix-socket directories.
    // `session_attrs`, when not empty, replaces the configured target_session_attrs (the
    // connector's passes for prefer-standby).
    conn_params(const connect_config& cfg, std::string_view host, std::string_view hostaddr,
                std::uint16_t port, std::string_view session_attrs = {})
    {
        add("host", host);
        if (!hostaddr.empty())
            add("hostaddr", hostaddr);
        add("port", std::to_string(port));
        if (!cfg.dbname.empty())
            add("dbname", cfg.dbname);
        if (!cfg.user.empty())
            add("user", cfg.user);
        if (!cfg.password.empty())
            add("password", cfg.password.reveal());
        add("sslmode", to_string(cfg.sslmode));
        if (!cfg.sslrootcert.empty())
            add("sslrootcert", cfg.sslrootcert);
        if (!cfg.sslcert.empty())
            add("sslcert", cfg.sslcert);
        if (!cfg.sslkey.empty())
            add("sslkey", cfg.sslkey);
        if (!cfg.application_name.empty())
            add("application_name", cfg.application_name);
        add("client_encoding", "UTF8");
        // Debian's libpq has GSSAPI; probing it reads Kerberos credential caches (blocking file
        // I/O) and may open an extra socket. Off unless the user asks for it in `extra`.
        if (!has_extra(cfg, "gssencmode"))
            add("gssencmode", "disable");
        if (cfg.keepalives_idle.count() > 0)
        {
            add("keepalives", "1");
            add("keepalives_idle", std::to_string(cfg.keepalives_idle.count()));
        }
        // pgbouncer (transaction mode) rejects startup `options` with 08P01, and a session
        // SET would leak to other clients; there the client-side query_timeout is the tool.
        // One `options` value: the user's (URL `options=`), then pgcoro's own -c settings, so
        // the server applies ours last and a URL's `-c statement_timeout=0` cannot undo the
        // configured statement_timeout (libpq keeps only the last value of a repeated key).
        std::string options;
        for (const auto& [k, v] : cfg.extra)
            if (k == "options")
                options = v;
        if (!cfg.pgbouncer && cfg.statement_timeout.count() > 0)
            options += (options.empty() ? "" : " ") + std::string("-c statement_timeout=") +
                       std::to_string(cfg.statement_timeout.count());
        if (!options.empty())
            add("options", options);
        for (const auto& [k, v] : cfg.extra)
            if (k != "options" && (session_attrs.empty() || k != "target_session_attrs"))
                add(k, v);
        if (!session_attrs.empty())
            add("target_session_attrs", session_attrs);
        keys_.push_back(nullptr);
        values_.push_back(nullptr);
    }
    conn_params(const conn_params&) = delete;
    conn_params& operator=(const conn_params&) = delete;
    ~conn_params()
    {
        for (auto& s : storage_)
            for (auto& ch : s)
                ch = '\0';
    }

    const char* const* keys() const noexcept { return keys_.data(); }
    const char* const* values() const noexcept { return values_.data(); }

private:
    static bool has_extra(const connect_config& cfg, std::string_view key)
    {
        for (const auto& kv : cfg.extra)
            if (kv.first == key)
                return true;
        return false;
    }
    void add(std::string_view key, std::string_view value)
    {
        // A deque never moves its elements, so the c_str() pointers stay valid.
        storage_.emplace_back(key);
        keys_.push_back(storage_.back().c_str());
        storage_.emplace_back(value);
        values_.push_back(storage_.back().c_str());
    }

    std::deque<std::string> storage_;
    std::vector<const char*> keys_;
    std::vector<const char*> values_;
};

} // namespace pgcoro::detail

#endif // PGCORO_DETAIL_CONN_PARAMS_HPP
