// Unit tests for pgcoro/json.hpp and pgcoro/prometheus.hpp: exact output for fixed inputs,
// JSON that parses to the documented shape, and escaping.
#include <pgcoro/health.hpp>
#include <pgcoro/json.hpp>
#include <pgcoro/prometheus.hpp>
#include <pgcoro/stats_collector.hpp>

#include <gtest/gtest.h>

#include <cctype>
#include <chrono>
#include <cstddef>
#include <map>
#include <string>
#include <string_view>

using namespace std::chrono_literals;
using pgcoro::breaker_state;
using pgcoro::health_report;
using pgcoro::health_status;
using pgcoro::metrics_snapshot;

namespace
{

// A minimal JSON reader for the tests: validates the grammar (RFC 8259, no extensions) and
// flattens the document into "path" -> value, e.g. "connections.current" -> "12",
// "checks.0.name" -> "ping" (strings unescaped, null as "null").
class json_reader
{
public:
    explicit json_reader(std::string_view text) : s_(text) {}

    bool parse(std::map<std::string, std::string>& out)
    {
        out_ = &out;
        ws();
        if (!value(""))
            return false;
        ws();
        return i_ == s_.size();
    }

private:
    void ws()
    {
        while (i_ < s_.size() &&
               (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\t' || s_[i_] == '\r'))
            ++i_;
    }
    bool lit(std::string_view w)
    {
        if (s_.substr(i_, w.size()) != w)
            return false;
        i_ += w.size();
        return true;
    }
    bool string(std::string& v)
    {
        if (!lit("\""))
            return false;
        while (i_ < s_.size() && s_[i_] != '"')
        {
            const char c = s_[i_++];
            if (static_cast<unsigned char>(c) < 0x20)
                return false; // raw control characters are invalid JSON
            if (c != '\\')
            {
                v += c;
                continue;
            }
            if (i_ >= s_.size())
                return false;
            const char e = s_[i_++];
            switch (e)
            {
            case '"':
            case '\\':
            case '/':
                v += e;
                break;
            case 'b':
                v += '\b';
                break;
            case 'f':
                v += '\f';
                break;
            case 'n':
                v += '\n';
                break;
            case 'r':
                v += '\r';
                break;
            case 't':
                v += '\t';
                break;
            case 'u':
            {
                if (i_ + 4 > s_.size())
                    return false;
                const unsigned long cp = std::stoul(std::string(s_.substr(i_, 4)), nullptr, 16);
                i_ += 4;
                if (cp > 0x7f)
                    return false; // not needed by these tests
                v += static_cast<char>(cp);
                break;
            }
            default:
                return false;
            }
        }
        return lit("\"");
    }
    bool number(std::string& v)
    {
        const std::size_t start = i_;
        if (i_ < s_.size() && s_[i_] == '-')
            ++i_;
        if (i_ >= s_.size() || !std::isdigit(static_cast<unsigned char>(s_[i_])))
            return false;
        if (s_[i_] == '0')
            ++i_;
        else
            while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_])))
                ++i_;
        if (i_ < s_.size() && s_[i_] == '.')
        {
            ++i_;
            if (i_ >= s_.size() || !std::isdigit(static_cast<unsigned char>(s_[i_])))
                return false;
            while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_])))
                ++i_;
        }
        if (i_ < s_.size() && (s_[i_] == 'e' || s_[i_] == 'E'))
        {
            ++i_;
            if (i_ < s_.size() && (s_[i_] == '+' || s_[i_] == '-'))
                ++i_;
            if (i_ >= s_.size() || !std::isdigit(static_cast<unsigned char>(s_[i_])))
                return false;
            while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_])))
                ++i_;
        }
        v = std::string(s_.substr(start, i_ - start));
        return true;
    }
    bool value(const std::string& path)
    {
        ws();
        if (i_ >= s_.size())
            return false;
        const char c = s_[i_];
        if (c == '{')
        {
            ++i_;
            ws();
            if (lit("}"))
                return true;
            do
            {
                ws();
                std::string key;
                if (!string(key))
                    return false;
                ws();
                if (!lit(":") || !value(path.empty() ? key : path + "." + key))
                    return false;
                ws();
            } while (lit(","));
            return lit("}");
        }
        if (c == '[')
        {
            ++i_;
            ws();
            if (lit("]"))
                return true;
            std::size_t n = 0;
            do
            {
                if (!value(path + "." + std::to_string(n++)))
                    return false;
                ws();
            } while (lit(","));
            return lit("]");
        }
        std::string v;
        if (c == '"')
        {
            if (!string(v))
                return false;
        }
        else if (lit("null"))
            v = "null";
        else if (lit("true"))
            v = "true";
        else if (lit("false"))
            v = "false";
        else if (!number(v))
            return false;
        (*out_)[path] = v;
        return true;
    }

    std::string_view s_;
    std::size_t i_ = 0;
    std::map<std::string, std::string>* out_ = nullptr;
};

health_report fixed_report()
{
    health_report r;
    r.status = health_status::healthy;
    r.connections.current = 12;
    r.connections.max = 200;
    r.connections.utilization = 12.0 / 200.0;
    r.connections.in_use = 12;
    r.metrics.success_rate = 0.992;
    r.metrics.avg_response_time_ms = 45.0000001;
    r.metrics.p99_ms = 120.5;
    // 2026-03-01T12:34:56.789Z
    r.metrics.last_failure =
        std::chrono::system_clock::time_point(std::chrono::milliseconds(1'772'368'496'789));
    r.breaker = breaker_state::closed;
    r.checks.push_back({"ping", health_status::healthy, "ok"});
    r.checks.push_back({"odd \"name\"", health_status::degraded, "a\\b\nc\td\x01"});
    return r;
}

metrics_snapshot fixed_metrics()
{
    metrics_snapshot m;
    m.connects_succeeded = 3;
    m.connects_failed = 1;
    m.acquired_immediately = 40;
    m.acquired_after_wait = 2;
    m.acquire_timeouts = 1;
    m.queries_succeeded = 120;
    m.queries_failed = 1;
    m.slow_queries = 2;
    m.retries = 4;
    m.breaker = breaker_state::half_open;
    m.breaker_transitions = 2;
    m.closed[static_cast<std::size_t>(pgcoro::close_reason::idle_timeout)] = 1;
    m.success_rate = 0.992;
    pgcoro::latency_histogram a;
    pgcoro::latency_histogram q;
    pgcoro::latency_histogram c;
    a.record(200us);
    a.record(3ms);
    q.record(2ms);
    q.record(40ms);
    q.record(1200ms);
    c.record(15ms);
    m.acquire_wait = a.snapshot();
    m.query_duration = q.snapshot();
    m.connect_time = c.snapshot();
    pgcoro::pool_stats p;
    p.size = 12;
    p.idle = 4;
    p.leased = 7;
    p.connecting = 1;
    m.pool = p;
    return m;
}

} // namespace

TEST(Render, JsonExactForFixedReport)
{
    EXPECT_EQ(pgcoro::to_json(fixed_report()),
              R"({"status":"healthy","connections":{"current":12,"max":200,"utilization":0.06,)"
              R"("in_use":12,"idle":0,"waiters":0},"metrics":{"success_rate":0.992,)"
              R"("avg_response_time_ms":45,"p99_ms":120.5,)"
              R"("last_failure":"2026-03-01T12:34:56.789Z"},"circuit_breaker":"closed",)"
              R"("checks":[{"name":"ping","status":"healthy","detail":"ok"},)"
              R"({"name":"odd \"name\"","status":"degraded","detail":"a\\b\nc\td\u0001"}]})");
}

// Issue 19: the services' design notes ask for exactly this shape; at 15aed96 it needed
// hand-written reshaping of to_json()'s output.
TEST(Render, ServiceJsonIsExactlyTheDesignNotesShape)
{
    EXPECT_EQ(pgcoro::to_service_json(fixed_report()),
              R"({"status":"healthy","connections":{"current":12,"max":200,"utilization":0.06},)"
              R"("metrics":{"success_rate":0.992,"avg_response_time":45,)"
              R"("last_failure":"2026-03-01T12:34:56.789Z"}})");
    auto r = fixed_report();
    r.metrics.last_failure.reset();
    r.status = pgcoro::health_status::degraded; // still serving
    EXPECT_NE(pgcoro::to_service_json(r).find(R"("status":"healthy")"), std::string::npos);
    EXPECT_NE(pgcoro::to_service_json(r).find(R"("last_failure":null)"), std::string::npos);
    r.status = pgcoro::health_status::unhealthy;
    EXPECT_EQ(pgcoro::to_service_json(r).rfind(R"({"status":"unhealthy",)", 0), 0u);
    std::map<std::string, std::string> doc;
    ASSERT_TRUE(json_reader(pgcoro::to_service_json(fixed_report())).parse(doc));
    EXPECT_EQ(doc.size(), 7u) << "exactly the seven keys of the design notes";
}

TEST(Render, Iso8601IsPublic)
{
    using namespace std::chrono;
    const sys_time<milliseconds> t = sys_days{year{2026} / 3 / 1} + 12h + 34min + 56s + 789ms;
    EXPECT_EQ(pgcoro::to_iso8601(t), "2026-03-01T12:34:56.789Z");
}

TEST(Render, JsonParsesToTheDocumentedShape)
{
    // Setup / Act
    std::map<std::string, std::string> doc;
    ASSERT_TRUE(json_reader(pgcoro::to_json(fixed_report())).parse(doc));
    // Check: every documented key, and the escaped strings read back unchanged.
    EXPECT_EQ(doc["status"], "healthy");
    EXPECT_EQ(doc["connections.current"], "12");
    EXPECT_EQ(doc["connections.max"], "200");
    EXPECT_EQ(doc["connections.utilization"], "0.06");
    EXPECT_EQ(doc["metrics.success_rate"], "0.992");
    EXPECT_EQ(doc["metrics.avg_response_time_ms"], "45");
    EXPECT_EQ(doc["metrics.p99_ms"], "120.5");
    EXPECT_EQ(doc["metrics.last_failure"], "2026-03-01T12:34:56.789Z");
    EXPECT_EQ(doc["circuit_breaker"], "closed");
    EXPECT_EQ(doc["checks.1.name"], "odd \"name\"");
    EXPECT_EQ(doc["checks.1.detail"], "a\\b\nc\td\x01");
}

TEST(Render, JsonNullsWhenAbsent)
{
    health_report r;
    std::map<std::string, std::string> doc;
    ASSERT_TRUE(json_reader(pgcoro::to_json(r)).parse(doc));
    EXPECT_EQ(doc["metrics.last_failure"], "null");
    EXPECT_EQ(doc["circuit_breaker"], "null");
    EXPECT_EQ(doc["metrics.success_rate"], "1");
}

TEST(Render, JsonFromCollectorThroughEvaluate)
{
    // Setup: a collector that saw 20 fast statements; a pool with 2 of 10 leased.
    pgcoro::stats_collector c;
    for (int i = 0; i < 20; ++i)
        c.on_query_finished({.elapsed = 2ms});
    pgcoro::pool_stats g;
    g.size = 3;
    g.leased = 2;
    g.idle = 1;
    // Act
    const std::string json =
        pgcoro::to_json(pgcoro::evaluate(c.snapshot(g), g, 10, true, breaker_state::closed));
    // Check
    std::map<std::string, std::string> doc;
    ASSERT_TRUE(json_reader(json).parse(doc)) << json;
    EXPECT_EQ(doc["status"], "healthy");
    EXPECT_EQ(doc["connections.utilization"], "0.2");
    EXPECT_EQ(doc["metrics.avg_response_time_ms"], "2");
    EXPECT_EQ(doc["metrics.p99_ms"], "2");
}

TEST(Render, Iso8601EdgeDates)
{
    auto iso = [](std::chrono::system_clock::time_point tp)
    {
        std::string s;
        pgcoro::detail::append_iso8601(s, tp);
        return s;
    };
    using tp = std::chrono::system_clock::time_point;
    EXPECT_EQ(iso(tp{}), "1970-01-01T00:00:00.000Z");
    EXPECT_EQ(iso(tp(std::chrono::seconds(951'782'400))), "2000-02-29T00:00:00.000Z");
    EXPECT_EQ(iso(tp(std::chrono::milliseconds(-1))), "1969-12-31T23:59:59.999Z");
}

TEST(Render, PrometheusExactForFixedSnapshot)
{
    const std::string expected =
        R"(# HELP pgcoro_pool_connections Connections held by the pool, by state.
# TYPE pgcoro_pool_connections gauge
pgcoro_pool_connections{state="idle"} 4
pgcoro_pool_connections{state="leased"} 7
pgcoro_pool_connections{state="connecting"} 1
# HELP pgcoro_pool_waiters acquire() calls waiting for a connection.
# TYPE pgcoro_pool_waiters gauge
pgcoro_pool_waiters 0
# HELP pgcoro_acquires_total acquire() calls finished, by outcome.
# TYPE pgcoro_acquires_total counter
pgcoro_acquires_total{outcome="immediate"} 40
pgcoro_acquires_total{outcome="waited"} 2
pgcoro_acquires_total{outcome="timed_out"} 1
pgcoro_acquires_total{outcome="cancelled"} 0
pgcoro_acquires_total{outcome="rejected"} 0
# HELP pgcoro_pool_timeouts_total acquire() calls that failed with pool_timeout.
# TYPE pgcoro_pool_timeouts_total counter
pgcoro_pool_timeouts_total 1
# HELP pgcoro_acquire_wait_seconds Time acquire() waited for a connection.
# TYPE pgcoro_acquire_wait_seconds histogram
pgcoro_acquire_wait_seconds_bucket{le="0.0001"} 0
pgcoro_acquire_wait_seconds_bucket{le="0.00025"} 1
pgcoro_acquire_wait_seconds_bucket{le="0.0005"} 1
pgcoro_acquire_wait_seconds_bucket{le="0.001"} 1
pgcoro_acquire_wait_seconds_bucket{le="0.0025"} 1
pgcoro_acquire_wait_seconds_bucket{le="0.005"} 2
pgcoro_acquire_wait_seconds_bucket{le="0.01"} 2
pgcoro_acquire_wait_seconds_bucket{le="0.025"} 2
pgcoro_acquire_wait_seconds_bucket{le="0.05"} 2
pgcoro_acquire_wait_seconds_bucket{le="0.1"} 2
pgcoro_acquire_wait_seconds_bucket{le="0.25"} 2
pgcoro_acquire_wait_seconds_bucket{le="0.5"} 2
pgcoro_acquire_wait_seconds_bucket{le="1"} 2
pgcoro_acquire_wait_seconds_bucket{le="2.5"} 2
pgcoro_acquire_wait_seconds_bucket{le="5"} 2
pgcoro_acquire_wait_seconds_bucket{le="10"} 2
pgcoro_acquire_wait_seconds_bucket{le="30"} 2
pgcoro_acquire_wait_seconds_bucket{le="+Inf"} 2
pgcoro_acquire_wait_seconds_sum 0.0032
pgcoro_acquire_wait_seconds_count 2
# HELP pgcoro_queries_total Statements finished, by outcome.
# TYPE pgcoro_queries_total counter
pgcoro_queries_total{outcome="success"} 120
pgcoro_queries_total{outcome="failed"} 1
pgcoro_queries_total{outcome="timed_out"} 0
pgcoro_queries_total{outcome="cancelled"} 0
# HELP pgcoro_slow_queries_total Statements that ran at least slow_query_threshold.
# TYPE pgcoro_slow_queries_total counter
pgcoro_slow_queries_total 2
# HELP pgcoro_query_duration_seconds Statement duration, every outcome.
# TYPE pgcoro_query_duration_seconds histogram
pgcoro_query_duration_seconds_bucket{le="0.0001"} 0
pgcoro_query_duration_seconds_bucket{le="0.00025"} 0
pgcoro_query_duration_seconds_bucket{le="0.0005"} 0
pgcoro_query_duration_seconds_bucket{le="0.001"} 0
pgcoro_query_duration_seconds_bucket{le="0.0025"} 1
pgcoro_query_duration_seconds_bucket{le="0.005"} 1
pgcoro_query_duration_seconds_bucket{le="0.01"} 1
pgcoro_query_duration_seconds_bucket{le="0.025"} 1
pgcoro_query_duration_seconds_bucket{le="0.05"} 2
pgcoro_query_duration_seconds_bucket{le="0.1"} 2
pgcoro_query_duration_seconds_bucket{le="0.25"} 2
pgcoro_query_duration_seconds_bucket{le="0.5"} 2
pgcoro_query_duration_seconds_bucket{le="1"} 2
pgcoro_query_duration_seconds_bucket{le="2.5"} 3
pgcoro_query_duration_seconds_bucket{le="5"} 3
pgcoro_query_duration_seconds_bucket{le="10"} 3
pgcoro_query_duration_seconds_bucket{le="30"} 3
pgcoro_query_duration_seconds_bucket{le="+Inf"} 3
pgcoro_query_duration_seconds_sum 1.242
pgcoro_query_duration_seconds_count 3
# HELP pgcoro_connects_total Connects finished, by outcome.
# TYPE pgcoro_connects_total counter
pgcoro_connects_total{outcome="success"} 3
pgcoro_connects_total{outcome="failure"} 1
# HELP pgcoro_connect_duration_seconds Duration of successful connects.
# TYPE pgcoro_connect_duration_seconds histogram
pgcoro_connect_duration_seconds_bucket{le="0.0001"} 0
pgcoro_connect_duration_seconds_bucket{le="0.00025"} 0
pgcoro_connect_duration_seconds_bucket{le="0.0005"} 0
pgcoro_connect_duration_seconds_bucket{le="0.001"} 0
pgcoro_connect_duration_seconds_bucket{le="0.0025"} 0
pgcoro_connect_duration_seconds_bucket{le="0.005"} 0
pgcoro_connect_duration_seconds_bucket{le="0.01"} 0
pgcoro_connect_duration_seconds_bucket{le="0.025"} 1
pgcoro_connect_duration_seconds_bucket{le="0.05"} 1
pgcoro_connect_duration_seconds_bucket{le="0.1"} 1
pgcoro_connect_duration_seconds_bucket{le="0.25"} 1
pgcoro_connect_duration_seconds_bucket{le="0.5"} 1
pgcoro_connect_duration_seconds_bucket{le="1"} 1
pgcoro_connect_duration_seconds_bucket{le="2.5"} 1
pgcoro_connect_duration_seconds_bucket{le="5"} 1
pgcoro_connect_duration_seconds_bucket{le="10"} 1
pgcoro_connect_duration_seconds_bucket{le="30"} 1
pgcoro_connect_duration_seconds_bucket{le="+Inf"} 1
pgcoro_connect_duration_seconds_sum 0.015
pgcoro_connect_duration_seconds_count 1
# HELP pgcoro_connections_closed_total Connections the pool closed, by reason.
# TYPE pgcoro_connections_closed_total counter
pgcoro_connections_closed_total{reason="idle_timeout"} 1
pgcoro_connections_closed_total{reason="lifetime"} 0
pgcoro_connections_closed_total{reason="broken"} 0
pgcoro_connections_closed_total{reason="validation_failed"} 0
pgcoro_connections_closed_total{reason="shutdown"} 0
# HELP pgcoro_retries_total Retries made by retry().
# TYPE pgcoro_retries_total counter
pgcoro_retries_total 4
# HELP pgcoro_leaks_suspected_total Leases held longer than leak_threshold.
# TYPE pgcoro_leaks_suspected_total counter
pgcoro_leaks_suspected_total 0
# HELP pgcoro_success_ratio Successes over outcomes in the rolling window (1 when empty).
# TYPE pgcoro_success_ratio gauge
pgcoro_success_ratio 0.992
# HELP pgcoro_circuit_breaker_transitions_total Circuit breaker state changes.
# TYPE pgcoro_circuit_breaker_transitions_total counter
pgcoro_circuit_breaker_transitions_total 2
# HELP pgcoro_circuit_breaker_state Circuit breaker state: 0 closed, 1 half-open, 2 open.
# TYPE pgcoro_circuit_breaker_state gauge
pgcoro_circuit_breaker_state 1
)";
    EXPECT_EQ(pgcoro::to_prometheus(fixed_metrics()), expected);
}

TEST(Render, PrometheusPoolLabelIsEscapedAndOnEverySample)
{
    const std::string text = pgcoro::to_prometheus(fixed_metrics(), "main\"db");
    EXPECT_NE(text.find("pgcoro_pool_waiters{pool=\"main\\\"db\"} 0\n"), std::string::npos);
    EXPECT_NE(text.find("pgcoro_acquire_wait_seconds_bucket{pool=\"main\\\"db\",le=\"+Inf\"} 2\n"),
              std::string::npos);
    // Every sample line (not a comment) carries the label.
    std::size_t start = 0;
    while (start < text.size())
    {
        const std::size_t end = text.find('\n', start);
        const std::string_view line(text.data() + start, end - start);
        if (!line.empty() && line[0] != '#')
        {
            EXPECT_NE(line.find("{pool=\"main\\\"db\""), std::string_view::npos) << line;
        }
        start = end + 1;
    }
}

TEST(Render, PrometheusOmitsUnknownGaugesAndBreaker)
{
    const std::string text = pgcoro::to_prometheus(metrics_snapshot{});
    EXPECT_EQ(text.find("pgcoro_pool_connections"), std::string::npos);
    EXPECT_EQ(text.find("pgcoro_circuit_breaker_state"), std::string::npos);
    EXPECT_NE(text.find("pgcoro_query_duration_seconds_bucket{le=\"+Inf\"} 0\n"),
              std::string::npos);
    EXPECT_NE(text.find("pgcoro_success_ratio 1\n"), std::string::npos);
}

TEST(Render, PrometheusBreakerValues)
{
    EXPECT_EQ(pgcoro::prometheus_value(breaker_state::closed), 0);
    EXPECT_EQ(pgcoro::prometheus_value(breaker_state::half_open), 1);
    EXPECT_EQ(pgcoro::prometheus_value(breaker_state::open), 2);
}
