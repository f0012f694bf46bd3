// Explicit prepared statements (issue 21) against the real server: described types, execution
// checked before sending (count, types), handles tied to their connection and session, no name
// collision with the statement cache, refused in pgbouncer mode.
#include <pgcoro/connection.hpp>

#include "support/test_server.hpp"

#include <gtest/gtest.h>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete" // see typed_data_test.cpp
#endif

namespace asio = boost::asio;
using pgcoro::errc;
using pgcoro::test::run;
using pgcoro::test::test_server;

TEST(Prepared, DescribesTypesAndExecutesWithTypedParameters)
{
    asio::io_context io;
    run(io,
        [&]() -> asio::awaitable<void>
        {
            auto c = co_await pgcoro::open_connection(io.get_executor(), test_server::get().tcp());
            PGCORO_CO_ASSERT(c.has_value());
            auto st = co_await c->prepare(
                "SELECT $1::int8 + $2 AS total, $3::text AS label, $4::bytea AS raw");
            PGCORO_CO_ASSERT(st.has_value());
            EXPECT_EQ(st->parameter_types(),
                      (std::vector<Oid>{20, 20, 25, 17})); // $2 inferred bigint
            EXPECT_EQ(st->column_names(), (std::vector<std::string>{"total", "label", "raw"}));
            EXPECT_EQ(st->column_types(), (std::vector<Oid>{20, 25, 17}));
            const std::vector<std::byte> raw{std::byte{0}, std::byte{1}};
            for (int i = 0; i < 3; ++i)
            {
                auto r = co_await c->execute(*st, std::int64_t{40}, i, std::string("x"), raw);
                PGCORO_CO_ASSERT(r.has_value());
                auto row = r->one<std::tuple<std::int64_t, std::string, std::vector<std::byte>>>();
                PGCORO_CO_ASSERT(row.has_value());
                EXPECT_EQ(std::get<0>(*row), 40 + i);
                EXPECT_EQ(std::get<2>(*row), raw);
            }
            // an int4 value for the int8 parameter is fine; untyped text is left to the server
            auto widened = co_await c->execute(*st, 1, 2, "y", raw);
            EXPECT_TRUE(widened.has_value());
        }());
}

TEST(Prepared, WrongCountOrTypeIsRefusedBeforeSending)
{
    asio::io_context io;
    run(io,
        [&]() -> asio::awaitable<void>
        {
            auto c = co_await pgcoro::open_connection(io.get_executor(), test_server::get().tcp());
            PGCORO_CO_ASSERT(c.has_value());
            auto st = co_await c->prepare("SELECT $1::int4, $2::uuid");
            PGCORO_CO_ASSERT(st.has_value());
            auto few = co_await c->execute(*st, 1);
            PGCORO_CO_ASSERT(!few.has_value());
            EXPECT_TRUE(few.error().is(errc::invalid_argument));
            EXPECT_EQ(few.error().message, "the prepared statement takes 2 parameters, 1 given");
            auto wide = co_await c->execute(*st, std::int64_t{1}, std::string("x"));
            PGCORO_CO_ASSERT(!wide.has_value());
            EXPECT_EQ(
                wide.error().message,
                "parameter $1 of the prepared statement is integer, the value given is bigint");
            auto wrong =
                co_await c->execute(*st, 1, std::chrono::sys_days(std::chrono::year(2024) / 1 / 1));
            PGCORO_CO_ASSERT(!wrong.has_value());
            EXPECT_EQ(wrong.error().message,
                      "parameter $2 of the prepared statement is uuid, the value given is date");
            auto server_side = co_await c->prepare("SELEC 1");
            PGCORO_CO_ASSERT(!server_side.has_value());
            EXPECT_EQ(server_side.error().state, pgcoro::sqlstate("42601"));
            EXPECT_TRUE((co_await c->query("SELECT 1")).has_value());
        }());
}

TEST(Prepared, HandlesBelongToOneConnectionAndSession)
{
    asio::io_context io;
    run(io,
        [&]() -> asio::awaitable<void>
        {
            auto cfg = test_server::get().tcp();
            auto a = co_await pgcoro::open_connection(io.get_executor(), cfg);
            auto b = co_await pgcoro::open_connection(io.get_executor(), cfg);
            PGCORO_CO_ASSERT(a.has_value() && b.has_value());
            auto st = co_await a->prepare("SELECT $1::int");
            PGCORO_CO_ASSERT(st.has_value());
            auto other = co_await b->execute(*st, 1);
            PGCORO_CO_ASSERT(!other.has_value());
            EXPECT_TRUE(other.error().is(errc::invalid_argument));
            PGCORO_CO_ASSERT((co_await a->connect(cfg)).has_value()); // a new session
            auto stale = co_await a->execute(*st, 1);
            PGCORO_CO_ASSERT(!stale.has_value());
            EXPECT_TRUE(stale.error().is(errc::invalid_argument)) << stale.error().to_string();
            EXPECT_FALSE(stale.error().state == pgcoro::sqlstate("26000"));
            a->close();
            auto closed = co_await a->execute(*st, 1);
            EXPECT_FALSE(closed.has_value());
        }());
}

TEST(Prepared, NoCollisionWithTheStatementCache)
{
    asio::io_context io;
    run(io,
        [&]() -> asio::awaitable<void>
        {
            auto cfg = test_server::get().tcp();
            cfg.statement_cache_size = 4;
            auto c = co_await pgcoro::open_connection(io.get_executor(), cfg);
            PGCORO_CO_ASSERT(c.has_value());
            std::vector<pgcoro::prepared_statement> mine;
            for (int i = 0; i < 20; ++i)
            {
                // cached statements (some evicted: their names go stale) between explicit ones
                auto q = co_await c->query("SELECT $1::int + " + std::to_string(i % 7), i);
                PGCORO_CO_ASSERT(q.has_value());
                auto st = co_await c->prepare("SELECT $1::int * " + std::to_string(i));
                PGCORO_CO_ASSERT(st.has_value());
                mine.push_back(*st);
            }
            for (int i = 0; i < 20; ++i)
            {
                auto r = co_await c->execute(mine[static_cast<std::size_t>(i)], 2);
                PGCORO_CO_ASSERT(r.has_value());
                EXPECT_EQ(r->get<int>(0, 0).value(), 2 * i);
            }
        }());
}

TEST(Prepared, RefusedInPgbouncerMode)
{
    asio::io_context io;
    run(io,
        [&]() -> asio::awaitable<void>
        {
            auto cfg = test_server::get().tcp();
            cfg.pgbouncer = true; // the mode, against the server itself
            auto c = co_await pgcoro::open_connection(io.get_executor(), cfg);
            PGCORO_CO_ASSERT(c.has_value());
            auto st = co_await c->prepare("SELECT 1");
            PGCORO_CO_ASSERT(!st.has_value());
            EXPECT_TRUE(st.error().is(errc::invalid_argument));
            EXPECT_NE(st.error().message.find("pgbouncer"), std::string::npos);
        }());
}
