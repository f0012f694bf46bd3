// 02_pool_from_env: configure a pool from the environment and share it between coroutines.
//
// Shows: settings_from_env() (DATABASE_URL, PGCORO_ENV profiles, every problem reported at
// once with no password), pool warmup, 50 coroutines sharing a 5-connection pool, pool.run(),
// and pool.stats(). Leaves out: retries and metrics (see 03).
// Run with DATABASE_URL=postgresql://user@127.0.0.1:5432/db (scripts/with-test-env.sh sets it).
#include <pgcoro.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <iostream>

namespace asio = boost::asio;

int main()
{
    auto settings = pgcoro::settings_from_env();
    if (!settings)
    {
        std::cerr << settings.error() << "\n"; // names each bad variable; never a password
        return 1;
    }
    std::cout << "profile " << pgcoro::to_string(settings->prof) << ", pool max "
              << settings->pool.max_size << "\n";

    asio::io_context io;
    pgcoro::pool pool(io.get_executor(), settings->connect, settings->pool);
    int rc = 0, done = 0;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void>
        {
            if (auto w = co_await pool.warmup(); !w)
            {
                std::cerr << "warmup: " << w.error() << "\n";
                rc = 1;
                co_return;
            }
            for (int k = 0; k < 50; ++k)
                asio::co_spawn(
                    io,
                    [&, k]() -> asio::awaitable<void>
                    {
                        auto r =
                            co_await pool.run([k](pgcoro::connection& c)
                                              { return c.query("SELECT $1::int * $1::int", k); });
                        if (!r)
                        {
                            std::cerr << "query: " << r.error() << "\n";
                            rc = 1;
                        }
                        if (++done == 50)
                        {
                            std::cout << "50 queries done; " << pool.stats() << "\n";
                            co_await pool.close();
                        }
                    },
                    asio::detached);
        },
        asio::detached);
    io.run();
    return rc;
}
