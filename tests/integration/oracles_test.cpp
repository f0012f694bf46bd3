// SPDX-License-Identifier: BSL-1.0
// The fault suite's oracles must be able to fail: each is fed a state it has to reject.
#include <pgcoro/connection.hpp>

#include "support/fault_proxy.hpp"
#include "support/oracles.hpp"
#include "support/test_server.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <gtest/gtest.h>

#include <libpq-fe.h>

#include <string>

// Issue 19: pool_drained() accepted more closes than opens (a double-counted close).
TEST(Oracles, PoolDrainedRequiresClosesToEqualOpens)
{
    pgcoro::pool_stats s;
    s.opened = 3;
    s.closed_shutdown = 2;
    s.closed_broken = 1;
    EXPECT_TRUE(pgcoro::test::pool_drained(s));
    s.closed_shutdown = 3; // one close too many
    EXPECT_FALSE(pgcoro::test::pool_drained(s));
    s.closed_shutdown = 1; // one missing: a leak
    EXPECT_FALSE(pgcoro::test::pool_drained(s));
    s.closed_shutdown = 2;
    s.idle = 1; // still holding one
    EXPECT_FALSE(pgcoro::test::pool_drained(s));
}

// Issue 19: the lag probe's 20 ms budget could not catch a blocking libpq call against a local
// server, which answers in microseconds. Behind a proxy that delays the server's answers by
// 200 ms, a blocking PQexec on the loop thread (the control: what pgcoro must never do) is
// caught, and pgcoro's own query through the same proxy stays within the budget.
TEST(Oracles, LagProbeCatchesABlockingCallBehindADelayingProxy)
{
    namespace asio = boost::asio;
    using namespace std::chrono_literals;
    asio::io_context io;
    pgcoro::test::fault_proxy proxy;
    auto cfg = proxy.config(pgcoro::test::test_server::get().tcp());
    cfg.application_name = "pgcoro-lag-oracle";

    // The control's raw connection, opened before the probe starts (connecting blocks too).
    const std::string port = std::to_string(cfg.hosts.at(0).port);
    const char* keys[] = {"host", "port", "user", "dbname", nullptr};
    const char* values[] = {cfg.hosts.at(0).host.c_str(), port.c_str(), cfg.user.c_str(),
                            cfg.dbname.c_str(), nullptr};
    PGconn* raw = PQconnectdbParams(keys, values, 0);
    ASSERT_EQ(PQstatus(raw), CONNECTION_OK) << PQerrorMessage(raw);
    proxy.delay(pgcoro::test::fault_proxy::direction::server_to_client, 200ms);

    pgcoro::test::lag_probe blocked(io.get_executor());
    pgcoro::test::lag_probe clean(io.get_executor());
    pgcoro::test::run(
        io,
        [&]() -> asio::awaitable<void>
        {
            auto c = co_await pgcoro::open_connection(io.get_executor(), cfg);
            PGCORO_CO_ASSERT(c.has_value());
            asio::steady_timer t(io, 50ms);

            blocked.start();
            co_await t.async_wait(asio::use_awaitable);
            PQclear(PQexec(raw, "SELECT 1")); // blocks the loop thread ~200 ms
            t.expires_after(20ms);
            co_await t.async_wait(asio::use_awaitable);
            blocked.stop();

            clean.start();
            t.expires_after(20ms);
            co_await t.async_wait(asio::use_awaitable);
            auto r = co_await c->query("SELECT 1");
            EXPECT_TRUE(r.has_value()) << r.error();
            t.expires_after(20ms);
            co_await t.async_wait(asio::use_awaitable);
            clean.stop();
        }(),
        30s);
    PQfinish(raw);
    EXPECT_FALSE(blocked.ok()) << "the probe missed a 200 ms blocking call";
    EXPECT_GE(blocked.max_blocked(), 150ms);
    pgcoro::test::expect_loop_responsive(clean);
}

// Issue 19: the ledger's `duplicated` count could not fire (the id was the primary key), so
// "exactly once" was untested. A deliberately duplicated write must now be reported.
TEST(Oracles, LedgerReportsADuplicatedWrite)
{
    namespace asio = boost::asio;
    asio::io_context io;
    pgcoro::test::run(io,
                      [&]() -> asio::awaitable<void>
                      {
                          auto c = co_await pgcoro::open_connection(
                              io.get_executor(), pgcoro::test::test_server::get().tcp());
                          PGCORO_CO_ASSERT(c.has_value());
                          pgcoro::test::ledger book("oracle_selftest_ledger");
                          PGCORO_CO_ASSERT((co_await book.create(*c)).has_value());
                          for (int i = 0; i < 3; ++i)
                              PGCORO_CO_ASSERT((co_await book.insert(*c)).has_value());
                          auto clean = co_await book.verify(*c);
                          EXPECT_TRUE(clean.ok()) << clean;
                          EXPECT_EQ(clean.duplicated, 0u);
                          // The same unit written a second time, as a wrongly retried write would.
                          auto dup =
                              co_await c->query("INSERT INTO " + book.table() +
                                                    " (id, txid) VALUES ($1, txid_current())",
                                                book.id(2));
                          PGCORO_CO_ASSERT(dup.has_value());
                          auto v = co_await book.verify(*c);
                          EXPECT_FALSE(v.ok()) << v;
                          EXPECT_EQ(v.duplicated, 1u) << v;
                          co_await book.drop(*c);
                      }());
}
