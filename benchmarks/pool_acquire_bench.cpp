// pool_acquire_bench: acquire + release cycles per second on a warm pool (no query), with 1
// and 10 coroutines on one io_context thread. One coroutine never suspends (the fast paths
// alone); each of 10 holds its lease across a post to the other coroutines, so the leases
// interleave (up to 10 out, never a wait) and each cycle includes one post and resumption.
// Needs a server: run it through
//   scripts/with-test-env.sh STATE_DIR build/benchmarks/pool_acquire_bench
// (PGHOST/PGPORT/PGUSER/PGDATABASE), e.g. inside `bash scripts/bench.sh`.
#include <pgcoro/pool.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <benchmark/benchmark.h>

#include <cstdlib>
#include <string>
#include <vector>

namespace asio = boost::asio;

namespace
{

pgcoro::connect_config from_env()
{
    auto env = [](const char* k, const char* d)
    {
        const char* v = std::getenv(k);
        return std::string(v && *v ? v : d);
    };
    pgcoro::connect_config c;
    c.hosts = {
        {env("PGHOST", "127.0.0.1"), static_cast<std::uint16_t>(std::stoi(env("PGPORT", "5432")))}};
    c.user = env("PGUSER", "postgres");
    c.dbname = env("PGDATABASE", "postgres");
    c.application_name = "pgcoro-bench";
    return c;
}

// One benchmark iteration = `cycles` acquire+release pairs spread over `coroutines`
// (range 0). Range 1: the pool's shards, all on the one io_context (1: a plain pool; 2: the
// sharded acquire path, which finds the caller's shard first).
void BM_AcquireRelease(benchmark::State& state)
{
    const int coroutines = static_cast<int>(state.range(0));
    constexpr int cycles = 20000;
    asio::io_context io(1);
    pgcoro::pool_config cfg;
    cfg.min_size = 10;
    cfg.max_size = 10;
    cfg.validate_after_idle = std::chrono::milliseconds(0);
    std::vector<asio::any_io_executor> shards;
    for (std::int64_t i = 0; i < state.range(1); ++i)
        shards.emplace_back(io.get_executor());
    pgcoro::pool pool(shards, from_env(), cfg);
    bool warm = false;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void>
        {
            auto r = co_await pool.warmup();
            warm = r.has_value();
            io.stop();
        },
        asio::detached);
    io.run();
    if (!warm)
    {
        state.SkipWithError("warmup failed: is the server up?");
        return;
    }
    std::uint64_t failures = 0;
    for (auto _ : state)
    {
        int remaining = cycles, running = coroutines;
        io.restart();
        for (int k = 0; k < coroutines; ++k)
            asio::co_spawn(
                io,
                [&]() -> asio::awaitable<void>
                {
                    while (remaining > 0)
                    {
                        --remaining;
                        auto l = co_await pool.acquire();
                        if (!l)
                            ++failures;
                        if (coroutines > 1)
                            co_await asio::post(io, asio::use_awaitable); // the others run
                        // l is released here
                    }
                    if (--running == 0)
                        io.stop();
                },
                asio::detached);
        io.run();
    }
    state.SetItemsProcessed(state.iterations() * cycles);
    state.counters["failures"] = static_cast<double>(failures);
}

} // namespace

BENCHMARK(BM_AcquireRelease)
    ->Args({1, 1})
    ->Args({10, 1})
    ->Args({1, 2})
    ->Args({10, 2})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_MAIN();
