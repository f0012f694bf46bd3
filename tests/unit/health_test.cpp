// Unit tests for pgcoro/health.hpp: how evaluate() grades metrics, gauges, ping and breaker.
#include <pgcoro/health.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <string>

using namespace std::chrono_literals;
using pgcoro::breaker_state;
using pgcoro::evaluate;
using pgcoro::health_report;
using pgcoro::health_status;
using pgcoro::health_thresholds;
using pgcoro::metrics_snapshot;
using pgcoro::pool_stats;

namespace
{

// A window of `n` outcomes at `rate`.
metrics_snapshot metrics(double rate = 1.0, std::size_t n = 100)
{
    metrics_snapshot m;
    m.success_rate = rate;
    m.window_outcomes = n;
    m.window_capacity = 100;
    return m;
}

pool_stats gauges(std::size_t leased, std::size_t idle = 0, std::size_t waiters = 0)
{
    pool_stats s;
    s.leased = leased;
    s.idle = idle;
    s.size = leased + idle;
    s.waiters = waiters;
    return s;
}

const pgcoro::health_check* find(const health_report& r, const std::string& name)
{
    for (const auto& c : r.checks)
        if (c.name == name)
            return &c;
    return nullptr;
}

} // namespace

TEST(Health, StatusToString)
{
    EXPECT_EQ(to_string(health_status::healthy), "healthy");
    EXPECT_EQ(to_string(health_status::degraded), "degraded");
    EXPECT_EQ(to_string(health_status::unhealthy), "unhealthy");
}

TEST(Health, QuietPoolIsHealthyWithFigures)
{
    // Setup: 12 of 200 leased, all good.
    const health_report r = evaluate(metrics(), gauges(12, 3), 200, true, breaker_state::closed);
    // Check
    EXPECT_EQ(r.status, health_status::healthy);
    EXPECT_EQ(r.connections.current, 15u);
    EXPECT_EQ(r.connections.max, 200u);
    EXPECT_EQ(r.connections.in_use, 12u);
    EXPECT_DOUBLE_EQ(r.connections.utilization, 0.06);
    ASSERT_EQ(r.checks.size(), 4u); // ping, circuit_breaker, success_rate, utilization
    EXPECT_EQ(r.checks[0].name, "ping");
    EXPECT_EQ(r.checks[1].name, "circuit_breaker");
    EXPECT_EQ(r.checks[2].name, "success_rate");
    EXPECT_EQ(r.checks[3].name, "utilization");
}

TEST(Health, UtilizationAtThresholdIsDegraded)
{
    // 8 of 10 leased: 0.8 >= 0.8 -> degraded; 7 of 10 -> healthy.
    EXPECT_EQ(evaluate(metrics(), gauges(8), 10, true, std::nullopt).status,
              health_status::degraded);
    EXPECT_EQ(evaluate(metrics(), gauges(7, 3), 10, true, std::nullopt).status,
              health_status::healthy);
    EXPECT_EQ(find(evaluate(metrics(), gauges(8), 10, true, std::nullopt), "utilization")->detail,
              "0.8 >= 0.8");
}

TEST(Health, SuccessRateBands)
{
    // >= 0.95 healthy, < 0.95 degraded, < 0.5 unhealthy.
    EXPECT_EQ(evaluate(metrics(0.95), gauges(0), 10, true, {}).status, health_status::healthy);
    EXPECT_EQ(evaluate(metrics(0.94), gauges(0), 10, true, {}).status, health_status::degraded);
    EXPECT_EQ(evaluate(metrics(0.49), gauges(0), 10, true, {}).status, health_status::unhealthy);
    EXPECT_EQ(find(evaluate(metrics(0.49), gauges(0), 10, true, {}), "success_rate")->detail,
              "0.49 < 0.5");
}

TEST(Health, TooFewOutcomesIgnoreTheSuccessRate)
{
    // One failure out of one outcome on a fresh pool is not an outage.
    const health_report r = evaluate(metrics(0.0, 1), gauges(0), 10, true, {});
    EXPECT_EQ(r.status, health_status::healthy);
    EXPECT_EQ(find(r, "success_rate")->detail, "too few outcomes (1)");
}

TEST(Health, FailedPingIsUnhealthy)
{
    const health_report r = evaluate(metrics(), gauges(0), 10, false, {});
    EXPECT_EQ(r.status, health_status::unhealthy);
    EXPECT_EQ(r.checks[0].status, health_status::unhealthy);
    EXPECT_EQ(r.checks[0].detail, "failed");
}

TEST(Health, BreakerOpenIsUnhealthyHalfOpenDegraded)
{
    EXPECT_EQ(evaluate(metrics(), gauges(0), 10, true, breaker_state::open).status,
              health_status::unhealthy);
    EXPECT_EQ(evaluate(metrics(), gauges(0), 10, true, breaker_state::half_open).status,
              health_status::degraded);
    health_thresholds t;
    t.half_open_is_degraded = false;
    EXPECT_EQ(evaluate(metrics(), gauges(0), 10, true, breaker_state::half_open, t).status,
              health_status::healthy);
    EXPECT_EQ(evaluate(metrics(), gauges(0), 10, true, breaker_state::open).breaker,
              breaker_state::open);
}

TEST(Health, WorstCheckWins)
{
    // Degraded utilization and an unhealthy ping: unhealthy.
    EXPECT_EQ(evaluate(metrics(0.9), gauges(9, 1), 10, false, {}).status, health_status::unhealthy);
}

TEST(Health, ThresholdsAreConfigurableAndCanBeDisabled)
{
    health_thresholds t;
    t.degraded_utilization = 2.0; // off
    t.degraded_success_rate = 0.0;
    t.unhealthy_success_rate = 0.0; // success-rate rules off
    const health_report r = evaluate(metrics(0.1), gauges(10), 10, true, {}, t);
    EXPECT_EQ(r.status, health_status::healthy);
    EXPECT_EQ(find(r, "utilization"), nullptr);
    EXPECT_EQ(find(r, "success_rate"), nullptr);

    health_thresholds strict;
    strict.degraded_waiters = 2;
    strict.degraded_p99 = 100ms;
    metrics_snapshot m = metrics();
    pgcoro::latency_histogram h;
    h.record(150ms);
    m.query_duration = h.snapshot();
    const health_report s = evaluate(m, gauges(1, 1, 2), 10, true, {}, strict);
    EXPECT_EQ(s.status, health_status::degraded);
    EXPECT_EQ(find(s, "waiters")->status, health_status::degraded);
    EXPECT_EQ(find(s, "latency")->status, health_status::degraded);
    EXPECT_DOUBLE_EQ(s.metrics.p99_ms, 150.0);
    EXPECT_DOUBLE_EQ(s.metrics.avg_response_time_ms, 150.0);
}

TEST(Health, ZeroMaxSizeHasZeroUtilization)
{
    const health_report r = evaluate(metrics(), gauges(3), 0, true, {});
    EXPECT_EQ(r.connections.utilization, 0.0);
    EXPECT_EQ(r.status, health_status::healthy);
}
