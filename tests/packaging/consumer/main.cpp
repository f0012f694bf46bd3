// The quickstart as an installed package's user writes it: settings from the environment
// (DATABASE_URL), a pool, one query. Built by tests/packaging.cmake once with
// find_package(pgcoro) and once with pkg-config, then run against the test cluster.
#include <pgcoro.hpp>
#include <pgcoro/version.hpp>

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
        std::cerr << settings.error() << "\n";
        return 1;
    }

    asio::io_context io;
    pgcoro::pool pool(io.get_executor(), settings->connect, settings->pool);
    int rc = 1;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void>
        {
            auto r = co_await pool.run([](pgcoro::connection& c)
                                       { return c.query("SELECT $1::int + 1", 41); });
            if (!r)
                std::cerr << "query: " << r.error() << "\n";
            else if (auto v = r->get<int>(0, 0); !v || *v != 42)
                std::cerr << "unexpected answer\n";
            else
            {
                std::cout << "pgcoro " << PGCORO_VERSION_STRING << ": SELECT 41 + 1 = " << *v
                          << "\n";
                rc = 0;
            }
            co_await pool.close();
        },
        asio::detached);
    io.run();
    return rc;
}
