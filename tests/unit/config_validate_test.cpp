// Tests for pool_config.hpp, profile.hpp and validate.hpp: presets are valid at compile time,
// and every rule fires on its own.
#include <pgcoro/pool_config.hpp>
#include <pgcoro/profile.hpp>
#include <pgcoro/validate.hpp>

#include <gtest/gtest.h>

#include <chrono>

using namespace std::chrono_literals;
using pgcoro::config_rule;
using pgcoro::pool_config;
using pgcoro::profile;

// Compile-time checks: every preset, and the aggregate's own defaults, are valid.
static_assert(pgcoro::validate(pool_config{}));
static_assert(pgcoro::validate(pgcoro::pool_preset(profile::development),
                               pgcoro::connect_preset_for(profile::development)));
static_assert(pgcoro::validate(pgcoro::pool_preset(profile::staging),
                               pgcoro::connect_preset_for(profile::staging)));
static_assert(pgcoro::validate(pgcoro::pool_preset(profile::production),
                               pgcoro::connect_preset_for(profile::production)));
static_assert(pgcoro::pool_preset(profile::production).max_size == 15);
static_assert(pgcoro::connect_preset_for(profile::production).sslmode ==
              pgcoro::ssl_mode::verify_full);
static_assert(!pgcoro::validate(pool_config{.min_size = 3, .max_size = 2}));
constexpr pool_config checked_ok = pgcoro::checked(pool_config{.max_size = 4});
static_assert(checked_ok.max_size == 4);

TEST(Profile_Names, RoundTripAndAliases)
{
    for (auto p : {profile::development, profile::staging, profile::production})
        EXPECT_EQ(pgcoro::parse_profile(pgcoro::to_string(p)), p);
    EXPECT_EQ(pgcoro::parse_profile("PROD"), profile::production);
    EXPECT_EQ(pgcoro::parse_profile("dev"), profile::development);
    EXPECT_EQ(pgcoro::parse_profile("stage"), profile::staging);
    EXPECT_FALSE(pgcoro::parse_profile("test"));
    EXPECT_FALSE(pgcoro::parse_profile(""));
    EXPECT_EQ(pgcoro::parse_log_level("WARNING"), pgcoro::log_level::warn);
    EXPECT_EQ(pgcoro::to_string(pgcoro::log_level::error), "error");
}

TEST(Profile_Presets, DevelopmentIsSmallAndLoud)
{
    // development: 5 connections, prefer TLS, debug logs; production: verified TLS, warn.
    EXPECT_EQ(pgcoro::pool_preset(profile::development).max_size, 5u);
    EXPECT_EQ(pgcoro::connect_preset_for(profile::development).sslmode, pgcoro::ssl_mode::prefer);
    EXPECT_EQ(pgcoro::connect_preset_for(profile::development).log, pgcoro::log_level::debug);
    EXPECT_EQ(pgcoro::pool_preset(profile::production).acquire_timeout, 10s);
    EXPECT_EQ(pgcoro::connect_preset_for(profile::production).connect_timeout, 30s);
    EXPECT_EQ(pgcoro::connect_preset_for(profile::production).statement_timeout, 30s);
    EXPECT_EQ(pgcoro::connect_preset_for(profile::production).log, pgcoro::log_level::warn);
}

// Issue 19: production's waiter queue was unbounded (100 000 waiters held 200 MiB).
TEST(Profile_Presets, ProductionBoundsTheWaiterQueue)
{
    EXPECT_EQ(pgcoro::pool_preset(profile::production).max_waiters, 1000u);
    EXPECT_TRUE(pgcoro::validate(pgcoro::pool_preset(profile::production)));
}

struct rule_case
{
    const char* name;
    pool_config cfg;
    const char* field;
    config_rule rule;
};

class Validate_Rules : public ::testing::TestWithParam<rule_case>
{
};

TEST_P(Validate_Rules, ReportsFieldAndRule)
{
    const auto& c = GetParam();
    auto r = pgcoro::validate(c.cfg);
    ASSERT_FALSE(r) << c.name;
    bool found = false;
    for (const auto& i : r.issues())
        found |= i.field == c.field && i.rule == c.rule;
    EXPECT_TRUE(found) << c.name;
}

INSTANTIATE_TEST_SUITE_P(
    Table, Validate_Rules,
    ::testing::Values(
        rule_case{"max zero", {.max_size = 0}, "pool.max_size", config_rule::out_of_range},
        rule_case{"max huge", {.max_size = 10'001}, "pool.max_size", config_rule::out_of_range},
        rule_case{"min>max",
                  {.min_size = 5, .max_size = 4},
                  "pool.min_size",
                  config_rule::min_exceeds_max},
        rule_case{"acquire zero",
                  {.acquire_timeout = 0ms},
                  "pool.acquire_timeout",
                  config_rule::out_of_range},
        rule_case{"negative idle",
                  {.idle_timeout = -1ms},
                  "pool.idle_timeout",
                  config_rule::out_of_range},
        rule_case{"validation>=acquire",
                  {.acquire_timeout = 2s, .validation_timeout = 2s},
                  "pool.validation_timeout",
                  config_rule::validation_not_below_acquire},
        rule_case{"keepalive>=lifetime",
                  {.max_lifetime = 1min, .keepalive_interval = 1min},
                  "pool.keepalive_interval",
                  config_rule::keepalive_not_below_lifetime},
        rule_case{"jitter>=lifetime",
                  {.max_lifetime = 1min, .max_lifetime_jitter = 1min},
                  "pool.max_lifetime_jitter",
                  config_rule::jitter_not_below_lifetime},
        rule_case{"backoff",
                  {.refill_backoff_initial = 2s, .refill_backoff_max = 1s},
                  "pool.refill_backoff_initial",
                  config_rule::backoff_initial_exceeds_max},
        rule_case{"connects zero",
                  {.max_concurrent_connects = 0},
                  "pool.max_concurrent_connects",
                  config_rule::out_of_range}));

TEST(Validate_Rules, ZeroLifetimeDisablesLifetimeRules)
{
    // max_lifetime 0 = unlimited: keepalive and jitter are then unconstrained by it.
    pool_config c{.max_lifetime = 0ms, .max_lifetime_jitter = 1min, .keepalive_interval = 1min};
    EXPECT_TRUE(pgcoro::validate(c));
}

TEST(Validate_Rules, StatementTimeoutBelowQueryTimeout)
{
    pgcoro::connect_preset cp{.statement_timeout = 30s};
    EXPECT_TRUE(pgcoro::validate(pool_config{.query_timeout = 60s}, cp));
    EXPECT_TRUE(pgcoro::validate(pool_config{.query_timeout = 0s}, cp));
    auto r = pgcoro::validate(pool_config{.query_timeout = 30s}, cp);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.items[0].rule, config_rule::statement_not_below_query);
}

TEST(Validate_Rules, ReportsEveryProblemAtOnce)
{
    auto r = pgcoro::validate(pool_config{.min_size = 20, .max_size = 0, .acquire_timeout = 0ms});
    EXPECT_GE(r.count, 3u);
    EXPECT_TRUE(r.has("pool.max_size"));
    EXPECT_TRUE(r.has("pool.min_size"));
    EXPECT_TRUE(r.has("pool.acquire_timeout"));
}

TEST(Validate_Connect, HostsAndPorts)
{
    pgcoro::connect_config c;
    EXPECT_TRUE(pgcoro::validate(c));
    c.hosts.clear();
    EXPECT_TRUE(pgcoro::validate(c).has("connect.hosts"));
    c.hosts = {{"", 5432}, {"h", 0}};
    auto r = pgcoro::validate(c);
    EXPECT_TRUE(r.has("connect.host"));
    EXPECT_TRUE(r.has("connect.port"));
}
