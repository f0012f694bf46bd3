// Integration tests of the statement cache (connect_config::statement_cache_size) against the
// real test cluster: statements seen before run as named prepared statements, the cache is
// bounded on the server too, and every way the server can lose or outdate a statement (DISCARD
// ALL, DEALLOCATE, a changed table) is recovered from without the caller seeing it, except
// inside a transaction, where the error is the caller's.
#include <pgcoro/connection.hpp>
#include <pgcoro/pool.hpp>

#include "support/test_server.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>

namespace asio = boost::asio;
using pgcoro::errc;
using pgcoro::test::run;
using pgcoro::test::test_server;

namespace
{

pgcoro::connect_config cached(std::size_t capacity)
{
    auto cfg = test_server::get().tcp();
    cfg.statement_cache_size = capacity;
    return cfg;
}

// This session's pgcoro statements on the server, the counting query itself left out (it is
// cached too).
asio::awaitable<std::int64_t> server_statements(pgcoro::connection& c)
{
    auto r =
        co_await c.query("SELECT count(*) FROM pg_prepared_statements "
                         "WHERE name LIKE 'pgcoro\\_%' AND statement NOT LIKE '%pg_prepared%'");
    if (!r)
    {
        ADD_FAILURE() << r.error();
        co_return -1;
    }
    co_return r->get<std::int64_t>(0, 0).value();
}

} // namespace

TEST(StatementCache, RepeatedStatementRunsAsOnePreparedStatement)
{
    asio::io_context io;
    run(io,
        [&]() -> asio::awaitable<void>
        {
            auto c = co_await pgcoro::open_connection(io.get_executor(), cached(8));
            PGCORO_CO_ASSERT(c.has_value());
            for (int i = 0; i < 3; ++i)
            {
                auto r = co_await c->query("SELECT $1::int + 1 AS n", i);
                PGCORO_CO_ASSERT(r.has_value());
                EXPECT_EQ(r->get<int>(0, 0).value(), i + 1);
            }
            EXPECT_EQ(c->prepared_statements(), 1u);
            // The server prepared it once and executed it three times (plan counters, PG14+).
            auto r = co_await c->query("SELECT count(*), sum(generic_plans + custom_plans)::bigint "
                                       "FROM pg_prepared_statements "
                                       "WHERE statement = 'SELECT $1::int + 1 AS n'");
            PGCORO_CO_ASSERT(r.has_value());
            EXPECT_EQ(r->get<std::int64_t>(0, 0).value(), 1);
            EXPECT_EQ(r->get<std::int64_t>(0, 1).value(), 3);
        }());
}

TEST(StatementCache, SameTextWithAnotherParameterTypeIsAnotherStatement)
{
    asio::io_context io;
    run(io,
        [&]() -> asio::awaitable<void>
        {
            auto c = co_await pgcoro::open_connection(io.get_executor(), cached(8));
            PGCORO_CO_ASSERT(c.has_value());
            auto a = co_await c->query("SELECT $1::text", 7);
            auto b = co_await c->query("SELECT $1::text", std::string("x"));
            auto d = co_await c->query("SELECT $1::text", 8);
            EXPECT_TRUE(a) << a.error();
            EXPECT_TRUE(b) << b.error();
            EXPECT_TRUE(d) << d.error();
            PGCORO_CO_ASSERT(a && b && d);
            EXPECT_EQ(d->get<std::string_view>(0, 0).value(), "8");
            EXPECT_EQ(c->prepared_statements(), 2u);
        }());
}

TEST(StatementCache, EvictedStatementsAreDeallocatedOnTheServer)
{
    asio::io_context io;
    run(io,
        [&]() -> asio::awaitable<void>
        {
            auto c = co_await pgcoro::open_connection(io.get_executor(), cached(2));
            PGCORO_CO_ASSERT(c.has_value());
            for (int i = 0; i < 5; ++i)
            {
                auto r = co_await c->query("SELECT " + std::to_string(i) + " + $1", i);
                PGCORO_CO_ASSERT(r.has_value());
                EXPECT_EQ(r->get<int>(0, 0).value(), 2 * i);
            }
            EXPECT_EQ(c->prepared_statements(), 2u);
            // Preparing the counting query evicted one more and deallocated every evicted one
            // first: the server holds exactly what the cache holds, the last statement and the
            // counting query itself (left out of the count).
            EXPECT_EQ(co_await server_statements(*c), 1);
            EXPECT_EQ(c->prepared_statements(), 2u);
        }());
}

TEST(StatementCache, DiscardAllAndDeallocateAllAreNoticed)
{
    asio::io_context io;
    run(io,
        [&]() -> asio::awaitable<void>
        {
            auto c = co_await pgcoro::open_connection(io.get_executor(), cached(8));
            PGCORO_CO_ASSERT(c.has_value());
            for (const char* reset : {"DISCARD ALL", "DEALLOCATE ALL"})
            {
                PGCORO_CO_ASSERT((co_await c->query("SELECT $1::int", 1)).has_value());
                auto d = co_await c->query(reset);
                PGCORO_CO_ASSERT(d.has_value());
                EXPECT_EQ(c->prepared_statements(), 0u) << reset;
                auto r = co_await c->query("SELECT $1::int", 2);
                PGCORO_CO_ASSERT(r.has_value());
                EXPECT_EQ(r->get<int>(0, 0).value(), 2);
            }
        }());
}

TEST(StatementCache, StatementDeallocatedBehindItsBackIsPreparedAgain)
{
    asio::io_context io;
    run(io,
        [&]() -> asio::awaitable<void>
        {
            auto c = co_await pgcoro::open_connection(io.get_executor(), cached(8));
            PGCORO_CO_ASSERT(c.has_value());
            PGCORO_CO_ASSERT((co_await c->query("SELECT $1::int * 10", 1)).has_value());
            // A DEALLOCATE of one name is not something the cache can see (its tag names no
            // statement): the next use fails with 26000 and is prepared and sent again.
            auto names = co_await c->query(
                "SELECT name FROM pg_prepared_statements WHERE statement = 'SELECT $1::int * 10'");
            PGCORO_CO_ASSERT(names.has_value() && names->size() == 1);
            auto name = std::string(names->get<std::string_view>(0, 0).value());
            PGCORO_CO_ASSERT((co_await c->query("DEALLOCATE " + name)).has_value());
            auto r = co_await c->query("SELECT $1::int * 10", 4);
            PGCORO_CO_ASSERT(r.has_value());
            EXPECT_EQ(r->get<int>(0, 0).value(), 40);
        }());
}

TEST(StatementCache, ChangedResultTypeIsPreparedAgainOutsideATransaction)
{
    asio::io_context io;
    run(io,
        [&]() -> asio::awaitable<void>
        {
            auto c = co_await pgcoro::open_connection(io.get_executor(), cached(8));
            PGCORO_CO_ASSERT(c.has_value());
            PGCORO_CO_ASSERT((co_await c->query("CREATE TEMP TABLE sc_t (a int)")).has_value());
            PGCORO_CO_ASSERT((co_await c->query("INSERT INTO sc_t VALUES (1)")).has_value());
            auto before = co_await c->query("SELECT * FROM sc_t");
            PGCORO_CO_ASSERT(before.has_value());
            EXPECT_EQ(before->columns(), 1u);
            PGCORO_CO_ASSERT((co_await c->query("ALTER TABLE sc_t ADD COLUMN b int")).has_value());
            // The server refuses the old plan (0A000 "cached plan must not change result type");
            // nothing ran, so the statement is prepared again and the caller sees two columns.
            auto after = co_await c->query("SELECT * FROM sc_t");
            PGCORO_CO_ASSERT(after.has_value());
            EXPECT_EQ(after->columns(), 2u);

            // Inside a transaction the same error has aborted the transaction: it is reported,
            // and the statement is prepared afresh next time.
            PGCORO_CO_ASSERT((co_await c->query("BEGIN")).has_value());
            PGCORO_CO_ASSERT((co_await c->query("ALTER TABLE sc_t ADD COLUMN c int")).has_value());
            auto in_tx = co_await c->query("SELECT * FROM sc_t");
            PGCORO_CO_ASSERT(!in_tx.has_value());
            EXPECT_TRUE(in_tx.error().is(errc::query_failed)) << in_tx.error();
            EXPECT_EQ(in_tx.error().state, "0A000");
            EXPECT_EQ(c->transaction_status(), PQTRANS_INERROR);
            PGCORO_CO_ASSERT((co_await c->query("ROLLBACK")).has_value());
            auto again = co_await c->query("SELECT * FROM sc_t");
            PGCORO_CO_ASSERT(again.has_value());
            EXPECT_EQ(again->columns(), 2u); // column c was rolled back
        }());
}

TEST(StatementCache, FailedPrepareIsTheStatementsErrorAndCachesNothing)
{
    asio::io_context io;
    run(io,
        [&]() -> asio::awaitable<void>
        {
            auto c = co_await pgcoro::open_connection(io.get_executor(), cached(8));
            PGCORO_CO_ASSERT(c.has_value());
            auto bad = co_await c->query("SELEC $1::int", 1);
            PGCORO_CO_ASSERT(!bad.has_value());
            EXPECT_TRUE(bad.error().is(errc::query_failed)) << bad.error();
            EXPECT_EQ(bad.error().state, "42601");
            EXPECT_EQ(c->prepared_statements(), 0u);
            auto ok = co_await c->query("SELECT $1::int", 5);
            PGCORO_CO_ASSERT(ok.has_value());
            EXPECT_EQ(ok->get<int>(0, 0).value(), 5);
        }());
}

TEST(StatementCache, OffInPgbouncerModeAndByDefault)
{
    asio::io_context io;
    run(io,
        [&]() -> asio::awaitable<void>
        {
            auto cfg = cached(8);
            cfg.pgbouncer = true; // validate() refuses this; a connection ignores the cache
            auto bouncer = co_await pgcoro::open_connection(io.get_executor(), cfg);
            auto plain = co_await pgcoro::open_connection(io.get_executor(), cached(0));
            PGCORO_CO_ASSERT(bouncer.has_value() && plain.has_value());
            for (auto* c : {&*bouncer, &*plain})
            {
                for (int i = 0; i < 2; ++i)
                    PGCORO_CO_ASSERT((co_await c->query("SELECT $1::int", i)).has_value());
                EXPECT_EQ(c->prepared_statements(), 0u);
                EXPECT_EQ(co_await server_statements(*c), 0);
            }
        }());
}

TEST(StatementCache, PooledConnectionsKeepTheirStatementsAcrossLeases)
{
    asio::io_context io;
    run(io,
        [&]() -> asio::awaitable<void>
        {
            pgcoro::pool_config pc;
            pc.min_size = 1;
            pc.max_size = 1;
            pgcoro::pool pool(io.get_executor(), cached(8), pc);
            for (int i = 0; i < 3; ++i)
            {
                auto l = co_await pool.acquire();
                PGCORO_CO_ASSERT(l.has_value());
                auto res = co_await (*l)->query("SELECT $1::int + 100", i);
                PGCORO_CO_ASSERT(res.has_value());
                EXPECT_EQ(res->get<int>(0, 0).value(), 100 + i);
            }
            auto l = co_await pool.acquire();
            PGCORO_CO_ASSERT(l.has_value());
            auto r = co_await (*l)->query(
                "SELECT sum(generic_plans + custom_plans)::bigint FROM pg_prepared_statements "
                "WHERE statement = 'SELECT $1::int + 100'");
            PGCORO_CO_ASSERT(r.has_value());
            EXPECT_EQ(r->get<std::int64_t>(0, 0).value(), 3);
            co_await pool.close(std::chrono::milliseconds(1000));
        }());
}
