// COPY and streamed results (issue 21) against the real server: typed COPY rows with every
// character COPY must escape, a bad row and a constraint mid-COPY (clear error, connection
// usable), abort, a COPY statement given to query(), COPY TO STDOUT, a 100 000-row stream in
// bounded batches, an error mid-stream, and abandonment / cancellation of a COPY, a reader and a
// stream: the connection is closed and pg_stat_activity shows the statement gone.
#include <pgcoro/connection.hpp>
#include <pgcoro/pool.hpp>

#include "support/test_server.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <gtest/gtest.h>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete" // see typed_data_test.cpp
#endif

namespace asio = boost::asio;
using namespace std::chrono;
using namespace std::chrono_literals;
using pgcoro::errc;
using pgcoro::test::run;
using pgcoro::test::test_server;

namespace
{

asio::awaitable<pgcoro::expected<pgcoro::connection>> connect()
{
    co_return co_await pgcoro::open_connection(co_await asio::this_coro::executor,
                                               test_server::get().tcp());
}

// Waits (up to 3 s) until backend `pid` is gone from pg_stat_activity.
asio::awaitable<bool> backend_gone(pgcoro::connection& observer, int pid)
{
    asio::steady_timer t(co_await asio::this_coro::executor);
    for (int i = 0; i < 60; ++i)
    {
        auto r =
            co_await observer.query("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid);
        if (r && r->get<int>(0, 0).value_or(1) == 0)
            co_return true;
        t.expires_after(50ms);
        co_await t.async_wait(asio::use_awaitable);
    }
    co_return false;
}

} // namespace

TEST(Copy, TypedRowsWithEveryEscapeRoundTrip)
{
    asio::io_context io;
    run(io,
        []() -> asio::awaitable<void>
        {
            auto c = co_await connect();
            PGCORO_CO_ASSERT(c.has_value());
            PGCORO_CO_ASSERT((co_await c->query("CREATE TEMP TABLE items (id int PRIMARY KEY, "
                                                "label text, at timestamptz, blob bytea)"))
                                 .has_value());
            auto w = co_await c->copy_in("COPY items (id, label, at, blob) FROM STDIN");
            PGCORO_CO_ASSERT(w.has_value());
            const std::string odd = "tab\there\nnewline\\backslash\rcr \\N not null é";
            const auto at = sys_days(2024y / March / 10) + 7h;
            const std::vector<std::byte> blob{std::byte{0}, std::byte{'\t'}, std::byte{255}};
            for (int i = 1; i <= 1000; ++i)
            {
                // (Not a `?:` inside the co_await expression: GCC 12 destroys its temporary
                // twice.)
                std::optional<std::vector<std::byte>> maybe;
                if (i % 2)
                    maybe = blob;
                const std::string label = odd + std::to_string(i);
                auto r = co_await w->write_row(i, label, at, maybe);
                PGCORO_CO_ASSERT(r.has_value());
            }
            PGCORO_CO_ASSERT(
                (co_await w->write_row(1001, std::nullopt, std::nullopt, "\\x00")).has_value());
            auto n = co_await w->finish();
            PGCORO_CO_ASSERT(n.has_value());
            EXPECT_EQ(*n, 1001u);
            auto check = co_await c->query(
                "SELECT count(*) FILTER (WHERE label = $1 || id::text AND at = $2), "
                "count(*) FILTER (WHERE blob = $3), count(*) FILTER (WHERE label IS NULL) "
                "FROM items",
                odd, at, blob);
            PGCORO_CO_ASSERT(check.has_value());
            EXPECT_EQ(check->get<int>(0, 0).value(), 1000);
            EXPECT_EQ(check->get<int>(0, 1).value(), 500);
            EXPECT_EQ(check->get<int>(0, 2).value(), 1);
        }());
}

TEST(Copy, BadRowAndConstraintFailWithSqlstateAndConnectionStaysUsable)
{
    asio::io_context io;
    run(io,
        []() -> asio::awaitable<void>
        {
            auto c = co_await connect();
            PGCORO_CO_ASSERT(c.has_value());
            PGCORO_CO_ASSERT((co_await c->query("CREATE TEMP TABLE k (id int PRIMARY KEY, v text)"))
                                 .has_value());
            {
                auto w = co_await c->copy_in("COPY k FROM STDIN");
                PGCORO_CO_ASSERT(w.has_value());
                PGCORO_CO_ASSERT((co_await w->write_raw("1\ta\nnot-a-number\tb\n")).has_value());
                auto n = co_await w->finish();
                PGCORO_CO_ASSERT(!n.has_value());
                EXPECT_TRUE(n.error().is(errc::query_failed));
                EXPECT_EQ(n.error().state, pgcoro::sqlstate("22P02"));
            }
            {
                auto w = co_await c->copy_in("COPY k FROM STDIN");
                PGCORO_CO_ASSERT(w.has_value());
                for (int id : {1, 2, 1})
                    PGCORO_CO_ASSERT((co_await w->write_row(id, "x")).has_value());
                auto n = co_await w->finish();
                PGCORO_CO_ASSERT(!n.has_value());
                EXPECT_EQ(n.error().state, pgcoro::sqlstate("23505"));
            }
            {
                auto w = co_await c->copy_in("COPY k FROM STDIN");
                PGCORO_CO_ASSERT(w.has_value());
                PGCORO_CO_ASSERT((co_await w->write_row(9, "x")).has_value());
                PGCORO_CO_ASSERT((co_await w->abort("changed my mind")).has_value());
            }
            auto count = co_await c->query("SELECT count(*) FROM k");
            PGCORO_CO_ASSERT(count.has_value()); // usable after each failure
            EXPECT_EQ(count->get<int>(0, 0).value(), 0);
        }());
}

TEST(Copy, QueryRefusesCopyStatementsAndCopyInRefusesOthers)
{
    asio::io_context io;
    run(io,
        []() -> asio::awaitable<void>
        {
            auto c = co_await connect();
            PGCORO_CO_ASSERT(c.has_value());
            PGCORO_CO_ASSERT((co_await c->query("CREATE TEMP TABLE q (v int)")).has_value());
            for (const char* sql : {"COPY q FROM STDIN", "  -- load\n copy q from stdin",
                                    "/* x */ COPY (SELECT 1) TO STDOUT WITH (FORMAT csv)"})
            {
                auto r = co_await c->query(sql);
                PGCORO_CO_ASSERT(!r.has_value());
                EXPECT_TRUE(r.error().is(errc::invalid_argument)) << sql;
                EXPECT_FALSE(r.error().transient()); // never retried
                EXPECT_NE(r.error().message.find("copy_in()"), std::string::npos);
            }
            EXPECT_TRUE((co_await c->query("SELECT 'COPY x FROM STDIN'")).has_value());
            auto not_copy = co_await c->copy_in("SELECT 1");
            PGCORO_CO_ASSERT(!not_copy.has_value());
            EXPECT_TRUE(not_copy.error().is(errc::invalid_argument));
            auto missing = co_await c->copy_in("COPY no_such_table FROM STDIN");
            PGCORO_CO_ASSERT(!missing.has_value());
            EXPECT_EQ(missing.error().state, pgcoro::sqlstate("42P01"));
            auto ok = co_await c->query("SELECT 1");
            EXPECT_TRUE(ok.has_value());
        }());
}

TEST(Copy, CopyOutLinesAndCount)
{
    asio::io_context io;
    run(io,
        []() -> asio::awaitable<void>
        {
            auto c = co_await connect();
            PGCORO_CO_ASSERT(c.has_value());
            auto r = co_await c->copy_out(
                "COPY (SELECT g, 'a\tb' FROM generate_series(1, 5000) g) TO STDOUT");
            PGCORO_CO_ASSERT(r.has_value());
            int lines = 0;
            for (;;)
            {
                auto l = co_await r->next();
                PGCORO_CO_ASSERT(l.has_value());
                if (!*l)
                    break;
                ++lines;
                EXPECT_EQ(**l, std::to_string(lines) + "\ta\\tb\n");
            }
            EXPECT_EQ(lines, 5000);
            EXPECT_EQ(r->rows(), 5000u);
            EXPECT_TRUE((co_await c->query("SELECT 1")).has_value());
        }());
}

TEST(Copy, AbandonedWriterAndReaderCloseTheConnectionAndTheServerStops)
{
    asio::io_context io;
    run(io,
        []() -> asio::awaitable<void>
        {
            auto observer = co_await connect();
            auto c = co_await connect();
            PGCORO_CO_ASSERT(observer.has_value() && c.has_value());
            const int pid = c->backend_pid();
            PGCORO_CO_ASSERT((co_await c->query("CREATE TEMP TABLE a (v int)")).has_value());
            {
                auto w = co_await c->copy_in("COPY a FROM STDIN");
                PGCORO_CO_ASSERT(w.has_value());
                PGCORO_CO_ASSERT((co_await w->write_row(1)).has_value());
                auto busy = co_await c->query("SELECT 1");
                EXPECT_TRUE(!busy && busy.error().is(errc::busy));
            } // abandoned
            EXPECT_FALSE(c->is_open());
            EXPECT_TRUE(co_await backend_gone(*observer, pid));

            auto c2 = co_await connect();
            PGCORO_CO_ASSERT(c2.has_value());
            const int pid2 = c2->backend_pid();
            {
                auto r =
                    co_await c2->copy_out("COPY (SELECT generate_series(1, 10000000)) TO STDOUT");
                PGCORO_CO_ASSERT(r.has_value());
                auto first = co_await r->next();
                PGCORO_CO_ASSERT(first.has_value() && first->has_value());
            } // abandoned mid-way
            EXPECT_FALSE(c2->is_open());
            EXPECT_TRUE(co_await backend_gone(*observer, pid2));
        }());
}

TEST(Copy, CancelledCopyOutEndsTheStatementOnTheServer)
{
    asio::io_context io;
    run(io,
        [&]() -> asio::awaitable<void>
        {
            auto observer = co_await connect();
            auto c = co_await connect();
            PGCORO_CO_ASSERT(observer.has_value() && c.has_value());
            const int pid = c->backend_pid();
            // Rows wider than the server's 8 KiB send buffer, so each is sent as it is made.
            auto r = co_await c->copy_out("COPY (SELECT pg_sleep(0.05), repeat('x', 9000) FROM "
                                          "generate_series(1, 1000) g) TO STDOUT");
            PGCORO_CO_ASSERT(r.has_value());
            asio::cancellation_signal stop;
            asio::steady_timer t(io);
            t.expires_after(200ms);
            t.async_wait([&](auto) { stop.emit(asio::cancellation_type::terminal); });
            int lines = 0;
            pgcoro::expected<std::optional<std::string_view>> line = std::nullopt;
            for (;;)
            {
                line = co_await asio::co_spawn(
                    io, r->next(), asio::bind_cancellation_slot(stop.slot(), asio::use_awaitable));
                if (!line || !*line)
                    break;
                ++lines;
            }
            PGCORO_CO_ASSERT(!line.has_value());
            EXPECT_TRUE(line.error().is(errc::cancelled)) << line.error().to_string();
            EXPECT_LT(lines, 1000);
            EXPECT_FALSE(c->is_open());
            EXPECT_TRUE(co_await backend_gone(*observer, pid));
        }());
}

TEST(Stream, HundredThousandRowsInBoundedTypedBatches)
{
    asio::io_context io;
    run(io,
        []() -> asio::awaitable<void>
        {
            auto c = co_await connect();
            PGCORO_CO_ASSERT(c.has_value());
            auto s = co_await c->stream(
                std::size_t{256}, "SELECT g, md5(g::text) FROM generate_series(1, $1) g", 100000);
            PGCORO_CO_ASSERT(s.has_value());
            auto busy = co_await c->query("SELECT 1");
            EXPECT_TRUE(!busy && busy.error().is(errc::busy));
            std::int64_t sum = 0;
            int rows = 0, batches = 0;
            for (;;)
            {
                auto more = co_await s->next();
                PGCORO_CO_ASSERT(more.has_value());
                if (!*more)
                    break;
                ++batches;
                EXPECT_LE(s->batch().size(), 256u);
                auto typed = s->batch_as<std::tuple<int, std::string>>();
                PGCORO_CO_ASSERT(typed.has_value());
                for (auto& [g, digest] : *typed)
                {
                    sum += g;
                    EXPECT_EQ(digest.size(), 32u);
                    ++rows;
                }
            }
            EXPECT_EQ(rows, 100000);
            EXPECT_EQ(sum, std::int64_t{100000} * 100001 / 2);
            EXPECT_GE(batches, 100000 / 256);
            EXPECT_TRUE(s->done());
            // usable afterwards, whole results included (single-row mode cleared)
            auto after = co_await c->query("SELECT g FROM generate_series(1, 3) g");
            PGCORO_CO_ASSERT(after.has_value());
            EXPECT_EQ(after->size(), 3u);
        }());
}

TEST(Stream, NextAsMapsWhileReadingAndMapsErrorsEndTheStream)
{
    asio::io_context io;
    run(io,
        []() -> asio::awaitable<void>
        {
            auto c = co_await connect();
            PGCORO_CO_ASSERT(c.has_value());
            auto s = co_await c->stream(
                std::size_t{100},
                "SELECT g AS id, 'n' || g AS name FROM generate_series(1, 1000) g");
            PGCORO_CO_ASSERT(s.has_value());
            struct item
            {
                std::int64_t id;
                std::string name;
            };
            std::vector<item> batch;
            int rows = 0;
            for (;;)
            {
                auto more = co_await s->next_as(batch);
                PGCORO_CO_ASSERT(more.has_value());
                if (!*more)
                    break;
                EXPECT_LE(batch.size(), 100u);
                for (const auto& it : batch)
                    EXPECT_EQ(it.name, "n" + std::to_string(it.id));
                rows += static_cast<int>(batch.size());
            }
            EXPECT_EQ(rows, 1000);
            EXPECT_TRUE((co_await c->query("SELECT 1")).has_value());
            // a mapping error mid-stream ends it (the statement is cancelled, connection closed)
            auto bad = co_await c->stream("SELECT now()");
            PGCORO_CO_ASSERT(bad.has_value());
            std::vector<int> wrong;
            auto r = co_await bad->next_as(wrong);
            PGCORO_CO_ASSERT(!r.has_value());
            EXPECT_EQ(r.error().message, "column 0 \"now\" is timestamptz, cannot read as int32_t");
        }());
}

TEST(Stream, ErrorMidStreamAfterDeliveredRows)
{
    asio::io_context io;
    run(io,
        []() -> asio::awaitable<void>
        {
            auto c = co_await connect();
            PGCORO_CO_ASSERT(c.has_value());
            auto s = co_await c->stream("SELECT 1 / (5000 - g) FROM generate_series(1, 10000) g");
            PGCORO_CO_ASSERT(s.has_value());
            int rows = 0;
            pgcoro::expected<bool> more = true;
            while ((more = co_await s->next()) && *more)
                rows += static_cast<int>(s->batch().size());
            PGCORO_CO_ASSERT(!more.has_value());
            EXPECT_EQ(more.error().state, pgcoro::sqlstate("22012"));
            EXPECT_LE(rows, 4999);
            EXPECT_TRUE((co_await c->query("SELECT 1")).has_value());
        }());
}

TEST(Stream, AbandonedAndCancelledStreamsEndTheStatementOnTheServer)
{
    asio::io_context io;
    run(io,
        [&]() -> asio::awaitable<void>
        {
            auto observer = co_await connect();
            PGCORO_CO_ASSERT(observer.has_value());
            // Through a pool: the abandoned stream's connection is discarded, not reused.
            pgcoro::pool_config pc;
            pc.max_size = 1;
            pgcoro::pool pool(io.get_executor(), test_server::get().tcp(), pc);
            int pid = 0;
            {
                auto lease = co_await pool.acquire();
                PGCORO_CO_ASSERT(lease.has_value());
                pid = (*lease)->backend_pid();
                auto s = co_await (*lease)->stream("SELECT generate_series(1, 100000000)");
                PGCORO_CO_ASSERT(s.has_value());
                auto first = co_await s->next();
                PGCORO_CO_ASSERT(first.has_value() && *first);
            } // break out of the loop: stream, then lease, destroyed
            EXPECT_TRUE(co_await backend_gone(*observer, pid));
            {
                auto lease = co_await pool.acquire();
                PGCORO_CO_ASSERT(lease.has_value());
                EXPECT_NE((*lease)->backend_pid(), pid);
                EXPECT_TRUE((co_await (*lease)->query("SELECT 1")).has_value());
            }
            // Cancelled while waiting for rows that come slowly.
            auto c = co_await connect();
            PGCORO_CO_ASSERT(c.has_value());
            const int pid2 = c->backend_pid();
            auto s =
                co_await c->stream( // rows wider than the server's send buffer: sent one by one
                    "SELECT pg_sleep(0.05), repeat('x', 9000) FROM generate_series(1, 1000) g");
            PGCORO_CO_ASSERT(s.has_value());
            asio::cancellation_signal stop;
            asio::steady_timer t(io);
            t.expires_after(200ms);
            t.async_wait([&](auto) { stop.emit(asio::cancellation_type::terminal); });
            pgcoro::expected<bool> more = true;
            int rows = 0;
            while (more && *more)
            {
                more = co_await asio::co_spawn(
                    io, s->next(), asio::bind_cancellation_slot(stop.slot(), asio::use_awaitable));
                if (more && *more)
                    rows += static_cast<int>(s->batch().size());
            }
            PGCORO_CO_ASSERT(!more.has_value());
            EXPECT_TRUE(more.error().is(errc::cancelled)) << more.error().to_string();
            EXPECT_LT(rows, 1000);
            EXPECT_FALSE(c->is_open());
            EXPECT_TRUE(co_await backend_gone(*observer, pid2));
            co_await pool.close(1s);
        }());
}
