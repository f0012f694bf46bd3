// Fault scenario 10: bad input - invalid SQL, a 64 MiB parameter, an embedded NUL, a wrong
// parameter count. Each gives a clear error, and the same connection stays usable.
#include <pgcoro/pool.hpp>

#include "support/oracles.hpp"
#include "support/test_server.hpp"

#include <boost/asio/io_context.hpp>

#include <gtest/gtest.h>

#include <string>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using pgcoro::errc;
using namespace pgcoro::test;

namespace
{

// The connection still answers, and is still the same server session.
asio::awaitable<bool> usable(pgcoro::connection& c, int pid)
{
    auto r = co_await c.query("SELECT pg_backend_pid()");
    co_return r && r->get<int>(0, 0).value_or(0) == pid&& c.transaction_status() == PQTRANS_IDLE;
}

bool mentions(const pgcoro::error& e, std::string_view what)
{
    return e.message.find(what) != std::string::npos;
}

} // namespace

TEST(FaultBadInput, EachGivesAClearErrorAndTheConnectionStaysUsable)
{
    const std::string app = "pgcoro-fault-badinput";
    asio::io_context io;
    lag_probe probe(io.get_executor());
    run(
        io,
        [&]() -> asio::awaitable<void>
        {
            probe.start();
            auto side = co_await pgcoro::open_connection(io.get_executor(), side_config());
            PGCORO_CO_ASSERT(side.has_value());
            const int fds = open_fd_count();
            {
                pgcoro::pool pool(io.get_executor(), fault_app(app), fault_pool(1));
                auto l = co_await pool.acquire();
                PGCORO_CO_ASSERT(l.has_value());
                auto& c = **l;
                const int pid = c.backend_pid();
                PGCORO_CO_ASSERT(pid > 0);

                // Invalid SQL: the server's syntax error, with its SQLSTATE and position.
                auto bad = co_await c.query("SELEC 1");
                PGCORO_CO_ASSERT(!bad.has_value());
                EXPECT_TRUE(bad.error().is(errc::query_failed)) << bad.error();
                EXPECT_EQ(bad.error().state, "42601") << bad.error();
                EXPECT_TRUE(mentions(bad.error(), "syntax error")) << bad.error();
                EXPECT_FALSE(bad.error().transient());
                EXPECT_TRUE(co_await usable(c, pid));

                // Embedded NUL in a text parameter and in the SQL text: refused before sending.
                auto nul = co_await c.query("SELECT $1::text", std::string("a\0b", 3));
                PGCORO_CO_ASSERT(!nul.has_value());
                EXPECT_TRUE(nul.error().is(errc::invalid_argument)) << nul.error();
                EXPECT_TRUE(mentions(nul.error(), "NUL")) << nul.error();
                EXPECT_TRUE(co_await usable(c, pid));
                auto nul_sql = co_await c.query(std::string_view("SELECT 1\0; DROP TABLE x", 23));
                PGCORO_CO_ASSERT(!nul_sql.has_value());
                EXPECT_TRUE(nul_sql.error().is(errc::invalid_argument)) << nul_sql.error();
                EXPECT_TRUE(mentions(nul_sql.error(), "NUL")) << nul_sql.error();
                EXPECT_TRUE(co_await usable(c, pid));

                // Too few parameters: the server rejects the Bind (08P01).
                auto few = co_await c.query("SELECT $1::int + $2::int", 1);
                PGCORO_CO_ASSERT(!few.has_value());
                EXPECT_TRUE(few.error().is(errc::invalid_argument) ||
                            (few.error().is(errc::query_failed) && few.error().state == "08P01"))
                    << few.error();
                EXPECT_TRUE(mentions(few.error(), "supplies 1 parameters")) << few.error();
                EXPECT_FALSE(few.error().transient()) << few.error();
                EXPECT_TRUE(co_await usable(c, pid));

                auto s = pool.stats();
                EXPECT_EQ(s.opened, 1u) << s; // the one connection served everything
                EXPECT_EQ(closed_total(s), 0u) << s;
                EXPECT_TRUE(connections_conserved(s));
                l->release();
                co_await pool.close(2s);
                EXPECT_TRUE(pool_drained(pool.stats()));
            }
            EXPECT_TRUE(co_await back_to_baseline(*side, app, fds));
            probe.stop();
        }(),
        60s);
    expect_loop_responsive(probe);
}

// Too many parameters: the statement declares every parameter it is given (with its type), so
// the server accepts an unused $3 silently. A caller passing three values to a two-placeholder
// statement (a typo like "$1, $1") gets no error at all.
TEST(FaultBadInput, TooManyParametersAreReported)
{
    asio::io_context io;
    lag_probe probe(io.get_executor());
    run(
        io,
        [&]() -> asio::awaitable<void>
        {
            probe.start();
            auto c = co_await pgcoro::open_connection(io.get_executor(),
                                                      fault_app("pgcoro-fault-toomany"));
            PGCORO_CO_ASSERT(c.has_value());
            const int pid = c->backend_pid();
            auto many = co_await c->query("SELECT $1::int + $2::int", 1, 2, 3);
            EXPECT_FALSE(many.has_value()) << "3 values for 2 placeholders were accepted";
            if (!many)
            {
                EXPECT_TRUE(many.error().is(errc::invalid_argument)) << many.error();
                EXPECT_TRUE(mentions(many.error(), "parameter")) << many.error();
            }
            EXPECT_TRUE(co_await usable(*c, pid));
            probe.stop();
        }(),
        10s);
    expect_loop_responsive(probe);
}

namespace
{

// Runs `body(connection&)` on a connection of its own pool with the lag probe paused from the
// first byte of the payload to the pool's close: encoding, copying and finally freeing 64 MiB
// buffers (libpq keeps its grown buffers until PQfinish) is CPU work proportional to the
// caller's payload, not a blocking call. Checks the pool and the baseline afterwards.
template <class Body>
void with_big_payload(const std::string& app, Body body)
{
    asio::io_context io;
    lag_probe probe(io.get_executor());
    run(
        io,
        [&]() -> asio::awaitable<void>
        {
            probe.start();
            auto side = co_await pgcoro::open_connection(io.get_executor(), side_config());
            PGCORO_CO_ASSERT(side.has_value());
            const int fds = open_fd_count();
            {
                pgcoro::pool pool(io.get_executor(), fault_app(app), fault_pool(1));
                auto l = co_await pool.acquire();
                PGCORO_CO_ASSERT(l.has_value());
                const int pid = (*l)->backend_pid();
                probe.pause();
                co_await body(**l);
                EXPECT_TRUE(co_await usable(**l, pid));
                auto s = pool.stats();
                EXPECT_EQ(s.opened, 1u) << s;
                EXPECT_EQ(closed_total(s), 0u) << s;
                EXPECT_TRUE(connections_conserved(s));
                l->release();
                co_await pool.close(5s);
                EXPECT_TRUE(pool_drained(pool.stats()));
                probe.resume();
            }
            EXPECT_TRUE(co_await back_to_baseline(*side, app, fds));
            probe.stop();
        }(),
        60s);
    expect_loop_responsive(probe);
}

} // namespace

// A 64 MiB parameter is sent in full (PQflush waits for the socket) and answered.
TEST(FaultBadInput, SixtyFourMiBParameterIsSentAndAnswered)
{
    with_big_payload("pgcoro-fault-64mib",
                     [](pgcoro::connection& c) -> asio::awaitable<void>
                     {
                         const std::string big(64u << 20, 'x');
                         auto len =
                             co_await c.query("SELECT length($1::text)", std::string_view(big));
                         PGCORO_CO_ASSERT(len.has_value());
                         EXPECT_EQ(len->get<std::int64_t>(0, 0).value_or(0),
                                   static_cast<std::int64_t>(big.size()));
                     });
}

// A 64 MiB parameter that is not a valid value: a clear error, of a size fit for a log line.
// The server quotes the whole input in its message ("invalid input syntax for type integer:
// "xxxx..."), so an uncapped error::message is itself 64 MiB.
TEST(FaultBadInput, SixtyFourMiBInvalidValueGivesABoundedErrorMessage)
{
    with_big_payload("pgcoro-fault-64mib-invalid",
                     [](pgcoro::connection& c) -> asio::awaitable<void>
                     {
                         const std::string big(64u << 20, 'x');
                         auto cast = co_await c.query("SELECT $1::int", std::string_view(big));
                         PGCORO_CO_ASSERT(!cast.has_value());
                         const auto& e = cast.error();
                         EXPECT_TRUE(e.is(errc::query_failed)) << e.to_string().substr(0, 200);
                         EXPECT_EQ(e.state, "22P02");
                         EXPECT_TRUE(mentions(e, "invalid input syntax for type integer"));
                         // The README's bound: the quoted value is cut to 4 KiB (plus the
                         // message's own words and the "... (N more bytes)" note). This test
                         // allowed 64 KiB at 15aed96 (issue 19).
                         EXPECT_LE(e.message.size(), 4096u + 256u)
                             << "error message of " << e.message.size() << " bytes";
                         EXPECT_NE(e.message.find("more bytes)"), std::string::npos);
                     });
}
