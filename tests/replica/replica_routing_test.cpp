// Replica tests against a real primary with two streaming replicas (the replica_cluster
// fixture): target_session_attrs over a host list, the read-only-server discard, read routing
// with a replica stopped, a lagging replica leaving rotation, read-your-writes.
#include <pgcoro/pool.hpp>
#include <pgcoro/replica_set.hpp>

#include "replica/replica_env.hpp"
#include "support/oracles.hpp"
#include "support/test_server.hpp"

#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <functional>
#include <iostream>
#include <map>
#include <set>
#include <thread>

// GCC 12 at -O2 reports -Wmismatched-new-delete on Asio's coroutine frames (a false positive,
// as in tests/integration/*.cpp).
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

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

replica_topology& topo()
{
    return replica_topology::fixture();
}

// Non-coroutine helpers: GCC 12 mis-handles initializer lists inside coroutines.
template <class... Ports>
pgcoro::connect_config at(Ports... ports)
{
    std::vector<std::uint16_t> v;
    (v.push_back(static_cast<std::uint16_t>(ports)), ...);
    return topo().config(v);
}
std::vector<pgcoro::connect_config> both_replicas()
{
    std::vector<pgcoro::connect_config> v;
    v.push_back(at(topo().replica_port(1)));
    v.push_back(at(topo().replica_port(2)));
    return v;
}
pgcoro::connect_config primary_list()
{
    return at(topo().primary_port(), topo().replica_port(1), topo().replica_port(2));
}
std::set<int> port_set(int a, int b)
{
    return std::set<int>{a, b};
}

#define REQUIRE_TOPOLOGY()                                                                         \
    do                                                                                             \
    {                                                                                              \
        if (!topo().ok())                                                                          \
            GTEST_FAIL() << "no replica topology in " PGCORO_REPLICA_STATE_DIR                     \
                            " (run through ctest: fixture replica_cluster)";                       \
    } while (0)

// Runs `sql` on a member over a connection of its own.
asio::awaitable<pgcoro::expected<pgcoro::result>> sql_on(std::uint16_t port, std::string sql)
{
    auto ex = co_await asio::this_coro::executor;
    auto cfg = at(port);
    cfg.application_name = "pgcoro-replica-side";
    auto c = co_await pgcoro::open_connection(ex, cfg);
    if (!c)
        co_return tl::unexpected(c.error());
    co_return co_await c->query(sql);
}

// Pauses replay on a replica and waits until it is paused.
asio::awaitable<bool> pause_replay(std::uint16_t port)
{
    if (!co_await sql_on(port, "SELECT pg_wal_replay_pause()"))
        co_return false;
    for (int i = 0; i < 200; ++i)
    {
        auto r = co_await sql_on(port, "SELECT pg_get_wal_replay_pause_state()");
        if (r && r->get<std::string>(0, 0).value_or("") == "paused")
            co_return true;
        co_await sleep_for(10ms);
    }
    co_return false;
}

pgcoro::replica_set_config quick_set()
{
    pgcoro::replica_set_config c;
    c.sample_interval = 100ms;
    c.check_timeout = 1s;
    c.max_replica_lag = 400ms;
    c.primary_pool = fault_pool(4);
    c.replica_pool = fault_pool(4);
    return c;
}

const pgcoro::member_status* member(const std::vector<pgcoro::member_status>& ms,
                                    const std::string& name)
{
    for (const auto& m : ms)
        if (m.name == name)
            return &m;
    return nullptr;
}

// Samples until `pred(members)` holds or `limit` passes; returns the time it took, or -1.
template <class Pred>
asio::awaitable<long long> until(pgcoro::replica_set& set, Pred pred, clk::duration limit)
{
    const auto start = clk::now();
    while (clk::now() - start < limit)
    {
        if (pred(set.members()))
            co_return ms(clk::now() - start);
        co_await sleep_for(10ms);
    }
    co_return -1;
}

} // namespace

// A read-write pool over a host list whose first hosts are replicas connects to the primary;
// prefer-standby and standby find a replica; standby over the primary alone fails.
TEST(ReplicaConnect, TargetSessionAttrsChoosesByRole)
{
    REQUIRE_TOPOLOGY();
    asio::io_context io;
    const auto p = topo().primary_port(), r1 = topo().replica_port(1), r2 = topo().replica_port(2);
    run(
        io,
        [&]() -> asio::awaitable<void>
        {
            auto cfg = at(r1, r2, p);
            cfg.extra.emplace_back("target_session_attrs", "read-write");
            {
                pgcoro::pool pool(io.get_executor(), cfg, fault_pool(2));
                auto l = co_await pool.acquire();
                PGCORO_CO_ASSERT(l.has_value());
                {
                    const int port_now = co_await server_port(**l);
                    EXPECT_EQ(port_now, p);
                }
                auto w = co_await (*l)->query("SELECT txid_current()");
                EXPECT_TRUE(w.has_value()) << (w ? "" : w.error().to_string());
                co_await pool.close(1s);
            }
            const std::array<const char*, 3> standby_attrs{"prefer-standby", "standby",
                                                           "read-only"};
            for (const char* attrs : standby_attrs)
            {
                auto c = at(p, r1);
                c.extra.emplace_back("target_session_attrs", attrs);
                auto conn = co_await pgcoro::open_connection(io.get_executor(), c);
                PGCORO_CO_ASSERT(conn.has_value());
                {
                    const int port_now = co_await server_port(*conn);
                    EXPECT_EQ(port_now, r1) << attrs;
                }
            }
            // prefer-standby's second pass: no standby in the list, so the primary.
            auto only_primary = at(p);
            only_primary.extra.emplace_back("target_session_attrs", "prefer-standby");
            auto c1 = co_await pgcoro::open_connection(io.get_executor(), only_primary);
            PGCORO_CO_ASSERT(c1.has_value());
            {
                const int port_now = co_await server_port(*c1);
                EXPECT_EQ(port_now, p);
            }
            only_primary.extra.back().second = "standby";
            auto c2 = co_await pgcoro::open_connection(io.get_executor(), only_primary);
            PGCORO_CO_ASSERT(!c2.has_value());
            EXPECT_TRUE(c2.error().is(errc::connect_failed)) << c2.error();
        }(),
        30s);
}

// load_balance_hosts=random spreads new connections over the hosts of the list.
TEST(ReplicaConnect, LoadBalanceHostsSpreadsConnects)
{
    REQUIRE_TOPOLOGY();
    asio::io_context io;
    const auto r1 = topo().replica_port(1), r2 = topo().replica_port(2);
    run(
        io,
        [&]() -> asio::awaitable<void>
        {
            auto u =
                pgcoro::parse_database_url("postgres://pgcoro@127.0.0.1:" + std::to_string(r1) +
                                           ",127.0.0.1:" + std::to_string(r2) +
                                           "/pgcoro_test?sslmode=disable&target_session_attrs="
                                           "standby&load_balance_hosts=random");
            PGCORO_CO_ASSERT(u.has_value());
            const auto cfg = u->connect_config_with_settings();
            std::map<int, int> hits;
            for (int i = 0; i < 16; ++i)
            {
                auto c = co_await pgcoro::open_connection(io.get_executor(), cfg);
                PGCORO_CO_ASSERT(c.has_value());
                const int port_now = co_await server_port(*c);
                ++hits[port_now];
            }
            EXPECT_EQ(hits.size(), 2u); // P(all 16 on one host) = 2^-15
            EXPECT_GT(hits[r1], 0);
            EXPECT_GT(hits[r2], 0);
        }(),
        30s);
}

// A read-write pool whose server turns read-only (default_transaction_read_only on, as after
// a failover behind a proxy): the write fails with 25006, and the connection is closed when
// returned and counted in closed_read_only, not handed out again.
TEST(ReplicaConnect, ReadOnlyServerConnectionIsDiscarded)
{
    REQUIRE_TOPOLOGY();
    asio::io_context io;
    const auto p = topo().primary_port();
    run(
        io,
        [&]() -> asio::awaitable<void>
        {
            auto cfg = at(p);
            cfg.application_name = "pgcoro-replica-readonly";
            cfg.extra.emplace_back("target_session_attrs", "read-write");
            pgcoro::pool pool(io.get_executor(), cfg, fault_pool(2));
            int first_pid = 0;
            {
                auto l = co_await pool.acquire();
                PGCORO_CO_ASSERT(l.has_value());
                first_pid = (*l)->backend_pid();
                PGCORO_CO_ASSERT(
                    (co_await (*l)->query("CREATE TABLE IF NOT EXISTS ro_probe (x int)"))
                        .has_value());
                PGCORO_CO_ASSERT((co_await sql_on(p, "ALTER SYSTEM SET "
                                                     "default_transaction_read_only = on"))
                                     .has_value());
                PGCORO_CO_ASSERT((co_await sql_on(p, "SELECT pg_reload_conf()")).has_value());
                co_await sleep_for(200ms);
                auto w = co_await (*l)->query("INSERT INTO ro_probe VALUES (1)");
                PGCORO_CO_ASSERT(!w.has_value());
                EXPECT_EQ(w.error().state.view(), "25006") << w.error();
            } // returned: closed, counted
            EXPECT_EQ(pool.stats().closed_read_only, 1u) << pool.stats();
            EXPECT_EQ(pool.stats().closed_broken, 1u) << pool.stats();
            // The server stays read-only: no new connection is accepted for read-write.
            pool.set_acquire_timeout(500ms);
            auto again = co_await pool.acquire();
            EXPECT_FALSE(again.has_value());
            PGCORO_CO_ASSERT(
                (co_await sql_on(p, "ALTER SYSTEM RESET default_transaction_read_only"))
                    .has_value());
            PGCORO_CO_ASSERT((co_await sql_on(p, "SELECT pg_reload_conf()")).has_value());
            co_await sleep_for(200ms);
            pool.set_acquire_timeout(3s);
            auto back = co_await pool.acquire();
            PGCORO_CO_ASSERT(back.has_value());
            EXPECT_NE((*back)->backend_pid(), first_pid);
            EXPECT_TRUE((co_await (*back)->query("INSERT INTO ro_probe VALUES (2)")).has_value());
        }(),
        30s);
    // Whatever happened above, the primary must be writable for the next tests.
    run(io,
        []() -> asio::awaitable<void>
        {
            co_await sql_on(topo().primary_port(),
                            "ALTER SYSTEM RESET default_transaction_read_only");
            co_await sql_on(topo().primary_port(), "SELECT pg_reload_conf()");
        }());
}

// A 25006 error alone (no parameter change reported, as behind a pooler that does not pass
// ParameterStatus on) also makes a read-write pool drop the connection; a plain pool keeps it.
TEST(ReplicaConnect, ReadOnlyErrorDropsConnectionOfReadWritePool)
{
    REQUIRE_TOPOLOGY();
    asio::io_context io;
    const auto p = topo().primary_port();
    run(
        io,
        [&]() -> asio::awaitable<void>
        {
            auto rw_cfg = at(p);
            rw_cfg.extra.emplace_back("target_session_attrs", "read-write");
            pgcoro::pool rw(io.get_executor(), rw_cfg, fault_pool(1));
            pgcoro::pool plain(io.get_executor(), at(p), fault_pool(1));
            int rw_pid = 0, plain_pid = 0;
            for (int round = 0; round < 2; ++round)
            {
                auto a = co_await rw.acquire();
                auto b = co_await plain.acquire();
                PGCORO_CO_ASSERT(a.has_value() && b.has_value());
                if (round == 1)
                {
                    EXPECT_NE((*a)->backend_pid(), rw_pid);    // a new connection
                    EXPECT_EQ((*b)->backend_pid(), plain_pid); // the same one
                    break;
                }
                rw_pid = (*a)->backend_pid();
                plain_pid = (*b)->backend_pid();
                co_await (*a)->query("CREATE TABLE IF NOT EXISTS ro_probe (x int)");
                const std::array<pgcoro::lease*, 2> both{&*a, &*b};
                for (auto* l : both)
                {
                    PGCORO_CO_ASSERT((co_await (**l).query("BEGIN READ ONLY")).has_value());
                    auto w = co_await (**l).query("INSERT INTO ro_probe VALUES (3)");
                    PGCORO_CO_ASSERT(!w.has_value());
                    EXPECT_EQ(w.error().state.view(), "25006") << w.error();
                }
            }
            EXPECT_EQ(rw.stats().closed_read_only, 1u) << rw.stats();
            EXPECT_EQ(plain.stats().closed_read_only, 0u) << plain.stats();
        }(),
        30s);
}

// Reads spread over both replicas; with one stopped, it leaves rotation within the sampling
// interval and reads keep working on the other; with both stopped, reads fall back to the
// primary (or fail, per policy); restarted, they return to rotation.
TEST(ReplicaRouting, ReadsSurviveAStoppedReplica)
{
    REQUIRE_TOPOLOGY();
    asio::io_context io;
    const auto p = topo().primary_port(), r1 = topo().replica_port(1), r2 = topo().replica_port(2);
    std::atomic<int> ctl_rc{-1};
    std::thread control;
    auto in_background = [&](std::function<int()> f)
    {
        if (control.joinable())
            control.join();
        ctl_rc = -1;
        control = std::thread([&ctl_rc, f] { ctl_rc = f(); });
    };
    auto wait_control = [&]() -> asio::awaitable<int>
    {
        while (ctl_rc.load() == -1)
            co_await sleep_for(10ms);
        co_return ctl_rc.load();
    };
    run(
        io,
        [&]() -> asio::awaitable<void>
        {
            auto cfg = quick_set();
            pgcoro::replica_set set(io.get_executor(), primary_list(), both_replicas(), cfg);
            auto fail_cfg = cfg;
            fail_cfg.no_replica = pgcoro::no_replica_policy::fail;
            pgcoro::replica_set strict(io.get_executor(), primary_list(), both_replicas(),
                                       fail_cfg);
            PGCORO_CO_ASSERT((co_await set.warmup()).has_value());
            co_await strict.warmup();
            for (const auto& m : set.members())
                std::cout << m << "\n";
            // Concurrent leases spread over both replicas (least in use first).
            {
                std::vector<pgcoro::lease> held;
                std::set<int> ports;
                for (int i = 0; i < 4; ++i)
                {
                    auto l = co_await set.acquire(pgcoro::read_only);
                    PGCORO_CO_ASSERT(l.has_value());
                    const int port_now = co_await server_port(**l);
                    ports.insert(port_now);
                    held.push_back(std::move(*l));
                }
                EXPECT_EQ(ports, port_set(r1, r2));
                auto w = co_await set.acquire(pgcoro::read_write);
                PGCORO_CO_ASSERT(w.has_value());
                {
                    const int port_now = co_await server_port(**w);
                    EXPECT_EQ(port_now, p);
                }
            }

            in_background([&] { return topo().ctl("replica2", "stop -m immediate"); });
            EXPECT_EQ(co_await wait_control(), 0);
            const auto out = co_await until(
                set, [](const auto& ms) { return !member(ms, "replica2")->in_rotation; }, 3s);
            EXPECT_GE(out, 0) << "replica2 stayed in rotation";
            std::cout << "replica2 left rotation " << out << " ms after its stop returned\n";
            EXPECT_LE(out, 1100); // sample_interval 100 ms + one check
            int ok = 0;
            for (int i = 0; i < 40; ++i)
            {
                auto l = co_await set.acquire(pgcoro::read_only);
                if (!l)
                {
                    ADD_FAILURE() << "read failed: " << l.error();
                    continue;
                }
                auto port = co_await server_port(**l);
                EXPECT_EQ(port, r1);
                ok += port == r1;
            }
            EXPECT_EQ(ok, 40);

            in_background([&] { return topo().ctl("replica1", "stop -m immediate"); });
            EXPECT_EQ(co_await wait_control(), 0);
            co_await until(
                strict, [](const auto& ms) { return !member(ms, "replica1")->in_rotation; }, 3s);
            co_await until(
                set, [](const auto& ms) { return !member(ms, "replica1")->in_rotation; }, 3s);
            {
                auto l = co_await set.acquire(pgcoro::read_only);
                PGCORO_CO_ASSERT(l.has_value());
                {
                    const int port_now = co_await server_port(**l);
                    EXPECT_EQ(port_now, p); // fell back to the primary
                }
                auto s = co_await strict.acquire(pgcoro::read_only);
                PGCORO_CO_ASSERT(!s.has_value());
                EXPECT_TRUE(s.error().is(errc::connect_failed)) << s.error();
            }
            for (const auto& m : set.members())
                std::cout << m << "\n";

            in_background(
                [&] { return topo().ctl("replica1", "start") | topo().ctl("replica2", "start"); });
            EXPECT_EQ(co_await wait_control(), 0);
            const auto back = co_await until(
                set,
                [](const auto& ms) {
                    return member(ms, "replica1")->in_rotation &&
                           member(ms, "replica2")->in_rotation;
                },
                10s);
            EXPECT_GE(back, 0) << "replicas did not return to rotation";
            co_await set.close(1s);
            co_await strict.close(1s);
        }(),
        60s);
    if (control.joinable())
        control.join();
    // Leave both replicas running for the next tests whatever happened.
    topo().ctl("replica1", "start");
    topo().ctl("replica2", "start");
}

// Replay paused on replica1 while the primary is written to: replica1 leaves rotation within
// max_replica_lag plus a sampling interval; idle replicas that are caught up stay in; resumed,
// it returns.
TEST(ReplicaRouting, LaggingReplicaLeavesRotation)
{
    REQUIRE_TOPOLOGY();
    asio::io_context io;
    const auto r1 = topo().replica_port(1), r2 = topo().replica_port(2);
    run(
        io,
        [&]() -> asio::awaitable<void>
        {
            auto cfg = quick_set();
            pgcoro::replica_set set(io.get_executor(), primary_list(), both_replicas(), cfg);
            PGCORO_CO_ASSERT((co_await set.warmup()).has_value());
            // No writes: caught-up replicas have no lag, however long ago the last write was.
            co_await set.wait_samples(5, 3s);
            for (const auto& m : set.members())
            {
                std::cout << m << "\n";
                if (m.role == pgcoro::member_role::replica)
                {
                    EXPECT_TRUE(m.in_rotation) << m;
                    EXPECT_EQ(m.lag.count(), 0) << m;
                }
            }
            PGCORO_CO_ASSERT(co_await pause_replay(r1));
            bool stop = false;
            asio::co_spawn(
                io,
                [&]() -> asio::awaitable<void>
                {
                    auto w = co_await set.acquire(pgcoro::read_write);
                    if (!w)
                        co_return;
                    co_await (*w)->query("CREATE TABLE IF NOT EXISTS lag_probe (x int)");
                    for (int i = 0; i < 1000 && !stop; ++i)
                    {
                        co_await (*w)->query("INSERT INTO lag_probe VALUES ($1)", i);
                        co_await sleep_for(20ms);
                    }
                },
                asio::detached);
            const auto out = co_await until(
                set, [](const auto& ms) { return !member(ms, "replica1")->in_rotation; }, 5s);
            std::cout << "replica1 left rotation " << out << " ms after replay paused (max lag "
                      << cfg.max_replica_lag.count() << " ms, sampling every "
                      << cfg.sample_interval.count() << " ms)\n";
            EXPECT_GE(out, 0);
            EXPECT_LE(out, cfg.max_replica_lag.count() + 2 * cfg.sample_interval.count() + 150);
            auto ms_now = set.members();
            for (const auto& m : ms_now)
                std::cout << m << "\n";
            EXPECT_TRUE(member(ms_now, "replica1")->replay_paused);
            EXPECT_TRUE(member(ms_now, "replica2")->in_rotation) << *member(ms_now, "replica2");
            for (int i = 0; i < 10; ++i)
            {
                auto l = co_await set.acquire(pgcoro::read_only);
                PGCORO_CO_ASSERT(l.has_value());
                {
                    const int port_now = co_await server_port(**l);
                    EXPECT_EQ(port_now, r2);
                }
            }
            PGCORO_CO_ASSERT((co_await sql_on(r1, "SELECT pg_wal_replay_resume()")).has_value());
            const auto back = co_await until(
                set, [](const auto& ms) { return member(ms, "replica1")->in_rotation; }, 5s);
            std::cout << "replica1 back in rotation " << back << " ms after replay resumed\n";
            EXPECT_GE(back, 0);
            EXPECT_LE(back, 4 * cfg.sample_interval.count() + 500);
            stop = true;
            co_await sleep_for(50ms);
            co_await set.close(1s);
        }(),
        30s);
    run(io,
        [r1]() -> asio::awaitable<void>
        {
            co_await sql_on(r1, "SELECT pg_wal_replay_resume()");
        }());
}

// Read-your-writes with replay paused on both replicas: use_primary reads from the primary at
// once; wait_for_replay waits until a replica has replayed the write (resumed meanwhile), and
// with no_replica_policy::fail gives up with timeout after max_wait.
TEST(ReplicaRouting, ReadYourWrites)
{
    REQUIRE_TOPOLOGY();
    asio::io_context io;
    const auto p = topo().primary_port(), r1 = topo().replica_port(1), r2 = topo().replica_port(2);
    run(
        io,
        [&]() -> asio::awaitable<void>
        {
            auto cfg = quick_set();
            cfg.max_replica_lag = 10s; // paused replicas stay in rotation: the LSN decides
            pgcoro::replica_set set(io.get_executor(), primary_list(), both_replicas(), cfg);
            PGCORO_CO_ASSERT((co_await set.warmup()).has_value());
            PGCORO_CO_ASSERT(co_await pause_replay(r1));
            PGCORO_CO_ASSERT(co_await pause_replay(r2));

            pgcoro::lsn written;
            {
                auto w = co_await set.acquire(pgcoro::read_write);
                PGCORO_CO_ASSERT(w.has_value());
                PGCORO_CO_ASSERT(
                    (co_await (*w)->query("CREATE TABLE IF NOT EXISTS ryw (id int PRIMARY KEY)"))
                        .has_value());
                PGCORO_CO_ASSERT(
                    (co_await (*w)->query("INSERT INTO ryw VALUES (1) ON CONFLICT DO NOTHING"))
                        .has_value());
                auto pos = co_await pgcoro::replica_set::wal_position(**w);
                PGCORO_CO_ASSERT(pos.has_value());
                written = *pos;
            }
            std::cout << "write at " << written << "\n";

            pgcoro::read_options to_primary;
            to_primary.min_lsn = written;
            to_primary.if_behind = pgcoro::replay_policy::use_primary;
            {
                const auto t0 = clk::now();
                auto l = co_await set.acquire(pgcoro::read_only, to_primary);
                PGCORO_CO_ASSERT(l.has_value());
                {
                    const int port_now = co_await server_port(**l);
                    EXPECT_EQ(port_now, p);
                }
                EXPECT_LT(ms(clk::now() - t0), 500);
                auto r = co_await (*l)->query("SELECT count(*) FROM ryw WHERE id = 1");
                PGCORO_CO_ASSERT(r.has_value());
                EXPECT_EQ(r->get<std::int64_t>(0, 0).value_or(0), 1);
            }

            // wait_for_replay, failing after max_wait when nothing replays.
            {
                auto strict_cfg = cfg;
                strict_cfg.no_replica = pgcoro::no_replica_policy::fail;
                pgcoro::replica_set strict(io.get_executor(), primary_list(), both_replicas(),
                                           strict_cfg);
                co_await strict.warmup();
                pgcoro::read_options wait;
                wait.min_lsn = written;
                wait.max_wait = 300ms;
                const auto t0 = clk::now();
                auto l = co_await strict.acquire(pgcoro::read_only, wait);
                const auto took = ms(clk::now() - t0);
                PGCORO_CO_ASSERT(!l.has_value());
                EXPECT_TRUE(l.error().is(errc::timeout)) << l.error();
                EXPECT_GE(took, 300);
                EXPECT_LT(took, 1000);
                co_await strict.close(1s);
            }

            // wait_for_replay: replica2 resumes after 300 ms; the read waits for it.
            asio::co_spawn(
                io,
                [r2]() -> asio::awaitable<void>
                {
                    co_await sleep_for(300ms);
                    co_await sql_on(r2, "SELECT pg_wal_replay_resume()");
                },
                asio::detached);
            pgcoro::read_options wait;
            wait.min_lsn = written;
            wait.max_wait = 3s;
            const auto t0 = clk::now();
            auto l = co_await set.acquire(pgcoro::read_only, wait);
            const auto took = ms(clk::now() - t0);
            PGCORO_CO_ASSERT(l.has_value());
            std::cout << "read-your-writes waited " << took << " ms for replay\n";
            {
                const int port_now = co_await server_port(**l);
                EXPECT_EQ(port_now, r2);
            }
            EXPECT_GE(took, 250);
            EXPECT_LT(took, 2000);
            auto r = co_await (*l)->query("SELECT count(*) FROM ryw WHERE id = 1");
            PGCORO_CO_ASSERT(r.has_value());
            EXPECT_EQ(r->get<std::int64_t>(0, 0).value_or(0), 1);
            l->release();
            co_await set.close(1s);
        }(),
        30s);
    run(io,
        [r1, r2]() -> asio::awaitable<void>
        {
            co_await sql_on(r1, "SELECT pg_wal_replay_resume()");
            co_await sql_on(r2, "SELECT pg_wal_replay_resume()");
        }());
}

namespace
{
struct acquire_counter final : pgcoro::observer
{
    std::atomic<int> acquires{0};
    void on_acquire(const pgcoro::acquire_event&) noexcept override { ++acquires; }
};
} // namespace

// An observer per member (observer_factory): each member's pool reports to its own, so
// metrics and logs tell the primary and each replica apart.
TEST(ReplicaRouting, ObserverPerMember)
{
    REQUIRE_TOPOLOGY();
    asio::io_context io;
    std::map<std::string, std::shared_ptr<acquire_counter>> observers;
    for (const char* name : {"primary", "replica1", "replica2"})
        observers[name] = std::make_shared<acquire_counter>();
    run(
        io,
        [&]() -> asio::awaitable<void>
        {
            pgcoro::replica_set set(
                io.get_executor(), primary_list(), both_replicas(), quick_set(),
                [&](std::string_view member) -> std::shared_ptr<pgcoro::observer>
                { return observers.at(std::string(member)); });
            PGCORO_CO_ASSERT((co_await set.warmup()).has_value());
            for (int i = 0; i < 2; ++i)
            {
                auto w = co_await set.acquire(pgcoro::read_write);
                PGCORO_CO_ASSERT(w.has_value());
            }
            std::vector<pgcoro::lease> held;
            for (int i = 0; i < 4; ++i)
            {
                auto l = co_await set.acquire(pgcoro::read_only);
                PGCORO_CO_ASSERT(l.has_value());
                held.push_back(std::move(*l));
            }
            held.clear();
            co_await set.close(1s);
        }(),
        30s);
    EXPECT_EQ(observers["primary"]->acquires.load(), 2);
    EXPECT_EQ(observers["replica1"]->acquires.load(), 2);
    EXPECT_EQ(observers["replica2"]->acquires.load(), 2);
}
