// Fault scenario 5: the server side accepts the TCP connection and then never says a word.
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

namespace
{
long long ms(clk::duration d)
{
    return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}
} // namespace

TEST(FaultSilent, ConnectDeadlineIsEnforcedAndFdsReturnToBaseline)
{
    const std::string app = "pgcoro-fault-silent";
    constexpr auto connect_timeout = 300ms;
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
            proxy.silent();
            auto ccfg = proxy.config(fault_app(app));
            ccfg.connect_timeout = connect_timeout;

            // One connection: fails with `timeout` at connect_timeout.
            auto t0 = clk::now();
            auto c = co_await pgcoro::open_connection(io.get_executor(), ccfg);
            auto took = clk::now() - t0;
            PGCORO_CO_ASSERT(!c.has_value());
            EXPECT_TRUE(c.error().is(errc::timeout)) << c.error();
            EXPECT_NE(c.error().message.find("timed out"), std::string::npos) << c.error();
            EXPECT_TRUE(c.error().transient());
            EXPECT_GE(took, connect_timeout);
            EXPECT_LE(took, connect_timeout + 100ms) << ms(took) << " ms";
            EXPECT_EQ(proxy.accepted(), 1u);

            // A pool: each connect times out, the acquire fails at acquire_timeout and says why.
            {
                auto pcfg = fault_pool(2);
                pcfg.acquire_timeout = 1000ms;
                pgcoro::pool pool(io.get_executor(), ccfg, pcfg);
                t0 = clk::now();
                auto l = co_await pool.acquire();
                took = clk::now() - t0;
                PGCORO_CO_ASSERT(!l.has_value());
                EXPECT_TRUE(l.error().is(errc::pool_timeout)) << l.error();
                EXPECT_NE(l.error().message.find("last connect error: timeout"), std::string::npos)
                    << l.error();
                EXPECT_GE(took, pcfg.acquire_timeout);
                EXPECT_LE(took, pcfg.acquire_timeout + 100ms) << ms(took) << " ms";
                auto s = pool.stats();
                // One waiter, connects of 300 ms each with a short backoff: 2 to 4 attempts.
                EXPECT_GE(s.connect_failures, 2u) << s;
                EXPECT_LE(s.connect_failures, 4u) << s;
                EXPECT_EQ(s.opened, 0u) << s;
                EXPECT_TRUE(gauges_consistent(s));
                // close() aborts the connect still in flight: it never opened, so it is neither
                // a connect failure nor a close (issue 18: closes and opens of a drained pool
                // are equal). At most one was in flight (one waiter).
                co_await pool.close(2s);
                EXPECT_TRUE(pool_drained(pool.stats()));
                const auto f = pool.stats().connect_failures;
                EXPECT_GE(proxy.accepted(), 1 + f);
                EXPECT_LE(proxy.accepted(), 1 + f + 1);
            }
            proxy.heal();
            EXPECT_TRUE(co_await back_to_baseline(*side, app, fds));
            EXPECT_EQ(proxy.active(), 0u);

            // Healed: the same configuration connects.
            auto ok = co_await pgcoro::open_connection(io.get_executor(), ccfg);
            EXPECT_TRUE(ok.has_value()) << ok.error();
            probe.stop();
        }(),
        30s);
    expect_loop_responsive(probe);
}
