// Regression tests for the connection engine's findings of issue 18 (each failed on 15aed96):
// - 9: a timed-out statement returned only after the cancel round (500 ms + cancel_timeout);
// - 7: one stuck cancel request (one PQcancel thread per io_context) delayed every other
//      connection's cancel, and io_context destruction waited for it;
// - 10: connect_timeout did not bound name resolution, and all lookups on an io_context shared
//      Asio's one resolver thread.
#include <pgcoro/connection.hpp>
#include <pgcoro/detail/pq_connect.hpp>
#include <pgcoro/pool.hpp>
#include <pgcoro/with_timeout.hpp>

#include "support/fault_proxy.hpp"
#include "support/test_server.hpp"

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <gtest/gtest.h>

#include <netdb.h>

#include <cstring>
#include <optional>
#include <thread>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using pgcoro::errc;
using namespace pgcoro::test;
using clk = std::chrono::steady_clock;

namespace
{
long long ms(clk::duration d)
{
    return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

// The server's view of one backend: its state ("active", "idle", ...), "" when it is gone.
asio::awaitable<std::string> backend_state(pgcoro::connection& side, int pid)
{
    auto r = co_await side.query("select state from pg_stat_activity where pid = $1", pid);
    if (!r || r->size() == 0)
        co_return std::string();
    co_return std::string((*r)[0][0].text());
}

// Polls backend_state() until it differs from "active" or `limit` passes.
asio::awaitable<clk::duration> until_not_active(pgcoro::connection& side, int pid,
                                                clk::duration limit)
{
    const auto t0 = clk::now();
    asio::steady_timer t(co_await asio::this_coro::executor);
    while (clk::now() - t0 < limit && co_await backend_state(side, pid) == "active")
    {
        t.expires_after(20ms);
        co_await t.async_wait(asio::use_awaitable);
    }
    co_return clk::now() - t0;
}
} // namespace

// Finding 9: against a network that stopped answering, query(query_options{500ms}) returned at
// 5500 ms (500 ms + the default cancel_timeout of 5 s). Now the call returns at its deadline
// and the cancel runs off the caller's path; the connection's next operation settles (or
// closes) within its own deadline.
TEST(EngineRegression, TimedOutStatementReturnsAtItsDeadlineOnASilentNetwork)
{
    asio::io_context io;
    fault_proxy proxy;
    run(
        io,
        [&]() -> asio::awaitable<void>
        {
            auto c = co_await pgcoro::open_connection(io.get_executor(), proxy.config());
            PGCORO_CO_ASSERT(c.has_value());
            proxy.stall(fault_proxy::direction::server_to_client);

            auto t0 = clk::now();
            auto r = co_await c->query(pgcoro::query_options{500ms}, "select pg_sleep(10)");
            auto took = clk::now() - t0;
            PGCORO_CO_ASSERT(!r.has_value());
            EXPECT_TRUE(r.error().is(errc::timeout)) << r.error();
            EXPECT_GE(took, 500ms);
            EXPECT_LT(took, 800ms) << ms(took) << " ms";

            // The next statement first finishes the abandoned one: here it cannot (the network
            // is silent), so it ends at its own deadline and the connection is closed.
            t0 = clk::now();
            auto next = co_await c->query(pgcoro::query_options{700ms}, "select 1");
            took = clk::now() - t0;
            EXPECT_LT(took, 1000ms) << ms(took) << " ms";
            if (!next)
            {
                EXPECT_FALSE(c->is_open()) << next.error();
            }
        }(),
        30s);
}

// Finding 9, with the combinators: with_timeout() and `query || timer` return at the deadline.
TEST(EngineRegression, WithTimeoutAndTimerRaceReturnAtTheDeadline)
{
    using namespace asio::experimental::awaitable_operators;
    asio::io_context io;
    fault_proxy proxy;
    run(
        io,
        [&]() -> asio::awaitable<void>
        {
            auto c = co_await pgcoro::open_connection(io.get_executor(), proxy.config());
            PGCORO_CO_ASSERT(c.has_value());
            auto c2 = co_await pgcoro::open_connection(io.get_executor(), proxy.config());
            PGCORO_CO_ASSERT(c2.has_value());
            proxy.stall(fault_proxy::direction::server_to_client);

            auto t0 = clk::now();
            auto r = co_await pgcoro::with_timeout(500ms, c->query("select pg_sleep(10)"));
            auto took = clk::now() - t0;
            PGCORO_CO_ASSERT(!r.has_value());
            EXPECT_TRUE(r.error().is(errc::timeout)) << r.error();
            EXPECT_LT(took, 800ms) << ms(took) << " ms";

            asio::steady_timer timer(io, 500ms);
            t0 = clk::now();
            auto raced = co_await (c2->query("select pg_sleep(10)") ||
                                   timer.async_wait(asio::use_awaitable));
            took = clk::now() - t0;
            EXPECT_EQ(raced.index(), 1u);
            EXPECT_LT(took, 800ms) << ms(took) << " ms";
        }(),
        30s);
}

// Finding 7: connection A's cancel request hangs (the proxy accepts it and stays silent) while
// a pool on the same io_context cancels a statement. That statement is cancelled on the server
// within cancel_timeout, its connection is reused, and destroying the io_context with A's
// request still stuck returns at once. On 15aed96 B's cancel queued behind A's on the one
// PQcancel thread of the io_context, and ~io_context joined that thread.
TEST(EngineRegression, OneStuckCancelRequestDoesNotDelayAnother)
{
    fault_proxy proxy; // outlives the io_context: A's PQcancel stays stuck until it goes
    std::optional<asio::io_context> io(std::in_place);
    std::optional<pgcoro::connection> a;
    std::optional<pgcoro::pool> pool;
    run(
        *io,
        [&]() -> asio::awaitable<void>
        {
            auto ex = io->get_executor();
            auto side = co_await pgcoro::open_connection(ex, test_server::get().tcp());
            PGCORO_CO_ASSERT(side.has_value());
            auto ac = co_await pgcoro::open_connection(ex, proxy.config());
            PGCORO_CO_ASSERT(ac.has_value());
            a.emplace(std::move(*ac));
            proxy.silent(); // new connections through the proxy (A's cancel) hang

            auto ra = co_await a->query(pgcoro::query_options{200ms}, "select pg_sleep(10)");
            PGCORO_CO_ASSERT(!ra.has_value());
            EXPECT_TRUE(ra.error().is(errc::timeout)) << ra.error();
            const int a_pid = a->backend_pid();

            auto ccfg = test_server::get().tcp();
            ccfg.cancel_timeout = 2s;
            pgcoro::pool_config pcfg;
            pcfg.min_size = 0;
            pcfg.max_size = 1;
            pool.emplace(ex, ccfg, pcfg);
            int b_pid = 0;
            {
                auto l = co_await pool->acquire();
                PGCORO_CO_ASSERT(l.has_value());
                b_pid = (*l)->backend_pid();
                auto rb = co_await (*l)->query(pgcoro::query_options{300ms}, "select pg_sleep(10)");
                PGCORO_CO_ASSERT(!rb.has_value());
                EXPECT_TRUE(rb.error().is(errc::timeout)) << rb.error();
            }
            // B's statement stops on the server within cancel_timeout.
            auto stopped = co_await until_not_active(*side, b_pid, 3s);
            EXPECT_LT(stopped, ccfg.cancel_timeout) << ms(stopped) << " ms";
            // A's does not (its cancel request is stuck in the proxy).
            EXPECT_EQ(co_await backend_state(*side, a_pid), "active");

            // B's connection comes back clean and is reused.
            auto l = co_await pool->acquire();
            PGCORO_CO_ASSERT(l.has_value());
            EXPECT_EQ((*l)->backend_pid(), b_pid);
            auto one = co_await (*l)->query("select 1");
            EXPECT_TRUE(one.has_value()) << one.error();
            EXPECT_EQ(pool->stats().closed_broken, 0u) << pool->stats();
        }(),
        30s);

    const auto t0 = clk::now();
    pool.reset();
    a.reset();
    io.reset();
    const auto took = clk::now() - t0;
    EXPECT_LT(took, 1s) << ms(took) << " ms";
}

namespace
{
// A resolver whose answers for "slow.pgcoro.test" take 1.5 s and for "stuck.pgcoro.test" 3 s;
// other names resolve normally.
int slow_resolver(const char* host, const char* service, const addrinfo* hints, addrinfo** out)
{
    if (std::strcmp(host, "slow.pgcoro.test") == 0)
    {
        std::this_thread::sleep_for(1500ms);
        return ::getaddrinfo("127.0.0.1", service, hints, out);
    }
    if (std::strcmp(host, "stuck.pgcoro.test") == 0)
    {
        std::this_thread::sleep_for(3000ms);
        return EAI_AGAIN;
    }
    return ::getaddrinfo(host, service, hints, out);
}

struct resolver_override
{
    resolver_override() { pgcoro::detail::resolve_override = &slow_resolver; }
    ~resolver_override() { pgcoro::detail::resolve_override = nullptr; }
};
} // namespace

// Finding 10: a 1.5 s DNS answer with connect_timeout 500 ms returned at 1503 ms, and one stuck
// lookup delayed a `localhost` connect on the same io_context by 3.5 s.
TEST(EngineRegression, ConnectTimeoutBoundsNameResolution)
{
    resolver_override slow;
    asio::io_context io;
    run(
        io,
        [&]() -> asio::awaitable<void>
        {
            auto cfg = test_server::get().tcp();
            cfg.hosts[0].host = "slow.pgcoro.test";
            cfg.connect_timeout = 500ms;
            auto t0 = clk::now();
            auto c = co_await pgcoro::open_connection(io.get_executor(), cfg);
            auto took = clk::now() - t0;
            PGCORO_CO_ASSERT(!c.has_value());
            EXPECT_TRUE(c.error().is(errc::timeout)) << c.error();
            EXPECT_LT(took, 800ms) << ms(took) << " ms";
        }(),
        30s);
}

TEST(EngineRegression, AStuckLookupDoesNotDelayAnotherConnect)
{
    resolver_override slow;
    asio::io_context io;
    run(
        io,
        [&]() -> asio::awaitable<void>
        {
            auto ex = io.get_executor();
            auto stuck = test_server::get().tcp();
            stuck.hosts[0].host = "stuck.pgcoro.test";
            stuck.connect_timeout = 5s;
            std::optional<pgcoro::expected<pgcoro::connection>> stuck_result;
            asio::co_spawn(
                ex,
                [&]() -> asio::awaitable<void>
                { stuck_result.emplace(co_await pgcoro::open_connection(ex, stuck)); },
                asio::detached);
            asio::steady_timer t(ex, 100ms); // the stuck lookup is under way
            co_await t.async_wait(asio::use_awaitable);

            auto local = test_server::get().tcp();
            local.hosts[0].host = "localhost";
            const auto t0 = clk::now();
            auto c = co_await pgcoro::open_connection(ex, local);
            const auto took = clk::now() - t0;
            EXPECT_TRUE(c.has_value()) << c.error();
            EXPECT_LT(took, 1000ms) << ms(took) << " ms";
            EXPECT_FALSE(stuck_result.has_value()); // still resolving: they ran side by side

            while (!stuck_result)
            {
                t.expires_after(50ms);
                co_await t.async_wait(asio::use_awaitable);
            }
            EXPECT_FALSE(stuck_result->has_value());
        }(),
        30s);
}
