// SPDX-License-Identifier: BSL-1.0
// pgcoro/detail/libpq_target.hpp - where libpq will really connect for a connect_config, for
// the production TLS rule: pgcoro's own keys, then `extra` (the connection passes it last, so
// it wins), then a service file and the PG* environment variables libpq reads for whatever
// is still unset (fe-connect.c: conninfo_add_defaults, parseServiceInfo).
#ifndef PGCORO_DETAIL_LIBPQ_TARGET_HPP
#define PGCORO_DETAIL_LIBPQ_TARGET_HPP

#include <pgcoro/connect_config.hpp>
#include <pgcoro/validate.hpp>

#include <tl/expected.hpp>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

namespace pgcoro::detail
{

// An environment variable as libpq sees it: the lookup settings_from_env() was given, else
// the process environment, which libpq reads whatever lookup pgcoro was given.
using env_reader = std::function<std::optional<std::string>(std::string_view)>;

inline std::optional<std::string> libpq_env(const env_reader& env, const char* name)
{
    if (auto v = env(name); v && !v->empty())
        return v;
    if (const char* p = std::getenv(name); p && *p)
        return std::string(p);
    return std::nullopt;
}

// The last non-empty value of `key` in `extra` (libpq ignores empty values in the arrays
// PQconnectStartParams takes, and takes the later of two).
inline std::optional<std::string> extra_value(const connect_config& c, std::string_view key)
{
    std::optional<std::string> v;
    for (const auto& [k, val] : c.extra)
        if (k == key && !val.empty())
            v = val;
    return v;
}

// libpq's is_unixsock_path(): an absolute path, or '@' for Linux's abstract namespace.
constexpr bool is_unix_socket_host(std::string_view h) noexcept
{
    return !h.empty() && (h.front() == '/' || h.front() == '@');
}

// One [service] section of a pg_service.conf file, as parseServiceFile() reads it: "key=value"
// lines, '#' comments, surrounding blanks ignored. nullopt when the file has no such section.
// The caller checked that it is a regular file (a FIFO would block, /dev/zero never end), and
// only its first MiB is read.
inline std::optional<std::map<std::string, std::string>>
read_service_section(const std::string& path, const std::string& service)
{
    std::ifstream file(path, std::ios::binary);
    std::string data(1024 * 1024, '\0');
    file.read(data.data(), static_cast<std::streamsize>(data.size()));
    data.resize(static_cast<std::size_t>(file.gcount()));
    std::istringstream in(data);
    std::string line;
    bool in_group = false, found = false;
    std::map<std::string, std::string> out;
    while (std::getline(in, line))
    {
        auto b = line.find_first_not_of(" \t\r");
        auto e = line.find_last_not_of(" \t\r");
        if (b == std::string::npos || line[b] == '#')
            continue;
        line = line.substr(b, e - b + 1);
        if (line.front() == '[')
        {
            if (found) // libpq stops at the section after the one it wanted
                break;
            in_group = line == "[" + service + "]";
            found = in_group;
            continue;
        }
        if (!in_group)
            continue;
        auto eq = line.find('=');
        if (eq != std::string::npos && !out.count(line.substr(0, eq)))
            out[line.substr(0, eq)] = line.substr(eq + 1);
    }
    if (!found)
        return std::nullopt;
    return out;
}

// The values a libpq service definition provides: the user's file ($PGSERVICEFILE, else
// ~/.pg_service.conf), then $PGSYSCONFDIR/pg_service.conf (else Debian's compiled-in
// /etc/postgresql-common). An error when the service is named but defined nowhere.
inline tl::expected<std::map<std::string, std::string>, std::string>
service_values(const env_reader& env, const std::string& service)
{
    std::vector<std::string> files;
    if (auto f = libpq_env(env, "PGSERVICEFILE"))
        files.push_back(*f);
    else if (auto home = libpq_env(env, "HOME"))
        files.push_back(*home + "/.pg_service.conf");
    else if (const passwd* pw = ::getpwuid(::geteuid()); pw && pw->pw_dir)
        files.push_back(std::string(pw->pw_dir) + "/.pg_service.conf");
    files.push_back(libpq_env(env, "PGSYSCONFDIR").value_or("/etc/postgresql-common") +
                    "/pg_service.conf");
    for (const auto& f : files)
    {
        struct stat st
        {
        };
        if (::stat(f.c_str(), &st) != 0)
            continue;
        if (!S_ISREG(st.st_mode))
            return tl::unexpected("service file " + f + " is not a regular file");
        if (auto section = read_service_section(f, service))
            return *section;
    }
    return tl::unexpected("service \"" + service + "\" is defined in no service file (" +
                          files.front() + ", " + files.back() + ")");
}

// A connection libpq would make over TCP with an sslmode that may run without TLS.
struct plaintext_route
{
    std::string target; // "/run/postgresql:5432 via hostaddr 127.0.0.1 (env PGHOSTADDR)"
    std::string sslmode;
};

// Decides, as libpq will, whether some host of `c` is reached over TCP without certain TLS:
// sslmode is `extra`'s if it has one (passed last, it wins), else c.sslmode; a host is
// `extra`'s host list if any, else each configured host; a host goes over TCP when a hostaddr
// applies (extra's, else the service's, else PGHOSTADDR, all of which libpq uses for a host
// it was given no address for) or when it is no unix-socket path. An empty host is taken as
// TCP. `problem` is set when a named service cannot be read (so nothing can be decided).
inline std::optional<plaintext_route>
find_plaintext_route(const connect_config& c, const env_reader& env, std::string& problem)
{
    std::string mode(to_string(c.sslmode));
    if (auto m = extra_value(c, "sslmode"))
        mode = *m;
    if (mode == "require" || mode == "verify-ca" || mode == "verify-full")
        return std::nullopt;
    // (host, port) as libpq gets them: extra's host list (with the first port), else ours.
    const std::uint16_t first_port = c.hosts.empty() ? 5432 : c.hosts.front().port;
    std::vector<std::pair<std::string, std::uint16_t>> hosts;
    if (auto h = extra_value(c, "host"))
    {
        std::string_view list = *h;
        while (true)
        {
            auto comma = list.find(',');
            hosts.emplace_back(std::string(list.substr(0, comma)), first_port);
            if (comma == std::string_view::npos)
                break;
            list.remove_prefix(comma + 1);
        }
    }
    else
        for (const auto& hp : c.hosts)
            hosts.emplace_back(hp.host, hp.port);
    auto route = [&](const std::pair<std::string, std::uint16_t>& hp, std::string via)
    {
        return plaintext_route{(hp.first.empty() ? std::string("(default host)") : hp.first) + ":" +
                                   std::to_string(hp.second) + via,
                               mode};
    };
    if (hosts.empty())
        return route({"", first_port}, "");
    for (const auto& hp : hosts)
        if (!is_unix_socket_host(hp.first))
            return route(hp, "");
    // Only unix sockets so far: does a hostaddr send libpq over TCP after all?
    if (auto a = extra_value(c, "hostaddr"))
        return route(hosts.front(), " via hostaddr " + *a + " (connection parameter)");
    std::optional<std::string> service = extra_value(c, "service");
    std::string service_source = "connection parameter service";
    if (!service)
    {
        service = libpq_env(env, "PGSERVICE");
        service_source = "env PGSERVICE";
    }
    if (service)
    {
        auto values = service_values(env, *service);
        if (!values)
        {
            problem = service_source + ": " + values.error();
            return std::nullopt;
        }
        if (auto it = values->find("hostaddr"); it != values->end() && !it->second.empty())
            return route(hosts.front(), " via hostaddr " + it->second + " (service \"" + *service +
                                            "\", " + service_source + ")");
    }
    if (auto a = libpq_env(env, "PGHOSTADDR"))
        return route(hosts.front(), " via hostaddr " + *a + " (env PGHOSTADDR)");
    return std::nullopt;
}

// Keys pgcoro passes to libpq from connect_config's own fields. The same key in `extra`
// would be passed after them and win, silently overriding the field (and the rules that
// check it), so settings_from_env() refuses it.
inline constexpr std::string_view keys_set_by_pgcoro[] = {
    "host",        "port",   "dbname",           "user",           "password", "sslmode", "sslcert",
    "sslrootcert", "sslkey", "application_name", "client_encoding"};

} // namespace pgcoro::detail

#endif // PGCORO_DETAIL_LIBPQ_TARGET_HPP
