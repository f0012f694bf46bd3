// Tests for settings.hpp: every env var, precedence (code > env > URL > profile), *_FILE
// secrets, every problem at once, and that no password ever reaches a message.
#include <pgcoro/settings.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

using namespace std::chrono_literals;
using env_map = std::map<std::string, std::string, std::less<>>;

namespace
{
constexpr const char* test_password = "Tr0ub4dor&3-hunter2";

tl::expected<pgcoro::settings, pgcoro::config_errors>
from(env_map vars, const pgcoro::settings_overrides& code = {})
{
    return pgcoro::settings_from_env(pgcoro::env_from_map(std::move(vars)), code);
}

std::string temp_file(const std::string& content)
{
    static int n = 0;
    std::string path = ::testing::TempDir() + "pgcoro_secret_" + std::to_string(++n);
    std::ofstream(path, std::ios::binary) << content;
    return path;
}
} // namespace

TEST(Settings_Profile, DefaultsToDevelopment)
{
    auto s = from({});
    ASSERT_TRUE(s) << s.error();
    EXPECT_EQ(s->prof, pgcoro::profile::development);
    EXPECT_EQ(s->pool, pgcoro::pool_preset(pgcoro::profile::development));
    EXPECT_EQ(s->log, pgcoro::log_level::debug);
}

TEST(Settings_Profile, PgcoroEnvBeatsAppEnv)
{
    auto s = from({{"PGCORO_ENV", "production"}, {"APP_ENV", "staging"}});
    ASSERT_TRUE(s) << s.error();
    EXPECT_EQ(s->prof, pgcoro::profile::production);
    EXPECT_EQ(s->connect.sslmode, pgcoro::ssl_mode::verify_full);
    EXPECT_EQ(s->connect.statement_timeout, 30s);
    EXPECT_EQ(s->pool.max_size, 15u);
    s = from({{"APP_ENV", "staging"}});
    ASSERT_TRUE(s);
    EXPECT_EQ(s->prof, pgcoro::profile::staging);
}

TEST(Settings_Profile, UnknownProfileIsAnError)
{
    auto s = from({{"APP_ENV", "qa"}});
    ASSERT_FALSE(s);
    EXPECT_NE(s.error().to_string().find("env APP_ENV"), std::string::npos);
    EXPECT_NE(s.error().to_string().find("\"qa\""), std::string::npos);
}

struct env_case
{
    const char* var;
    const char* value;
    const char* field; // "" = expect an error
    std::string (*get)(const pgcoro::settings&);
    const char* expect; // expected value, or expected error text
};

std::string fmt(std::chrono::milliseconds d)
{
    return pgcoro::detail::format_duration(d);
}

class Settings_EnvVars : public ::testing::TestWithParam<env_case>
{
};

TEST_P(Settings_EnvVars, ParsesOrExplains)
{
    const auto& c = GetParam();
    auto s = from({{c.var, c.value}});
    if (c.get)
    {
        ASSERT_TRUE(s) << c.var << "=" << c.value << "\n" << s.error();
        EXPECT_EQ(c.get(*s), c.expect) << c.var;
    }
    else
    {
        ASSERT_FALSE(s) << c.var << "=" << c.value;
        std::string msg = s.error().to_string();
        EXPECT_NE(msg.find(c.var), std::string::npos) << msg;
        EXPECT_NE(msg.find(c.expect), std::string::npos) << msg;
        EXPECT_NE(msg.find("allowed:"), std::string::npos) << msg;
    }
}

#define GET(expr)                                                                                  \
    [](const pgcoro::settings& s) -> std::string                                                   \
    {                                                                                              \
        return expr;                                                                               \
    }
INSTANTIATE_TEST_SUITE_P(
    Table, Settings_EnvVars,
    ::testing::Values(
        env_case{"DATABASE_CONNECTION_LIMIT", "20", "", GET(std::to_string(s.pool.max_size)), "20"},
        env_case{"DATABASE_CONNECTION_LIMIT", "abc", "", nullptr, "not a number"},
        env_case{"DATABASE_CONNECTION_LIMIT", "-1", "", nullptr, "negative"},
        env_case{"DATABASE_CONNECTION_LIMIT", "0", "", nullptr, "out of range"},
        env_case{"DATABASE_CONNECTION_LIMIT", "", "", nullptr, "empty"},
        env_case{"DATABASE_POOL_TIMEOUT", "3", "", GET(fmt(s.pool.acquire_timeout)), "3s"},
        env_case{"DATABASE_POOL_TIMEOUT", "2500ms", "", GET(fmt(s.pool.acquire_timeout)), "2500ms"},
        env_case{"DATABASE_POOL_TIMEOUT", "5 fortnights", "", nullptr, "unknown unit"},
        env_case{"DATABASE_POOL_TIMEOUT", "2h", "", nullptr, "out of range"},
        env_case{"PGCORO_POOL_MIN_SIZE", "2", "", GET(std::to_string(s.pool.min_size)), "2"},
        env_case{"PGCORO_POOL_MIN_SIZE", "6", "", nullptr, "must not exceed max_size"},
        env_case{"PGCORO_IDLE_TIMEOUT", "2min", "", GET(fmt(s.pool.idle_timeout)), "2min"},
        env_case{"PGCORO_IDLE_TIMEOUT", "0", "", GET(fmt(s.pool.idle_timeout)), "0"},
        env_case{"PGCORO_MAX_LIFETIME", "1h", "", GET(fmt(s.pool.max_lifetime)), "1h"},
        env_case{"PGCORO_MAX_LIFETIME_JITTER", "30s", "", GET(fmt(s.pool.max_lifetime_jitter)),
                 "30s"},
        env_case{"PGCORO_MAX_LIFETIME_JITTER", "30min", "", nullptr, "below max_lifetime"},
        env_case{"PGCORO_VALIDATE_AFTER_IDLE", "0", "", GET(fmt(s.pool.validate_after_idle)), "0"},
        env_case{"PGCORO_VALIDATION_TIMEOUT", "500ms", "", GET(fmt(s.pool.validation_timeout)),
                 "500ms"},
        env_case{"PGCORO_VALIDATION_TIMEOUT", "6s", "", nullptr, "below acquire_timeout"},
        env_case{"PGCORO_KEEPALIVE_INTERVAL", "30s", "", GET(fmt(s.pool.keepalive_interval)),
                 "30s"},
        env_case{"PGCORO_KEEPALIVE_INTERVAL", "1h", "", nullptr, "below max_lifetime"},
        env_case{"PGCORO_LEAK_THRESHOLD", "1min", "", GET(fmt(s.pool.leak_threshold)), "1min"},
        env_case{"PGCORO_MAX_WAITERS", "100", "", GET(std::to_string(s.pool.max_waiters)), "100"},
        env_case{"PGCORO_MAX_WAITERS", "1e3", "", nullptr, "not a number"},
        env_case{"PGCORO_SLOW_QUERY_THRESHOLD", "250", "", GET(fmt(s.pool.slow_query_threshold)),
                 "250ms"},
        env_case{"PGCORO_QUERY_TIMEOUT", "45s", "", GET(fmt(s.pool.query_timeout)), "45s"},
        env_case{"PGCORO_MAX_CONCURRENT_CONNECTS", "4", "",
                 GET(std::to_string(s.pool.max_concurrent_connects)), "4"},
        env_case{"PGCORO_MAX_CONCURRENT_CONNECTS", "0", "", nullptr, "out of range"},
        env_case{"PGCORO_REFILL_BACKOFF_INITIAL", "50", "", GET(fmt(s.pool.refill_backoff_initial)),
                 "50ms"},
        env_case{"PGCORO_REFILL_BACKOFF_INITIAL", "10s", "", nullptr,
                 "must not exceed refill_backoff_max"},
        env_case{"PGCORO_REFILL_BACKOFF_MAX", "1min", "", GET(fmt(s.pool.refill_backoff_max)),
                 "1min"},
        env_case{"PGCORO_CONNECT_TIMEOUT", "5", "", GET(fmt(s.connect.connect_timeout)), "5s"},
        env_case{"PGCORO_STATEMENT_TIMEOUT", "1500", "", GET(fmt(s.connect.statement_timeout)),
                 "1500ms"},
        env_case{"PGCORO_CANCEL_TIMEOUT", "0", "", nullptr, "out of range"},
        env_case{"PGCORO_KEEPALIVES_IDLE", "60", "",
                 GET(std::to_string(s.connect.keepalives_idle.count())), "60"},
        env_case{"PGCORO_SSLMODE", "verify-ca", "", GET(std::string(to_string(s.connect.sslmode))),
                 "verify-ca"},
        env_case{"PGCORO_SSLMODE", "VERIFY_FULL", "", nullptr, "unknown sslmode"},
        env_case{"PGCORO_SSLROOTCERT", "/etc/ca.pem", "", GET(s.connect.sslrootcert),
                 "/etc/ca.pem"},
        env_case{"PGCORO_SSLCERT", "/c.pem", "", GET(s.connect.sslcert), "/c.pem"},
        env_case{"PGCORO_SSLKEY", "/k.pem", "", GET(s.connect.sslkey), "/k.pem"},
        env_case{"PGCORO_APPLICATION_NAME", "billing", "", GET(s.connect.application_name),
                 "billing"},
        env_case{"PGCORO_PGBOUNCER", "on", "", GET(s.connect.pgbouncer ? "1" : "0"), "1"},
        env_case{"PGCORO_PGBOUNCER", "sometimes", "", nullptr, "not a boolean"},
        env_case{"PGCORO_STATEMENT_CACHE_SIZE", "256", "",
                 GET(std::to_string(s.connect.statement_cache_size)), "256"},
        env_case{"PGCORO_STATEMENT_CACHE_SIZE", "20000", "", nullptr, "out of range"},
        env_case{"PGCORO_LOG_LEVEL", "warn", "", GET(std::string(to_string(s.log))), "warn"},
        env_case{"PGCORO_LOG_LEVEL", "loud", "", nullptr, "unknown log level"},
        env_case{"DATABASE_URL", "", "", nullptr, "empty"},
        env_case{"DATABASE_URL", "postgres://h:5/db", "", GET(s.connect.hosts[0].host), "h"},
        env_case{"DIRECT_DATABASE_URL", "postgres://direct/db", "",
                 GET(s.direct ? s.direct->hosts[0].host : ""), "direct"},
        env_case{"DIRECT_DATABASE_URL", "postgres://direct:x/db", "", nullptr, "invalid port"}));
#undef GET

TEST(Settings_Precedence, CodeBeatsEnvBeatsUrlBeatsProfile)
{
    // Setup: max_size from all four layers; acquire_timeout from URL and profile only.
    env_map env{{"PGCORO_ENV", "production"},
                {"DATABASE_URL", "postgres://h/db?connection_limit=30&pool_timeout=7"},
                {"DATABASE_CONNECTION_LIMIT", "40"}};
    auto s = from(env);
    ASSERT_TRUE(s) << s.error();
    EXPECT_EQ(s->pool.max_size, 40u);       // env beats URL
    EXPECT_EQ(s->pool.acquire_timeout, 7s); // URL beats profile (10 s)
    EXPECT_EQ(s->pool.idle_timeout, 10min); // profile
    pgcoro::settings_overrides code;
    code.max_size = 50;
    code.prof = pgcoro::profile::staging;
    s = from(env, code);
    ASSERT_TRUE(s) << s.error();
    EXPECT_EQ(s->pool.max_size, 50u); // code beats env
    EXPECT_EQ(s->prof, pgcoro::profile::staging);
}

TEST(Settings_Precedence, UrlOverridesProfileSslmode)
{
    // (Production refuses sslmode=disable unless PGCORO_ALLOW_INSECURE allows it:
    // tests/unit/production_tls_test.cpp.)
    auto s = from({{"PGCORO_ENV", "production"},
                   {"DATABASE_URL", "postgres://h/db?sslmode=disable"},
                   {"PGCORO_ALLOW_INSECURE", "1"}});
    ASSERT_TRUE(s) << s.error();
    EXPECT_EQ(s->connect.sslmode, pgcoro::ssl_mode::disable);
    s = from({{"PGCORO_ENV", "production"}, {"DATABASE_URL", "postgres://h/db?sslmode=require"}});
    ASSERT_TRUE(s) << s.error();
    EXPECT_EQ(s->connect.sslmode, pgcoro::ssl_mode::require);
}

TEST(Settings_Direct, BypassesPoolerAndKeepsItsOwnPassword)
{
    auto s = from({{"DATABASE_URL", "postgres://u:pooled@bouncer:6432/db?pgbouncer=true"},
                   {"DIRECT_DATABASE_URL", "postgres://u:direct@primary:5432/db"}});
    ASSERT_TRUE(s) << s.error();
    EXPECT_TRUE(s->connect.pgbouncer);
    ASSERT_TRUE(s->direct);
    EXPECT_FALSE(s->direct->pgbouncer);
    EXPECT_EQ(s->direct->hosts[0].host, "primary");
    EXPECT_EQ(s->direct->password.reveal(), "direct");
}

TEST(Settings_Secrets, PasswordFileBeatsUrlPassword)
{
    std::string path = temp_file(std::string(test_password) + "\n");
    auto s = from({{"DATABASE_URL", "postgres://u:frompath@h/db"}, {"PGCORO_PASSWORD_FILE", path}});
    ASSERT_TRUE(s) << s.error();
    EXPECT_EQ(s->connect.password.reveal(), test_password); // trailing newline removed
    s = from({{"DATABASE_PASSWORD_FILE", path}});
    ASSERT_TRUE(s) << s.error();
    EXPECT_EQ(s->connect.password.reveal(), test_password);
    std::remove(path.c_str());
}

TEST(Settings_Secrets, PasswordFileProblems)
{
    auto s = from({{"PGCORO_PASSWORD_FILE", "/nonexistent/pw"}});
    ASSERT_FALSE(s);
    EXPECT_NE(s.error().to_string().find("cannot be opened"), std::string::npos);
    std::string empty = temp_file("");
    s = from({{"DATABASE_PASSWORD_FILE", empty}});
    ASSERT_FALSE(s);
    EXPECT_NE(s.error().to_string().find("is empty"), std::string::npos);
    s = from({{"PGCORO_PASSWORD_FILE", "/a"}, {"DATABASE_PASSWORD_FILE", "/b"}});
    ASSERT_FALSE(s);
    EXPECT_NE(s.error().to_string().find("different files"), std::string::npos);
    std::remove(empty.c_str());
}

TEST(Settings_Errors, EveryProblemAtOnceWithSource)
{
    auto s = from({{"PGCORO_ENV", "prod"},
                   {"DATABASE_CONNECTION_LIMIT", "lots"},
                   {"DATABASE_POOL_TIMEOUT", "-5"},
                   {"PGCORO_MAX_WAITERS", ""},
                   {"DATABASE_URL", "postgres://h/db?bogus=1"}});
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().size(), 4u) << s.error();
    std::string msg = s.error().to_string();
    EXPECT_NE(msg.find("env DATABASE_CONNECTION_LIMIT (pool.max_size) = \"lots\""),
              std::string::npos)
        << msg;
    EXPECT_NE(msg.find("DATABASE_URL parameter bogus"), std::string::npos) << msg;
}

TEST(Settings_Errors, CrossFieldConflictNamesBothOrigins)
{
    auto s = from(
        {{"DATABASE_URL", "postgres://h/db?pool_timeout=1"}, {"PGCORO_VALIDATION_TIMEOUT", "2s"}});
    ASSERT_FALSE(s);
    std::string msg = s.error().to_string();
    EXPECT_NE(msg.find("env PGCORO_VALIDATION_TIMEOUT"), std::string::npos) << msg;
    EXPECT_NE(msg.find("from DATABASE_URL parameter pool_timeout"), std::string::npos) << msg;
}

TEST(Settings_Print, IsReadableAndRedacted)
{
    auto s = from({{"DATABASE_URL", "postgres://u:pw1234567@h/db"}});
    ASSERT_TRUE(s);
    std::ostringstream os;
    os << *s;
    EXPECT_NE(os.str().find("postgresql://u:****@h:5432/db"), std::string::npos) << os.str();
    EXPECT_EQ(os.str().find("pw1234567"), std::string::npos);
}

TEST(Settings_StatementCache, UrlParameterAndThePgbouncerRule)
{
    auto ok = from({{"DATABASE_URL", "postgres://app@db/app?statement_cache_size=64"}});
    ASSERT_TRUE(ok) << ok.error();
    EXPECT_EQ(ok->connect.statement_cache_size, 64u);
    EXPECT_NE(ok->to_string().find("statement_cache_size=64"), std::string::npos);

    // Through pgbouncer's transaction pooling a named statement would be prepared on one server
    // session and executed on another: refused, naming both values and where they came from.
    auto bad = from({{"DATABASE_URL", "postgres://app@db/app?pgbouncer=true"},
                     {"PGCORO_STATEMENT_CACHE_SIZE", "64"}});
    ASSERT_FALSE(bad);
    std::string msg = bad.error().to_string();
    EXPECT_NE(msg.find("connect.statement_cache_size"), std::string::npos) << msg;
    EXPECT_NE(msg.find("PGCORO_STATEMENT_CACHE_SIZE"), std::string::npos) << msg;
    EXPECT_NE(msg.find("must be 0 with pgbouncer=true"), std::string::npos) << msg;
    EXPECT_NE(msg.find("DATABASE_URL"), std::string::npos) << msg;
}
