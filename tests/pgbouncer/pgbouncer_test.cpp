// Tests against a real pgbouncer 1.18 in transaction pooling mode (issue #7, scenario 8), which
// the `pgbouncer` CTest fixture (scripts/test-pgbouncer.sh) starts in front of the test cluster
// with at most PGCORO_PGBOUNCER_POOL_SIZE (5) server connections:
//  - 64 coroutines through a pgcoro pool in pgbouncer mode: parameterised selects, inserts in
//    transact(), failing statements; no 42P05/26000 and never more than 5 server connections;
//  - what goes wrong without pgcoro's rules: named prepared statements collide (42P05) or
//    vanish (26000) when transactions land on other server connections;
//  - startup `options` (statement_timeout) are rejected by pgbouncer (08P01, not transient),
//    pgbouncer mode leaves them out, and timeouts then come from SET LOCAL or query timeouts.
#include <pgcoro/connection.hpp>
#include <pgcoro/pool.hpp>
#include <pgcoro/retry.hpp>
#include <pgcoro/transaction.hpp>

#include "support/test_server.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using namespace asio::experimental::awaitable_operators;
using pgcoro::errc;
using pgcoro::test::run;
using pgcoro::test::test_server;

#ifndef PGCORO_PGBOUNCER_STATE_DIR
#define PGCORO_PGBOUNCER_STATE_DIR ""
#endif

namespace
{

// Where the fixture's pgbouncer listens (STATE_DIR/env of scripts/test-pgbouncer.sh).
struct bouncer_info
{
    std::string host;
    std::uint16_t port = 0;
    std::string dbname;
    std::string user;
    int pool_size = 0;
};

std::optional<bouncer_info> bouncer()
{
    const char* dir = std::getenv("PGCORO_PGBOUNCER_STATE");
    std::string state = dir ? dir : PGCORO_PGBOUNCER_STATE_DIR;
    std::ifstream in(state + "/env");
    std::map<std::string, std::string> env;
    std::string line;
    while (std::getline(in, line))
        if (auto eq = line.find('='); eq != std::string::npos)
            env[line.substr(0, eq)] = line.substr(eq + 1);
    if (env["PGCORO_PGBOUNCER_PORT"].empty())
        return std::nullopt;
    bouncer_info b;
    b.host = env["PGCORO_PGBOUNCER_HOST"];
    b.port = static_cast<std::uint16_t>(std::stoi(env["PGCORO_PGBOUNCER_PORT"]));
    b.dbname = env["PGCORO_PGBOUNCER_DBNAME"];
    b.user = env["PGCORO_PGBOUNCER_USER"];
    b.pool_size = std::stoi(env["PGCORO_PGBOUNCER_POOL_SIZE"]);
    return b;
}

#define PGCORO_REQUIRE_BOUNCER(b)                                                                  \
    auto b = bouncer();                                                                            \
    if (!b)                                                                                        \
    GTEST_SKIP() << "no pgbouncer: run through ctest (fixture pgbouncer)"

// A connection through pgbouncer. `pgbouncer_mode` is connect_config::pgbouncer.
pgcoro::connect_config via_bouncer(const bouncer_info& b, const std::string& name,
                                   bool pgbouncer_mode = true)
{
    pgcoro::connect_config c;
    c.hosts = {{b.host, b.port}};
    c.dbname = b.dbname;
    c.user = b.user;
    c.sslmode = pgcoro::ssl_mode::disable;
    c.application_name = name;
    c.connect_timeout = 5s;
    c.pgbouncer = pgbouncer_mode;
    return c;
}

// pgbouncer's admin console (SHOW POOLS, RECONNECT, ...): simple query protocol only.
pgcoro::connect_config admin_console(const bouncer_info& b)
{
    auto c = via_bouncer(b, "pgcoro-pgbouncer-admin");
    c.dbname = "pgbouncer";
    return c;
}

// Straight to the cluster, in database `postgres`, so it never counts as one of the
// pgbouncer server connections (those are all in the test database).
pgcoro::connect_config direct_observer()
{
    auto c = test_server::get().tcp();
    c.dbname = "postgres";
    c.application_name = "pgcoro-pgbouncer-observer";
    return c;
}

asio::awaitable<void> sleep_for(std::chrono::milliseconds d)
{
    asio::steady_timer t(co_await asio::this_coro::executor, d);
    co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
}

// ---- raw libpq, non-blocking --------------------------------------------------------------
// pgcoro deliberately never sends simple-protocol queries with user text or named prepared
// statements. To talk to the admin console and to show what named statements do behind a
// transaction pooler, these helpers drive libpq directly on a pgcoro connection's PGconn
// (already in non-blocking mode), waiting for the socket with Asio: nothing here blocks the
// event loop, and every wait is bounded.

struct raw_result
{
    ExecStatusType status = PGRES_FATAL_ERROR;
    std::string state;   // SQLSTATE of an error
    std::string message; // error message
    std::vector<std::string> columns;
    std::vector<std::vector<std::string>> rows;

    bool ok() const { return status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK; }
    // The value of `col` in row `r`; "" when missing.
    std::string at(std::size_t r, const std::string& col) const
    {
        auto it = std::find(columns.begin(), columns.end(), col);
        if (r >= rows.size() || it == columns.end())
            return "";
        return rows[r][static_cast<std::size_t>(it - columns.begin())];
    }
};

enum class io_wait
{
    ready,
    failed,
};

asio::awaitable<io_wait> wait_socket(asio::posix::stream_descriptor& sd, bool also_write,
                                     asio::steady_timer::time_point deadline)
{
    using sd_t = asio::posix::stream_descriptor;
    asio::steady_timer t(co_await asio::this_coro::executor, deadline);
    auto tok = asio::as_tuple(asio::use_awaitable);
    if (also_write)
    {
        auto r = co_await (sd.async_wait(sd_t::wait_read, tok) ||
                           sd.async_wait(sd_t::wait_write, tok) || t.async_wait(tok));
        co_return r.index() == 2 ? io_wait::failed : io_wait::ready;
    }
    auto r = co_await (sd.async_wait(sd_t::wait_read, tok) || t.async_wait(tok));
    co_return r.index() == 1 ? io_wait::failed : io_wait::ready;
}

// Sends with `send` (a PQsend* call) and collects every result up to libpq's NULL.
asio::awaitable<std::vector<raw_result>> raw(pgcoro::connection& c,
                                             const std::function<int(PGconn*)>& send,
                                             std::chrono::milliseconds limit = 10s)
{
    std::vector<raw_result> out;
    PGconn* pg = c.native_handle();
    auto failure = [&](const std::string& what)
    {
        raw_result r;
        r.message = what + ": " + (pg ? PQerrorMessage(pg) : "no connection");
        out.push_back(std::move(r));
    };
    if (!pg || !c.is_open() || !send(pg))
    {
        failure("send failed");
        co_return out;
    }
    // Watch a dup of libpq's socket, as pgcoro does, so closing ours never touches libpq's.
    int fd = ::fcntl(PQsocket(pg), F_DUPFD_CLOEXEC, 0);
    if (fd < 0)
    {
        failure("dup failed");
        co_return out;
    }
    asio::posix::stream_descriptor sd(co_await asio::this_coro::executor, fd);
    const auto deadline = asio::steady_timer::clock_type::now() + limit;
    for (;;)
    {
        int f = PQflush(pg);
        if (f == 0)
            break;
        if (f < 0 || co_await wait_socket(sd, true, deadline) != io_wait::ready ||
            !PQconsumeInput(pg))
        {
            failure("flush failed or timed out");
            co_return out;
        }
    }
    for (;;)
    {
        if (PQisBusy(pg))
        {
            if (co_await wait_socket(sd, false, deadline) != io_wait::ready || !PQconsumeInput(pg))
            {
                failure("no result in time");
                co_return out;
            }
            continue;
        }
        PGresult* res = PQgetResult(pg);
        if (!res)
            break;
        raw_result r;
        r.status = PQresultStatus(res);
        if (const char* s = PQresultErrorField(res, PG_DIAG_SQLSTATE))
            r.state = s;
        r.message = PQresultErrorMessage(res);
        for (int col = 0; col < PQnfields(res); ++col)
            r.columns.emplace_back(PQfname(res, col));
        for (int row = 0; row < PQntuples(res); ++row)
        {
            std::vector<std::string> vals;
            for (int col = 0; col < PQnfields(res); ++col)
                vals.emplace_back(PQgetvalue(res, row, col));
            r.rows.push_back(std::move(vals));
        }
        PQclear(res);
        out.push_back(std::move(r));
    }
    co_return out;
}

// A simple-protocol statement (the admin console accepts nothing else); its last result.
asio::awaitable<raw_result> simple(pgcoro::connection& c, const std::string& sql)
{
    auto rs = co_await raw(c, [&](PGconn* pg) { return PQsendQuery(pg, sql.c_str()); });
    if (rs.empty())
        co_return raw_result{};
    co_return rs.back();
}

// PQsendPrepare of a named statement: what a driver with a statement cache does.
asio::awaitable<raw_result> prepare_named(pgcoro::connection& c, const std::string& name,
                                          const std::string& sql)
{
    auto rs = co_await raw(c, [&](PGconn* pg)
                           { return PQsendPrepare(pg, name.c_str(), sql.c_str(), 0, nullptr); });
    co_return rs.empty() ? raw_result{} : rs.back();
}

// Server connections pgbouncer holds for the test database (SHOW POOLS), or -1.
asio::awaitable<int> bouncer_servers(pgcoro::connection& admin, const std::string& db,
                                     int* clients = nullptr)
{
    auto r = co_await simple(admin, "SHOW POOLS");
    if (!r.ok())
        co_return -1;
    for (std::size_t i = 0; i < r.rows.size(); ++i)
        if (r.at(i, "database") == db)
        {
            int n = 0;
            for (const char* col : {"sv_active", "sv_idle", "sv_used", "sv_tested", "sv_login"})
                n += std::atoi(r.at(i, col).c_str());
            if (clients)
                *clients = std::atoi(r.at(i, "cl_active").c_str()) +
                           std::atoi(r.at(i, "cl_waiting").c_str());
            co_return n;
        }
    co_return 0;
}

// Backends of the test database other than `except_pid`, as PostgreSQL sees them, or -1.
asio::awaitable<std::int64_t> server_backends(pgcoro::connection& observer, const std::string& db,
                                              int except_pid)
{
    auto r = co_await observer.query("SELECT count(*) FROM pg_stat_activity WHERE datname = $1 "
                                     "AND backend_type = 'client backend' AND pid <> $2",
                                     db, except_pid);
    co_return r ? r->get<std::int64_t>(0, 0).value_or(-1) : -1;
}

// Makes pgbouncer drop its server connections once they are released (RECONNECT), so state a
// test left on them (named statements) cannot reach the next test.
asio::awaitable<void> reconnect_servers(const bouncer_info& b)
{
    auto admin =
        co_await pgcoro::open_connection(co_await asio::this_coro::executor, admin_console(b));
    if (!admin)
    {
        ADD_FAILURE() << "admin console: " << admin.error();
        co_return;
    }
    auto r = co_await simple(*admin, "RECONNECT " + b.dbname);
    EXPECT_TRUE(r.ok()) << r.message;
}

} // namespace

// 64 coroutines share a pgcoro pool of 20 client connections in pgbouncer mode, and pgbouncer
// multiplexes them onto at most 5 server connections. Every statement is unnamed, so whichever
// server connection a transaction lands on, nothing collides.
TEST(PgbouncerTx, SixtyFourCoroutinesMixedWorkloadOnFiveServers)
{
    PGCORO_REQUIRE_BOUNCER(b);
    const std::string name = "pgcoro-pgbouncer-mixed";
    constexpr int workers = 64;
    constexpr int rounds = 25;
    asio::io_context io;
    run(
        io,
        [&]() -> asio::awaitable<void>
        {
            auto ex = co_await asio::this_coro::executor;
            auto setup = co_await pgcoro::open_connection(ex, test_server::get().tcp());
            PGCORO_CO_ASSERT(setup.has_value());
            PGCORO_CO_ASSERT(co_await setup->query("DROP TABLE IF EXISTS pgbouncer_ledger"));
            PGCORO_CO_ASSERT(co_await setup->query(
                "CREATE TABLE pgbouncer_ledger (id bigint PRIMARY KEY, worker int NOT NULL)"));

            auto admin = co_await pgcoro::open_connection(ex, admin_console(*b));
            PGCORO_CO_ASSERT(admin.has_value());
            auto observer = co_await pgcoro::open_connection(ex, direct_observer());
            PGCORO_CO_ASSERT(observer.has_value());

            pgcoro::pool_config pc;
            pc.min_size = 0;
            pc.max_size = 20;
            pc.acquire_timeout = 30s;
            pc.validate_after_idle = 0ms;
            pc.max_concurrent_connects = 4;
            pc.refill_backoff_initial = 50ms;
            pc.refill_backoff_max = 400ms;
            pgcoro::pool pool(ex, via_bouncer(*b, name), pc);

            int done = 0, ok = 0, committed = 0, expected_errors = 0;
            std::map<std::string, int> unexpected; // "sqlstate: message" -> count
            std::map<std::string, int> by_state;   // every error's SQLSTATE -> count
            auto record = [&](const pgcoro::error& e, std::string_view expected_state)
            {
                by_state[std::string(e.state.view())]++;
                if (e.state == expected_state)
                    ++expected_errors;
                else
                    unexpected[e.to_string()]++;
            };

            for (int w = 0; w < workers; ++w)
                asio::co_spawn(
                    ex,
                    [&, w]() -> asio::awaitable<void>
                    {
                        for (int i = 0; i < rounds; ++i)
                        {
                            const int id = w * 1000 + i;
                            switch ((w + i) % 5)
                            {
                            case 0: // parameterised select, two parameter types
                            {
                                auto r = co_await pool.run(
                                    [&](pgcoro::connection& c)
                                    { return c.query("SELECT $1::int * 2, $2::text", id, "w"); });
                                if (!r)
                                    record(r.error(), "");
                                else if (r->get<int>(0, 0).value_or(-1) == id * 2)
                                    ++ok;
                                else
                                    unexpected["wrong value"]++;
                                break;
                            }
                            case 1: // an insert and a read inside transact()
                            {
                                auto r = co_await pgcoro::transact(
                                    pool,
                                    [&](pgcoro::connection& c)
                                        -> asio::awaitable<pgcoro::expected<std::int64_t>>
                                    {
                                        auto ins = co_await c.query(
                                            "INSERT INTO pgbouncer_ledger VALUES ($1, $2)", id, w);
                                        if (!ins)
                                            co_return tl::unexpected(ins.error());
                                        auto n = co_await c.query("SELECT count(*) FROM "
                                                                  "pgbouncer_ledger WHERE id = $1",
                                                                  id);
                                        if (!n)
                                            co_return tl::unexpected(n.error());
                                        co_return n->get<std::int64_t>(0, 0).value_or(-1);
                                    });
                                if (!r)
                                    record(r.error(), "");
                                else if (*r == 1)
                                    ++committed;
                                else
                                    unexpected["insert not visible in its transaction"]++;
                                break;
                            }
                            case 2: // a failing statement outside a transaction
                            {
                                auto r =
                                    co_await pool.run([&](pgcoro::connection& c)
                                                      { return c.query("SELECT 1 / $1::int", 0); });
                                if (r)
                                    unexpected["division by zero succeeded"]++;
                                else
                                    record(r.error(), "22012");
                                break;
                            }
                            case 3: // a transaction whose second statement fails: rolled back
                            {
                                auto r = co_await pgcoro::transact(
                                    pool,
                                    [&](pgcoro::connection& c)
                                        -> asio::awaitable<pgcoro::expected<int>>
                                    {
                                        auto ins = co_await c.query(
                                            "INSERT INTO pgbouncer_ledger VALUES ($1, $2)", -id - 1,
                                            w);
                                        if (!ins)
                                            co_return tl::unexpected(ins.error());
                                        auto dup = co_await c.query(
                                            "INSERT INTO pgbouncer_ledger VALUES ($1, $2)", -id - 1,
                                            w);
                                        if (!dup)
                                            co_return tl::unexpected(dup.error());
                                        co_return 0;
                                    });
                                if (r)
                                    unexpected["duplicate insert committed"]++;
                                else
                                    record(r.error(), "23505");
                                break;
                            }
                            default: // the same text with other parameter types than before
                            {
                                auto r = co_await pool.run(
                                    [&](pgcoro::connection& c) {
                                        return c.query("SELECT $1::bigint + 1",
                                                       static_cast<std::int64_t>(id));
                                    });
                                if (!r)
                                    record(r.error(), "");
                                else if (r->get<std::int64_t>(0, 0).value_or(-1) == id + 1)
                                    ++ok;
                                else
                                    unexpected["wrong value"]++;
                                break;
                            }
                            }
                        }
                        ++done;
                    },
                    asio::detached);

            // Sample both views of the server connections while the load runs.
            int max_bouncer = 0, max_clients = 0;
            std::int64_t max_backends = 0;
            const auto until = std::chrono::steady_clock::now() + 60s;
            while (done < workers && std::chrono::steady_clock::now() < until)
            {
                int clients = 0;
                max_bouncer =
                    std::max(max_bouncer, co_await bouncer_servers(*admin, b->dbname, &clients));
                max_clients = std::max(max_clients, clients);
                max_backends =
                    std::max(max_backends,
                             co_await server_backends(*observer, b->dbname, setup->backend_pid()));
                co_await sleep_for(2ms);
            }
            EXPECT_EQ(done, workers);
            auto stats = pool.stats();
            co_await pool.close(2s);

            const int total = workers * rounds;
            EXPECT_TRUE(unexpected.empty()) << ::testing::PrintToString(unexpected);
            EXPECT_EQ(by_state["42P05"], 0);
            EXPECT_EQ(by_state["26000"], 0);
            EXPECT_EQ(ok + committed + expected_errors, total)
                << "ok=" << ok << " committed=" << committed << " errors=" << expected_errors;
            EXPECT_GT(committed, 0);
            EXPECT_GT(by_state["22012"], 0);
            EXPECT_GT(by_state["23505"], 0);

            // The ledger holds exactly the committed rows: no rolled-back insert survived.
            auto rows = co_await setup->query("SELECT count(*), count(*) FILTER (WHERE id < 0) "
                                              "FROM pgbouncer_ledger");
            PGCORO_CO_ASSERT(rows.has_value());
            EXPECT_EQ(rows->get<std::int64_t>(0, 0).value_or(-1), committed);
            EXPECT_EQ(rows->get<std::int64_t>(0, 1).value_or(-1), 0);

            // At most pool_size server connections, seen from both sides, while the pool had
            // more client connections than that.
            EXPECT_GE(max_bouncer, 1);
            EXPECT_LE(max_bouncer, b->pool_size);
            EXPECT_GE(max_backends, 1);
            EXPECT_LE(max_backends, b->pool_size);
            EXPECT_GT(stats.opened, static_cast<std::uint64_t>(b->pool_size)) << stats;
            EXPECT_GT(max_clients, b->pool_size);
            std::printf("server connections: max %d (pgbouncer SHOW POOLS), max %lld "
                        "(pg_stat_activity); client connections: max %d active/waiting, %llu "
                        "opened by the pool\n",
                        max_bouncer, static_cast<long long>(max_backends), max_clients,
                        static_cast<unsigned long long>(stats.opened));

            co_await setup->query("DROP TABLE pgbouncer_ledger");
        }(),
        90s);
}

// What pgcoro's unnamed statements avoid: a named prepared statement is session state of one
// *server* connection, and in transaction mode the next transaction of the same client may run
// on another one. Preparing the same name from more clients than there are server connections
// must hit a server that has it already (42P05); executing it from a server that never saw it
// fails with 26000.
TEST(PgbouncerTx, NamedPreparedStatementsCollideWithoutPgcoroRules)
{
    PGCORO_REQUIRE_BOUNCER(b);
    asio::io_context io;
    run(
        io,
        [&]() -> asio::awaitable<void>
        {
            auto ex = co_await asio::this_coro::executor;
            const int n = b->pool_size + 1;
            std::vector<pgcoro::connection> clients;
            for (int i = 0; i < n; ++i)
            {
                auto c = co_await pgcoro::open_connection(
                    ex, via_bouncer(*b, "pgcoro-pgbouncer-named-" + std::to_string(i)));
                PGCORO_CO_ASSERT(c.has_value());
                clients.push_back(std::move(*c));
            }

            // 1. n clients, one after the other, each prepare "pgcoro_s1" (as each would with
            //    its own statement cache). n > pool_size, so at least one lands on a server
            //    connection that already has it.
            int ok = 0, exists = 0;
            std::vector<std::string> other;
            for (int i = 0; i < n; ++i)
            {
                auto r = co_await prepare_named(clients[static_cast<std::size_t>(i)], "pgcoro_s1",
                                                "SELECT " + std::to_string(100 + i));
                if (r.ok())
                    ++ok;
                else if (r.state == "42P05")
                    ++exists;
                else
                    other.push_back(r.state + " " + r.message);
            }
            EXPECT_GE(ok, 1);
            EXPECT_GE(exists, 1) << "no 42P05 although " << n << " clients prepared the same "
                                 << "name over " << b->pool_size << " server connections";
            EXPECT_TRUE(other.empty()) << ::testing::PrintToString(other);

            // 2. 26000: client A pins server X with an open transaction; client B prepares
            //    "pgcoro_s2", necessarily on another server Y. Then pool_size - 1 clients open
            //    transactions, which takes every server but X (Y included). B's execute must
            //    wait for a free server; A commits, so it runs on X, which never saw the name.
            auto& a = clients[0];
            auto& bee = clients[1];
            PGCORO_CO_ASSERT(co_await a.query("BEGIN"));
            PGCORO_CO_ASSERT(co_await a.query("SELECT 1")); // the server is pinned from here
            auto prep = co_await prepare_named(bee, "pgcoro_s2", "SELECT 222");
            EXPECT_TRUE(prep.ok()) << prep.state << " " << prep.message;
            for (int i = 2; i < n; ++i)
            {
                auto& c = clients[static_cast<std::size_t>(i)];
                PGCORO_CO_ASSERT(co_await c.query("BEGIN"));
                PGCORO_CO_ASSERT(co_await c.query("SELECT 1"));
            }
            // B's execute runs beside this coroutine; from here on nothing leaves before it
            // has finished (it uses B's connection), and it gives up by itself after 5 s.
            std::optional<raw_result> executed;
            asio::co_spawn(
                ex,
                [&]() -> asio::awaitable<void>
                {
                    auto rs = co_await raw(
                        bee,
                        [](PGconn* pg) {
                            return PQsendQueryPrepared(pg, "pgcoro_s2", 0, nullptr, nullptr,
                                                       nullptr, 0);
                        },
                        5s);
                    executed = rs.empty() ? raw_result{} : rs.back();
                },
                asio::detached);
            co_await sleep_for(100ms); // B's execute is queued in pgbouncer (no free server)
            EXPECT_FALSE(executed.has_value()) << "B ran although every server was pinned";
            auto commit = co_await a.query("COMMIT");
            EXPECT_TRUE(commit.has_value()) << commit.error();
            for (int i = 0; i < 600 && !executed; ++i)
                co_await sleep_for(10ms);
            PGCORO_CO_ASSERT(executed.has_value());
            EXPECT_EQ(executed->state, "26000") << executed->message;
            for (int i = 2; i < n; ++i)
            {
                auto rb = co_await clients[static_cast<std::size_t>(i)].query("ROLLBACK");
                EXPECT_TRUE(rb.has_value()) << rb.error();
            }

            // pgcoro's own (unnamed) statements work on the same clients regardless.
            for (auto& c : clients)
            {
                auto r = co_await c.query("SELECT $1::int + 1", 41);
                EXPECT_TRUE(r && r->get<int>(0, 0).value_or(0) == 42)
                    << (r ? "" : r.error().to_string());
            }
            for (auto& c : clients)
                c.close();
            co_await reconnect_servers(*b); // drop the servers holding the named statements
        }(),
        60s);
}

// Startup `options` (which carry statement_timeout) are rejected by pgbouncer with 08P01: a
// configuration error, so retry() must not retry it. pgbouncer mode leaves them out; timeouts
// then come from SET LOCAL inside a transaction or from the client-side query timeout.
TEST(PgbouncerTx, StartupOptionsRejectedAndTimeoutsWithoutThem)
{
    PGCORO_REQUIRE_BOUNCER(b);
    asio::io_context io;
    run(
        io,
        [&]() -> asio::awaitable<void>
        {
            auto ex = co_await asio::this_coro::executor;
            auto plain = via_bouncer(*b, "pgcoro-pgbouncer-options", false);
            plain.statement_timeout = 250ms;

            // Without pgbouncer mode: 08P01 "unsupported startup parameter: options", once.
            int attempts = 0;
            pgcoro::retry_policy policy;
            policy.max_attempts = 3;
            policy.backoff.initial = 10ms;
            policy.backoff.cap = 20ms;
            auto r = co_await pgcoro::retry(policy,
                                            [&]() -> asio::awaitable<pgcoro::expected<void>>
                                            {
                                                ++attempts;
                                                pgcoro::connection c(ex);
                                                co_return co_await c.connect(plain);
                                            });
            PGCORO_CO_ASSERT(!r.has_value());
            EXPECT_TRUE(r.error().is(errc::connect_failed)) << r.error();
            EXPECT_EQ(r.error().state, "08P01") << r.error();
            EXPECT_NE(r.error().message.find("unsupported startup parameter: options"),
                      std::string::npos)
                << r.error();
            EXPECT_FALSE(r.error().transient());
            EXPECT_EQ(attempts, 1);

            // pgbouncer mode: no startup options, so the connect succeeds and the server
            // connection keeps its default statement_timeout. (A long statement_timeout here:
            // pgbouncer mode enforces it on the client, see StatementTimeoutIsEnforced...,
            // and it must not race the server-side cancels below.)
            auto mode = plain;
            mode.pgbouncer = true;
            mode.statement_timeout = 20s;
            auto c = co_await pgcoro::open_connection(ex, mode);
            PGCORO_CO_ASSERT(c.has_value());
            auto show = co_await c->query("SELECT current_setting('statement_timeout')");
            PGCORO_CO_ASSERT(show.has_value());
            EXPECT_EQ(show->get<std::string>(0, 0).value_or("?"), "0");

            // SET LOCAL inside a transaction: the server cancels (57014) ...
            auto t0 = std::chrono::steady_clock::now();
            auto tx = co_await pgcoro::transact(
                *c,
                [](pgcoro::connection& conn) -> asio::awaitable<pgcoro::expected<int>>
                {
                    auto set = co_await conn.query("SET LOCAL statement_timeout = '150ms'");
                    if (!set)
                        co_return tl::unexpected(set.error());
                    auto s = co_await conn.query("SELECT pg_sleep(5)");
                    if (!s)
                        co_return tl::unexpected(s.error());
                    co_return 1;
                });
            auto took = std::chrono::steady_clock::now() - t0;
            PGCORO_CO_ASSERT(!tx.has_value());
            EXPECT_TRUE(tx.error().is(errc::query_failed)) << tx.error();
            EXPECT_EQ(tx.error().state, "57014") << tx.error();
            EXPECT_LT(took, 4s);
            // ... and nothing of it is left on the server connection afterwards.
            show = co_await c->query("SELECT current_setting('statement_timeout')");
            PGCORO_CO_ASSERT(show.has_value());
            EXPECT_EQ(show->get<std::string>(0, 0).value_or("?"), "0");

            // The client-side per-query timeout cancels through pgbouncer; the connection
            // stays usable.
            t0 = std::chrono::steady_clock::now();
            auto slow = co_await c->query(pgcoro::query_options{200ms}, "SELECT pg_sleep(5)");
            took = std::chrono::steady_clock::now() - t0;
            PGCORO_CO_ASSERT(!slow.has_value());
            EXPECT_TRUE(slow.error().is(errc::timeout)) << slow.error();
            EXPECT_LT(took, 4s);
            auto after = co_await c->query("SELECT $1::int", 7);
            EXPECT_TRUE(after && after->get<int>(0, 0).value_or(0) == 7)
                << (after ? "" : after.error().to_string());
        }(),
        60s);
}

// In pgbouncer mode connect_config::statement_timeout cannot be sent to the server, so pgcoro
// enforces it as the client-side statement deadline (when no shorter query_timeout is set),
// for single connections and for pools (whose query_timeout is longer here).
TEST(PgbouncerTx, StatementTimeoutIsEnforcedOnTheClient)
{
    PGCORO_REQUIRE_BOUNCER(b);
    asio::io_context io;
    run(
        io,
        [&]() -> asio::awaitable<void>
        {
            auto ex = co_await asio::this_coro::executor;
            auto cfg = via_bouncer(*b, "pgcoro-pgbouncer-statement-timeout");
            cfg.statement_timeout = 200ms;
            auto c = co_await pgcoro::open_connection(ex, cfg);
            PGCORO_CO_ASSERT(c.has_value());
            auto t0 = std::chrono::steady_clock::now();
            auto slow = co_await c->query("SELECT pg_sleep(5)");
            auto took = std::chrono::steady_clock::now() - t0;
            PGCORO_CO_ASSERT(!slow.has_value());
            EXPECT_TRUE(slow.error().is(errc::timeout)) << slow.error();
            EXPECT_LT(took, 4s);
            // Nothing was set on the server connection, and the connection is still usable.
            auto show = co_await c->query("SELECT current_setting('statement_timeout')");
            PGCORO_CO_ASSERT(show.has_value());
            EXPECT_EQ(show->get<std::string>(0, 0).value_or("?"), "0");
            // A per-call timeout still overrides it.
            auto longer = co_await c->query(pgcoro::query_options{3s}, "SELECT pg_sleep(0.4)");
            EXPECT_TRUE(longer.has_value()) << longer.error();

            // Through a pool whose query_timeout (60 s) is longer: statement_timeout wins.
            pgcoro::pool_config pc;
            pc.min_size = 0;
            pc.max_size = 2;
            pc.query_timeout = 60s;
            pgcoro::pool pool(ex, cfg, pc);
            t0 = std::chrono::steady_clock::now();
            auto pooled = co_await pool.run([](pgcoro::connection& conn)
                                            { return conn.query("SELECT pg_sleep(5)"); });
            took = std::chrono::steady_clock::now() - t0;
            PGCORO_CO_ASSERT(!pooled.has_value());
            EXPECT_TRUE(pooled.error().is(errc::timeout)) << pooled.error();
            EXPECT_LT(took, 4s);
            co_await pool.close(1s);
        }(),
        60s);
}
