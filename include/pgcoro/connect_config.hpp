// SPDX-License-Identifier: BSL-1.0
// pgcoro/connect_config.hpp - how to reach one PostgreSQL server (or a pgbouncer in front of it).
#ifndef PGCORO_CONNECT_CONFIG_HPP
#define PGCORO_CONNECT_CONFIG_HPP

#include <pgcoro/secret.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pgcoro
{

/// libpq's sslmode. The order is weakest to strongest.
enum class ssl_mode
{
    disable,     ///< never TLS
    allow,       ///< plain first, TLS if the server insists
    prefer,      ///< TLS if the server offers it, else plain (no MITM protection)
    require,     ///< TLS, no certificate check
    verify_ca,   ///< TLS, server certificate signed by sslrootcert
    verify_full, ///< TLS, certificate signed by sslrootcert and naming the host
};

/// libpq's spelling of an ssl_mode ("verify-full").
constexpr std::string_view to_string(ssl_mode m) noexcept
{
    switch (m)
    {
    case ssl_mode::disable:
        return "disable";
    case ssl_mode::allow:
        return "allow";
    case ssl_mode::prefer:
        return "prefer";
    case ssl_mode::require:
        return "require";
    case ssl_mode::verify_ca:
        return "verify-ca";
    case ssl_mode::verify_full:
        return "verify-full";
    }
    return "prefer";
}

/// One server address: a host name, an IP literal (IPv6 without brackets), or an absolute
/// unix-socket directory (starts with '/'), and a port (for unix sockets: the socket's suffix).
struct host_port
{
    std::string host = "localhost"; ///< name, IP, or unix-socket directory
    std::uint16_t port = 5432;      ///< 1..65535
};

/// Everything needed to open one connection. Defaults match libpq's, except where noted.
struct connect_config
{
    /// Servers tried in order until one accepts. URL: host part; env PGHOST/PGPORT.
    std::vector<host_port> hosts{host_port{}};
    /// Try `hosts` in a random order, shuffled for each connect (libpq 16's
    /// load_balance_hosts=random, done by pgcoro for libpq 15). URL `load_balance_hosts`.
    bool load_balance_hosts = false;
    /// Database name; empty means libpq's default (the user name). URL: path; env PGDATABASE.
    std::string dbname;
    /// Role name; empty means libpq's default (the OS user). URL: userinfo; env PGUSER.
    std::string user;
    /// Password; never printed. URL: userinfo; env PGPASSWORD or PGCORO_PASSWORD_FILE.
    pgcoro::secret password;
    /// TLS mode. Default prefer (libpq's); the production profile uses verify_full.
    ssl_mode sslmode = ssl_mode::prefer;
    /// CA file for verify_ca / verify_full; empty means libpq's default (~/.postgresql/root.crt).
    std::string sslrootcert;
    /// Client certificate and key files for certificate authentication; empty for none.
    std::string sslcert;
    std::string sslkey;
    /// Shown in pg_stat_activity.application_name; the pool filters its own rows by it.
    std::string application_name = "pgcoro";
    /// Deadline for one whole connect (all hosts, DNS included); 0 = none. Range 0..1 h.
    std::chrono::milliseconds connect_timeout{std::chrono::seconds(30)};
    /// Server-side statement_timeout, sent as a startup option; 0 = server default. In
    /// pgbouncer mode it is not sent (pgbouncer rejects startup options) but enforced on the
    /// client instead: each statement's deadline is the shorter of it and query_timeout (the
    /// statement is cancelled when it passes).
    std::chrono::milliseconds statement_timeout{0};
    /// Client-side deadline for each statement (cancelled on the server when it passes);
    /// 0 = none. A per-call query_options::timeout overrides it. Range 0..24 h.
    std::chrono::milliseconds query_timeout{0};
    /// How long a cancelled statement may take to be cancelled and drained before the
    /// connection is closed instead. Range 1 ms..1 min.
    std::chrono::milliseconds cancel_timeout{std::chrono::seconds(5)};
    /// TCP keepalives on the socket (libpq keepalives=1) with this idle time; 0 = libpq default.
    std::chrono::seconds keepalives_idle{0};
    /// Connecting through pgbouncer in transaction mode: no startup `options`, no session state.
    bool pgbouncer = false;
    /// Named prepared statements kept per connection (LRU): a statement text seen before is
    /// sent as Bind/Execute only, skipping the server's parse and plan. 0 = off (every statement
    /// unnamed). Must be 0 with pgbouncer (validate() says so; a connection ignores it there).
    /// A statement's first use on a connection is up to three round trips (DEALLOCATE of
    /// evicted ones, PREPARE, execute), each bounded by the statement's timeout; on a
    /// pipelined connection the PREPARE shares the statement's segment, and nothing is evicted.
    /// Range 0..10000. URL statement_cache_size; env PGCORO_STATEMENT_CACHE_SIZE.
    std::size_t statement_cache_size = 0;
    /// Further libpq connection parameters, passed through as key/value pairs.
    std::vector<std::pair<std::string, std::string>> extra;
};

} // namespace pgcoro

#endif // PGCORO_CONNECT_CONFIG_HPP
