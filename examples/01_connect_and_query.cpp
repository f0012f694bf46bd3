// 01_connect_and_query: open one connection, run parameterised statements, read typed rows.
//
// Shows: pgcoro::open_connection, query() with $n parameters (never spliced into SQL), typed
// field access, SQLSTATE on a server error, a per-statement timeout that cancels on the server.
// Leaves out: the pool, configuration profiles, retries (see the later examples).
// Reads the server address from libpq's PGHOST / PGPORT / PGUSER / PGDATABASE.
#include <pgcoro.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <cstdlib>
#include <iostream>

namespace asio = boost::asio;
using namespace std::chrono_literals;

static std::string env_or(const char* name, const char* fallback)
{
    const char* v = std::getenv(name);
    return v && *v ? v : fallback;
}

asio::awaitable<int> demo(pgcoro::connect_config cfg)
{
    auto conn = co_await pgcoro::open_connection(co_await asio::this_coro::executor, cfg);
    if (!conn)
    {
        std::cerr << "connect: " << conn.error() << "\n";
        co_return 1;
    }

    auto rows = co_await conn->query(
        "SELECT n, n * n AS square, md5(n::text) AS digest FROM generate_series(1, $1::int) n", 3);
    if (!rows)
    {
        std::cerr << "query: " << rows.error() << "\n";
        co_return 1;
    }
    for (auto row : *rows)
        std::cout << "n=" << row.get<int>("n").value() << " square=" << row.get<int>(1).value()
                  << " digest=" << row.get<std::string_view>("digest").value() << "\n";

    // A server error is a value with its SQLSTATE; the connection stays usable.
    auto bad = co_await conn->query("SELECT 1 / $1::int", 0);
    std::cout << "expected error: " << bad.error() << "\n";

    // A statement that overruns its timeout is cancelled on the server.
    auto slow = co_await conn->query(pgcoro::query_options{100ms}, "SELECT pg_sleep(5)");
    std::cout << "expected timeout: " << slow.error() << "\n";

    auto version = co_await conn->query("SELECT current_setting('server_version')");
    if (!version)
        co_return 1;
    std::cout << "server version " << version->get<std::string>(0, 0).value() << "\n";
    co_return 0;
}

int main()
{
    pgcoro::connect_config cfg;
    cfg.hosts = {{env_or("PGHOST", "127.0.0.1"),
                  static_cast<std::uint16_t>(std::stoi(env_or("PGPORT", "5432")))}};
    cfg.user = env_or("PGUSER", "postgres");
    cfg.dbname = env_or("PGDATABASE", "postgres");
    cfg.application_name = "pgcoro-example-01";

    asio::io_context io;
    int rc = 1;
    asio::co_spawn(io, demo(cfg), [&](std::exception_ptr e, int r) { rc = e ? 2 : r; });
    io.run();
    return rc;
}
