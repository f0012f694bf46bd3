// Queries through a pool lease in separate-compilation mode.
#include "checks.hpp"

#include <pgcoro/params.hpp>

#include <iostream>
#include <optional>
#include <string>

namespace
{
bool fail(const char* what, const pgcoro::error& e)
{
    std::cerr << what << ": " << e << "\n";
    return false;
}
} // namespace

boost::asio::awaitable<bool> check_queries(pgcoro::pool& pool)
{
    auto l = co_await pool.acquire();
    if (!l)
        co_return fail("acquire", l.error());
    pgcoro::connection& c = **l;

    auto r = co_await c.query("SELECT $1::int + 1, $2::text, $3::text", 41, std::string("x"),
                              std::optional<int>());
    if (!r)
        co_return fail("query", r.error());
    if (r->get<int>(0, 0) != 42 || r->get<std::string>(0, 1) != "x" || !(*r)[0][2].is_null())
    {
        std::cerr << "query: unexpected row\n";
        co_return false;
    }

    pgcoro::query_options opts;
    opts.timeout = std::chrono::seconds(5);
    auto n = co_await c.query_one<long long>("SELECT count(*) FROM generate_series(1, $1::int)", 7);
    if (!n || *n != 7)
    {
        std::cerr << "query_one: unexpected\n";
        co_return false;
    }
    auto none = co_await c.query_opt<int>("SELECT 1 WHERE false");
    if (!none || none->has_value())
    {
        std::cerr << "query_opt: unexpected\n";
        co_return false;
    }
    auto timed = co_await c.query(opts, "SELECT pg_sleep(0)");
    if (!timed)
        co_return fail("query with options", timed.error());

    pgcoro::params list;
    list.add(2).add(3);
    auto sum = co_await c.query("SELECT $1::int * $2::int", list);
    if (!sum || sum->get<int>(0, 0) != 6)
    {
        std::cerr << "runtime params: unexpected\n";
        co_return false;
    }

    auto st = co_await c.prepare("SELECT $1::bigint * 2");
    if (!st)
        co_return fail("prepare", st.error());
    auto ex = co_await c.execute(*st, 21);
    if (!ex)
        co_return fail("execute", ex.error());
    if (ex->get<long long>(0, 0) != 42)
    {
        std::cerr << "execute: unexpected\n";
        co_return false;
    }
    auto bad = co_await c.execute(*st, std::string("not a number"), 1);
    if (bad)
    {
        std::cerr << "execute: a wrong parameter count was accepted\n";
        co_return false;
    }

    auto ran = co_await pool.run([](pgcoro::connection& conn) { return conn.query("SELECT 1"); });
    if (!ran)
        co_return fail("pool.run", ran.error());
    std::cout << "queries: ok\n";
    co_return true;
}
