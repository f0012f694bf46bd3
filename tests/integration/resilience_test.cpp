// Integration tests for the resilience combinators (retry, with_timeout, transact) against the
// real test cluster: what is retried, what is not, and what the server is left with.
#include <pgcoro/circuit_breaker.hpp>
#include <pgcoro/connection.hpp>
#include <pgcoro/retry.hpp>
#include <pgcoro/transaction.hpp>
#include <pgcoro/with_timeout.hpp>

#include "support/test_server.hpp"

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using namespace asio::experimental::awaitable_operators;
using pgcoro::errc;
using pgcoro::expected;
using pgcoro::test::run;
using pgcoro::test::test_server;

namespace
{

// A retry policy that does not make the test wait: 1 ms, 2 ms, ...
pgcoro::retry_policy quick_policy(unsigned attempts = 3)
{
    pgcoro::retry_policy p;
    p.max_attempts = attempts;
    p.backoff.initial = 1ms;
    p.backoff.cap = 50ms;
    return p;
}

// Runs `sql` and fails the test when it fails; for setup statements.
asio::awaitable<bool> exec(pgcoro::connection& c, std::string_view sql)
{
    auto r = co_await c.query(sql);
    if (!r)
        ADD_FAILURE() << sql << ": " << r.error();
    co_return r.has_value();
}

// The single bigint a statement returns, or -1.
asio::awaitable<std::int64_t> scalar(pgcoro::connection& c, std::string_view sql)
{
    auto r = co_await c.query(sql);
    if (!r)
    {
        ADD_FAILURE() << sql << ": " << r.error();
        co_return -1;
    }
    co_return r->get<std::int64_t>(0, 0).value_or(-1);
}

// Lets `n` coroutines on one executor meet: the last to arrive releases the others.
struct barrier
{
    barrier(asio::any_io_executor ex, int n)
        : timer(ex, std::chrono::steady_clock::time_point::max()), remaining(n)
    {
    }
    asio::awaitable<void> arrive_and_wait()
    {
        if (--remaining == 0)
        {
            timer.cancel();
            co_return;
        }
        co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    asio::steady_timer timer;
    int remaining;
};

} // namespace

TEST(Retry, UniqueViolationReturnedAtOnceNeverRetried)
{
    asio::io_context io;
    run(io,
        [&]() -> asio::awaitable<void>
        {
            // Setup: a row with id 1 already exists.
            auto c = co_await pgcoro::open_connection(io.get_executor(), test_server::get().tcp());
            PGCORO_CO_ASSERT(c.has_value());
            PGCORO_CO_ASSERT(co_await exec(*c, "DROP TABLE IF EXISTS resil_unique"));
            PGCORO_CO_ASSERT(co_await exec(*c, "CREATE TABLE resil_unique (id int PRIMARY KEY)"));
            PGCORO_CO_ASSERT(co_await exec(*c, "INSERT INTO resil_unique VALUES (1)"));
            // Act: insert it again under retry.
            int calls = 0;
            auto r =
                co_await pgcoro::retry(quick_policy(5),
                                       [&]
                                       {
                                           ++calls;
                                           return c->query("INSERT INTO resil_unique VALUES (1)");
                                       });
            // Check: 23505 comes back from the only call.
            PGCORO_CO_ASSERT(!r.has_value());
            EXPECT_TRUE(r.error().is(errc::query_failed)) << r.error();
            EXPECT_EQ(r.error().state, "23505") << r.error();
            EXPECT_EQ(calls, 1);
            EXPECT_EQ(co_await scalar(*c, "SELECT count(*) FROM resil_unique"), 1);
        }());
}

TEST(Retry, NonIdempotentInsertKilledAfterSendingIsNotRetried)
{
    asio::io_context io;
    run(io,
        [&]() -> asio::awaitable<void>
        {
            // Setup: a victim connection and a second one to kill it from.
            auto victim =
                co_await pgcoro::open_connection(io.get_executor(), test_server::get().tcp());
            auto killer =
                co_await pgcoro::open_connection(io.get_executor(), test_server::get().tcp());
            PGCORO_CO_ASSERT(victim.has_value() && killer.has_value());
            PGCORO_CO_ASSERT(co_await exec(*killer, "DROP TABLE IF EXISTS resil_kill"));
            PGCORO_CO_ASSERT(co_await exec(*killer, "CREATE TABLE resil_kill (v int)"));
            const int pid = victim->backend_pid();

            // The killer waits until the INSERT is running on the server, then terminates it.
            auto kill_when_running = [&]() -> asio::awaitable<void>
            {
                asio::steady_timer pause(io.get_executor());
                for (int i = 0; i < 500; ++i)
                {
                    auto r = co_await killer->query(
                        "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND state = "
                        "'active' AND query LIKE 'INSERT INTO resil_kill%'",
                        pid);
                    if (r && r->get<std::int64_t>(0, 0).value_or(0) > 0)
                        break;
                    pause.expires_after(10ms);
                    co_await pause.async_wait(asio::as_tuple(asio::use_awaitable));
                }
                auto k = co_await killer->query("SELECT pg_terminate_backend($1)", pid);
                EXPECT_TRUE(k.has_value()) << k.error();
            };
            // Act: the INSERT under the default policy (not idempotent), killed mid-statement.
            int calls = 0;
            auto insert = [&]
            {
                ++calls;
                return victim->query("INSERT INTO resil_kill SELECT 1 FROM pg_sleep(30)");
            };
            auto r = co_await (pgcoro::retry(quick_policy(5), insert) && kill_when_running());
            // Check: connection_lost, transient in the table's eyes, but not run again.
            PGCORO_CO_ASSERT(!r.has_value());
            EXPECT_TRUE(r.error().is(errc::connection_lost)) << r.error();
            EXPECT_TRUE(r.error().transient());
            EXPECT_EQ(calls, 1);
            EXPECT_EQ(co_await scalar(*killer, "SELECT count(*) FROM resil_kill"), 0);
        }());
}

TEST(Retry, AttemptTimeoutCancelsOnServerAndRetriesWhenIdempotent)
{
    asio::io_context io;
    run(io,
        [&]() -> asio::awaitable<void>
        {
            auto c = co_await pgcoro::open_connection(io.get_executor(), test_server::get().tcp());
            PGCORO_CO_ASSERT(c.has_value());
            auto p = quick_policy(2);
            p.attempt_timeout = 100ms;
            p.idempotent = true; // a SELECT may run twice
            int calls = 0;
            auto start = std::chrono::steady_clock::now();
            auto r = co_await pgcoro::retry(p,
                                            [&]
                                            {
                                                ++calls;
                                                return c->query("SELECT pg_sleep(30)");
                                            });
            PGCORO_CO_ASSERT(!r.has_value());
            EXPECT_TRUE(r.error().is(errc::timeout)) << r.error();
            EXPECT_EQ(calls, 2);
            EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
            // Both statements were cancelled on the server: the connection is reusable.
            EXPECT_EQ(co_await scalar(*c, "SELECT 42::bigint"), 42);
        }());
}

TEST(WithTimeout, PgSleepTimesOutAndConnectionIsReusable)
{
    asio::io_context io;
    run(io,
        [&]() -> asio::awaitable<void>
        {
            auto c = co_await pgcoro::open_connection(io.get_executor(), test_server::get().tcp());
            PGCORO_CO_ASSERT(c.has_value());
            // Act
            auto start = std::chrono::steady_clock::now();
            auto r = co_await pgcoro::with_timeout(200ms, c->query("SELECT pg_sleep(30)"));
            auto took = std::chrono::steady_clock::now() - start;
            // Check: timeout, well before the statement would have ended, and no lingering work.
            PGCORO_CO_ASSERT(!r.has_value());
            EXPECT_TRUE(r.error().is(errc::timeout)) << r.error();
            EXPECT_LT(took, 10s);
            EXPECT_TRUE(c->is_open());
            // The statement is being cancelled off the caller's path (issue 18, finding 9;
            // 15aed96 returned after the cancel round, with the connection idle): the next
            // statement first finishes it.
            EXPECT_EQ(co_await scalar(*c, "SELECT 7::bigint"), 7);
            EXPECT_EQ(c->transaction_status(), PQTRANS_IDLE);
        }());
}

TEST(Transaction, SerializationFailureRetriedWholeAndEffectsAppliedOnce)
{
    asio::io_context io;
    run(io,
        [&]() -> asio::awaitable<void>
        {
            // Setup: two rows; two connections.
            auto a = co_await pgcoro::open_connection(io.get_executor(), test_server::get().tcp());
            auto b = co_await pgcoro::open_connection(io.get_executor(), test_server::get().tcp());
            PGCORO_CO_ASSERT(a.has_value() && b.has_value());
            PGCORO_CO_ASSERT(co_await exec(*a, "DROP TABLE IF EXISTS resil_ssi"));
            PGCORO_CO_ASSERT(
                co_await exec(*a, "CREATE TABLE resil_ssi (id int PRIMARY KEY, v int NOT NULL)"));
            PGCORO_CO_ASSERT(co_await exec(*a, "INSERT INTO resil_ssi VALUES (1, 0), (2, 0)"));

            // Write skew: A reads row 1 and writes row 2, B reads row 2 and writes row 1, both
            // reading before either writes (the barrier). Under SERIALIZABLE one must fail.
            barrier meet(io.get_executor(), 2);
            int attempts_a = 0, attempts_b = 0;
            auto body = [&](int& attempts, std::string_view read, std::string_view write)
            {
                return [&attempts, &meet, read,
                        write](pgcoro::connection& c) -> asio::awaitable<expected<int>>
                {
                    int attempt = ++attempts;
                    if (auto r = co_await c.query(read); !r)
                        co_return tl::unexpected(r.error());
                    if (attempt == 1)
                        co_await meet.arrive_and_wait();
                    if (auto w = co_await c.query(write); !w)
                        co_return tl::unexpected(w.error());
                    co_return attempt;
                };
            };
            pgcoro::transaction_options opts;
            opts.isolation = pgcoro::isolation_level::serializable;
            std::vector<std::string> retried_on;
            pgcoro::retry_hooks hooks;
            hooks.on_retry = [&](const pgcoro::retry_event& e)
            {
                retried_on.emplace_back(e.failure.state.view());
            };

            // Act
            auto [ra, rb] =
                co_await (pgcoro::transact(*a,
                                           body(attempts_a, "SELECT v FROM resil_ssi WHERE id = 1",
                                                "UPDATE resil_ssi SET v = v + 1 WHERE id = 2"),
                                           opts, hooks) &&
                          pgcoro::transact(*b,
                                           body(attempts_b, "SELECT v FROM resil_ssi WHERE id = 2",
                                                "UPDATE resil_ssi SET v = v + 10 WHERE id = 1"),
                                           opts, hooks));

            // Check: both committed; at least one was re-run after 40001; each effect once.
            EXPECT_TRUE(ra.has_value()) << ra.error();
            EXPECT_TRUE(rb.has_value()) << rb.error();
            EXPECT_GE(attempts_a + attempts_b, 3);
            PGCORO_CO_ASSERT(!retried_on.empty());
            for (auto& s : retried_on)
                EXPECT_EQ(s, "40001");
            EXPECT_EQ(co_await scalar(*a, "SELECT v::bigint FROM resil_ssi WHERE id = 1"), 10);
            EXPECT_EQ(co_await scalar(*a, "SELECT v::bigint FROM resil_ssi WHERE id = 2"), 1);
            EXPECT_EQ(a->transaction_status(), PQTRANS_IDLE);
            EXPECT_EQ(b->transaction_status(), PQTRANS_IDLE);
        }());
}

TEST(Transaction, BodyErrorRollsBackAndIsNotRetried)
{
    asio::io_context io;
    run(io,
        [&]() -> asio::awaitable<void>
        {
            auto c = co_await pgcoro::open_connection(io.get_executor(), test_server::get().tcp());
            PGCORO_CO_ASSERT(c.has_value());
            PGCORO_CO_ASSERT(co_await exec(*c, "DROP TABLE IF EXISTS resil_tx"));
            PGCORO_CO_ASSERT(co_await exec(*c, "CREATE TABLE resil_tx (id int PRIMARY KEY)"));
            int calls = 0;
            // Act: the body inserts, then hits a unique violation.
            auto r = co_await pgcoro::transact(
                *c,
                [&](pgcoro::connection& conn) -> asio::awaitable<expected<void>>
                {
                    ++calls;
                    if (auto i = co_await conn.query("INSERT INTO resil_tx VALUES (1)"); !i)
                        co_return tl::unexpected(i.error());
                    auto dup = co_await conn.query("INSERT INTO resil_tx VALUES (1)");
                    if (!dup)
                        co_return tl::unexpected(dup.error());
                    co_return expected<void>{};
                });
            // Check: the error, once; nothing of the transaction remains.
            PGCORO_CO_ASSERT(!r.has_value());
            EXPECT_EQ(r.error().state, "23505") << r.error();
            EXPECT_EQ(calls, 1);
            EXPECT_EQ(c->transaction_status(), PQTRANS_IDLE);
            EXPECT_EQ(co_await scalar(*c, "SELECT count(*) FROM resil_tx"), 0);
        }());
}

TEST(Transaction, ExceptionRollsBackThenPropagates)
{
    asio::io_context io;
    bool threw = false;
    run(io,
        [&]() -> asio::awaitable<void>
        {
            auto c = co_await pgcoro::open_connection(io.get_executor(), test_server::get().tcp());
            PGCORO_CO_ASSERT(c.has_value());
            PGCORO_CO_ASSERT(co_await exec(*c, "DROP TABLE IF EXISTS resil_tx_ex"));
            PGCORO_CO_ASSERT(co_await exec(*c, "CREATE TABLE resil_tx_ex (id int)"));
            try
            {
                (void)co_await pgcoro::transact(
                    *c,
                    [&](pgcoro::connection& conn) -> asio::awaitable<expected<int>>
                    {
                        (void)co_await conn.query("INSERT INTO resil_tx_ex VALUES (1)");
                        throw std::runtime_error("user bug");
                        co_return 0;
                    });
            }
            catch (const std::runtime_error&)
            {
                threw = true;
            }
            EXPECT_EQ(c->transaction_status(), PQTRANS_IDLE);
            EXPECT_EQ(co_await scalar(*c, "SELECT count(*) FROM resil_tx_ex"), 0);
        }());
    EXPECT_TRUE(threw);
}

TEST(Transaction, SwallowedStatementFailureIsNotReportedAsCommitted)
{
    asio::io_context io;
    run(io,
        [&]() -> asio::awaitable<void>
        {
            auto c = co_await pgcoro::open_connection(io.get_executor(), test_server::get().tcp());
            PGCORO_CO_ASSERT(c.has_value());
            auto r = co_await pgcoro::transact(
                *c,
                [](pgcoro::connection& conn) -> asio::awaitable<expected<int>>
                {
                    (void)co_await conn.query("SELECT 1/0"); // 22012, ignored by the body
                    co_return 1;
                });
            PGCORO_CO_ASSERT(!r.has_value());
            EXPECT_EQ(r.error().state, "25P02") << r.error();
            EXPECT_EQ(c->transaction_status(), PQTRANS_IDLE);
        }());
}

TEST(Resilience, RetryAroundBreakerAroundTimeoutComposes)
{
    asio::io_context io;
    run(io,
        [&]() -> asio::awaitable<void>
        {
            auto c = co_await pgcoro::open_connection(io.get_executor(), test_server::get().tcp());
            PGCORO_CO_ASSERT(c.has_value());
            pgcoro::circuit_breaker breaker;
            // Read in the order written: retry ( breaker ( timeout ( query ) ) ).
            auto r = co_await pgcoro::retry(
                quick_policy(),
                [&] {
                    return breaker.run(
                        [&] { return pgcoro::with_timeout(5s, c->query("SELECT 5::bigint")); });
                });
            PGCORO_CO_ASSERT(r.has_value());
            EXPECT_EQ(r->get<std::int64_t>(0, 0).value_or(0), 5);
            EXPECT_EQ(breaker.state(), pgcoro::breaker_state::closed);
        }());
}
