// stats_bench: the stats_collector hooks the pool fires around every lease, beside what
// observer_bench already measures (on_query_finished): on_acquire (immediate and waited
// grants, which record into the acquire-wait histogram), on_release, a failed acquire (takes
// the failure mutex), and snapshot() (what a /metrics scrape costs). One thread, and two
// threads sharing one collector. Reports ns per event.
//
//   ./build-perf/benchmarks/stats_bench
#include <pgcoro/stats_collector.hpp>

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>

namespace
{

void per_event(benchmark::State& state)
{
    state.SetItemsProcessed(state.iterations());
    state.counters["per_event"] =
        benchmark::Counter(static_cast<double>(state.iterations()),
                           benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

pgcoro::stats_collector& shared_collector()
{
    static pgcoro::stats_collector c;
    return c;
}

void BM_OnAcquire(benchmark::State& state)
{
    auto& c = shared_collector();
    pgcoro::observer* obs = &c; // called through the base, as the pool does
    std::uint64_t x = 1 + static_cast<std::uint64_t>(state.thread_index());
    for (auto _ : state)
    {
        benchmark::DoNotOptimize(obs);
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        // Half immediate (sub-microsecond), half waited (up to ~1 ms): many buckets.
        const bool waited = (x >> 63) != 0;
        obs->on_acquire(pgcoro::acquire_event{
            .outcome =
                waited ? pgcoro::acquire_outcome::waited : pgcoro::acquire_outcome::immediate,
            .waited = std::chrono::nanoseconds(static_cast<std::int64_t>(x >> (waited ? 44 : 54))),
            .waiters = 0});
    }
    per_event(state);
}

void BM_OnRelease(benchmark::State& state)
{
    pgcoro::observer* obs = &shared_collector();
    for (auto _ : state)
    {
        benchmark::DoNotOptimize(obs);
        obs->on_release(pgcoro::release_event{.held = std::chrono::microseconds(50)});
    }
    per_event(state);
}

void BM_OnAcquireTimedOut(benchmark::State& state)
{
    pgcoro::stats_collector c;
    pgcoro::observer* obs = &c;
    for (auto _ : state)
    {
        benchmark::DoNotOptimize(obs);
        obs->on_acquire(pgcoro::acquire_event{.outcome = pgcoro::acquire_outcome::timed_out,
                                              .waited = std::chrono::seconds(10),
                                              .waiters = 3});
    }
    per_event(state);
    state.counters["timeouts"] = static_cast<double>(c.snapshot().acquire_timeouts);
}

void BM_Snapshot(benchmark::State& state)
{
    pgcoro::stats_collector c;
    for (int i = 0; i < 10000; ++i)
        c.on_acquire(pgcoro::acquire_event{.outcome = pgcoro::acquire_outcome::immediate,
                                           .waited = std::chrono::nanoseconds(i * 97)});
    for (auto _ : state)
        benchmark::DoNotOptimize(c.snapshot());
    state.SetItemsProcessed(state.iterations());
}

} // namespace

BENCHMARK(BM_OnAcquire);
BENCHMARK(BM_OnAcquire)->Threads(2)->UseRealTime();
BENCHMARK(BM_OnRelease);
BENCHMARK(BM_OnRelease)->Threads(2)->UseRealTime();
BENCHMARK(BM_OnAcquireTimedOut);
BENCHMARK(BM_Snapshot)->Unit(benchmark::kMicrosecond);

BENCHMARK_MAIN();
