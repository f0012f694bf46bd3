// 03_resilience: retry around a circuit breaker around a timeout around pool work.
//
// Shows: composing pgcoro::retry, circuit_breaker and with_timeout in the order written; that
// a unique violation (23505) is returned at once, never retried; that transient failures are
// retried with backoff; and is_database_available(). Leaves out: metrics (see the
// observability example).
// Run with DATABASE_URL set (scripts/with-test-env.sh sets it).
#include <pgcoro.hpp>
#include <pgcoro/availability.hpp>
#include <pgcoro/circuit_breaker.hpp>
#include <pgcoro/retry.hpp>
#include <pgcoro/with_timeout.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <iostream>

namespace asio = boost::asio;
using namespace std::chrono_literals;

asio::awaitable<int> demo(pgcoro::pool& pool)
{
    pgcoro::circuit_breaker breaker;
    breaker.on_transition(
        [](const pgcoro::breaker_transition& t)
        {
            std::cout << "breaker " << pgcoro::to_string(t.from) << " -> "
                      << pgcoro::to_string(t.to) << "\n";
        });
    pgcoro::retry_policy policy; // 3 attempts, 1 s then 2 s apart, transient errors only
    policy.backoff.initial = 100ms;

    // One unit of work: at most 2 s, through the breaker, retried as a whole.
    auto insert = [&](int id)
    {
        return pgcoro::retry(
            policy,
            [&, id]()
            {
                return breaker.run(
                    [&, id]()
                    {
                        return pgcoro::with_timeout(
                            2s,
                            [&, id]()
                            {
                                return pool.run(
                                    [id](pgcoro::connection& c) {
                                        return c.query(
                                            "INSERT INTO demo_kv (id, v) VALUES ($1, 'x')", id);
                                    });
                            });
                    });
            });
    };

    co_await pool.run(
        [](pgcoro::connection& c)
        { return c.query("CREATE TABLE IF NOT EXISTS demo_kv (id int PRIMARY KEY, v text)"); });
    co_await pool.run([](pgcoro::connection& c) { return c.query("DELETE FROM demo_kv"); });

    auto first = co_await insert(1);
    std::cout << "first insert: " << (first ? "ok" : first.error().to_string()) << "\n";
    auto dup = co_await insert(1); // 23505: not transient, returned at once
    std::cout << "duplicate insert: " << dup.error() << " (retried: no)\n";

    bool up = co_await pgcoro::is_database_available(pool);
    std::cout << "database available: " << std::boolalpha << up << "\n";
    co_return first && !dup && dup.error().state == "23505" && up ? 0 : 1;
}

int main()
{
    auto settings = pgcoro::settings_from_env();
    if (!settings)
    {
        std::cerr << settings.error() << "\n";
        return 1;
    }
    asio::io_context io;
    pgcoro::pool pool(io.get_executor(), settings->connect, settings->pool);
    int rc = 1;
    asio::co_spawn(io, demo(pool),
                   [&](std::exception_ptr e, int r)
                   {
                       rc = e ? 2 : r;
                       io.stop();
                   });
    io.run();
    return rc;
}
