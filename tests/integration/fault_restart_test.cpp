// Fault scenario 1: the server restarts under load - `pg_ctl restart -m fast`, and
// `pg_ctl stop -m immediate` (a crash) followed by `start`.
#include <pgcoro/pool.hpp>
#include <pgcoro/retry.hpp>

#include "support/oracles.hpp"
#include "support/test_server.hpp"

#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <gtest/gtest.h>

#include <algorithm>

#include <atomic>
#include <functional>
#include <map>
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

// Load through the outage: two ledger writers (not retried: an INSERT is not idempotent) and
// two readers whose SELECT is retried (idempotent). `outage` runs on a separate thread (pg_ctl
// blocks); the loop under test keeps running meanwhile.
void restart_under_load(const std::string& app, const std::string& table,
                        std::function<int()> outage)
{
    if (!test_server::get().owned())
        GTEST_SKIP() << "external server: cannot restart it";
    asio::io_context io;
    lag_probe probe(io.get_executor());
    ledger book(table);
    std::atomic<bool> server_back{false};
    std::atomic<int> outage_rc{-1};
    clk::time_point back_at{};
    std::thread control;

    auto pcfg = fault_pool(6);
    pcfg.acquire_timeout = 1s;
    pcfg.refill_backoff_initial = 50ms;
    pcfg.refill_backoff_max = 400ms; // recovery after the server is back is bounded by this

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
                pgcoro::pool pool(io.get_executor(), fault_app(app), pcfg);
                // Six idle connections; the load below uses about four, so the coldest stay
                // idle (and die idle) through the outage.
                {
                    std::vector<pgcoro::lease> warm;
                    for (int i = 0; i < 6; ++i)
                        if (auto l = co_await pool.acquire())
                            warm.push_back(std::move(*l));
                    PGCORO_CO_ASSERT(warm.size() == 6);
                }

                bool stop = false;
                int running = 0, reads_ok = 0, reads_failed = 0, gauge_violations = 0;
                // When each single attempt failed (a read's retried attempts included), to
                // check that failures stop once the server is back (issue 19: the readers
                // retried up to 50 times, hiding failures during recovery).
                std::vector<clk::time_point> attempt_failures;
                std::map<std::string, int> write_errors;
                std::map<std::string, std::string> first_messages; // per kind, for diagnosis
                pgcoro::retry_policy reads;
                reads.max_attempts = 50;
                reads.backoff.initial = 50ms;
                reads.backoff.cap = 200ms;
                reads.deadline = 15s;
                reads.idempotent = true;
                pgcoro::retry_policy writes;
                writes.max_attempts = 3;
                writes.backoff.initial = 50ms;
                writes.backoff.cap = 200ms;
                writes.deadline = 5s;
                writes.idempotent = false; // an INSERT must not run twice
                for (int w = 0; w < 2; ++w)
                    asio::co_spawn(
                        io,
                        [&]() -> asio::awaitable<void>
                        {
                            ++running;
                            for (int i = 0; i < 100000 && !stop; ++i)
                            {
                                // Writes are retried too, never when their outcome is
                                // unknown (not idempotent): the ledger's `duplicated` = 0
                                // below is then a real check of exactly-once.
                                auto r = co_await book.insert_retried(pool, writes);
                                if (!r)
                                    attempt_failures.push_back(clk::now());
                                if (!r)
                                {
                                    const auto kind =
                                        std::string(to_string(r.error().value())) +
                                        (r.error().state.empty()
                                             ? ""
                                             : "/" + std::string(r.error().state.view()));
                                    if (write_errors[kind]++ == 0)
                                        first_messages[kind] = r.error().message;
                                }
                                co_await sleep_for(r ? 5ms : 20ms);
                            }
                            --running;
                        },
                        asio::detached);
                for (int w = 0; w < 2; ++w)
                    asio::co_spawn(
                        io,
                        [&]() -> asio::awaitable<void>
                        {
                            ++running;
                            for (int i = 0; i < 100000 && !stop; ++i)
                            {
                                auto r = co_await pgcoro::retry(
                                    reads,
                                    [&]() -> asio::awaitable<pgcoro::expected<pgcoro::result>>
                                    {
                                        auto a = co_await pool.run([](pgcoro::connection& c)
                                                                   { return c.query("SELECT 1"); });
                                        if (!a)
                                            attempt_failures.push_back(clk::now());
                                        co_return a;
                                    });
                                r ? ++reads_ok : ++reads_failed;
                                if (!r)
                                    ADD_FAILURE()
                                        << "an idempotent read failed despite retry: " << r.error();
                                co_await sleep_for(5ms);
                            }
                            --running;
                        },
                        asio::detached);
                // The gauges stay consistent throughout.
                asio::co_spawn(
                    io,
                    [&]() -> asio::awaitable<void>
                    {
                        for (int i = 0; i < 100000 && !stop; ++i)
                        {
                            if (!gauges_consistent(pool.stats()))
                                ++gauge_violations;
                            co_await sleep_for(5ms);
                        }
                    },
                    asio::detached);

                // Work certainly in flight when the server goes: a read and a unit of work
                // that keep their statements running through the outage.
                std::optional<pgcoro::expected<pgcoro::result>> long_read;
                std::optional<pgcoro::expected<int>> long_write;
                clk::time_point long_read_at{}, long_write_at{};
                asio::co_spawn(
                    io,
                    [&]() -> asio::awaitable<void>
                    {
                        long_read = co_await pool.run([](pgcoro::connection& c)
                                                      { return c.query("SELECT pg_sleep(30)"); });
                        long_read_at = clk::now();
                    },
                    asio::detached);
                asio::co_spawn(
                    io,
                    [&]() -> asio::awaitable<void>
                    {
                        long_write = co_await book.insert(pool, 30s);
                        long_write_at = clk::now();
                    },
                    asio::detached);

                co_await sleep_for(300ms);
                const auto acked_before = book.count(ledger::outcome::acknowledged);
                EXPECT_GT(acked_before, 0u);
                const auto outage_started = clk::now();
                control = std::thread(
                    [&]
                    {
                        outage_rc = outage();
                        back_at = clk::now();
                        server_back = true;
                    });
                while (!server_back)
                    co_await sleep_for(5ms); // pg_ctl -w -t 30 bounds this
                EXPECT_EQ(outage_rc.load(), 0);
                const auto back = back_at;

                // Acquires succeed again within 2 s of the server being back.
                bool recovered = false;
                while (!recovered && clk::now() - back < 5s)
                {
                    auto r = co_await pool.run([](pgcoro::connection& c)
                                               { return c.query("SELECT 1"); });
                    recovered = r.has_value();
                    if (!recovered)
                        co_await sleep_for(10ms);
                }
                const auto recovery = clk::now() - back;
                EXPECT_TRUE(recovered);
                EXPECT_LT(recovery, 2s) << ms(recovery) << " ms";

                // No dead idle connection is handed out: take every connection the pool can
                // give (the idle stack included), each answers its first statement.
                {
                    std::vector<pgcoro::lease> all;
                    int dead = 0;
                    for (int i = 0; i < 6; ++i)
                    {
                        auto l = co_await pool.acquire();
                        if (!l)
                            break; // the load holds some
                        auto q = co_await (*l)->query("SELECT 1");
                        if (!q)
                        {
                            ++dead;
                            ADD_FAILURE() << "a dead connection was handed out: " << q.error();
                        }
                        all.push_back(std::move(*l));
                    }
                    EXPECT_EQ(dead, 0);
                    EXPECT_GE(all.size(), 1u);
                }
                co_await sleep_for(300ms); // load after the restart
                stop = true;
                for (int i = 0; i < 500 && running > 0; ++i)
                    co_await sleep_for(10ms);
                EXPECT_EQ(running, 0) << "a worker hung";

                const auto acked = book.count(ledger::outcome::acknowledged);
                EXPECT_GT(acked, acked_before) << "no write succeeded after the restart";
                EXPECT_EQ(reads_failed, 0);
                EXPECT_GT(reads_ok, 0);
                EXPECT_EQ(gauge_violations, 0);
                // In-flight work failed as a lost connection, or could not get one meanwhile.
                std::string kinds;
                for (const auto& [k, n] : write_errors)
                {
                    kinds += k + "=" + std::to_string(n) + " ";
                    EXPECT_TRUE(k.rfind("connection_lost", 0) == 0 ||
                                k.rfind("pool_timeout", 0) == 0 ||
                                k.rfind("connect_failed", 0) == 0)
                        << "unexpected failure kind " << k << ": " << first_messages[k];
                }
                // No single attempt failed once the pool had recovered (2 s after the server
                // was back), and the work in flight failed promptly: within 3 s of the stop,
                // not at its 30 s deadline.
                const auto late = std::count_if(attempt_failures.begin(), attempt_failures.end(),
                                                [&](clk::time_point t) { return t > back + 2s; });
                EXPECT_EQ(late, 0) << "of " << attempt_failures.size() << " failed attempts";
                std::printf("[ info     ] %zu single attempts failed during the outage\n",
                            attempt_failures.size());
                // The work in flight failed as a lost connection, promptly.
                PGCORO_CO_ASSERT(long_read.has_value() && long_write.has_value());
                EXPECT_LT(long_read_at - outage_started, 3s)
                    << ms(long_read_at - outage_started) << " ms";
                EXPECT_LT(long_write_at - outage_started, 3s)
                    << ms(long_write_at - outage_started) << " ms";
                EXPECT_FALSE(long_read->has_value());
                if (!*long_read)
                {
                    EXPECT_TRUE(long_read->error().is(errc::connection_lost)) << long_read->error();
                }
                EXPECT_FALSE(long_write->has_value());
                if (!*long_write)
                {
                    EXPECT_TRUE(long_write->error().is(errc::connection_lost))
                        << long_write->error();
                }
                std::printf("[ info     ] recovered after %lld ms; writes acknowledged %zu, "
                            "failed %zu, unknown %zu; errors: %s\n",
                            ms(recovery), acked, book.count(ledger::outcome::failed),
                            book.count(ledger::outcome::unknown), kinds.c_str());
                EXPECT_TRUE(connections_conserved(pool.stats()));
                co_await pool.close(2s);
                EXPECT_TRUE(pool_drained(pool.stats()));
            }
            // The side connection died with the server; check over a new one.
            side->close();
            auto side2 = co_await pgcoro::open_connection(io.get_executor(), side_config());
            PGCORO_CO_ASSERT(side2.has_value());
            auto v = co_await book.verify(*side2);
            EXPECT_TRUE(v.ok()) << v;
            std::printf("[ ledger   ] %s\n",
                        [&]
                        {
                            std::ostringstream o;
                            o << v;
                            return o.str();
                        }()
                            .c_str());
            EXPECT_TRUE(co_await back_to_baseline(*side2, app, fds));
            co_await book.drop(*side2);
            probe.stop();
        }(),
        60s);
    if (control.joinable())
        control.join();
    expect_loop_responsive(probe);
}

} // namespace

TEST(FaultRestart, FastRestartUnderLoad)
{
    restart_under_load("pgcoro-fault-restart-fast", "fault_ledger_restart_fast",
                       [] { return test_server::get().pg_ctl("restart -m fast"); });
}

TEST(FaultRestart, ImmediateStopAndStartUnderLoad)
{
    restart_under_load("pgcoro-fault-restart-immediate", "fault_ledger_restart_immediate",
                       []
                       {
                           int rc = test_server::get().pg_ctl("stop -m immediate");
                           std::this_thread::sleep_for(500ms);
                           return rc != 0 ? rc : test_server::get().pg_ctl("start");
                       });
}
