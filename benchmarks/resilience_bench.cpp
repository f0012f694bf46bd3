// resilience_bench: the per-call cost of pgcoro's resilience helpers, no server needed.
//   - backoff(): the pure delay computation, per jitter kind, with a seeded mt19937_64;
//   - circuit_breaker: state() (lock + time check), and run() around an operation that
//     completes at once, against the same operation without a breaker (the difference is the
//     breaker's own cost: admission, classification, bookkeeping), and an open breaker
//     rejecting a call (builds the circuit_open error).
//
//   ./build-perf/benchmarks/resilience_bench
#include <pgcoro/backoff.hpp>
#include <pgcoro/circuit_breaker.hpp>
#include <pgcoro/error.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <random>

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace
{

// ---- backoff ------------------------------------------------------------------------------

void BM_BackoffBase(benchmark::State& state)
{
    const pgcoro::backoff_policy p{.initial = 100ms, .multiplier = 2.0, .cap = 30s};
    unsigned attempt = 0;
    for (auto _ : state)
    {
        attempt = attempt % 20 + 1; // 1..20: below and above the cap (2^9 * 100 ms > 30 s)
        benchmark::DoNotOptimize(attempt);
        benchmark::DoNotOptimize(pgcoro::backoff_base(p, attempt));
    }
    state.SetItemsProcessed(state.iterations());
}

void BM_Backoff(benchmark::State& state)
{
    const auto kind = static_cast<pgcoro::jitter_kind>(state.range(0));
    state.SetLabel(std::string(pgcoro::to_string(kind)));
    const pgcoro::backoff_policy p{.initial = 100ms, .multiplier = 2.0, .cap = 30s, .jitter = kind};
    std::mt19937_64 rng(42);
    unsigned attempt = 0;
    std::chrono::milliseconds prev{0};
    for (auto _ : state)
    {
        attempt = attempt % 20 + 1;
        if (attempt == 1)
            prev = 0ms;
        prev = pgcoro::backoff(p, attempt, prev, rng);
        benchmark::DoNotOptimize(prev);
    }
    state.SetItemsProcessed(state.iterations());
}

// ---- circuit breaker ----------------------------------------------------------------------

void BM_BreakerState(benchmark::State& state)
{
    pgcoro::circuit_breaker br;
    for (auto _ : state)
        benchmark::DoNotOptimize(br.state());
    state.SetItemsProcessed(state.iterations());
}

// An operation that succeeds at once (no I/O): what is left is coroutine and breaker cost.
asio::awaitable<pgcoro::expected<int>> instant_ok(int v)
{
    co_return v;
}

asio::awaitable<pgcoro::expected<int>> instant_transient_failure()
{
    co_return tl::unexpected(pgcoro::error(pgcoro::errc::connection_lost, "bench"));
}

constexpr int calls_per_iteration = 1000;

// Runs `body` (a coroutine doing calls_per_iteration calls) once per benchmark iteration.
template <class Body>
void run_calls(benchmark::State& state, Body body)
{
    asio::io_context io(1);
    std::int64_t failures = 0;
    for (auto _ : state)
    {
        asio::co_spawn(io, body(failures), asio::detached);
        io.run();
        io.restart();
    }
    state.SetItemsProcessed(state.iterations() * calls_per_iteration);
    state.counters["failures"] = static_cast<double>(failures);
    state.counters["per_call"] =
        benchmark::Counter(static_cast<double>(state.iterations() * calls_per_iteration),
                           benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void BM_CallWithoutBreaker(benchmark::State& state)
{
    run_calls(state,
              [](std::int64_t& failures) -> asio::awaitable<void>
              {
                  for (int i = 0; i < calls_per_iteration; ++i)
                  {
                      auto r = co_await instant_ok(i);
                      failures += !r;
                  }
              });
}

void BM_BreakerRunClosed(benchmark::State& state)
{
    pgcoro::circuit_breaker br;
    run_calls(state,
              [&br](std::int64_t& failures) -> asio::awaitable<void>
              {
                  for (int i = 0; i < calls_per_iteration; ++i)
                  {
                      auto r = co_await br.run([i] { return instant_ok(i); });
                      failures += !r;
                  }
              });
}

void BM_BreakerRejectOpen(benchmark::State& state)
{
    pgcoro::circuit_breaker br(
        pgcoro::breaker_config{.failure_threshold = 1, .open_duration = std::chrono::hours(1)});
    {
        // Open it with one transient failure.
        asio::io_context io(1);
        asio::co_spawn(
            io,
            [&br]() -> asio::awaitable<void> { (void)co_await br.run(instant_transient_failure); },
            asio::detached);
        io.run();
    }
    if (br.state() != pgcoro::breaker_state::open)
    {
        state.SkipWithError("breaker did not open");
        return;
    }
    run_calls(state,
              [&br](std::int64_t& failures) -> asio::awaitable<void>
              {
                  for (int i = 0; i < calls_per_iteration; ++i)
                  {
                      auto r = co_await br.run([i] { return instant_ok(i); });
                      failures += !r; // every call is rejected: failures == calls
                  }
              });
}

} // namespace

BENCHMARK(BM_BackoffBase);
BENCHMARK(BM_Backoff)
    ->Arg(static_cast<int>(pgcoro::jitter_kind::none))
    ->Arg(static_cast<int>(pgcoro::jitter_kind::full))
    ->Arg(static_cast<int>(pgcoro::jitter_kind::equal))
    ->Arg(static_cast<int>(pgcoro::jitter_kind::decorrelated));
BENCHMARK(BM_BreakerState);
BENCHMARK(BM_CallWithoutBreaker)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_BreakerRunClosed)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_BreakerRejectOpen)->Unit(benchmark::kMicrosecond);

BENCHMARK_MAIN();
