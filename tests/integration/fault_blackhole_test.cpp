// Fault scenario 4: a blackhole in the middle of a query (the proxy stalls both directions).
#include <pgcoro/pool.hpp>

#include "support/fault_proxy.hpp"
#include "support/oracles.hpp"
#include "support/test_server.hpp"

#include <boost/asio/io_context.hpp>

#include <gtest/gtest.h>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using pgcoro::errc;
using namespace pgcoro::test;
using clk = std::chrono::steady_clock;

// The statement fails at its deadline plus cancel_timeout (the cancel request goes to the
// address libpq used - the stalled proxy - so it cannot complete and cancel_timeout ends the
// wait), the connection is discarded, the loop never blocks (PQcancel runs on the helper
// thread), and the pool works again once the proxy heals.
TEST(FaultBlackhole, StalledQueryFailsAtItsDeadlineAndThePoolRecovers)
{
    const std::string app = "pgcoro-fault-blackhole";
    constexpr auto query_timeout = 500ms;
    constexpr auto cancel_timeout = 50ms;
    // io before proxy: the proxy is destroyed first, which releases a PQcancel still blocked on
    // a stalled connection (its helper thread then ends; ~io_context does not wait for it).
    asio::io_context io;
    fault_proxy proxy;
    lag_probe probe(io.get_executor());
    ledger book("fault_ledger_blackhole");
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
                auto ccfg = proxy.config(fault_app(app));
                ccfg.cancel_timeout = cancel_timeout;
                ccfg.connect_timeout = 1s;
                auto pcfg = fault_pool(2);
                pcfg.acquire_timeout = 1200ms; // one connect_timeout and a bit
                pgcoro::pool pool(io.get_executor(), ccfg, pcfg);
                // A warm connection through the proxy, then the network goes dark.
                PGCORO_CO_ASSERT((co_await book.insert(pool)).has_value());
                co_await sleep_for(10ms);
                PGCORO_CO_ASSERT(pool.stats().idle == 1);

                proxy.stall();
                const auto accepted_before = proxy.accepted();
                auto l = co_await pool.acquire(); // its socket is quiet: handed out
                PGCORO_CO_ASSERT(l.has_value());
                const auto t0 = clk::now();
                auto r = co_await (*l)->query(pgcoro::query_options{query_timeout}, "SELECT 1");
                const auto took = clk::now() - t0;
                PGCORO_CO_ASSERT(!r.has_value());
                EXPECT_TRUE(r.error().is(errc::timeout)) << r.error();
                EXPECT_GE(took, query_timeout);
                EXPECT_LE(took, query_timeout + 100ms)
                    << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                    << " ms (cancel_timeout " << cancel_timeout.count() << " ms)";
                // The call returns at its deadline; the cancel runs off the caller's path
                // (issue 18, finding 9: 15aed96 returned after the cancel round, closed).
                EXPECT_FALSE((*l)->settled());
                const auto broken_before = pool.stats().closed_broken;
                l->release();
                // The pool finishes it in the background: the cancel never completes, so the
                // connection is closed at cancel_timeout, not reused.
                co_await sleep_for(cancel_timeout + 100ms);
                EXPECT_EQ(pool.stats().closed_broken, broken_before + 1) << pool.stats();
                // The cancel request went to the address libpq used: the proxy.
                EXPECT_EQ(proxy.accepted(), accepted_before + 1);
                EXPECT_TRUE(connections_conserved(pool.stats()));

                // Units of work attempted in the dark fail (connect_timeout), nothing hangs.
                auto dark = co_await book.insert(pool);
                EXPECT_FALSE(dark.has_value());

                proxy.heal();
                const auto healed = clk::now();
                bool recovered = false;
                while (!recovered && clk::now() - healed < 5s)
                {
                    recovered = (co_await book.insert(pool)).has_value();
                    if (!recovered)
                        co_await sleep_for(10ms);
                }
                EXPECT_TRUE(recovered);
                EXPECT_LT(clk::now() - healed, 2s);
                for (int i = 0; i < 10; ++i)
                    EXPECT_TRUE((co_await book.insert(pool)).has_value());
                EXPECT_TRUE(connections_conserved(pool.stats()));
                co_await pool.close(2s);
                EXPECT_TRUE(pool_drained(pool.stats()));
            }
            auto v = co_await book.verify(*side);
            EXPECT_TRUE(v.ok()) << v;
            EXPECT_GE(v.acknowledged, 12u) << v;
            EXPECT_TRUE(co_await back_to_baseline(*side, app, fds));
            co_await book.drop(*side);
            probe.stop();
        }(),
        30s);
    expect_loop_responsive(probe);
}
