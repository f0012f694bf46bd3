// The production profile insists on TLS (issue #7, scenario 7): an sslmode that may run
// without TLS over TCP (disable, allow, prefer) is a configuration error naming where it came
// from, unless PGCORO_ALLOW_INSECURE (or settings_overrides::allow_insecure) allows it.
#include <pgcoro/error.hpp>
#include <pgcoro/settings.hpp>
#include <pgcoro/validate.hpp>

#include <gtest/gtest.h>

#include <string>

using env_map = std::map<std::string, std::string, std::less<>>;
using pgcoro::ssl_mode;

namespace
{
tl::expected<pgcoro::settings, pgcoro::config_errors>
from(env_map vars, const pgcoro::settings_overrides& code = {})
{
    return pgcoro::settings_from_env(pgcoro::env_from_map(std::move(vars)), code);
}

bool contains(const std::string& text, const std::string& part)
{
    return text.find(part) != std::string::npos;
}
} // namespace

static_assert(pgcoro::always_tls(ssl_mode::require));
static_assert(pgcoro::always_tls(ssl_mode::verify_ca));
static_assert(pgcoro::always_tls(ssl_mode::verify_full));
static_assert(!pgcoro::always_tls(ssl_mode::prefer));
static_assert(!pgcoro::always_tls(ssl_mode::allow));
static_assert(!pgcoro::always_tls(ssl_mode::disable));

TEST(Settings_ProductionTls, RefusesEveryNonTlsSslmodeFromTheUrl)
{
    for (const char* mode : {"disable", "allow", "prefer"})
    {
        auto s = from(
            {{"PGCORO_ENV", "production"},
             {"DATABASE_URL", std::string("postgres://app@db.example:6543/app?sslmode=") + mode}});
        ASSERT_FALSE(s) << mode;
        ASSERT_EQ(s.error().size(), 1u) << s.error();
        const auto& e = s.error().items[0];
        EXPECT_EQ(e.source, "DATABASE_URL parameter sslmode");
        EXPECT_EQ(e.field, "connect.sslmode");
        EXPECT_EQ(e.value, mode);
        std::string msg = s.error().to_string();
        EXPECT_TRUE(contains(msg, std::string("DATABASE_URL sslmode=") + mode +
                                      " is not allowed in the production profile"))
            << msg;
        EXPECT_TRUE(contains(msg, "db.example:6543")) << msg;
        EXPECT_TRUE(contains(msg, "set PGCORO_ALLOW_INSECURE=1 to allow it")) << msg;
        // One of the config errors like any other: as a pgcoro::error it is config_invalid.
        EXPECT_TRUE(s.error().to_error().is(pgcoro::errc::config_invalid));
        EXPECT_FALSE(s.error().to_error().transient());
    }
}

TEST(Settings_ProductionTls, NamesTheEnvVarOrCodeThatSetTheSslmode)
{
    auto s = from({{"APP_ENV", "prod"},
                   {"DATABASE_URL", "postgres://db.example/app"},
                   {"PGCORO_SSLMODE", "disable"}});
    ASSERT_FALSE(s);
    EXPECT_TRUE(contains(s.error().to_string(), "env PGCORO_SSLMODE (connect.sslmode) = "
                                                "\"disable\": DATABASE_URL sslmode=disable is "
                                                "not allowed in the production profile"))
        << s.error();

    pgcoro::settings_overrides code;
    code.sslmode = ssl_mode::prefer;
    s = from({{"PGCORO_ENV", "production"}, {"DATABASE_URL", "postgres://db.example/app"}}, code);
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().items.at(0).source, "code (settings_overrides)") << s.error();
}

TEST(Settings_ProductionTls, AcceptsTlsModesAndTheProfileDefault)
{
    for (const char* mode : {"require", "verify-ca", "verify-full"})
    {
        auto s = from({{"PGCORO_ENV", "production"},
                       {"DATABASE_URL", std::string("postgres://db.example/app?sslmode=") + mode}});
        EXPECT_TRUE(s) << mode << "\n" << s.error();
    }
    auto s = from({{"PGCORO_ENV", "production"}, {"DATABASE_URL", "postgres://db.example/app"}});
    ASSERT_TRUE(s) << s.error();
    EXPECT_EQ(s->connect.sslmode, ssl_mode::verify_full);
    // ssl=true is libpq's spelling of require.
    s = from(
        {{"PGCORO_ENV", "production"}, {"DATABASE_URL", "postgres://db.example/app?ssl=true"}});
    EXPECT_TRUE(s) << s.error();
}

TEST(Settings_ProductionTls, OnlyTheProductionProfileInsists)
{
    for (const char* prof : {"development", "staging"})
    {
        auto s = from(
            {{"PGCORO_ENV", prof}, {"DATABASE_URL", "postgres://db.example/app?sslmode=disable"}});
        ASSERT_TRUE(s) << prof << "\n" << s.error();
        EXPECT_EQ(s->connect.sslmode, ssl_mode::disable);
    }
}

TEST(Settings_ProductionTls, AllowInsecureFromEnvOrCode)
{
    const env_map base{{"PGCORO_ENV", "production"},
                       {"DATABASE_URL", "postgres://db.example/app?sslmode=disable"}};
    for (const char* yes : {"1", "true", "YES", "on"})
    {
        auto env = base;
        env["PGCORO_ALLOW_INSECURE"] = yes;
        auto s = from(env);
        ASSERT_TRUE(s) << yes << "\n" << s.error();
        EXPECT_EQ(s->connect.sslmode, ssl_mode::disable);
    }
    auto env = base;
    env["PGCORO_ALLOW_INSECURE"] = "0";
    EXPECT_FALSE(from(env));

    // A value that is no boolean is an error of its own (and allows nothing).
    env["PGCORO_ALLOW_INSECURE"] = "maybe";
    auto s = from(env);
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().size(), 2u) << s.error();
    EXPECT_TRUE(contains(s.error().to_string(), "env PGCORO_ALLOW_INSECURE = \"maybe\": not a "
                                                "boolean"))
        << s.error();

    // Code beats env, both ways.
    pgcoro::settings_overrides code;
    code.allow_insecure = true;
    env["PGCORO_ALLOW_INSECURE"] = "0";
    EXPECT_TRUE(from(env, code));
    code.allow_insecure = false;
    env["PGCORO_ALLOW_INSECURE"] = "1";
    EXPECT_FALSE(from(env, code));
}

TEST(Settings_ProductionTls, UnixSocketsNeedNoTls)
{
    auto s = from({{"PGCORO_ENV", "production"},
                   {"DATABASE_URL", "postgresql:///app?host=/run/postgresql&sslmode=disable"}});
    ASSERT_TRUE(s) << s.error();
    EXPECT_EQ(s->connect.hosts.at(0).host, "/run/postgresql");
    // As soon as one host is reached over TCP, the rule applies.
    pgcoro::connect_config c;
    c.sslmode = ssl_mode::prefer;
    c.hosts = {{"/run/postgresql", 5432}};
    EXPECT_FALSE(pgcoro::may_run_without_tls(c));
    c.hosts.push_back({"10.0.0.7", 5432});
    EXPECT_TRUE(pgcoro::may_run_without_tls(c));
    c.sslmode = ssl_mode::require;
    EXPECT_FALSE(pgcoro::may_run_without_tls(c));
}

TEST(Settings_ProductionTls, DirectUrlIsCheckedToo)
{
    auto s = from({{"PGCORO_ENV", "production"},
                   {"DATABASE_URL", "postgres://bouncer.example:6432/app?pgbouncer=true"},
                   {"DIRECT_DATABASE_URL", "postgres://primary.example/app?sslmode=allow"}});
    ASSERT_FALSE(s);
    ASSERT_EQ(s.error().size(), 1u) << s.error();
    EXPECT_EQ(s.error().items[0].source, "DIRECT_DATABASE_URL parameter sslmode");
    EXPECT_TRUE(contains(s.error().to_string(), "DIRECT_DATABASE_URL sslmode=allow is not allowed"))
        << s.error();
    EXPECT_TRUE(contains(s.error().to_string(), "primary.example:5432")) << s.error();

    // An insecure main URL is inherited by the direct one: both are reported.
    s = from({{"PGCORO_ENV", "production"},
              {"DATABASE_URL", "postgres://bouncer.example:6432/app?sslmode=prefer"},
              {"DIRECT_DATABASE_URL", "postgres://primary.example/app"}});
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().size(), 2u) << s.error();
}

TEST(Settings_ProductionTls, MessageNeverShowsThePassword)
{
    auto s =
        from({{"PGCORO_ENV", "production"},
              {"DATABASE_URL", "postgres://app:S3cr3t-pw-4711@db.example/app?sslmode=disable"}});
    ASSERT_FALSE(s);
    EXPECT_FALSE(contains(s.error().to_string(), "S3cr3t-pw-4711")) << s.error();
}

TEST(Error_Tls, TlsFailedIsNeverTransient)
{
    EXPECT_EQ(pgcoro::to_string(pgcoro::errc::tls_failed), "tls_failed");
    EXPECT_FALSE(pgcoro::is_transient(pgcoro::errc::tls_failed, {}));
    pgcoro::error e(pgcoro::errc::tls_failed, "certificate verify failed");
    EXPECT_FALSE(e.transient());
    EXPECT_EQ(e.to_string(), "tls_failed: certificate verify failed");
    // The same failure reported as a plain connect failure would be retried: that is why
    // TLS rejections need their own code.
    EXPECT_TRUE(pgcoro::is_transient(pgcoro::errc::connect_failed, {}));
}
