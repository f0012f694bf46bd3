// Fault scenario 2: pg_terminate_backend of pooled connections - idle, busy, idle in a
// transaction (returned untouched, and used by its holder).
#include <pgcoro/pool.hpp>

#include "support/oracles.hpp"
#include "support/test_server.hpp"

#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <gtest/gtest.h>

#include <optional>
#include <set>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using pgcoro::errc;
using namespace pgcoro::test;

namespace
{

asio::awaitable<bool> terminate(pgcoro::connection& side, int pid)
{
    auto r = co_await side.query("SELECT pg_terminate_backend($1)", pid);
    co_return r && r->get<bool>(0, 0).value_or(false);
}

// Waits until `pid` runs a statement (state 'active'), at most 2 s.
asio::awaitable<bool> wait_active(pgcoro::connection& side, int pid)
{
    for (int i = 0; i < 200; ++i)
    {
        auto r = co_await side.query("SELECT state FROM pg_stat_activity WHERE pid = $1", pid);
        if (r && r->size() == 1 && r->get<std::string>(0, 0).value_or("") == "active")
            co_return true;
        co_await sleep_for(10ms);
    }
    co_return false;
}

} // namespace

TEST(FaultTerminate, IdleBusyAndIdleInTransactionConnections)
{
    const std::string app = "pgcoro-fault-terminate";
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
                pgcoro::pool pool(io.get_executor(), fault_app(app), fault_pool(4));
                // a: will be idle in the pool; b: busy; c: idle in a transaction, returned
                // untouched; d: idle in a transaction, used again by its holder.
                std::vector<pgcoro::lease> l;
                std::vector<int> pid;
                for (int i = 0; i < 4; ++i)
                {
                    auto x = co_await pool.acquire();
                    PGCORO_CO_ASSERT(x.has_value());
                    auto q = co_await (*x)->query("SELECT 1");
                    PGCORO_CO_ASSERT(q.has_value());
                    pid.push_back((*x)->backend_pid());
                    l.push_back(std::move(*x));
                }
                PGCORO_CO_ASSERT((co_await l[2]->query("BEGIN")).has_value());
                PGCORO_CO_ASSERT((co_await l[3]->query("BEGIN")).has_value());
                l[0].release();
                co_await sleep_for(20ms);
                EXPECT_EQ(pool.stats().idle, 1u) << pool.stats();

                std::optional<pgcoro::expected<pgcoro::result>> busy;
                asio::co_spawn(
                    io,
                    [&]() -> asio::awaitable<void>
                    { busy = co_await l[1]->query("SELECT pg_sleep(10)"); },
                    asio::detached);
                EXPECT_TRUE(co_await wait_active(*side, pid[1]));

                const auto before = pool.stats();
                for (int p : pid)
                    EXPECT_TRUE(co_await terminate(*side, p)) << "pid " << p;

                // b: its statement fails with 57P01, promptly; the connection is gone.
                for (int i = 0; i < 300 && !busy; ++i)
                    co_await sleep_for(10ms);
                PGCORO_CO_ASSERT(busy.has_value());
                PGCORO_CO_ASSERT(!busy->has_value());
                const auto& be = busy->error();
                EXPECT_EQ(be.state, "57P01") << be;
                EXPECT_TRUE(be.is(errc::connection_lost)) << be;
                EXPECT_TRUE(be.transient()) << be;
                EXPECT_FALSE(l[1]->is_open());

                // d: its holder's next statement fails; it does not hang.
                co_await sleep_for(50ms); // the FATAL reaches d's socket
                auto dq = co_await l[3]->query("SELECT 1");
                PGCORO_CO_ASSERT(!dq.has_value());
                EXPECT_TRUE(dq.error().is(errc::connection_lost)) << dq.error();
                EXPECT_FALSE(l[3]->is_open());

                l[1].release();
                l[2].release(); // inside its transaction: the pool's ROLLBACK fails, discarded
                l[3].release();
                for (int i = 0; i < 100 && pool.stats().leased > 0; ++i)
                    co_await sleep_for(10ms);
                auto s = pool.stats();
                EXPECT_EQ(s.leased, 0u) << s;
                // b, c and d (and a, if the maintenance sweep already found it dead)
                EXPECT_GE(s.closed_broken, before.closed_broken + 3) << s;
                EXPECT_LE(s.closed_broken, before.closed_broken + 4) << s;
                EXPECT_TRUE(connections_conserved(s));

                // a: dead while idle; never handed out. The pool recovers: four working
                // connections, none of them a terminated one.
                std::vector<pgcoro::lease> again;
                std::set<int> fresh;
                for (int i = 0; i < 4; ++i)
                {
                    auto x = co_await pool.acquire();
                    PGCORO_CO_ASSERT(x.has_value());
                    auto q = co_await (*x)->query("SELECT pg_backend_pid()");
                    PGCORO_CO_ASSERT(q.has_value());
                    int p = q->get<int>(0, 0).value_or(0);
                    EXPECT_EQ(std::count(pid.begin(), pid.end(), p), 0) << p;
                    fresh.insert(p);
                    again.push_back(std::move(*x));
                }
                EXPECT_EQ(fresh.size(), 4u);
                s = pool.stats();
                EXPECT_EQ(s.closed_broken, before.closed_broken + 4) << s; // and a
                EXPECT_EQ(s.opened, 8u) << s;
                EXPECT_TRUE(connections_conserved(s));
                again.clear();
                co_await pool.close(2s);
                EXPECT_TRUE(pool_drained(pool.stats()));
            }
            EXPECT_TRUE(co_await back_to_baseline(*side, app, fds));
            probe.stop();
        }(),
        30s);
    expect_loop_responsive(probe);
}
