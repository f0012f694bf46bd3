// The observer hot path: what firing one query_event costs with no observer (a null check),
// with an observer whose hooks are empty, and with a stats_collector (one thread, and two
// threads contending on the same collector). Reports ns per event.
//
//   ./build-obs/benchmarks/observer_bench
#include <pgcoro/observer.hpp>
#include <pgcoro/stats_collector.hpp>

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>

namespace
{

struct empty_observer final : pgcoro::observer
{
};

// What the pool does at a transition point: one branch, the event built inside it.
inline void fire(pgcoro::observer* obs, std::int64_t elapsed_ns)
{
    if (obs)
        obs->on_query_finished(
            pgcoro::query_event{.elapsed = std::chrono::nanoseconds(elapsed_ns), .rows = 1});
}

void run(benchmark::State& state, pgcoro::observer* obs)
{
    // A cheap LCG spreads durations over 0..16 ms, so records hit many buckets.
    std::uint64_t x = 1 + static_cast<std::uint64_t>(state.thread_index());
    for (auto _ : state)
    {
        benchmark::DoNotOptimize(obs); // keep the pointer opaque: no devirtualization
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        fire(obs, static_cast<std::int64_t>(x >> 40));
    }
    state.SetItemsProcessed(state.iterations());
    // Seconds per event, printed with an SI prefix ("3.2n" = 3.2 ns per event).
    state.counters["per_event"] =
        benchmark::Counter(static_cast<double>(state.iterations()),
                           benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void BM_NoObserver(benchmark::State& state)
{
    run(state, nullptr);
}

void BM_EmptyObserver(benchmark::State& state)
{
    static empty_observer obs;
    run(state, &obs);
}

void BM_StatsCollector(benchmark::State& state)
{
    static pgcoro::stats_collector obs;
    run(state, &obs);
}

} // namespace

BENCHMARK(BM_NoObserver);
BENCHMARK(BM_EmptyObserver);
BENCHMARK(BM_StatsCollector);
BENCHMARK(BM_StatsCollector)->Threads(2)->UseRealTime();

BENCHMARK_MAIN();
