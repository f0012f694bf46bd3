// SPDX-License-Identifier: BSL-1.0
// Event-loop lag while a statement with one large text parameter runs (issue 18, finding 11).
//
//   scripts/with-test-env.sh STATE_DIR build-perf/benchmarks/param_lag_bench
//
// For 4, 16 and 64 MiB: a 1 ms periodic timer on the same io_context measures how late it
// fires while `SELECT length($1)` runs on a plain connection (the parameter moved in, as a
// service would pass a body it owns); then the process RSS while that connection stays open,
// and after it is closed. Connection from the environment (settings_from_env()). Prints one line
// per size; no assertion (a benchmark, not a test).
#include <pgcoro/connection.hpp>
#include <pgcoro/settings.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using clk = std::chrono::steady_clock;

namespace
{

double rss_mib()
{
    std::ifstream f("/proc/self/statm");
    long pages = 0, resident = 0;
    f >> pages >> resident;
    return static_cast<double>(resident) * static_cast<double>(::sysconf(_SC_PAGESIZE)) /
           (1024.0 * 1024.0);
}

asio::awaitable<void> measure(asio::io_context& io, const pgcoro::connect_config& cfg,
                              std::size_t mib)
{
    auto c = co_await pgcoro::open_connection(io.get_executor(), cfg);
    if (!c)
    {
        std::fprintf(stderr, "connect: %s\n", c.error().to_string().c_str());
        std::exit(1);
    }
    std::string big(mib * 1024 * 1024, 'x');
    const double rss_before = rss_mib();

    bool done = false;
    clk::duration worst{0};
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void>
        {
            asio::steady_timer t(io);
            auto due = clk::now() + 1ms;
            while (!done)
            {
                t.expires_at(due);
                co_await t.async_wait(asio::use_awaitable);
                worst = std::max(worst, clk::now() - due);
                due = clk::now() + 1ms;
            }
        },
        asio::detached);
    asio::steady_timer settle(io, 20ms); // the ticker runs before the statement starts
    co_await settle.async_wait(asio::use_awaitable);

    const auto t0 = clk::now();
    auto r = co_await c->query("SELECT length($1)", std::move(big));
    const auto took = clk::now() - t0;
    done = true;
    if (!r)
    {
        std::fprintf(stderr, "query: %s\n", r.error().to_string().c_str());
        std::exit(1);
    }
    const double rss_open = rss_mib();
    c->close();
    const double rss_closed = rss_mib();
    std::printf("param %3zu MiB: loop lag max %7.1f ms, statement %7.1f ms, RSS %6.1f MiB before, "
                "%6.1f MiB with the connection open, %6.1f MiB after close\n",
                mib, std::chrono::duration<double, std::milli>(worst).count(),
                std::chrono::duration<double, std::milli>(took).count(), rss_before, rss_open,
                rss_closed);
}

} // namespace

int main()
{
    auto settings = pgcoro::settings_from_env(); // DATABASE_URL and PG*/PGCORO_* variables
    if (!settings)
    {
        std::fprintf(stderr, "%s\n", settings.error().to_string().c_str());
        return 2;
    }
    settings->connect.application_name = "pgcoro-param-lag";
    for (std::size_t mib : {4, 16, 64})
    {
        asio::io_context io;
        asio::co_spawn(io, measure(io, settings->connect, mib), asio::detached);
        io.run();
    }
}
