// pipeline_bench: workload W1P - `SELECT 1` from 100 coroutines through pipelined connections
// (pgcoro::pipelined_connection / pipeline_group), next to W1 through a non-pipelined pool.
// Prints statements per second for each configuration. Needs a server:
//   scripts/with-test-env.sh STATE_DIR build/benchmarks/pipeline_bench [SECONDS] [FILTER]
// (PGHOST/PGPORT/PGUSER/PGDATABASE). SECONDS per configuration (default 5); FILTER runs only
// the configurations whose name contains it. Compare with pgbench's pipelined figure:
//   printf '\\startpipeline\n' > p.sql; for i in $(seq 10); do echo 'SELECT 1;' >> p.sql; done
//   printf '\\endpipeline\n' >> p.sql; pgbench -n -f p.sql -c 10 -j 2 -T 5 -M extended
// (pgbench counts pipelines as transactions: statements/s = tps x 10).
#include <pgcoro/pipeline.hpp>
#include <pgcoro/pool.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>

namespace asio = boost::asio;
using namespace std::chrono_literals;

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
    c.application_name = "pgcoro-pipeline-bench";
    c.sslmode = pgcoro::ssl_mode::disable;
    return c;
}

constexpr int coroutines = 100;

// Runs `coroutines` loops of `one()` for `seconds` (after a 0.5 s warm-up) on one io_context
// thread; returns statements per second (negative when a statement failed).
double measure(asio::io_context& io, std::function<asio::awaitable<bool>()> one, double seconds)
{
    bool stop = false, counting = false;
    long count = 0, failures = 0;
    int running = coroutines;
    auto started = std::chrono::steady_clock::now();
    for (int k = 0; k < coroutines; ++k)
        asio::co_spawn(
            io,
            [&]() -> asio::awaitable<void>
            {
                while (!stop)
                {
                    bool ok = co_await one();
                    if (!ok)
                        ++failures;
                    else if (counting)
                        ++count;
                }
                if (--running == 0)
                    io.stop();
            },
            asio::detached);
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void>
        {
            asio::steady_timer t(io, 500ms);
            co_await t.async_wait(asio::use_awaitable);
            counting = true;
            started = std::chrono::steady_clock::now();
            t.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                std::chrono::duration<double>(seconds)));
            co_await t.async_wait(asio::use_awaitable);
            counting = false;
            stop = true;
        },
        asio::detached);
    io.restart();
    io.run();
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    if (failures > 0)
    {
        std::printf("    (%ld failures)\n", failures);
        return -1;
    }
    return static_cast<double>(count) / elapsed;
}

void report(const char* name, double qps)
{
    std::printf("%-34s coroutines=%d  statements/s=%.0f\n", name, coroutines, qps);
    std::fflush(stdout);
}

bool wanted(const std::string& name, const std::string& filter)
{
    return filter.empty() || name.find(filter) != std::string::npos;
}

void bench_pool(const std::string& name, std::size_t size, double seconds)
{
    asio::io_context io(1);
    pgcoro::pool_config pc;
    pc.min_size = size;
    pc.max_size = size;
    pc.validate_after_idle = 0ms;
    pc.acquire_timeout = 30s;
    pgcoro::pool pool(io.get_executor(), from_env(), pc);
    bool warm = false;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void>
        {
            warm = (co_await pool.warmup()).has_value();
            io.stop();
        },
        asio::detached);
    io.run();
    if (!warm)
    {
        std::printf("%s: warmup failed (is the server up?)\n", name.c_str());
        return;
    }
    report(name.c_str(), measure(
                             io,
                             [&]() -> asio::awaitable<bool>
                             {
                                 auto r = co_await pool.run([](pgcoro::connection& c)
                                                            { return c.query("SELECT 1"); });
                                 co_return r.has_value();
                             },
                             seconds));
}

void bench_group(const std::string& name, std::size_t members, std::size_t per_sync, double seconds)
{
    asio::io_context io(1);
    pgcoro::pipeline_group_config gc;
    gc.connections = members;
    gc.pipeline.statements_per_sync = per_sync;
    pgcoro::pipeline_group g(io.get_executor(), from_env(), gc);
    bool ok = false;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void>
        {
            ok = (co_await g.connect()).has_value();
            io.stop(); // the readers keep the io_context busy
        },
        asio::detached);
    io.run();
    if (!ok)
    {
        std::printf("%s: connect failed (is the server up?)\n", name.c_str());
        return;
    }
    report(name.c_str(), measure(
                             io,
                             [&]() -> asio::awaitable<bool>
                             {
                                 auto r = co_await g.query("SELECT 1");
                                 co_return r.has_value();
                             },
                             seconds));
    g.close();
    io.restart();
    io.poll();
}

} // namespace

int main(int argc, char** argv)
{
    const double seconds = argc > 1 ? std::atof(argv[1]) : 5.0;
    const std::string filter = argc > 2 ? argv[2] : "";
    struct group_case
    {
        const char* name;
        std::size_t members, per_sync;
    };
    if (wanted("W1  pool x10 (not pipelined)", filter))
        bench_pool("W1  pool x10 (not pipelined)", 10, seconds);
    for (const group_case& c :
         {group_case{"W1P pipelined x1, sync/statement", 1, 1},
          group_case{"W1P pipelined x1, sync/8", 1, 8},
          group_case{"W1P pipelined x1, sync/16", 1, 16},
          group_case{"W1P pipelined x1, sync/32", 1, 32},
          group_case{"W1P pipelined x1, sync/64", 1, 64},
          group_case{"W1P group x2, sync/statement", 2, 1},
          group_case{"W1P group x2, sync/16", 2, 16}, group_case{"W1P group x2, sync/64", 2, 64},
          group_case{"W1P group x4, sync/statement", 4, 1},
          group_case{"W1P group x4, sync/16", 4, 16}, group_case{"W1P group x4, sync/64", 4, 64}})
        if (wanted(c.name, filter))
            bench_group(c.name, c.members, c.per_sync, seconds);
    return 0;
}
