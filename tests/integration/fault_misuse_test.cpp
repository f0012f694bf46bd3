// Fault scenario 9: misuse - a coroutine destroyed or cancelled while it holds a lease, an
// exception inside a transact() body, cancellation during connect, flush and read, a
// connection closed, destroyed or assigned over while its statement or connect runs. Each
// time the connection goes back to the pool or is discarded exactly once. (Run under ASan/LSan by
// the sanitizer build: scripts/sanitize.sh.)
#include <pgcoro/pool.hpp>
#include <pgcoro/transaction.hpp>

#include "support/fault_proxy.hpp"
#include "support/oracles.hpp"
#include "support/test_server.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/io_context.hpp>

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <stdexcept>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using pgcoro::errc;
using namespace pgcoro::test;
using clk = std::chrono::steady_clock;

namespace
{

// Spawns `aw` on `io` with a cancellation slot; `done` is set when it finishes.
struct cancellable
{
    asio::cancellation_signal signal;
    bool done = false;
    std::exception_ptr thrown;

    // `f` (a lambda returning asio::awaitable<void>) is kept alive by co_spawn: a lambda's
    // captures must outlive its coroutine.
    template <class F>
    void spawn(asio::io_context& io, F f)
    {
        asio::co_spawn(io, std::move(f),
                       asio::bind_cancellation_slot(signal.slot(),
                                                    [this](std::exception_ptr e)
                                                    {
                                                        thrown = e;
                                                        done = true;
                                                    }));
    }
    asio::awaitable<bool> wait(clk::duration limit)
    {
        const auto until = clk::now() + limit;
        while (!done && clk::now() < until)
            co_await sleep_for(2ms);
        co_return done;
    }
};

// Waits until the pool holds no lease (releases are posted), at most 2 s.
asio::awaitable<void> settle(pgcoro::pool& pool)
{
    for (int i = 0; i < 200; ++i)
    {
        auto s = pool.stats();
        if (s.leased == 0 && s.connecting == 0)
            break;
        co_await sleep_for(10ms);
    }
}

// The state of the one connection behind `pid`, as the server sees it ("" when gone).
asio::awaitable<std::string> server_state(pgcoro::connection& side, int pid)
{
    auto r = co_await side.query("SELECT state FROM pg_stat_activity WHERE pid = $1", pid);
    if (!r || r->size() == 0)
        co_return std::string();
    co_return r->get<std::string>(0, 0).value_or("");
}

} // namespace

// Cancelled (through its co_spawn cancellation slot) while reading a statement's result: the
// statement is cancelled on the server, the connection drained and returned to the pool once.
TEST(FaultMisuse, CancelledWhileReadingReturnsTheConnectionOnce)
{
    const std::string app = "pgcoro-fault-cancel-read";
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
                pgcoro::pool pool(io.get_executor(), fault_app(app), fault_pool(2));
                int pid = 0;
                std::optional<pgcoro::expected<pgcoro::result>> outcome;
                cancellable job;
                job.spawn(io,
                          [&]() -> asio::awaitable<void>
                          {
                              auto l = co_await pool.acquire();
                              PGCORO_CO_ASSERT(l.has_value());
                              pid = (*l)->backend_pid();
                              outcome = co_await (*l)->query("SELECT pg_sleep(10)");
                          });
                for (int i = 0;
                     i < 200 && (pid == 0 || co_await server_state(*side, pid) != "active"); ++i)
                    co_await sleep_for(5ms);
                const auto t0 = clk::now();
                job.signal.emit(asio::cancellation_type::terminal);
                PGCORO_CO_ASSERT(co_await job.wait(3s));
                EXPECT_LT(clk::now() - t0, 1s);
                EXPECT_FALSE(job.thrown);
                PGCORO_CO_ASSERT(outcome.has_value() && !outcome->has_value());
                EXPECT_TRUE(outcome->error().is(errc::cancelled)) << outcome->error();
                // Returned at once; the cancel runs off the caller's path and the pool
                // finishes the connection before reusing it (issue 18, finding 9: 15aed96
                // returned after the cancel round and said "cancelled on the server").
                EXPECT_NE(outcome->error().message.find("cancel request sent"), std::string::npos)
                    << outcome->error();
                co_await settle(pool);
                auto s = pool.stats();
                EXPECT_EQ(s.idle, 1u) << s;          // returned ...
                EXPECT_EQ(closed_total(s), 0u) << s; // ... and not also closed
                EXPECT_TRUE(connections_conserved(s));
                EXPECT_EQ(co_await server_state(*side, pid), "idle");
                // The same connection serves the next statement.
                auto l = co_await pool.acquire();
                PGCORO_CO_ASSERT(l.has_value());
                EXPECT_EQ((*l)->backend_pid(), pid);
                EXPECT_TRUE((co_await (*l)->query("SELECT 1")).has_value());
                l = pgcoro::expected<pgcoro::lease>{};
                co_await pool.close(2s);
                EXPECT_TRUE(pool_drained(pool.stats()));
            }
            EXPECT_TRUE(co_await back_to_baseline(*side, app, fds));
            probe.stop();
        }(),
        30s);
    expect_loop_responsive(probe);
}

// Cancelled while PQflush still has part of a large parameter to send (the proxy stops taking
// client bytes): the protocol state is unknown, so the connection is discarded, once.
TEST(FaultMisuse, CancelledWhileFlushingDiscardsTheConnectionOnce)
{
    const std::string app = "pgcoro-fault-cancel-flush";
    asio::io_context io;
    fault_proxy proxy;
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
                pgcoro::pool pool(io.get_executor(), proxy.config(fault_app(app)), fault_pool(2));
                {
                    auto warm = co_await pool.acquire();
                    PGCORO_CO_ASSERT(warm.has_value());
                }
                co_await sleep_for(10ms);
                proxy.stall(fault_proxy::direction::client_to_server);
                // Building, encoding and copying the payload into libpq is the caller's CPU
                // work, proportional to its size: the probe looks away until the statement
                // waits in PQflush, and watches the cancellation and the discard.
                probe.pause();
                const std::string big(32u << 20, 'x'); // far more than the socket buffers
                std::optional<pgcoro::expected<pgcoro::result>> outcome;
                cancellable job;
                job.spawn(io,
                          [&]() -> asio::awaitable<void>
                          {
                              auto l = co_await pool.acquire();
                              PGCORO_CO_ASSERT(l.has_value());
                              outcome = co_await (*l)->query("SELECT length($1::text)",
                                                             std::string_view(big));
                          });
                co_await sleep_for(300ms); // the buffers fill up; PQflush waits for the socket
                probe.resume();
                co_await sleep_for(20ms);
                EXPECT_FALSE(job.done);
                job.signal.emit(asio::cancellation_type::terminal);
                PGCORO_CO_ASSERT(co_await job.wait(3s));
                PGCORO_CO_ASSERT(outcome.has_value() && !outcome->has_value());
                EXPECT_TRUE(outcome->error().is(errc::cancelled)) << outcome->error();
                EXPECT_NE(outcome->error().message.find("while sending"), std::string::npos)
                    << outcome->error();
                co_await settle(pool);
                auto s = pool.stats();
                EXPECT_EQ(s.size, 0u) << s;
                EXPECT_EQ(s.closed_broken, 1u) << s; // discarded, once
                EXPECT_TRUE(connections_conserved(s));
                proxy.heal();
                auto l = co_await pool.acquire();
                PGCORO_CO_ASSERT(l.has_value());
                EXPECT_TRUE((co_await (*l)->query("SELECT 1")).has_value());
                l = pgcoro::expected<pgcoro::lease>{};
                co_await pool.close(2s);
                EXPECT_TRUE(pool_drained(pool.stats()));
            }
            EXPECT_TRUE(co_await back_to_baseline(*side, app, fds));
            probe.stop();
        }(),
        30s);
    expect_loop_responsive(probe);
}

// Cancelled during connect: a connection's own connect() ends at once and leaves no fd; a
// pool's waiter leaves the queue while the pool's connect goes on and ends in the pool.
TEST(FaultMisuse, CancelledDuringConnect)
{
    const std::string app = "pgcoro-fault-cancel-connect";
    asio::io_context io;
    fault_proxy proxy;
    lag_probe probe(io.get_executor());
    run(
        io,
        [&]() -> asio::awaitable<void>
        {
            probe.start();
            auto side = co_await pgcoro::open_connection(io.get_executor(), side_config());
            PGCORO_CO_ASSERT(side.has_value());
            const int fds = open_fd_count();
            proxy.silent(); // connects hang after the TCP handshake
            auto ccfg = proxy.config(fault_app(app));
            ccfg.connect_timeout = 2s;

            std::optional<pgcoro::expected<void>> connected;
            auto conn = std::make_unique<pgcoro::connection>(io.get_executor());
            cancellable job;
            job.spawn(io,
                      [&]() -> asio::awaitable<void> { connected = co_await conn->connect(ccfg); });
            co_await sleep_for(100ms);
            auto t0 = clk::now();
            job.signal.emit(asio::cancellation_type::terminal);
            PGCORO_CO_ASSERT(co_await job.wait(1s));
            EXPECT_LT(clk::now() - t0, 50ms);
            PGCORO_CO_ASSERT(connected.has_value() && !connected->has_value());
            EXPECT_TRUE(connected->error().is(errc::cancelled)) << connected->error();
            EXPECT_FALSE(conn->is_open());
            conn.reset();

            {
                auto pcfg = fault_pool(2);
                pcfg.acquire_timeout = 2s;
                pgcoro::pool pool(io.get_executor(), ccfg, pcfg);
                std::optional<pgcoro::expected<pgcoro::lease>> acquired;
                cancellable waiter;
                waiter.spawn(
                    io, [&]() -> asio::awaitable<void> { acquired = co_await pool.acquire(); });
                co_await sleep_for(100ms);
                EXPECT_EQ(pool.stats().connecting, 1u) << pool.stats();
                t0 = clk::now();
                waiter.signal.emit(asio::cancellation_type::terminal);
                PGCORO_CO_ASSERT(co_await waiter.wait(1s));
                EXPECT_LT(clk::now() - t0, 50ms);
                PGCORO_CO_ASSERT(acquired.has_value() && !acquired->has_value());
                EXPECT_TRUE(acquired->error().is(errc::cancelled)) << acquired->error();
                auto s = pool.stats();
                EXPECT_EQ(s.waiters, 0u) << s;
                EXPECT_EQ(s.cancelled, 1u) << s;
                EXPECT_TRUE(gauges_consistent(s));
                // The pool's own connect goes on without the waiter; when the network
                // resets it, it ends in the pool's books once (no waiter: no new connect).
                proxy.heal();
                EXPECT_EQ(proxy.drop_all(), 1u);
                for (int i = 0; i < 300 && pool.stats().connecting > 0; ++i)
                    co_await sleep_for(10ms);
                s = pool.stats();
                EXPECT_EQ(s.size, 0u) << s;
                EXPECT_EQ(s.connect_failures, 1u) << s;
                EXPECT_TRUE(connections_conserved(s));
                // And the pool serves the next acquire.
                auto l = co_await pool.acquire();
                EXPECT_TRUE(l.has_value()) << l.error();
                l = pgcoro::expected<pgcoro::lease>{};
                co_await pool.close(3s);
                EXPECT_TRUE(pool_drained(pool.stats()));
            }
            EXPECT_TRUE(co_await back_to_baseline(*side, app, fds));
            probe.stop();
        }(),
        30s);
    expect_loop_responsive(probe);
}

// An exception thrown inside a transact() body: the transaction is rolled back, the exception
// reaches the caller, and the lease goes back to the pool once, idle and reusable.
TEST(FaultMisuse, ExceptionInTransactBodyRollsBackAndReturnsTheLease)
{
    const std::string app = "pgcoro-fault-throw";
    asio::io_context io;
    lag_probe probe(io.get_executor());
    ledger book("fault_ledger_throw");
    run(
        io,
        [&]() -> asio::awaitable<void>
        {
            probe.start();
            auto side = co_await pgcoro::open_connection(io.get_executor(), side_config());
            PGCORO_CO_ASSERT(side.has_value());
            PGCORO_CO_ASSERT((co_await book.create(*side)).has_value());
            const int fds = open_fd_count();
            {
                pgcoro::pool pool(io.get_executor(), fault_app(app), fault_pool(2));
                PGCORO_CO_ASSERT((co_await book.insert(pool)).has_value());
                co_await settle(pool);
                const auto opened = pool.stats().opened;
                bool caught = false;
                try
                {
                    co_await pgcoro::transact(
                        pool,
                        [&](pgcoro::connection& c) -> asio::awaitable<pgcoro::expected<int>>
                        {
                            auto r = co_await c.query("INSERT INTO " + book.table() +
                                                      " (id, txid) VALUES ('thrown', 0)");
                            EXPECT_TRUE(r.has_value());
                            throw std::runtime_error("body failed");
                        });
                }
                catch (const std::runtime_error& e)
                {
                    caught = std::string(e.what()) == "body failed";
                }
                EXPECT_TRUE(caught);
                co_await settle(pool);
                auto s = pool.stats();
                EXPECT_EQ(s.idle, 1u) << s;
                EXPECT_EQ(s.opened, opened) << s;
                EXPECT_EQ(closed_total(s), 0u) << s;
                EXPECT_TRUE(connections_conserved(s));
                // Reusable, outside any transaction; the row was rolled back.
                auto l = co_await pool.acquire();
                PGCORO_CO_ASSERT(l.has_value());
                EXPECT_EQ((*l)->transaction_status(), PQTRANS_IDLE);
                auto n = co_await (*l)->query("SELECT count(*) FROM " + book.table() +
                                              " WHERE id = 'thrown'");
                PGCORO_CO_ASSERT(n.has_value());
                EXPECT_EQ(n->get<std::int64_t>(0, 0).value_or(-1), 0);
                l = pgcoro::expected<pgcoro::lease>{};
                PGCORO_CO_ASSERT((co_await book.insert(pool)).has_value());
                co_await pool.close(2s);
                EXPECT_TRUE(pool_drained(pool.stats()));
            }
            auto v = co_await book.verify(*side);
            EXPECT_TRUE(v.ok()) << v;
            EXPECT_EQ(v.acknowledged, 2u) << v;
            EXPECT_TRUE(co_await back_to_baseline(*side, app, fds));
            co_await book.drop(*side);
            probe.stop();
        }(),
        30s);
    expect_loop_responsive(probe);
}

// The io_context is destroyed while a coroutine holds a lease in the middle of a statement:
// nothing crashes or leaks (LSan), the server session ends and the fds are released.
TEST(FaultMisuse, IoContextDestroyedWhileALeaseIsHeldMidStatement)
{
    const std::string app = "pgcoro-fault-destroyed";
    asio::io_context io;
    lag_probe probe(io.get_executor());
    std::optional<pgcoro::expected<pgcoro::connection>> side;
    int fds = 0;
    run(io,
        [&]() -> asio::awaitable<void>
        {
            side = co_await pgcoro::open_connection(io.get_executor(), side_config());
            PGCORO_CO_ASSERT(side->has_value());
            fds = open_fd_count();
        }());
    ASSERT_TRUE(side && side->has_value());

    int pid = 0;
    {
        auto doomed = std::make_unique<asio::io_context>();
        auto pool =
            std::make_unique<pgcoro::pool>(doomed->get_executor(), fault_app(app), fault_pool(2));
        bool running = false;
        asio::co_spawn(
            *doomed,
            [&]() -> asio::awaitable<void>
            {
                auto l = co_await pool->acquire();
                if (!l)
                    co_return;
                pid = (*l)->backend_pid();
                // The server notices the client going away within 50 ms, even mid-sleep.
                co_await (*l)->query("SET client_connection_check_interval = 50");
                running = true;
                co_await (*l)->query("SELECT pg_sleep(30)");
                ADD_FAILURE() << "the statement was not interrupted";
            },
            asio::detached);
        const auto until = clk::now() + 5s;
        while (!running && clk::now() < until)
            doomed->run_one_for(10ms);
        ASSERT_TRUE(running);
        doomed->run_for(50ms); // the statement is in flight
        pool.reset();
        doomed.reset(); // the coroutine (and its lease) die with the io_context
    }
    EXPECT_GT(pid, 0);
    run(io,
        [&]() -> asio::awaitable<void>
        {
            probe.start();
            co_await sleep_for(20ms);
            EXPECT_TRUE(co_await back_to_baseline(**side, app, fds));
            probe.stop();
        }());
    expect_loop_responsive(probe);
}

// The connection's owner closes it (connection::close(), from another coroutine), destroys it
// (its std::optional reset) or assigns another over it while a statement waits for its
// result: the statement ends at once with connection_lost, is cancelled on the server, and
// the connection is freed as it ends: no descriptor or server session is left, and nothing
// freed is touched (ASan).
TEST(FaultMisuse, ClosedDestroyedOrAssignedOverWhileAStatementRunsEndsItAtOnce)
{
    const std::string app = "pgcoro-fault-close-busy";
    asio::io_context io;
    run(
        io,
        [&]() -> asio::awaitable<void>
        {
            auto side = co_await pgcoro::open_connection(io.get_executor(), side_config());
            PGCORO_CO_ASSERT(side.has_value());
            const int fds = open_fd_count();
            for (const std::string how : {"close", "destroy", "assign"})
            {
                auto opened = co_await pgcoro::open_connection(io.get_executor(), fault_app(app));
                PGCORO_CO_ASSERT(opened.has_value());
                std::optional<pgcoro::connection> c(std::move(*opened));
                const int pid = c->backend_pid();
                std::optional<pgcoro::expected<pgcoro::result>> outcome;
                cancellable job;
                job.spawn(io,
                          [&]() -> asio::awaitable<void>
                          { outcome = co_await c->query("SELECT pg_sleep(10)"); });
                for (int i = 0; i < 200 && co_await server_state(*side, pid) != "active"; ++i)
                    co_await sleep_for(5ms);
                const auto t0 = clk::now();
                if (how == "close")
                {
                    c->close();
                    EXPECT_FALSE(c->is_open()); // at once; the close completes with the statement
                }
                else if (how == "destroy")
                    c.reset();
                else
                    *c = pgcoro::connection(io.get_executor());
                PGCORO_CO_ASSERT(co_await job.wait(3s));
                EXPECT_LT(clk::now() - t0, 1s) << how;
                EXPECT_FALSE(job.thrown) << how;
                PGCORO_CO_ASSERT(outcome.has_value() && !outcome->has_value());
                EXPECT_TRUE(outcome->error().is(errc::connection_lost)) << outcome->error();
                EXPECT_NE(outcome->error().message.find("closed by its owner"), std::string::npos)
                    << outcome->error();
                if (c)
                {
                    auto again = co_await c->query("SELECT 1"); // closed, not a crash
                    EXPECT_TRUE(!again && again.error().is(errc::connection_lost)) << how;
                }
                EXPECT_TRUE(co_await back_to_baseline(*side, app, fds)) << how;
            }
        }(),
        30s);
}

// Destroyed while connecting (the server never answers: the proxy stalls): the connect ends at
// once with `cancelled`, not at connect_timeout.
TEST(FaultMisuse, DestroyedWhileConnectingEndsTheConnectAtOnce)
{
    const std::string app = "pgcoro-fault-destroy-connecting";
    asio::io_context io;
    fault_proxy proxy;
    run(
        io,
        [&]() -> asio::awaitable<void>
        {
            auto side = co_await pgcoro::open_connection(io.get_executor(), side_config());
            PGCORO_CO_ASSERT(side.has_value());
            const int fds = open_fd_count();
            proxy.stall();
            auto cfg = proxy.config(fault_app(app));
            cfg.connect_timeout = 10s;
            std::optional<pgcoro::connection> c(std::in_place, io.get_executor());
            std::optional<pgcoro::expected<void>> outcome;
            cancellable job;
            job.spawn(io, [&]() -> asio::awaitable<void> { outcome = co_await c->connect(cfg); });
            for (int i = 0; i < 200 && proxy.accepted() == 0; ++i)
                co_await sleep_for(5ms);
            co_await sleep_for(50ms);
            EXPECT_FALSE(job.done);
            const auto t0 = clk::now();
            c.reset();
            PGCORO_CO_ASSERT(co_await job.wait(3s));
            EXPECT_LT(clk::now() - t0, 1s);
            PGCORO_CO_ASSERT(outcome.has_value() && !outcome->has_value());
            EXPECT_TRUE(outcome->error().is(errc::cancelled)) << outcome->error();
            EXPECT_NE(outcome->error().message.find("connection closed"), std::string::npos)
                << outcome->error();
            proxy.heal();
            EXPECT_TRUE(co_await back_to_baseline(*side, app, fds));
        }(),
        30s);
}
