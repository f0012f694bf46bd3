// SPDX-License-Identifier: BSL-1.0
// pgcoro/check_health.hpp - a pool's health: a live ping combined with its metrics and gauges.
#ifndef PGCORO_CHECK_HEALTH_HPP
#define PGCORO_CHECK_HEALTH_HPP

#include <pgcoro/connection.hpp>
#include <pgcoro/health.hpp>
#include <pgcoro/pool.hpp>
#include <pgcoro/stats_collector.hpp>
#include <pgcoro/with_timeout.hpp>

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <functional>
#include <string>

namespace pgcoro
{

/// What check_health() measures and how it grades.
struct health_options
{
    /// Deadline of the ping: acquiring a connection plus one empty statement. Default 1 s.
    std::chrono::milliseconds ping_timeout{std::chrono::seconds(1)};
    /// The grading rules (see health_thresholds and evaluate()).
    health_thresholds thresholds{};
    /// The pool's stats_collector, for success rate, latency and last failure; nullptr grades
    /// on the ping and the gauges only. Must outlive the call.
    const stats_collector* metrics = nullptr;
    /// Reads the breaker guarding the database, e.g. `[&] { return breaker.state(); }`;
    /// empty when there is none.
    std::function<breaker_state()> breaker;
    /// Told when the ping fails at ping_timeout (on_deadline_expired), so the success rate of
    /// a stats_collector behind it counts it; nullptr: nobody. Must outlive the call.
    observer* report_to = nullptr;
};

/// Pings the database through `target` (an acquire and an empty statement, bounded by
/// ping_timeout) and grades the pool with evaluate(): unhealthy when the ping fails or the
/// breaker is open, degraded or healthy by the thresholds. The ping check's detail says
/// "ok in 0.412 ms" or "failed: pool_timeout" (the error code only; no message text).
/// Completes with: the report (never an error: a failed ping is a finding).
/// Cancellation: the ping is cancelled and reported as failed.
/// Resumes on: the awaiting coroutine's executor.
/// Lifetime: `target` and the objects `opts` points to must outlive the operation.
inline boost::asio::awaitable<health_report> check_health(pool& target, health_options opts = {})
{
    const auto start = std::chrono::steady_clock::now();
    auto ping = co_await with_timeout(
        opts.ping_timeout, target.run([](connection& c) { return c.query(""); }), opts.report_to);
    const double ping_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    const pool_stats gauges = target.stats();
    const metrics_snapshot m = opts.metrics ? opts.metrics->snapshot(gauges) : metrics_snapshot{};
    std::optional<breaker_state> breaker;
    if (opts.breaker)
        breaker = opts.breaker();
    health_report r =
        evaluate(m, gauges, gauges.max_size, ping.has_value(), breaker, opts.thresholds);
    std::string detail;
    if (ping)
    {
        detail = "ok in ";
        detail::append_double(detail, detail::round_to(ping_ms, 3));
        detail += " ms";
    }
    else
    {
        detail = "failed: ";
        detail += to_string(ping.error().value());
    }
    r.checks.front().detail = std::move(detail); // evaluate() puts the ping check first
    co_return r;
}

} // namespace pgcoro

#endif // PGCORO_CHECK_HEALTH_HPP
