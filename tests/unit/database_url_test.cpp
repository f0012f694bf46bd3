// Tests for database_url.hpp: URIs and key=value strings as libpq reads them, pgcoro's own
// parameters, unknown parameters, and redaction.
#include <pgcoro/database_url.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <string>

using namespace std::chrono_literals;

namespace
{
pgcoro::connect_config parse_ok(const std::string& url)
{
    auto r = pgcoro::parse_database_url(url);
    EXPECT_TRUE(r) << url << "\n" << (r ? "" : r.error().to_string());
    return r ? r->connect_config_with_settings() : pgcoro::connect_config{};
}
std::string parse_err(const std::string& url)
{
    auto r = pgcoro::parse_database_url(url);
    EXPECT_FALSE(r) << url;
    return r ? std::string() : r.error().to_string();
}
} // namespace

TEST(DatabaseUrl_Uri, FullForm)
{
    auto c = parse_ok("postgresql://alice:s3cret@db.example.com:6432/orders?application_name=x");
    ASSERT_EQ(c.hosts.size(), 1u);
    EXPECT_EQ(c.hosts[0].host, "db.example.com");
    EXPECT_EQ(c.hosts[0].port, 6432);
    EXPECT_EQ(c.user, "alice");
    EXPECT_EQ(c.password.reveal(), "s3cret");
    EXPECT_EQ(c.dbname, "orders");
    EXPECT_EQ(c.application_name, "x");
}

TEST(DatabaseUrl_Uri, BothSchemesAndMinimal)
{
    EXPECT_EQ(parse_ok("postgres://h").hosts[0].host, "h");
    auto c = parse_ok("postgresql://");
    EXPECT_EQ(c.hosts[0].host, "localhost"); // documented difference: TCP localhost
    EXPECT_EQ(c.hosts[0].port, 5432);
    EXPECT_EQ(parse_ok("postgresql:///mydb").dbname, "mydb");
}

TEST(DatabaseUrl_Uri, PercentEncodedPasswordAndUser)
{
    // Setup: a password holding every character that must be encoded.
    auto c = parse_ok("postgres://us%40er:p%40ss%3Aw%2Fo%3Frd%25@h/d%20b");
    EXPECT_EQ(c.user, "us@er");
    EXPECT_EQ(c.password.reveal(), "p@ss:w/o?rd%");
    EXPECT_EQ(c.dbname, "d b");
}

TEST(DatabaseUrl_Uri, UnencodedAtInPasswordStaysInPassword)
{
    auto c = parse_ok("postgres://u:p@ss@h:5433/db");
    EXPECT_EQ(c.password.reveal(), "p@ss");
    EXPECT_EQ(c.hosts[0].host, "h");
}

TEST(DatabaseUrl_Uri, Ipv6)
{
    auto c = parse_ok("postgres://[::1]:5433,[2001:db8::7]/db");
    ASSERT_EQ(c.hosts.size(), 2u);
    EXPECT_EQ(c.hosts[0].host, "::1");
    EXPECT_EQ(c.hosts[0].port, 5433);
    EXPECT_EQ(c.hosts[1].host, "2001:db8::7");
    EXPECT_EQ(c.hosts[1].port, 5432);
    EXPECT_NE(parse_err("postgres://[::1/db").find("missing ']'"), std::string::npos);
    EXPECT_NE(parse_err("postgres://[::1]x/db").find("after ']'"), std::string::npos);
}

TEST(DatabaseUrl_Uri, MultiHost)
{
    auto c = parse_ok("postgres://a:1,b,c:3/db?target_session_attrs=read-write");
    ASSERT_EQ(c.hosts.size(), 3u);
    EXPECT_EQ(c.hosts[0].port, 1);
    EXPECT_EQ(c.hosts[1].port, 5432);
    EXPECT_EQ(c.hosts[2].host, "c");
    ASSERT_EQ(c.extra.size(), 1u);
    EXPECT_EQ(c.extra[0].first, "target_session_attrs");
    // port= in the query: one for all, or one per host.
    c = parse_ok("postgres:///db?host=a,b&port=7,8");
    EXPECT_EQ(c.hosts[1].host, "b");
    EXPECT_EQ(c.hosts[1].port, 8);
    EXPECT_NE(parse_err("postgres://a,b/db?port=1,2,3").find("port count"), std::string::npos);
}

TEST(DatabaseUrl_Uri, UnixSockets)
{
    auto c = parse_ok("postgresql:///db?host=/var/run/postgresql&port=5439");
    EXPECT_EQ(c.hosts[0].host, "/var/run/postgresql");
    EXPECT_EQ(c.hosts[0].port, 5439);
    c = parse_ok("postgresql://%2Ftmp%2Fpg/db");
    EXPECT_EQ(c.hosts[0].host, "/tmp/pg");
    c = parse_ok("postgresql:///db?host=%2Frun%2Fpg");
    EXPECT_EQ(c.hosts[0].host, "/run/pg");
}

TEST(DatabaseUrl_Params, PgcoroParamsAreTakenOut)
{
    auto r = pgcoro::parse_database_url("postgres://h/db?connection_limit=20&pool_timeout=5"
                                        "&connect_timeout=7&statement_timeout=1500"
                                        "&pgbouncer=true&sslmode=verify-full&idle_timeout=2min");
    ASSERT_TRUE(r);
    EXPECT_TRUE(r->connect.extra.empty()); // none of them reaches libpq as-is
    pgcoro::connect_config c = r->connect;
    pgcoro::pool_config p;
    pgcoro::log_level l{};
    r->apply(c, p, l);
    EXPECT_EQ(p.max_size, 20u);
    EXPECT_EQ(p.acquire_timeout, 5s);       // plain integer: seconds
    EXPECT_EQ(c.connect_timeout, 7s);       // libpq unit: seconds
    EXPECT_EQ(c.statement_timeout, 1500ms); // PostgreSQL unit: milliseconds
    EXPECT_TRUE(c.pgbouncer);
    EXPECT_EQ(c.sslmode, pgcoro::ssl_mode::verify_full);
    EXPECT_EQ(p.idle_timeout, 2min);
}

TEST(DatabaseUrl_Params, SslTrueMeansRequire)
{
    EXPECT_EQ(parse_ok("postgres://h/db?ssl=true").sslmode, pgcoro::ssl_mode::require);
}

struct bad_param
{
    const char* query;
    const char* expect;
};

class DatabaseUrl_BadParams : public ::testing::TestWithParam<bad_param>
{
};

TEST_P(DatabaseUrl_BadParams, NamesParamValueAndRule)
{
    std::string msg = parse_err(std::string("postgres://h/db?") + GetParam().query);
    EXPECT_NE(msg.find(GetParam().expect), std::string::npos) << msg;
    EXPECT_NE(msg.find("DATABASE_URL parameter"), std::string::npos) << msg;
}

INSTANTIATE_TEST_SUITE_P(
    Table, DatabaseUrl_BadParams,
    ::testing::Values(bad_param{"connection_limit=abc", "not a number"},
                      bad_param{"connection_limit=-3", "negative"},
                      bad_param{"connection_limit=0", "out of range"},
                      bad_param{"connection_limit=", "empty"},
                      bad_param{"connection_limit=99999999999999999999999", "out of range"},
                      bad_param{"pool_timeout=10parsecs", "unknown unit \"parsecs\""},
                      bad_param{"pool_timeout=1.5s", "not a whole number"},
                      bad_param{"pool_timeout=0", "out of range"},
                      bad_param{"connect_timeout=2h", "out of range"},
                      bad_param{"pgbouncer=maybe", "not a boolean"},
                      bad_param{"sslmode=strict", "unknown sslmode"},
                      bad_param{"keepalives_idle=1500ms", "whole number of seconds"},
                      bad_param{"frobnicate=1", "frobnicate = \"(not shown)\": unknown parameter"},
                      bad_param{"options", "missing '='"}, bad_param{"a=b=c", "extra '='"}));

TEST(DatabaseUrl_Params, ReportsAllProblems)
{
    auto r = pgcoro::parse_database_url("postgres://h:0/db?x=1&connection_limit=q&y=2");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().size(), 4u) << r.error();
}

TEST(DatabaseUrl_Errors, SchemeAndGarbage)
{
    EXPECT_NE(parse_err("mysql://u:pw@h/db").find("unsupported scheme"), std::string::npos);
    EXPECT_NE(parse_err("just-a-name").find("neither"), std::string::npos);
    EXPECT_NE(parse_err("postgres://h:http/db").find("invalid port"), std::string::npos);
    EXPECT_NE(parse_err("postgres://h/d%zzb").find("percent-encoding"), std::string::npos);
}

TEST(DatabaseUrl_Conninfo, KeyValueWithQuoting)
{
    auto c = parse_ok("host=a,b port=1,2 dbname = 'my db' user=bob "
                      "password='it\\'s a \\\\secret' connection_limit=3 sslmode=require");
    ASSERT_EQ(c.hosts.size(), 2u);
    EXPECT_EQ(c.hosts[1].port, 2);
    EXPECT_EQ(c.dbname, "my db");
    EXPECT_EQ(c.password.reveal(), "it's a \\secret");
    EXPECT_EQ(c.sslmode, pgcoro::ssl_mode::require);
    EXPECT_NE(parse_err("host=a password='open").find("unterminated"), std::string::npos);
    EXPECT_NE(parse_err("host=a bogus=1").find("bogus"), std::string::npos);
    EXPECT_NE(parse_err("host a dbname=x").find("missing '='"), std::string::npos);
}

TEST(DatabaseUrl_Redact, HidesPasswordEverywhere)
{
    EXPECT_EQ(pgcoro::redact_url("postgres://u:hunter2@h/db"), "postgres://u:****@h/db");
    EXPECT_EQ(pgcoro::redact_url("postgres://u:hun@ter2@h/db?password=x&application_name=b"),
              "postgres://u:****@h/db?password=****&application_name=b");
    // An unknown key after a password may be the password's tail ("x&a=b"): not shown.
    EXPECT_EQ(pgcoro::redact_url("postgres://u:hun@ter2@h/db?password=x&a=b"),
              "postgres://u:****@h/db?password=****&****");
    EXPECT_EQ(pgcoro::redact_url("host=h password=hunter2"), "host='h' password='****'");
    EXPECT_EQ(pgcoro::redact_url("host=h password='hunter2"), "(connection string not shown)");
    pgcoro::connect_config c;
    c.password = pgcoro::secret("hunter2");
    EXPECT_EQ(pgcoro::to_url(c).find("hunter2"), std::string::npos);
}
