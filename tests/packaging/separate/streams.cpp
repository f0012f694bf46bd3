// Streamed results and COPY through a pool lease in separate-compilation mode.
#include "checks.hpp"

#include <iostream>
#include <string>
#include <vector>

namespace
{
bool fail(const char* what, const pgcoro::error& e)
{
    std::cerr << what << ": " << e << "\n";
    return false;
}
} // namespace

boost::asio::awaitable<bool> check_streams(pgcoro::pool& pool)
{
    auto l = co_await pool.acquire();
    if (!l)
        co_return fail("acquire", l.error());
    pgcoro::connection& c = **l;

    {
        auto s =
            co_await c.stream(std::size_t{10}, "SELECT g FROM generate_series(1, $1::int) g", 100);
        if (!s)
            co_return fail("stream", s.error());
        long long total = 0;
        for (;;)
        {
            auto more = co_await s->next();
            if (!more)
                co_return fail("stream next", more.error());
            if (!*more)
                break;
            auto rows = s->batch_as<int>();
            if (!rows)
                co_return fail("batch_as", rows.error());
            for (int v : *rows)
                total += v;
        }
        if (total != 5050)
        {
            std::cerr << "stream: sum " << total << "\n";
            co_return false;
        }
    }
    {
        auto s = co_await c.stream("SELECT g::text FROM generate_series(1, 50) g");
        if (!s)
            co_return fail("stream", s.error());
        std::vector<std::string> out;
        std::size_t count = 0;
        for (;;)
        {
            auto more = co_await s->next_as<std::string>(out);
            if (!more)
                co_return fail("next_as", more.error());
            count += out.size();
            if (!*more)
                break;
        }
        if (count != 50)
        {
            std::cerr << "next_as: " << count << " rows\n";
            co_return false;
        }
    }

    auto t = co_await c.query("CREATE TEMP TABLE sep_copy (a int, b text)");
    if (!t)
        co_return fail("create", t.error());
    auto w = co_await c.copy_in("COPY sep_copy FROM STDIN");
    if (!w)
        co_return fail("copy_in", w.error());
    for (int i = 0; i < 3; ++i)
        if (auto ok = co_await w->write_row(i, std::string("row")); !ok)
            co_return fail("write_row", ok.error());
    auto copied = co_await w->finish();
    if (!copied || *copied != 3)
    {
        std::cerr << "copy_in: unexpected count\n";
        co_return false;
    }
    auto rd = co_await c.copy_out("COPY sep_copy TO STDOUT");
    if (!rd)
        co_return fail("copy_out", rd.error());
    int lines = 0;
    for (;;)
    {
        auto line = co_await rd->next();
        if (!line)
            co_return fail("copy_out next", line.error());
        if (!*line)
            break;
        ++lines;
    }
    if (lines != 3)
    {
        std::cerr << "copy_out: " << lines << " rows\n";
        co_return false;
    }
    std::cout << "streams and COPY: ok\n";
    co_return true;
}
