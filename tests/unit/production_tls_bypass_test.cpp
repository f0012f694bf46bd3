// Issue 19, "Production's TLS rule": the production profile decides on what libpq will really
// connect to. A unix-socket host with sslmode=disable is plaintext TCP as soon as a hostaddr
// applies (URL parameter, service file, PGHOSTADDR), and libpq parameters that pgcoro passes
// after its own (connect_config::extra) win over them, so they are judged or refused.
#include <pgcoro/detail/conn_params.hpp>
#include <pgcoro/settings.hpp>
#include <pgcoro/validate.hpp>

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

using env_map = std::map<std::string, std::string, std::less<>>;
using pgcoro::ssl_mode;

namespace
{
const std::string unix_disable = "postgresql:///app?host=/run/postgresql&sslmode=disable";

tl::expected<pgcoro::settings, pgcoro::config_errors> from(env_map vars)
{
    return pgcoro::settings_from_env(pgcoro::env_from_map(std::move(vars)));
}

bool contains(const std::string& text, const std::string& part)
{
    return text.find(part) != std::string::npos;
}

std::string service_file(const std::string& body)
{
    std::string p = ::testing::TempDir() + "pgcoro_pg_service.conf";
    std::ofstream(p) << body;
    return p;
}
} // namespace

TEST(ProductionTls_Bypass, HostaddrParameterMakesAUnixHostTcp)
{
    // Setup: the case. libpq connects to hostaddr when one is given, whatever host is.
    auto s = from(
        {{"PGCORO_ENV", "production"}, {"DATABASE_URL", unix_disable + "&hostaddr=127.0.0.1"}});
    // Check: refused, and the message says which route is plaintext.
    ASSERT_FALSE(s);
    std::string msg = s.error().to_string();
    EXPECT_TRUE(contains(msg, "DATABASE_URL sslmode=disable is not allowed in the production "
                              "profile (the connection to /run/postgresql:5432 via hostaddr "
                              "127.0.0.1 (connection parameter) could run without TLS)"))
        << msg;
    // Explicitly allowed, it is accepted.
    EXPECT_TRUE(from({{"PGCORO_ENV", "production"},
                      {"PGCORO_ALLOW_INSECURE", "1"},
                      {"DATABASE_URL", unix_disable + "&hostaddr=127.0.0.1"}}));
    // Without the hostaddr it is a unix socket and needs no TLS.
    EXPECT_TRUE(from({{"PGCORO_ENV", "production"}, {"DATABASE_URL", unix_disable}}));
}

TEST(ProductionTls_Bypass, PghostaddrFromTheEnvironment)
{
    // libpq fills an unset hostaddr from PGHOSTADDR; pgcoro passes none for a unix socket.
    auto s = from({{"PGCORO_ENV", "production"},
                   {"DATABASE_URL", unix_disable},
                   {"PGHOSTADDR", "127.0.0.1"}});
    ASSERT_FALSE(s);
    EXPECT_TRUE(contains(s.error().to_string(), "via hostaddr 127.0.0.1 (env PGHOSTADDR)"))
        << s.error();
    // The same through DIRECT_DATABASE_URL.
    s = from({{"PGCORO_ENV", "production"},
              {"DATABASE_URL", "postgres://db.example/app"},
              {"DIRECT_DATABASE_URL", unix_disable},
              {"PGHOSTADDR", "10.1.2.3"}});
    ASSERT_FALSE(s);
    EXPECT_TRUE(contains(s.error().to_string(), "DIRECT_DATABASE_URL sslmode=disable"))
        << s.error();
}

TEST(ProductionTls_Bypass, ServiceFileWithHostaddr)
{
    std::string file = service_file("# pgcoro test\n[other]\nhostaddr=10.9.9.9\n\n"
                                    "[plain]\nhost=/run/postgresql\n"
                                    "[tcp]\n  hostaddr=127.0.0.1  \nsslmode=disable\n");
    // service= in the URL, defined with a hostaddr: TCP, refused.
    auto s = from({{"PGCORO_ENV", "production"},
                   {"DATABASE_URL", unix_disable + "&service=tcp"},
                   {"PGSERVICEFILE", file}});
    ASSERT_FALSE(s);
    EXPECT_TRUE(contains(s.error().to_string(),
                         "via hostaddr 127.0.0.1 (service \"tcp\", connection parameter service)"))
        << s.error();
    // PGSERVICE names it instead.
    s = from({{"PGCORO_ENV", "production"},
              {"DATABASE_URL", unix_disable},
              {"PGSERVICE", "tcp"},
              {"PGSERVICEFILE", file}});
    ASSERT_FALSE(s);
    EXPECT_TRUE(contains(s.error().to_string(), "(service \"tcp\", env PGSERVICE)")) << s.error();
    // A service without hostaddr keeps the unix socket: accepted.
    EXPECT_TRUE(from({{"PGCORO_ENV", "production"},
                      {"DATABASE_URL", unix_disable + "&service=plain"},
                      {"PGSERVICEFILE", file}}));
    // A service file that is no regular file is not read (a FIFO would block): refused.
    s = from({{"PGCORO_ENV", "production"},
              {"DATABASE_URL", unix_disable + "&service=tcp"},
              {"PGSERVICEFILE", "/dev/zero"}});
    ASSERT_FALSE(s);
    EXPECT_TRUE(contains(s.error().to_string(), "/dev/zero is not a regular file")) << s.error();
    // A service defined nowhere: pgcoro cannot tell, so it refuses.
    s = from({{"PGCORO_ENV", "production"},
              {"DATABASE_URL", unix_disable + "&service=missing"},
              {"PGSERVICEFILE", file},
              {"PGSYSCONFDIR", "/nonexistent"}});
    ASSERT_FALSE(s);
    EXPECT_TRUE(
        contains(s.error().to_string(), "service \"missing\" is defined in no service file"))
        << s.error();
    std::remove(file.c_str());
}

TEST(ProductionTls_Bypass, VariablesLibpqReadsOnlyForUnsetKeysCannotWeakenIt)
{
    // pgcoro always passes host, port and sslmode, so PGSSLMODE and PGHOST never apply.
    auto s = from({{"PGCORO_ENV", "production"},
                   {"DATABASE_URL", "postgres://db.example/app?sslmode=verify-full"},
                   {"PGSSLMODE", "disable"},
                   {"PGREQUIRESSL", "0"}});
    EXPECT_TRUE(s) << s.error();
    s = from(
        {{"PGCORO_ENV", "production"}, {"DATABASE_URL", unix_disable}, {"PGHOST", "10.0.0.1"}});
    EXPECT_TRUE(s) << s.error();
    // A TLS sslmode makes any route safe, hostaddr or not.
    s = from({{"PGCORO_ENV", "production"},
              {"DATABASE_URL", "postgresql:///app?host=/run/postgresql&hostaddr=127.0.0.1"},
              {"PGHOSTADDR", "127.0.0.1"}});
    EXPECT_TRUE(s) << s.error();
}

TEST(ProductionTls_Bypass, ExtraIsPassedLastSoItIsWhatIsJudged)
{
    // A config built in code: extra's sslmode, host and hostaddr override the fields.
    pgcoro::connect_config c;
    c.hosts = {{"/run/postgresql", 5432}};
    c.sslmode = ssl_mode::disable;
    EXPECT_FALSE(pgcoro::may_run_without_tls(c));
    c.extra = {{"hostaddr", "127.0.0.1"}};
    EXPECT_TRUE(pgcoro::may_run_without_tls(c));
    c.extra = {{"host", "/tmp,10.0.0.1"}};
    EXPECT_TRUE(pgcoro::may_run_without_tls(c));
    c.extra = {{"hostaddr", ""}}; // libpq ignores an empty value
    EXPECT_FALSE(pgcoro::may_run_without_tls(c));
    c.hosts = {{"db.example", 5432}};
    c.sslmode = ssl_mode::verify_full;
    c.extra = {{"sslmode", "disable"}};
    EXPECT_TRUE(pgcoro::may_run_without_tls(c));
    c.extra = {{"sslmode", "disable"}, {"sslmode", "require"}}; // the later one wins
    EXPECT_FALSE(pgcoro::may_run_without_tls(c));
}

TEST(ProductionTls_Bypass, KeysPgcoroSetsItselfAreRefusedInExtra)
{
    // client_encoding is a libpq keyword a URL may carry; pgcoro passes UTF8 itself, and the
    // URL's would come later and win.
    auto s = from({{"DATABASE_URL", "postgres://db.example/app?client_encoding=LATIN1"}});
    ASSERT_FALSE(s);
    EXPECT_TRUE(
        contains(s.error().to_string(), "DATABASE_URL parameter client_encoding (connect.extra)"))
        << s.error();
    EXPECT_TRUE(contains(s.error().to_string(), "pgcoro passes client_encoding itself"))
        << s.error();
}

namespace
{
// Sets or unsets a process environment variable for one scope (libpq reads the real one).
struct scoped_env
{
    std::string name;
    std::optional<std::string> old;
    scoped_env(const char* n, const char* value) : name(n)
    {
        if (const char* o = std::getenv(n))
            old = o;
        if (value)
            ::setenv(n, value, 1);
        else
            ::unsetenv(n);
    }
    ~scoped_env()
    {
        if (old)
            ::setenv(name.c_str(), old->c_str(), 1);
        else
            ::unsetenv(name.c_str());
    }
};

// Where libpq really goes with the arrays the connection passes (detail::conn_params): its
// error names "server at "127.0.0.1"" for TCP and "server on socket" for a unix socket.
// Port 1 on loopback refuses at once; the socket directory does not exist. No server needed.
bool libpq_goes_tcp(const pgcoro::connect_config& c)
{
    pgcoro::detail::conn_params p(c, c.hosts.at(0).host, "", c.hosts.at(0).port);
    PGconn* conn = PQconnectdbParams(p.keys(), p.values(), 0);
    std::string msg = PQerrorMessage(conn);
    PQfinish(conn);
    EXPECT_TRUE(contains(msg, "server at \"127.0.0.1\"") || contains(msg, "server on socket"))
        << msg;
    return contains(msg, "server at \"127.0.0.1\"");
}
} // namespace

TEST(ProductionTls_Bypass, ModelAgreesWithLibpq)
{
    // Setup: a unix-socket host and sslmode=disable, with each route libpq may take.
    std::string file = service_file("[tcp]\nhostaddr=127.0.0.1\n[unix]\nport=1\n");
    scoped_env no_hostaddr("PGHOSTADDR", nullptr), no_service("PGSERVICE", nullptr),
        service_file_env("PGSERVICEFILE", file.c_str()), no_host("PGHOST", nullptr);
    struct scenario
    {
        const char* name;
        std::vector<std::pair<std::string, std::string>> extra;
        const char* env_name;
        const char* env_value;
        bool tcp;
    };
    const scenario scenarios[] = {
        {"plain unix socket", {}, "PGHOST", nullptr, false},
        {"hostaddr parameter", {{"hostaddr", "127.0.0.1"}}, "PGHOST", nullptr, true},
        {"PGHOSTADDR", {}, "PGHOSTADDR", "127.0.0.1", true},
        {"service= with hostaddr", {{"service", "tcp"}}, "PGHOST", nullptr, true},
        {"PGSERVICE with hostaddr", {}, "PGSERVICE", "tcp", true},
        {"service without hostaddr", {{"service", "unix"}}, "PGHOST", nullptr, false},
        {"PGHOST cannot replace the host", {}, "PGHOST", "127.0.0.1", false},
    };
    for (const auto& sc : scenarios)
    {
        scoped_env var(sc.env_name, sc.env_value);
        pgcoro::connect_config c;
        c.hosts = {{"/nonexistent-pgcoro-dir", 1}};
        c.sslmode = ssl_mode::disable;
        c.connect_timeout = std::chrono::seconds(2);
        c.extra = sc.extra;
        c.extra.emplace_back("connect_timeout", "2");
        // Act: what libpq does, and what the production rule decides.
        const bool libpq_tcp = libpq_goes_tcp(c);
        std::string problem;
        const bool model_tcp =
            pgcoro::detail::find_plaintext_route(c, pgcoro::env_from_map({}), problem).has_value();
        // Check: both agree with the expectation.
        EXPECT_EQ(libpq_tcp, sc.tcp) << sc.name;
        EXPECT_EQ(model_tcp, sc.tcp) << sc.name << " " << problem;
    }
    std::remove(file.c_str());
}

TEST(ProductionTls_Bypass, NamesTheTcpHostWithItsOwnPort)
{
    auto s = from({{"PGCORO_ENV", "production"},
                   {"DATABASE_URL", "postgresql:///app?host=/run/postgresql,db.example&port=5433,"
                                    "6544&sslmode=prefer"}});
    ASSERT_FALSE(s);
    EXPECT_TRUE(contains(s.error().to_string(), "the connection to db.example:6544 could run"))
        << s.error();
}
