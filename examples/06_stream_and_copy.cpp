// 06_stream_and_copy: bulk data without holding it in memory.
//
// Shows: COPY FROM STDIN with typed rows (copy_in / write_row / finish), a COPY TO STDOUT
// export read line by line (copy_out), a large result streamed in batches mapped to tuples
// (stream / next / batch_as), and a bad row in a COPY reported with its SQLSTATE while the
// connection stays usable. Leaves out: the pool (a lease's connection works the same way).
// Reads the server address from libpq's PGHOST / PGPORT / PGUSER / PGDATABASE.
#include <pgcoro.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <cstdlib>
#include <iostream>

namespace asio = boost::asio;
using namespace std::chrono;

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
    if (!co_await conn->query("CREATE TEMP TABLE events (id int, kind text, at timestamptz)"))
        co_return 1;

    // Bulk load: rows are encoded as COPY text and sent in 64 KiB chunks.
    auto writer = co_await conn->copy_in("COPY events (id, kind, at) FROM STDIN");
    if (!writer)
    {
        std::cerr << "copy_in: " << writer.error() << "\n";
        co_return 1;
    }
    const auto start = sys_days(2024y / January / 1);
    for (int i = 0; i < 100000; ++i)
    {
        const std::string kind = i % 3 ? "view" : "click\tleft"; // a tab is escaped for COPY
        if (auto w = co_await writer->write_row(i, kind, start + minutes(i)); !w)
        {
            std::cerr << "write_row: " << w.error() << "\n";
            co_return 1;
        }
    }
    auto loaded = co_await writer->finish();
    if (!loaded)
        co_return 1;
    std::cout << "loaded " << *loaded << " rows\n";

    // Stream a large result: memory holds one batch, the server is read as fast as we go.
    auto stream = co_await conn->stream("SELECT id, kind FROM events WHERE id % $1 = 0", 1000);
    if (!stream)
        co_return 1;
    std::size_t rows = 0;
    for (;;)
    {
        auto more = co_await stream->next();
        if (!more)
        {
            std::cerr << "stream: " << more.error() << "\n";
            co_return 1;
        }
        if (!*more)
            break;
        auto batch = stream->batch_as<std::tuple<int, std::string>>();
        if (!batch)
            co_return 1;
        rows += batch->size();
    }
    std::cout << "streamed " << rows << " rows\n";

    // Export: COPY TO STDOUT, one line per row.
    auto reader = co_await conn->copy_out(
        "COPY (SELECT id, kind FROM events ORDER BY id LIMIT 3) TO STDOUT WITH (FORMAT csv)");
    if (!reader)
        co_return 1;
    for (;;)
    {
        auto line = co_await reader->next();
        if (!line || !*line)
            break;
        std::cout << "csv: " << **line;
    }

    // A bad row: a clear error with its SQLSTATE; nothing of that COPY is kept.
    auto bad = co_await conn->copy_in("COPY events (id, kind) FROM STDIN");
    if (!bad)
        co_return 1;
    co_await bad->write_raw("1\tok\nnot-a-number\toops\n");
    auto failed = co_await bad->finish();
    std::cout << "expected error: " << failed.error() << "\n";
    auto count = co_await conn->query_one<std::int64_t>("SELECT count(*) FROM events");
    std::cout << "rows still " << count.value_or(-1) << "\n";
    co_return *loaded == 100000 && rows == 100 && count.value_or(0) == 100000 ? 0 : 1;
}

int main()
{
    pgcoro::connect_config cfg;
    cfg.hosts = {{env_or("PGHOST", "127.0.0.1"),
                  static_cast<std::uint16_t>(std::stoi(env_or("PGPORT", "5432")))}};
    cfg.user = env_or("PGUSER", "postgres");
    cfg.dbname = env_or("PGDATABASE", "postgres");
    cfg.application_name = "pgcoro-example-06";

    asio::io_context io;
    int rc = 1;
    asio::co_spawn(io, demo(cfg), [&](std::exception_ptr e, int r) { rc = e ? 2 : r; });
    io.run();
    return rc;
}
