// SPDX-License-Identifier: BSL-1.0
// Streamed results and COPY (issue 21), side by side with libpq and psql on the same server.
//
//   scripts/with-test-env.sh STATE_DIR build/benchmarks/stream_copy_bench
//
// Stream: PGCORO_STREAM_ROWS (default 2 000 000) rows of (int, text) through connection::stream
// (next_as: typed batches), against libpq's own single-row loop (blocking, in this program only)
// and `psql -c "COPY (...) TO STDOUT" > /dev/null`; with the process RSS growth during the stream.
// COPY: PGCORO_COPY_ROWS (default 1 000 000) rows of (int, text, timestamptz) through
// copy_in/write_row, against `psql -c "\copy ... FROM file"` of the same rows, and one-row
// INSERTs through a pool of 10 with 10 coroutines (20 000 rows). Medians of 3; prints figures,
// asserts nothing. Connection from the environment (settings_from_env(), psql: PG* variables).
#include <pgcoro/connection.hpp>
#include <pgcoro/pool.hpp>
#include <pgcoro/settings.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <libpq-fe.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono;
using clk = steady_clock;

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

long env_long(const char* name, long fallback)
{
    const char* v = std::getenv(name);
    return v && *v ? std::atol(v) : fallback;
}

double median(std::vector<double> v)
{
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

template <class F>
double seconds_of(F&& f)
{
    const auto t0 = clk::now();
    f();
    return duration<double>(clk::now() - t0).count();
}

void run_io(asio::awaitable<void> aw)
{
    asio::io_context io;
    asio::co_spawn(io, std::move(aw),
                   [](std::exception_ptr e)
                   {
                       if (e)
                           std::rethrow_exception(e);
                   });
    io.run();
}

[[noreturn]] void die(const std::string& what)
{
    std::fprintf(stderr, "%s\n", what.c_str());
    std::exit(1);
}

std::string stream_sql(long rows)
{
    return "SELECT g, 'row ' || g FROM generate_series(1, " + std::to_string(rows) + ") g";
}

// pgcoro: rows/s and the RSS growth seen during the stream.
std::pair<double, double> pgcoro_stream(const pgcoro::connect_config& cfg, long rows)
{
    double secs = 0, growth = 0;
    run_io(
        [&]() -> asio::awaitable<void>
        {
            auto c = co_await pgcoro::open_connection(co_await asio::this_coro::executor, cfg);
            if (!c)
                die(c.error().to_string());
            const double before = rss_mib();
            double peak = before;
            long got = 0;
            const auto t0 = clk::now();
            auto s = co_await c->stream(stream_sql(rows));
            if (!s)
                die(s.error().to_string());
            std::vector<std::tuple<int, std::string>> batch;
            for (;;)
            {
                auto more = co_await s->next_as(batch);
                if (!more)
                    die(more.error().to_string());
                if (!*more)
                    break;
                got += static_cast<long>(batch.size());
                if ((got & 0xffff) < static_cast<long>(batch.size()))
                    peak = std::max(peak, rss_mib());
            }
            secs = duration<double>(clk::now() - t0).count();
            growth = std::max(peak, rss_mib()) - before;
            if (got != rows)
                die("stream returned " + std::to_string(got) + " rows");
        }());
    return {static_cast<double>(rows) / secs, growth};
}

// libpq's own single-row loop, blocking (this benchmark only).
double libpq_single_row(long rows)
{
    PGconn* c = PQconnectdb(""); // PG* variables
    if (PQstatus(c) != CONNECTION_OK)
        die(PQerrorMessage(c));
    long got = 0;
    const double secs = seconds_of(
        [&]
        {
            PQsendQuery(c, stream_sql(rows).c_str());
            PQsetSingleRowMode(c);
            while (PGresult* r = PQgetResult(c))
            {
                if (PQresultStatus(r) == PGRES_SINGLE_TUPLE)
                {
                    volatile int id = std::atoi(PQgetvalue(r, 0, 0));
                    volatile std::size_t len = static_cast<std::size_t>(PQgetlength(r, 0, 1));
                    (void)id;
                    (void)len;
                    ++got;
                }
                PQclear(r);
            }
        });
    PQfinish(c);
    if (got != rows)
        die("libpq returned " + std::to_string(got) + " rows");
    return static_cast<double>(rows) / secs;
}

double psql_copy_out(long rows)
{
    const std::string cmd =
        "psql -X -q -c \"COPY (" + stream_sql(rows) + ") TO STDOUT\" > /dev/null";
    const double secs = seconds_of(
        [&]
        {
            if (std::system(cmd.c_str()) != 0)
                die("psql failed: " + cmd);
        });
    return static_cast<double>(rows) / secs;
}

const sys_seconds copy_epoch = sys_days(2024y / January / 1);

double pgcoro_copy_in(const pgcoro::connect_config& cfg, long rows)
{
    double secs = 0;
    run_io(
        [&]() -> asio::awaitable<void>
        {
            auto c = co_await pgcoro::open_connection(co_await asio::this_coro::executor, cfg);
            if (!c || !co_await c->query("TRUNCATE pgcoro_bench_copy"))
                die("truncate failed");
            const auto t0 = clk::now();
            auto w = co_await c->copy_in("COPY pgcoro_bench_copy (id, name, at) FROM STDIN");
            if (!w)
                die(w.error().to_string());
            std::string name;
            for (long i = 0; i < rows; ++i)
            {
                name = "name ";
                name += std::to_string(i);
                if (auto r =
                        co_await w->write_row(static_cast<int>(i), name, copy_epoch + seconds(i));
                    !r)
                    die(r.error().to_string());
            }
            auto n = co_await w->finish();
            if (!n || *n != static_cast<std::uint64_t>(rows))
                die("copy failed");
            secs = duration<double>(clk::now() - t0).count();
        }());
    return static_cast<double>(rows) / secs;
}

double psql_copy_in(const std::string& file, long rows)
{
    if (std::system("psql -X -q -c 'TRUNCATE pgcoro_bench_copy'") != 0)
        die("psql truncate failed");
    const std::string cmd =
        "psql -X -q -c \"\\copy pgcoro_bench_copy (id, name, at) FROM '" + file + "'\"";
    const double secs = seconds_of(
        [&]
        {
            if (std::system(cmd.c_str()) != 0)
                die("psql failed: " + cmd);
        });
    return static_cast<double>(rows) / secs;
}

double pool_inserts(const pgcoro::connect_config& cfg, long rows)
{
    double secs = 0;
    run_io(
        [&]() -> asio::awaitable<void>
        {
            auto ex = co_await asio::this_coro::executor;
            pgcoro::pool_config pc;
            pc.max_size = 10;
            pgcoro::pool pool(ex, cfg, pc);
            co_await pool.warmup();
            long next = 0;
            int running = 10;
            const auto t0 = clk::now();
            for (int k = 0; k < 10; ++k)
                asio::co_spawn(
                    ex,
                    [&]() -> asio::awaitable<void>
                    {
                        while (next < rows)
                        {
                            const long i = next++;
                            auto l = co_await pool.acquire();
                            if (!l)
                                die(l.error().to_string());
                            auto r = co_await (*l)->query(
                                "INSERT INTO pgcoro_bench_copy (id, name, at) VALUES ($1, $2, $3)",
                                static_cast<int>(i), "name " + std::to_string(i),
                                copy_epoch + seconds(i));
                            if (!r)
                                die(r.error().to_string());
                        }
                        --running;
                    },
                    asio::detached);
            asio::steady_timer t(ex);
            while (running > 0)
            {
                t.expires_after(1ms);
                co_await t.async_wait(asio::use_awaitable);
            }
            secs = duration<double>(clk::now() - t0).count();
            co_await pool.close(std::chrono::seconds(5));
        }());
    return static_cast<double>(rows) / secs;
}

} // namespace

int main()
{
    auto settings = pgcoro::settings_from_env(); // DATABASE_URL and PG*/PGCORO_* variables
    if (!settings)
        die(settings.error().to_string());
    auto cfg = settings->connect;
    cfg.application_name = "pgcoro-stream-copy-bench";
    cfg.statement_timeout = std::chrono::milliseconds(0);
    cfg.query_timeout = std::chrono::milliseconds(0);
    const long stream_rows = env_long("PGCORO_STREAM_ROWS", 2'000'000);
    const long copy_rows = env_long("PGCORO_COPY_ROWS", 1'000'000);

    std::vector<double> ours, libpq, psql, growth;
    for (int rep = 0; rep < 3; ++rep)
    {
        auto [rate, grew] = pgcoro_stream(cfg, stream_rows);
        ours.push_back(rate);
        growth.push_back(grew);
        libpq.push_back(libpq_single_row(stream_rows));
        psql.push_back(psql_copy_out(stream_rows));
    }
    std::printf("stream %ld rows (int, text): pgcoro %.0f rows/s (RSS growth max %.1f MiB), "
                "libpq single-row loop %.0f rows/s, psql COPY TO STDOUT %.0f rows/s: "
                "%.2fx libpq, %.2fx psql COPY\n",
                stream_rows, median(ours), *std::max_element(growth.begin(), growth.end()),
                median(libpq), median(psql), median(ours) / median(libpq),
                median(ours) / median(psql));

    if (std::system("psql -X -q -c 'DROP TABLE IF EXISTS pgcoro_bench_copy' -c "
                    "'CREATE TABLE pgcoro_bench_copy (id int, name text, at timestamptz)'") != 0)
        die("psql create failed");
    const std::string file = "/tmp/pgcoro_copy_bench_" + std::to_string(::getpid()) + ".tsv";
    {
        std::ofstream out(file);
        for (long i = 0; i < copy_rows; ++i)
        {
            std::string at;
            pgcoro::value_traits<sys_seconds>::encode(copy_epoch + seconds(i), at);
            out << i << "\tname " << i << '\t' << at << '\n';
        }
    }
    std::vector<double> copy_ours, copy_psql;
    for (int rep = 0; rep < 3; ++rep)
    {
        copy_ours.push_back(pgcoro_copy_in(cfg, copy_rows));
        copy_psql.push_back(psql_copy_in(file, copy_rows));
    }
    std::remove(file.c_str());
    std::system("psql -X -q -c 'TRUNCATE pgcoro_bench_copy'");
    const double inserts = pool_inserts(cfg, 20'000);
    std::system("psql -X -q -c 'DROP TABLE pgcoro_bench_copy'");
    std::printf("copy in %ld rows (int, text, timestamptz): pgcoro %.0f rows/s, psql \\copy %.0f "
                "rows/s, one-row INSERTs through a pool of 10 %.0f rows/s: %.2fx psql, %.1fx "
                "INSERTs\n",
                copy_rows, median(copy_ours), median(copy_psql), inserts,
                median(copy_ours) / median(copy_psql), median(copy_ours) / inserts);
}
