// Prints a Prometheus exposition rendered from a populated stats_collector, for the
// observability.promtool test (`promtool check metrics` lints it). Pass a pool name to label
// every sample with it.
#include <pgcoro/prometheus.hpp>
#include <pgcoro/stats_collector.hpp>

#include <chrono>
#include <iostream>

int main(int argc, char** argv)
{
    using namespace std::chrono_literals;
    pgcoro::stats_collector c;
    c.on_connect_started({});
    c.on_connect_succeeded({.elapsed = 8ms, .backend_pid = 100});
    c.on_connect_failed({.code = make_error_code(pgcoro::errc::connect_failed)});
    c.on_acquire({.outcome = pgcoro::acquire_outcome::immediate, .waited = 20us});
    c.on_acquire({.outcome = pgcoro::acquire_outcome::waited, .waited = 30ms});
    c.on_acquire({.outcome = pgcoro::acquire_outcome::timed_out, .waited = 5s});
    c.on_query_finished({.elapsed = 2ms});
    c.on_query_finished({.elapsed = 1500ms});
    c.on_slow_query({.elapsed = 1500ms, .threshold = 1s});
    c.on_retry({});
    c.on_leak_suspected({});
    c.on_connection_closed({.reason = pgcoro::close_reason::lifetime});
    c.on_breaker_transition({pgcoro::breaker_state::closed, pgcoro::breaker_state::open});
    pgcoro::pool_stats g;
    g.size = 4;
    g.idle = 1;
    g.leased = 2;
    g.connecting = 1;
    g.waiters = 3;
    std::cout << pgcoro::to_prometheus(c.snapshot(g), argc > 1 ? argv[1] : "");
    return std::cout.good() ? 0 : 1;
}
