// Separate-compilation consumer: settings from the environment, a pool, the checks of the other
// two TUs. Exit status 0 when every check passed.
#include "checks.hpp"

#include <pgcoro/settings.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <iostream>

namespace asio = boost::asio;

namespace
{
asio::awaitable<void> run_all(pgcoro::pool& pool, int& rc)
{
    auto w = co_await pool.warmup();
    if (!w)
        std::cerr << "warmup: " << w.error() << "\n";
    else
    {
        const bool q = co_await check_queries(pool);
        const bool s = co_await check_streams(pool);
        if (q && s)
            rc = 0;
    }
    co_await pool.close();
}
} // namespace

int main()
{
    auto settings = pgcoro::settings_from_env();
    if (!settings)
    {
        std::cerr << settings.error() << "\n";
        return 1;
    }
    asio::io_context io;
    pgcoro::pool pool(io.get_executor(), settings->connect, settings->pool);
    int rc = 1;
    asio::co_spawn(io, run_all(pool, rc), asio::detached);
    io.run();
    std::cout << (rc == 0 ? "separate compilation consumer: all checks passed\n"
                          : "separate compilation consumer: FAILED\n");
    return rc;
}
