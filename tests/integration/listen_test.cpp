// LISTEN/NOTIFY (issue 21): connection::next_notification() and pgcoro::listener against the
// real server - order and completeness of 10 000 notifications, notifications that arrive while
// a statement runs, quoted channel names, reconnect after pg_terminate_backend and after a
// server restart (a `resync` event, then delivery resumes), pgbouncer mode refused.
#include <pgcoro/listener.hpp>

#include "support/test_server.hpp"

#include <gtest/gtest.h>

#include <thread>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete" // see typed_data_test.cpp
#endif

namespace asio = boost::asio;
using namespace std::chrono_literals;
using pgcoro::errc;
using pgcoro::listen_event;
using pgcoro::test::run;
using pgcoro::test::test_server;

TEST(Listen, TenThousandNotificationsArriveInOrder)
{
    asio::io_context io;
    run(io,
        [&]() -> asio::awaitable<void>
        {
            auto l = co_await pgcoro::listener::open(io.get_executor(), test_server::get().tcp());
            PGCORO_CO_ASSERT(l.has_value());
            PGCORO_CO_ASSERT((co_await l->listen("pgcoro_bulk")).has_value());
            auto sender =
                co_await pgcoro::open_connection(io.get_executor(), test_server::get().tcp());
            PGCORO_CO_ASSERT(sender.has_value());
            // 5 000 in one transaction, then 5 000 one statement each.
            auto bulk = co_await sender->query(
                "SELECT pg_notify('pgcoro_bulk', g::text) FROM generate_series(1, 5000) g");
            PGCORO_CO_ASSERT(bulk.has_value());
            int expected = 1;
            for (; expected <= 5000; ++expected)
            {
                auto ev = co_await l->next();
                PGCORO_CO_ASSERT(ev.has_value());
                PGCORO_CO_ASSERT(ev->type == listen_event::kind::notification);
                EXPECT_EQ(ev->what.channel, "pgcoro_bulk");
                PGCORO_CO_ASSERT(ev->what.payload == std::to_string(expected));
                EXPECT_EQ(ev->what.sender_pid, sender->backend_pid());
            }
            for (int i = 5001; i <= 10000; ++i)
            {
                auto s = co_await sender->query("SELECT pg_notify('pgcoro_bulk', $1)",
                                                std::to_string(i));
                PGCORO_CO_ASSERT(s.has_value());
                if (i % 100 == 0) // let the listener fall behind, then catch up
                    for (; expected <= i; ++expected)
                    {
                        auto ev = co_await l->next();
                        PGCORO_CO_ASSERT(ev.has_value());
                        PGCORO_CO_ASSERT(ev->what.payload == std::to_string(expected));
                    }
            }
            EXPECT_EQ(expected, 10001);
            auto none = co_await l->next(100ms); // and nothing more
            EXPECT_TRUE(!none && none.error().is(errc::timeout));
        }());
}

TEST(Listen, NotificationsDuringAStatementAreKept)
{
    asio::io_context io;
    run(io,
        [&]() -> asio::awaitable<void>
        {
            auto a = co_await pgcoro::open_connection(io.get_executor(), test_server::get().tcp());
            auto b = co_await pgcoro::open_connection(io.get_executor(), test_server::get().tcp());
            PGCORO_CO_ASSERT(a.has_value() && b.has_value());
            PGCORO_CO_ASSERT((co_await a->query("LISTEN pgcoro_during")).has_value());
            const int pid = a->backend_pid();
            // b notifies while a runs a statement (it waits for b's notify to be sent)
            auto sent = co_await b->query("SELECT pg_notify('pgcoro_during', 'x')");
            PGCORO_CO_ASSERT(sent.has_value());
            auto busy = co_await a->query("SELECT pg_sleep(0.05), 1");
            PGCORO_CO_ASSERT(busy.has_value());
            auto n = co_await a->next_notification(1s);
            PGCORO_CO_ASSERT(n.has_value());
            EXPECT_EQ(n->payload, "x");
            EXPECT_EQ(n->channel, "pgcoro_during");
            auto late = co_await a->next_notification(50ms);
            EXPECT_TRUE(!late && late.error().is(errc::timeout));
            // a timeout leaves the connection usable
            auto after = co_await a->query("SELECT $1::int", 7);
            PGCORO_CO_ASSERT(after.has_value());
            EXPECT_EQ(after->get<int>(0, 0).value(), 7);
            EXPECT_EQ(a->backend_pid(), pid);
        }());
}

TEST(Listen, QuotedChannelNamesAndBadOnes)
{
    asio::io_context io;
    run(io,
        [&]() -> asio::awaitable<void>
        {
            auto l = co_await pgcoro::listener::open(io.get_executor(), test_server::get().tcp());
            PGCORO_CO_ASSERT(l.has_value());
            const std::string odd = "Mixed Case \"q\"; DROP";
            PGCORO_CO_ASSERT((co_await l->listen(odd)).has_value());
            auto s = co_await pgcoro::open_connection(io.get_executor(), test_server::get().tcp());
            PGCORO_CO_ASSERT(s.has_value());
            PGCORO_CO_ASSERT((co_await s->query("SELECT pg_notify($1, 'p')", odd)).has_value());
            auto ev = co_await l->next(2s);
            PGCORO_CO_ASSERT(ev.has_value());
            EXPECT_EQ(ev->what.channel, odd);
            for (std::string bad : {std::string(), std::string(64, 'x'), std::string("a\0b", 3)})
            {
                auto r = co_await l->listen(bad);
                EXPECT_TRUE(!r && r.error().is(errc::invalid_argument));
            }
            PGCORO_CO_ASSERT((co_await l->unlisten(odd)).has_value());
            EXPECT_TRUE(l->channels().empty());
            PGCORO_CO_ASSERT((co_await s->query("SELECT pg_notify($1, 'p')", odd)).has_value());
            auto none = co_await l->next(100ms);
            EXPECT_TRUE(!none && none.error().is(errc::timeout));
        }());
}

TEST(Listen, RefusedInPgbouncerMode)
{
    asio::io_context io;
    run(io,
        [&]() -> asio::awaitable<void>
        {
            auto cfg = test_server::get().tcp();
            cfg.pgbouncer = true;
            auto l = co_await pgcoro::listener::open(io.get_executor(), cfg);
            PGCORO_CO_ASSERT(!l.has_value());
            EXPECT_TRUE(l.error().is(errc::invalid_argument));
            EXPECT_NE(l.error().message.find("pgbouncer"), std::string::npos);
        }());
}

// Sends `from`..`to` as payloads on `channel`, one statement each.
static asio::awaitable<bool> notify_range(pgcoro::connection& c, int from, int to)
{
    for (int i = from; i <= to; ++i)
        if (!co_await c.query("SELECT pg_notify('pgcoro_resync', $1)", std::to_string(i)))
            co_return false;
    co_return true;
}

TEST(Listen, TerminatedBackendGivesResyncThenDeliveryResumes)
{
    asio::io_context io;
    run(io,
        [&]() -> asio::awaitable<void>
        {
            pgcoro::listener_options opts;
            opts.reconnect.initial = 20ms;
            auto l =
                co_await pgcoro::listener::open(io.get_executor(), test_server::get().tcp(), opts);
            PGCORO_CO_ASSERT(l.has_value());
            PGCORO_CO_ASSERT((co_await l->listen("pgcoro_resync")).has_value());
            auto s = co_await pgcoro::open_connection(io.get_executor(), test_server::get().tcp());
            PGCORO_CO_ASSERT(s.has_value());
            PGCORO_CO_ASSERT(co_await notify_range(*s, 1, 3));
            for (int i = 1; i <= 3; ++i)
            {
                auto ev = co_await l->next(2s);
                PGCORO_CO_ASSERT(ev.has_value());
                EXPECT_EQ(ev->what.payload, std::to_string(i));
            }
            const int old_pid = l->backend_pid();
            auto k = co_await s->query("SELECT pg_terminate_backend($1)", old_pid);
            PGCORO_CO_ASSERT(k.has_value());
            auto ev = co_await l->next(5s);
            PGCORO_CO_ASSERT(ev.has_value());
            EXPECT_EQ(ev->type, listen_event::kind::resync);
            EXPECT_TRUE(ev->cause.is(errc::connection_lost)) << ev->cause.to_string();
            EXPECT_NE(l->backend_pid(), old_pid);
            EXPECT_EQ(l->channels(), std::vector<std::string>{"pgcoro_resync"});
            PGCORO_CO_ASSERT(co_await notify_range(*s, 4, 6));
            for (int i = 4; i <= 6; ++i)
            {
                auto n = co_await l->next(2s);
                PGCORO_CO_ASSERT(n.has_value());
                EXPECT_EQ(n->type, listen_event::kind::notification);
                EXPECT_EQ(n->what.payload, std::to_string(i));
            }
        }());
}

TEST(Listen, ServerRestartMidStreamGivesResyncThenDeliveryResumes)
{
    if (!test_server::get().owned())
        GTEST_SKIP() << "external server: cannot restart it";
    asio::io_context io;
    std::thread control;
    run(
        io,
        [&]() -> asio::awaitable<void>
        {
            pgcoro::listener_options opts;
            opts.reconnect.initial = 50ms;
            opts.reconnect.cap = 500ms;
            auto l =
                co_await pgcoro::listener::open(io.get_executor(), test_server::get().tcp(), opts);
            PGCORO_CO_ASSERT(l.has_value());
            PGCORO_CO_ASSERT((co_await l->listen("pgcoro_resync")).has_value());
            {
                auto s =
                    co_await pgcoro::open_connection(io.get_executor(), test_server::get().tcp());
                PGCORO_CO_ASSERT(s.has_value());
                PGCORO_CO_ASSERT(co_await notify_range(*s, 1, 100));
            }
            for (int i = 1; i <= 50; ++i) // half read before the restart
            {
                auto ev = co_await l->next(2s);
                PGCORO_CO_ASSERT(ev.has_value());
                EXPECT_EQ(ev->what.payload, std::to_string(i));
            }
            control = std::thread([] { test_server::get().pg_ctl("restart -m fast"); });
            // What libpq had already read is still delivered, then the resync event.
            int delivered = 50;
            bool resynced = false;
            while (!resynced)
            {
                auto ev = co_await l->next(30s);
                PGCORO_CO_ASSERT(ev.has_value());
                if (ev->type == listen_event::kind::resync)
                    resynced = true;
                else
                    EXPECT_EQ(ev->what.payload, std::to_string(++delivered));
            }
            EXPECT_LE(delivered, 100);
            control.join();
            auto s = co_await pgcoro::open_connection(io.get_executor(), test_server::get().tcp());
            PGCORO_CO_ASSERT(s.has_value());
            PGCORO_CO_ASSERT(co_await notify_range(*s, 101, 110));
            for (int i = 101; i <= 110; ++i)
            {
                auto n = co_await l->next(5s);
                PGCORO_CO_ASSERT(n.has_value());
                EXPECT_EQ(n->what.payload, std::to_string(i));
            }
        }(),
        std::chrono::seconds(90));
    if (control.joinable())
        control.join();
}
