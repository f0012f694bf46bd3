// TLS tests (issue #7, scenario 7) against a second throwaway cluster that speaks TLS, started
// by the `tls_cluster` fixture (scripts/test-cluster-tls.sh) with certificates made at test
// time: a CA, a server certificate for DNS:localhost + IP:127.0.0.1, an expired one and one
// from a CA nobody trusts.
//  - sslmode=verify-full with the right CA connects, and the connection really uses TLS;
//  - a host name the certificate does not carry, an unknown CA, an expired certificate and a
//    missing root certificate fail as `tls_failed`: not transient, so retry() tries once and a
//    circuit breaker around them stays closed (a broken certificate is not an outage);
//  - the production profile connects with verified TLS and refuses sslmode=disable unless
//    PGCORO_ALLOW_INSECURE allows it.
#include <pgcoro/circuit_breaker.hpp>
#include <pgcoro/connection.hpp>
#include <pgcoro/pool.hpp>
#include <pgcoro/retry.hpp>
#include <pgcoro/settings.hpp>

#include "support/test_server.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <optional>
#include <string>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using pgcoro::errc;
using pgcoro::ssl_mode;
using pgcoro::test::run;
using pgcoro::test::test_server;

namespace
{

// The PGCORO_TLS_* lines scripts/test-cluster-tls.sh adds to the cluster's env file.
struct tls_info
{
    std::string dir, ca, unknown_ca, server_cert, expired_cert, unknown_ca_cert;
    bool ipv6 = false;
};

std::optional<tls_info> tls()
{
    const char* dir = std::getenv("PGCORO_TEST_CLUSTER");
    if (!dir)
        return std::nullopt;
    std::ifstream in(std::string(dir) + "/env");
    std::map<std::string, std::string> env;
    std::string line;
    while (std::getline(in, line))
        if (auto eq = line.find('='); eq != std::string::npos)
            env[line.substr(0, eq)] = line.substr(eq + 1);
    if (env["PGCORO_TLS_CA"].empty())
        return std::nullopt;
    return tls_info{env["PGCORO_TLS_DIR"],          env["PGCORO_TLS_CA"],
                    env["PGCORO_TLS_UNKNOWN_CA"],   env["PGCORO_TLS_SERVER_CERT"],
                    env["PGCORO_TLS_EXPIRED_CERT"], env["PGCORO_TLS_UNKNOWN_CA_CERT"],
                    env["PGCORO_TLS_IPV6"] == "1"};
}

#define PGCORO_REQUIRE_TLS(t)                                                                      \
    auto t = tls();                                                                                \
    if (!t)                                                                                        \
    GTEST_SKIP() << "no TLS cluster: run through ctest (fixture tls_cluster)"

// The TLS cluster over TCP with sslmode=verify-full, trusting the test CA.
pgcoro::connect_config verified(const tls_info& t, const std::string& host = "127.0.0.1")
{
    auto c = test_server::get().tcp();
    c.hosts = {{host, test_server::get().port()}};
    c.sslmode = ssl_mode::verify_full;
    c.sslrootcert = t.ca;
    c.application_name = "pgcoro-tls-tests";
    c.connect_timeout = 5s;
    return c;
}

asio::awaitable<void> sleep_for(std::chrono::milliseconds d)
{
    asio::steady_timer timer(co_await asio::this_coro::executor, d);
    co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
}

// Whether the server side of `c` says its session is encrypted (pg_stat_ssl).
asio::awaitable<std::optional<bool>> server_says_tls(pgcoro::connection& c)
{
    auto r = co_await c.query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()");
    if (!r)
    {
        ADD_FAILURE() << r.error();
        co_return std::nullopt;
    }
    co_return r->get<bool>(0, 0).value_or(false);
}

// Makes the server present `cert` to new connections (ALTER SYSTEM + reload over the unix
// socket, which never uses TLS), or its usual certificate when `cert` is empty, and waits
// (at most 5 s) until a new session reports the change.
asio::awaitable<bool> serve_certificate(const tls_info& t, const std::string& cert)
{
    auto ex = co_await asio::this_coro::executor;
    auto admin_cfg = test_server::get().unix_socket();
    if (!admin_cfg)
        co_return false;
    auto admin = co_await pgcoro::open_connection(ex, *admin_cfg);
    if (!admin)
    {
        ADD_FAILURE() << admin.error();
        co_return false;
    }
    std::string quoted = "'";
    for (char ch : cert)
        quoted += ch == '\'' ? std::string("''") : std::string(1, ch);
    quoted += "'";
    std::string sql = cert.empty() ? std::string("ALTER SYSTEM RESET ssl_cert_file")
                                   : "ALTER SYSTEM SET ssl_cert_file = " + quoted;
    if (auto r = co_await admin->query(sql); !r)
    {
        ADD_FAILURE() << sql << ": " << r.error();
        co_return false;
    }
    if (auto r = co_await admin->query("SELECT pg_reload_conf()"); !r)
    {
        ADD_FAILURE() << r.error();
        co_return false;
    }
    const std::string want = cert.empty() ? t.server_cert : cert;
    for (int i = 0; i < 250; ++i)
    {
        auto fresh = co_await pgcoro::open_connection(ex, *admin_cfg);
        if (fresh)
        {
            auto r = co_await fresh->query("SELECT current_setting('ssl_cert_file')");
            if (r && r->get<std::string>(0, 0).value_or("") == want)
                co_return true;
        }
        co_await sleep_for(20ms);
    }
    ADD_FAILURE() << "the server did not switch to " << want << " within 5 s";
    co_return false;
}

// A TLS rejection must be a configuration error: `tls_failed`, with libpq's reason in the
// message, not transient; retry() must try it once; a circuit breaker must not open on it.
asio::awaitable<void> expect_configuration_error(const pgcoro::connect_config& cfg,
                                                 const std::string& reason)
{
    auto ex = co_await asio::this_coro::executor;

    pgcoro::connection c(ex);
    auto r = co_await c.connect(cfg);
    PGCORO_CO_ASSERT(!r.has_value());
    EXPECT_TRUE(r.error().is(errc::tls_failed)) << r.error();
    EXPECT_NE(r.error().message.find(reason), std::string::npos) << r.error();
    EXPECT_NE(r.error().message.find("sslmode=" + std::string(to_string(cfg.sslmode))),
              std::string::npos)
        << r.error();
    EXPECT_TRUE(r.error().state.empty()) << r.error();
    EXPECT_FALSE(r.error().transient()) << r.error();
    EXPECT_FALSE(c.is_open());

    // retry(): one attempt, then the same error.
    int attempts = 0;
    pgcoro::retry_policy policy;
    policy.max_attempts = 4;
    policy.backoff.initial = 5ms;
    policy.backoff.cap = 20ms;
    auto connect_once = [&]() -> asio::awaitable<pgcoro::expected<void>>
    {
        ++attempts;
        pgcoro::connection conn(ex);
        co_return co_await conn.connect(cfg);
    };
    auto retried = co_await pgcoro::retry(policy, connect_once);
    PGCORO_CO_ASSERT(!retried.has_value());
    EXPECT_EQ(attempts, 1) << retried.error();
    EXPECT_TRUE(retried.error().is(errc::tls_failed)) << retried.error();

    // A breaker that would open after 2 counted failures: 6 rejections leave it closed, and
    // every call reaches the server (none is turned away with circuit_open).
    pgcoro::breaker_config bc;
    bc.failure_threshold = 2;
    bc.failure_rate_threshold = 0.5;
    bc.window_size = 4;
    bc.minimum_calls = 2;
    bc.open_duration = 30s;
    pgcoro::circuit_breaker breaker(bc);
    int transitions = 0;
    breaker.on_transition([&](const pgcoro::breaker_transition&) { ++transitions; });
    attempts = 0;
    for (int i = 0; i < 6; ++i)
    {
        auto b = co_await breaker.run(connect_once);
        EXPECT_TRUE(!b && b.error().is(errc::tls_failed))
            << (b ? "connected" : b.error().to_string());
    }
    EXPECT_EQ(attempts, 6);
    EXPECT_EQ(breaker.state(), pgcoro::breaker_state::closed);
    EXPECT_EQ(transitions, 0);
}

// Tests that make the server present another certificate; TearDown restores the usual one.
class TlsServerCertificate : public ::testing::Test
{
protected:
    void SetUp() override
    {
        info_ = tls();
        if (!info_)
            GTEST_SKIP() << "no TLS cluster: run through ctest (fixture tls_cluster)";
    }
    void TearDown() override
    {
        if (!swapped_)
            return;
        asio::io_context io;
        run(
            io,
            [this]() -> asio::awaitable<void>
            {
                EXPECT_TRUE(co_await serve_certificate(*info_, ""));
            }(),
            30s);
    }
    asio::awaitable<bool> serve(const std::string& cert)
    {
        swapped_ = true;
        co_return co_await serve_certificate(*info_, cert);
    }
    // With sslmode=require (TLS, no checks) the same server accepts us: the rejection is
    // about the certificate, not about reaching the server. (With a root certificate file
    // that exists, libpq turns require into verify-ca, so point it at none.)
    asio::awaitable<void> expect_plain_tls_works()
    {
        auto cfg = verified(*info_);
        cfg.sslmode = ssl_mode::require;
        cfg.sslrootcert = info_->dir + "/no-such-root.crt";
        auto c = co_await pgcoro::open_connection(co_await asio::this_coro::executor, cfg);
        PGCORO_CO_ASSERT(c.has_value());
        EXPECT_EQ(PQsslInUse(c->native_handle()), 1);
    }

    std::optional<tls_info> info_;
    bool swapped_ = false;
};

} // namespace

TEST(TlsVerifyFull, RightCaConnectsOverTls)
{
    PGCORO_REQUIRE_TLS(t);
    asio::io_context io;
    run(
        io,
        [&]() -> asio::awaitable<void>
        {
            auto ex = co_await asio::this_coro::executor;
            for (const char* host : {"127.0.0.1", "localhost"})
            {
                auto c = co_await pgcoro::open_connection(ex, verified(*t, host));
                PGCORO_CO_ASSERT(c.has_value());
                EXPECT_EQ(PQsslInUse(c->native_handle()), 1) << host;
                const char* protocol = PQsslAttribute(c->native_handle(), "protocol");
                EXPECT_TRUE(protocol && std::string(protocol).rfind("TLSv1.", 0) == 0) << host;
                EXPECT_EQ(co_await server_says_tls(*c), std::optional<bool>(true)) << host;
            }

            // Through a pool as well.
            pgcoro::pool_config pc;
            pc.min_size = 1;
            pc.max_size = 2;
            pgcoro::pool pool(ex, verified(*t), pc);
            PGCORO_CO_ASSERT(co_await pool.warmup());
            auto l = co_await pool.acquire();
            PGCORO_CO_ASSERT(l.has_value());
            EXPECT_EQ(PQsslInUse((**l).native_handle()), 1);
            EXPECT_EQ(co_await server_says_tls(**l), std::optional<bool>(true));
            l->release();
            co_await pool.close(1s);

            // The same checks do tell a plain connection apart.
            auto plain_cfg = verified(*t);
            plain_cfg.sslmode = ssl_mode::disable;
            auto plain = co_await pgcoro::open_connection(ex, plain_cfg);
            PGCORO_CO_ASSERT(plain.has_value());
            EXPECT_EQ(PQsslInUse(plain->native_handle()), 0);
            EXPECT_EQ(co_await server_says_tls(*plain), std::optional<bool>(false));
        }(),
        30s);
}

// The certificate names localhost and 127.0.0.1. Connecting by a name it does not carry is
// what a wrong DNS entry or a man in the middle looks like.
TEST(TlsVerifyFull, WrongHostNameIsAConfigurationError)
{
    PGCORO_REQUIRE_TLS(t);
    asio::io_context io;
    run(
        io,
        [&]() -> asio::awaitable<void>
        {
            pgcoro::connect_config cfg;
            if (t->ipv6)
                cfg = verified(*t, "::1"); // the server listens there too
            else
            {
                // No IPv6 loopback: reach 127.0.0.1 but check the certificate against a name
                // it does not carry (libpq's own host/hostaddr split, as after a DNS lookup).
                cfg = verified(*t, "127.0.0.1");
                cfg.extra.emplace_back("host", "db.pgcoro.invalid");
            }
            co_await expect_configuration_error(cfg, "does not match host name");
        }(),
        30s);
}

TEST(TlsVerifyFull, ClientTrustingAnotherCaIsAConfigurationError)
{
    PGCORO_REQUIRE_TLS(t);
    asio::io_context io;
    run(
        io,
        [&]() -> asio::awaitable<void>
        {
            auto cfg = verified(*t);
            cfg.sslrootcert = t->unknown_ca;
            co_await expect_configuration_error(cfg, "certificate verify failed");
        }(),
        30s);
}

TEST(TlsVerifyFull, MissingRootCertificateIsAConfigurationError)
{
    PGCORO_REQUIRE_TLS(t);
    asio::io_context io;
    run(
        io,
        [&]() -> asio::awaitable<void>
        {
            auto cfg = verified(*t);
            cfg.sslrootcert = t->dir + "/no-such-root.crt";
            co_await expect_configuration_error(cfg, "root certificate file");
        }(),
        30s);
}

TEST_F(TlsServerCertificate, UnknownCaIsAConfigurationError)
{
    asio::io_context io;
    run(
        io,
        [&]() -> asio::awaitable<void>
        {
            PGCORO_CO_ASSERT(co_await serve(info_->unknown_ca_cert));
            co_await expect_configuration_error(verified(*info_), "certificate verify failed");
            co_await expect_plain_tls_works();
        }(),
        30s);
}

TEST_F(TlsServerCertificate, ExpiredCertificateIsAConfigurationError)
{
    asio::io_context io;
    run(
        io,
        [&]() -> asio::awaitable<void>
        {
            PGCORO_CO_ASSERT(co_await serve(info_->expired_cert));
            co_await expect_configuration_error(verified(*info_), "certificate verify failed");
            // Expiry is checked even without the host-name check.
            auto ca_only = verified(*info_);
            ca_only.sslmode = ssl_mode::verify_ca;
            co_await expect_configuration_error(ca_only, "certificate verify failed");
            co_await expect_plain_tls_works();
        }(),
        30s);
}

// The production profile from the environment: verify-full by default, so a DATABASE_URL that
// only names the CA connects with verified TLS; sslmode=disable is refused until
// PGCORO_ALLOW_INSECURE allows it.
TEST(TlsProduction, ProfileConnectsWithVerifiedTlsAndRefusesDisable)
{
    PGCORO_REQUIRE_TLS(t);
    const auto& srv = test_server::get();
    const std::string url = "postgresql://" + srv.tcp().user +
                            "@localhost:" + std::to_string(srv.port()) + "/" + srv.tcp().dbname;
    auto s = pgcoro::settings_from_env(pgcoro::env_from_map(
        {{"PGCORO_ENV", "production"}, {"DATABASE_URL", url + "?sslrootcert=" + t->ca}}));
    ASSERT_TRUE(s) << s.error();
    ASSERT_EQ(s->connect.sslmode, ssl_mode::verify_full);

    auto insecure = pgcoro::settings_from_env(pgcoro::env_from_map(
        {{"PGCORO_ENV", "production"}, {"DATABASE_URL", url + "?sslmode=disable"}}));
    ASSERT_FALSE(insecure);
    EXPECT_NE(insecure.error().to_string().find(
                  "DATABASE_URL sslmode=disable is not allowed in the production profile"),
              std::string::npos)
        << insecure.error();
    auto allowed =
        pgcoro::settings_from_env(pgcoro::env_from_map({{"PGCORO_ENV", "production"},
                                                        {"DATABASE_URL", url + "?sslmode=disable"},
                                                        {"PGCORO_ALLOW_INSECURE", "1"}}));
    ASSERT_TRUE(allowed) << allowed.error();

    asio::io_context io;
    run(
        io,
        [&]() -> asio::awaitable<void>
        {
            auto ex = co_await asio::this_coro::executor;
            pgcoro::pool pool(ex, s->connect, s->pool);
            auto l = co_await pool.acquire();
            PGCORO_CO_ASSERT(l.has_value());
            EXPECT_EQ(PQsslInUse((**l).native_handle()), 1);
            EXPECT_EQ(co_await server_says_tls(**l), std::optional<bool>(true));
            l->release();
            co_await pool.close(1s);

            auto plain = co_await pgcoro::open_connection(ex, allowed->connect);
            PGCORO_CO_ASSERT(plain.has_value());
            EXPECT_EQ(PQsslInUse(plain->native_handle()), 0);
        }(),
        30s);
}
