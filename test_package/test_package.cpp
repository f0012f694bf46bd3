// SPDX-License-Identifier: BSL-1.0
// Conan test_package: compiles a pool and a query (every template the quickstart uses), then
// runs without a server: parses a DATABASE_URL and prints the version.
#include <pgcoro.hpp>
#include <pgcoro/version.hpp>

#include <iostream>

namespace asio = boost::asio;

// Compiled, not run: a server is not needed to prove the templates instantiate.
asio::awaitable<void> use(pgcoro::pool& pool)
{
    auto conn = co_await pool.acquire();
    if (conn)
        (void)co_await (*conn)->query("SELECT $1::int", 1);
}

int main()
{
    auto url = pgcoro::parse_database_url("postgres://app:s3cret@127.0.0.1:5432/db");
    if (!url)
    {
        std::cerr << url.error() << "\n";
        return 1;
    }
    [[maybe_unused]] asio::awaitable<void> (*fn)(pgcoro::pool&) = &use;
    std::cout << "pgcoro " << PGCORO_VERSION_STRING << ": DATABASE_URL parsed\n";
    return 0;
}
