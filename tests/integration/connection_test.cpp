// Integration tests for pgcoro::connection against the real test cluster.
#include <pgcoro/connection.hpp>

#include "support/test_server.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/experimental/channel.hpp>
#include <boost/asio/steady_timer.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <limits>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using pgcoro::errc;
using pgcoro::test::run;
using pgcoro::test::test_server;

namespace
{

// A port on 127.0.0.1 with nothing listening: bind an ephemeral port, then close it.
std::uint16_t closed_port()
{
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    ::close(fd);
    return ntohs(a.sin_port);
}

// Counts ticks of a 5 ms timer and the worst lateness seen: proof the loop was never blocked.
struct loop_probe
{
    explicit loop_probe(asio::any_io_executor ex) : timer(ex) {}
    asio::awaitable<void> tick(const bool& stop)
    {
        while (!stop)
        {
            auto due = std::chrono::steady_clock::now() + 5ms;
            timer.expires_at(due);
            co_await timer.async_wait(asio::use_awaitable);
            auto lag = std::chrono::steady_clock::now() - due;
            max_lag = std::max(max_lag, std::chrono::duration_cast<std::chrono::milliseconds>(lag));
            ++ticks;
        }
    }
    asio::steady_timer timer;
    int ticks = 0;
    std::chrono::milliseconds max_lag{0};
};

} // namespace

TEST(Connect, SucceedsOverTcp)
{
    asio::io_context io;
    run(io,
        [&]() -> asio::awaitable<void>
        {
            auto c = co_await pgcoro::open_connection(io.get_executor(), test_server::get().tcp());
            PGCORO_CO_ASSERT(c.has_value());
            EXPECT_TRUE(c->is_open());
            EXPECT_GT(c->backend_pid(), 0);
            auto r = co_await c->query("SELECT inet_server_addr() IS NOT NULL");
            PGCORO_CO_ASSERT(r.has_value());
            EXPECT_EQ(r->get<bool>(0, 0).value(), true); // a TCP session has a server address
        }());
}

// Issue 19: a URL's `options=-c statement_timeout=0` overrode the configured statement_timeout
// at 15aed96 (libpq keeps the last `options`); pgcoro's own -c now comes last in one value.
TEST(Connect, UrlOptionsCannotUndoTheConfiguredStatementTimeout)
{
    asio::io_context io;
    run(io,
        [&]() -> asio::awaitable<void>
        {
            auto cfg = test_server::get().tcp();
            cfg.statement_timeout = std::chrono::milliseconds(1234);
            cfg.extra = {{"options", "-c statement_timeout=0 -c search_path=public"}};
            auto c = co_await pgcoro::open_connection(io.get_executor(), cfg);
            PGCORO_CO_ASSERT(c.has_value());
            auto r = co_await c->query("SHOW statement_timeout");
            PGCORO_CO_ASSERT(r.has_value());
            EXPECT_EQ(r->get<std::string>(0, 0).value(), "1234ms");
        }());
}

TEST(Connect, SucceedsOverUnixSocket)
{
    auto cfg = test_server::get().unix_socket();
    if (!cfg)
        GTEST_SKIP() << "external server: no unix socket directory known";
    asio::io_context io;
    run(io,
        [&]() -> asio::awaitable<void>
        {
            auto c = co_await pgcoro::open_connection(io.get_executor(), *cfg);
            PGCORO_CO_ASSERT(c.has_value());
            auto r = co_await c->query("SELECT inet_server_addr() IS NULL");
            PGCORO_CO_ASSERT(r.has_value());
            EXPECT_EQ(r->get<bool>(0, 0).value(), true); // unix sockets have no server address
        }());
}

TEST(Connect, ClosedPortFailsFastWithConnectFailed)
{
    asio::io_context io;
    auto cfg = test_server::get().tcp();
    cfg.hosts = {{"127.0.0.1", closed_port()}};
    run(io,
        [&]() -> asio::awaitable<void>
        {
            auto start = std::chrono::steady_clock::now();
            auto c = co_await pgcoro::open_connection(io.get_executor(), cfg);
            auto took = std::chrono::steady_clock::now() - start;
            PGCORO_CO_ASSERT(!c.has_value());
            EXPECT_TRUE(c.error().is(errc::connect_failed)) << c.error();
            EXPECT_TRUE(c.error().transient());
            EXPECT_LT(took, 1s); // refused at once, not after connect_timeout (30 s)
        }());
}

TEST(Connect, WrongPasswordReports28P01)
{
    if (!test_server::get().has_password_role())
        GTEST_SKIP() << "external server: no password role";
    asio::io_context io;
    run(io,
        [&]() -> asio::awaitable<void>
        {
            auto c = co_await pgcoro::open_connection(
                io.get_executor(), test_server::get().password_role("not-the-password"));
            PGCORO_CO_ASSERT(!c.has_value());
            EXPECT_TRUE(c.error().is(errc::connect_failed)) << c.error();
            EXPECT_EQ(c.error().state, "28P01") << c.error();
            EXPECT_FALSE(c.error().transient()); // retrying a wrong password cannot help
            EXPECT_EQ(c.error().message.find("not-the-password"), std::string::npos);

            // And the right password works.
            auto ok = co_await pgcoro::open_connection(
                io.get_executor(), test_server::get().password_role(test_server::get().password()));
            EXPECT_TRUE(ok.has_value()) << ok.error();
        }());
}

TEST(Connect, UnresolvableHostFailsWithoutBlockingTheLoop)
{
    asio::io_context io;
    auto cfg = test_server::get().tcp();
    cfg.hosts = {{"pgcoro-no-such-host.invalid", 5432}};
    cfg.connect_timeout = 10s;
    loop_probe probe(io.get_executor());
    bool stop = false;
    asio::co_spawn(io, probe.tick(stop), asio::detached);
    run(io,
        [&]() -> asio::awaitable<void>
        {
            // Make sure the ticker is running before the resolve starts.
            asio::steady_timer t(io, 20ms);
            co_await t.async_wait(asio::use_awaitable);
            int before = probe.ticks;
            auto c = co_await pgcoro::open_connection(io.get_executor(), cfg);
            stop = true;
            PGCORO_CO_ASSERT(!c.has_value());
            EXPECT_TRUE(c.error().is(errc::connect_failed) || c.error().is(errc::timeout))
                << c.error();
            EXPECT_NE(c.error().message.find("pgcoro-no-such-host.invalid"), std::string::npos);
            EXPECT_GE(probe.ticks, before); // the ticker kept running on the same loop
            EXPECT_LT(probe.max_lag, 50ms) << "the event loop was blocked";
        }());
}

TEST(Connect, TimesOutWhenTheServerNeverAnswers)
{
    // A listening socket that never accepts: the TCP handshake completes (backlog) but the
    // startup packet is never answered, so only our connect_timeout can end the attempt.
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    ASSERT_EQ(::listen(fd, 8), 0);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);

    asio::io_context io;
    auto cfg = test_server::get().tcp();
    cfg.hosts = {{"127.0.0.1", ntohs(a.sin_port)}};
    cfg.connect_timeout = 300ms;
    asio::steady_timer reactor_warmup(io); // the reactor's epoll/timer fds are created lazily
    int fds_before = pgcoro::test::open_fd_count();
    run(io,
        [&]() -> asio::awaitable<void>
        {
            auto start = std::chrono::steady_clock::now();
            auto c = co_await pgcoro::open_connection(io.get_executor(), cfg);
            auto took = std::chrono::steady_clock::now() - start;
            PGCORO_CO_ASSERT(!c.has_value());
            EXPECT_TRUE(c.error().is(errc::timeout)) << c.error();
            EXPECT_GE(took, 250ms);
            EXPECT_LT(took, 2s);
        }());
    EXPECT_EQ(pgcoro::test::open_fd_count(), fds_before);
    ::close(fd);
}

TEST(Query, RoundTripsEveryParameterType)
{
    asio::io_context io;
    run(io,
        [&]() -> asio::awaitable<void>
        {
            auto c = co_await pgcoro::open_connection(io.get_executor(), test_server::get().tcp());
            PGCORO_CO_ASSERT(c.has_value());
            std::optional<int> some = 7, none;
            std::string big(1 << 20, 'x');
            big[12345] = 'y';
            const std::string unicode = "zaż\xc3\xb3\xc5\x82\xc4\x87 \xe2\x82\xac \xf0\x9f\x98\x80";
            auto r = co_await c->query(
                "SELECT $1::bool, $2::bool, $3::int2, $4::int4, $5::int8, $6::float8, $7::float4,"
                " $8::text, $9::text, $10::int4, $11::int4, $12::text, $13::text, $14::text,"
                " $15::int8, $16::float8, $17::float8",
                true, false, std::int16_t{-32768}, std::int32_t{2147483647},
                std::int64_t{-9223372036854775807LL - 1}, 3.141592653589793, 1.5f,
                std::string_view("view"), std::string("string"), some, none, std::nullopt, unicode,
                big, std::uint32_t{4294967295u}, std::numeric_limits<double>::infinity(),
                std::numeric_limits<double>::quiet_NaN());
            PGCORO_CO_ASSERT(r.has_value());
            auto row = (*r)[0];
            EXPECT_EQ(row.get<bool>(0).value(), true);
            EXPECT_EQ(row.get<bool>(1).value(), false);
            EXPECT_EQ(row.get<std::int16_t>(2).value(), -32768);
            EXPECT_EQ(row.get<std::int32_t>(3).value(), 2147483647);
            EXPECT_EQ(row.get<std::int64_t>(4).value(), -9223372036854775807LL - 1);
            EXPECT_EQ(row.get<double>(5).value(), 3.141592653589793);
            EXPECT_EQ(row.get<float>(6).value(), 1.5f);
            EXPECT_EQ(row.get<std::string>(7).value(), "view");
            EXPECT_EQ(row.get<std::string_view>(8).value(), "string");
            EXPECT_EQ(row.get<std::optional<int>>(9).value(), 7);
            EXPECT_EQ(row.get<std::optional<int>>(10).value(), std::nullopt);
            EXPECT_TRUE(row[11].is_null());
            EXPECT_EQ(row.get<std::string>(12).value(), unicode);
            EXPECT_EQ(row.get<std::string>(13).value(), big);
            EXPECT_EQ(row.get<std::uint32_t>(14).value(), 4294967295u);
            EXPECT_TRUE(std::isinf(row.get<double>(15).value()));
            EXPECT_TRUE(std::isnan(row.get<double>(16).value()));
        }());
}

TEST(Query, ReportsClearErrorsForBadFieldAccess)
{
    asio::io_context io;
    run(io,
        [&]() -> asio::awaitable<void>
        {
            auto c = co_await pgcoro::open_connection(io.get_executor(), test_server::get().tcp());
            PGCORO_CO_ASSERT(c.has_value());
            auto r = co_await c->query("SELECT 1::int8 AS n, 'abc'::text AS s, NULL::int AS z,"
                                       " 100000::int4 AS big");
            PGCORO_CO_ASSERT(r.has_value());
            EXPECT_EQ(r->columns(), 4u);
            EXPECT_EQ(r->column_name(1), "s");
            EXPECT_EQ((*r)[0].get<std::int64_t>("n").value(), 1);
            EXPECT_TRUE((*r)[0].get<int>("s").error().is(errc::type_mismatch));
            EXPECT_TRUE((*r)[0].get<bool>("n").error().is(errc::type_mismatch));
            EXPECT_TRUE((*r)[0].get<int>("z").error().is(errc::unexpected_null));
            EXPECT_TRUE((*r)[0].get<std::int16_t>("big").error().is(errc::out_of_range));
            EXPECT_TRUE((*r)[0].get<int>(99).error().is(errc::out_of_range));
            EXPECT_TRUE((*r)[5].get<int>(0).error().is(errc::out_of_range));
            EXPECT_TRUE((*r)[0].get<int>("nope").error().is(errc::out_of_range));
        }());
}

TEST(Query, ServerErrorsCarrySqlstateAndLeaveTheConnectionUsable)
{
    asio::io_context io;
    run(io,
        [&]() -> asio::awaitable<void>
        {
            auto c = co_await pgcoro::open_connection(io.get_executor(), test_server::get().tcp());
            PGCORO_CO_ASSERT(c.has_value());

            auto syntax = co_await c->query("SELEC 1");
            PGCORO_CO_ASSERT(!syntax.has_value());
            EXPECT_TRUE(syntax.error().is(errc::query_failed));
            EXPECT_EQ(syntax.error().state, "42601") << syntax.error();
            EXPECT_FALSE(syntax.error().transient());

            auto div = co_await c->query("SELECT 1 / $1::int", 0);
            PGCORO_CO_ASSERT(!div.has_value());
            EXPECT_EQ(div.error().state, "22012") << div.error();
            EXPECT_NE(div.error().message.find("division by zero"), std::string::npos);

            auto nul = co_await c->query("SELECT $1::text", std::string_view("a\0b", 3));
            PGCORO_CO_ASSERT(!nul.has_value());
            EXPECT_TRUE(nul.error().is(errc::invalid_argument));

            auto wrong_count = co_await c->query("SELECT $1::int, $2::int", 1);
            PGCORO_CO_ASSERT(!wrong_count.has_value());
            EXPECT_EQ(wrong_count.error().state, "08P01") << wrong_count.error();

            auto ok = co_await c->query("SELECT 40 + $1::int", 2);
            PGCORO_CO_ASSERT(ok.has_value());
            EXPECT_EQ(ok->get<int>(0, 0).value(), 42);
            EXPECT_EQ(c->transaction_status(), PQTRANS_IDLE);
        }());
}

TEST(Query, AffectedRowsAndCommandTag)
{
    asio::io_context io;
    run(io,
        [&]() -> asio::awaitable<void>
        {
            auto c = co_await pgcoro::open_connection(io.get_executor(), test_server::get().tcp());
            PGCORO_CO_ASSERT(c.has_value());
            PGCORO_CO_ASSERT((co_await c->query("CREATE TEMP TABLE t (id int)")).has_value());
            auto ins = co_await c->query("INSERT INTO t SELECT generate_series(1, $1::int)", 5);
            PGCORO_CO_ASSERT(ins.has_value());
            EXPECT_EQ(ins->affected_rows(), 5u);
            EXPECT_EQ(ins->command_tag(), "INSERT 0 5");
            auto sel = co_await c->query("SELECT id FROM t ORDER BY id");
            PGCORO_CO_ASSERT(sel.has_value());
            int sum = 0;
            for (auto row : *sel)
                sum += row.get<int>(0).value();
            EXPECT_EQ(sum, 15);
        }());
}

TEST(Query, ResponsesThatArriveInPiecesAreReadWhole)
{
    // A result of megabytes reaches the socket in many pieces, and libpq reads a part of what
    // is there at a time: the statement's first wait is the edge-triggered response wait, the
    // rest must see data that is already waiting. Small statements in between start from
    // every state the reactor can be left in. A wrong wait hangs: the 10 s deadline fails it.
    asio::io_context io;
    run(io,
        [&]() -> asio::awaitable<void>
        {
            auto c = co_await pgcoro::open_connection(io.get_executor(), test_server::get().tcp());
            PGCORO_CO_ASSERT(c.has_value());
            const pgcoro::query_options within{10s};
            for (int round = 0; round < 6; ++round)
            {
                const int rows = 50 + 50 * round;
                auto big = co_await c->query(
                    within, "SELECT g, repeat(md5(g::text), 1000) FROM generate_series(1, $1) g",
                    rows);
                PGCORO_CO_ASSERT(big.has_value());
                PGCORO_CO_ASSERT(big->size() == static_cast<std::size_t>(rows));
                std::size_t bytes = 0;
                for (auto row : *big)
                    bytes += row.get<std::string_view>(1).value().size();
                EXPECT_EQ(bytes, static_cast<std::size_t>(rows) * 32000u);
                for (int k = 0; k < 3; ++k)
                {
                    auto small = co_await c->query(within, "SELECT $1::int", round * 10 + k);
                    PGCORO_CO_ASSERT(small.has_value());
                    EXPECT_EQ(small->get<int>(0, 0).value(), round * 10 + k);
                }
            }
        }());
}

TEST(Query, TimeoutCancelsOnTheServerAndTheConnectionStaysUsable)
{
    asio::io_context io;
    run(io,
        [&]() -> asio::awaitable<void>
        {
            auto c = co_await pgcoro::open_connection(io.get_executor(), test_server::get().tcp());
            auto observer =
                co_await pgcoro::open_connection(io.get_executor(), test_server::get().tcp());
            PGCORO_CO_ASSERT(c.has_value() && observer.has_value());

            auto start = std::chrono::steady_clock::now();
            auto r = co_await c->query(pgcoro::query_options{200ms}, "SELECT pg_sleep(10)");
            auto took = std::chrono::steady_clock::now() - start;
            PGCORO_CO_ASSERT(!r.has_value());
            EXPECT_TRUE(r.error().is(errc::timeout)) << r.error();
            EXPECT_LT(took, 1s);
            // The call returns at its deadline (issue 18, finding 9; 15aed96 waited for the
            // cancel round first and said "cancelled on the server"); the cancel request is
            // sent and the server stops the statement shortly after.
            EXPECT_NE(r.error().message.find("cancel request sent"), std::string::npos)
                << r.error();
            EXPECT_TRUE(c->is_open());

            // The server no longer runs the statement (within cancel_timeout).
            std::int64_t active = 1;
            asio::steady_timer t(io);
            for (int i = 0; i < 100 && active != 0; ++i)
            {
                auto act = co_await observer->query(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND state = 'active'",
                    c->backend_pid());
                PGCORO_CO_ASSERT(act.has_value());
                active = act->get<std::int64_t>(0, 0).value();
                t.expires_after(20ms);
                co_await t.async_wait(asio::use_awaitable);
            }
            EXPECT_EQ(active, 0);

            auto next = co_await c->query("SELECT 1");
            PGCORO_CO_ASSERT(next.has_value());
            EXPECT_EQ(next->get<int>(0, 0).value(), 1);
        }());
}

TEST(Query, CancellingTheAwaiterCancelsOnTheServer)
{
    using namespace asio::experimental::awaitable_operators;
    asio::io_context io;
    run(io,
        [&]() -> asio::awaitable<void>
        {
            auto c = co_await pgcoro::open_connection(io.get_executor(), test_server::get().tcp());
            PGCORO_CO_ASSERT(c.has_value());
            asio::steady_timer t(io, 150ms);
            auto start = std::chrono::steady_clock::now();
            // The timer wins the race; || cancels the query's coroutine.
            auto winner = co_await (c->query("SELECT pg_sleep(10)") ||
                                    t.async_wait(asio::as_tuple(asio::use_awaitable)));
            auto took = std::chrono::steady_clock::now() - start;
            EXPECT_EQ(winner.index(), 1u);
            EXPECT_LT(took, 1s);
            EXPECT_TRUE(c->is_open());
            auto next = co_await c->query("SELECT 2");
            PGCORO_CO_ASSERT(next.has_value());
            EXPECT_EQ(next->get<int>(0, 0).value(), 2);
        }());
}

TEST(Query, TerminatedBackendReportsConnectionLost)
{
    asio::io_context io;
    run(io,
        [&]() -> asio::awaitable<void>
        {
            auto c = co_await pgcoro::open_connection(io.get_executor(), test_server::get().tcp());
            auto killer =
                co_await pgcoro::open_connection(io.get_executor(), test_server::get().tcp());
            PGCORO_CO_ASSERT(c.has_value() && killer.has_value());
            int fds = pgcoro::test::open_fd_count();
            auto victim = c->backend_pid();
            bool killer_done = false;
            asio::co_spawn(
                io,
                [&]() -> asio::awaitable<void>
                {
                    asio::steady_timer t(io, 100ms);
                    co_await t.async_wait(asio::use_awaitable);
                    co_await killer->query("SELECT pg_terminate_backend($1)", victim);
                    killer_done = true;
                },
                asio::detached);
            auto r = co_await c->query("SELECT pg_sleep(5)");
            PGCORO_CO_ASSERT(!r.has_value());
            EXPECT_TRUE(r.error().is(errc::connection_lost)) << r.error();
            EXPECT_TRUE(r.error().transient());
            EXPECT_FALSE(c->is_open());
            EXPECT_LT(pgcoro::test::open_fd_count(), fds); // our watch fd and libpq's are closed
            auto again = co_await c->query("SELECT 1");
            EXPECT_TRUE(!again && again.error().is(errc::connection_lost));
            // The victim's error can arrive before the killer's own result: `killer` must
            // outlive its statement (ASan caught the connection freed under the pending wait).
            asio::steady_timer pause(io);
            for (int i = 0; i < 500 && !killer_done; ++i)
            {
                pause.expires_after(10ms);
                co_await pause.async_wait(asio::use_awaitable);
            }
            EXPECT_TRUE(killer_done);
        }());
}

TEST(Query, NoticesGoToTheHandlerNotStderr)
{
    asio::io_context io;
    testing::internal::CaptureStderr();
    std::vector<std::string> seen;
    run(io,
        [&]() -> asio::awaitable<void>
        {
            auto c = co_await pgcoro::open_connection(io.get_executor(), test_server::get().tcp());
            PGCORO_CO_ASSERT(c.has_value());
            auto quiet = co_await c->query("DO $$ BEGIN RAISE NOTICE 'dropped'; END $$");
            EXPECT_TRUE(quiet.has_value());
            c->set_notice_handler(
                [&](const pgcoro::notice& n)
                { seen.push_back(std::string(n.severity) + ":" + std::string(n.message)); });
            auto loud = co_await c->query("DO $$ BEGIN RAISE WARNING 'kept %', 42; END $$");
            EXPECT_TRUE(loud.has_value());
        }());
    std::string err = testing::internal::GetCapturedStderr();
    EXPECT_EQ(err, "");
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_EQ(seen[0], "WARNING:kept 42");
}

TEST(Connection, HundredCoroutinesShareTenConnections)
{
    asio::io_context io;
    constexpr int n_conn = 10, n_co = 100, n_queries = 100;
    std::vector<pgcoro::connection> conns;
    // A one-slot channel per connection is its turn-taking token.
    using token = asio::experimental::channel<void(boost::system::error_code)>;
    std::vector<std::unique_ptr<token>> tokens;
    int ok = 0, failed = 0;
    run(io,
        [&]() -> asio::awaitable<void>
        {
            for (int i = 0; i < n_conn; ++i)
            {
                auto c =
                    co_await pgcoro::open_connection(io.get_executor(), test_server::get().tcp());
                PGCORO_CO_ASSERT(c.has_value());
                conns.push_back(std::move(*c));
                tokens.push_back(std::make_unique<token>(io, 1));
                tokens.back()->try_send(boost::system::error_code{});
            }
        }());
    ASSERT_EQ(conns.size(), static_cast<std::size_t>(n_conn));
    int finished = 0;
    for (int k = 0; k < n_co; ++k)
        asio::co_spawn(
            io,
            [&, k]() -> asio::awaitable<void>
            {
                auto& conn = conns[k % n_conn];
                auto& tok = *tokens[k % n_conn];
                for (int q = 0; q < n_queries; ++q)
                {
                    co_await tok.async_receive(asio::use_awaitable);
                    auto r = co_await conn.query("SELECT $1::int * 2", k * 1000 + q);
                    tok.try_send(boost::system::error_code{});
                    if (r && r->get<int>(0, 0).value() == (k * 1000 + q) * 2)
                        ++ok;
                    else
                        ++failed;
                }
                ++finished;
            },
            asio::detached);
    io.restart();
    io.run_for(60s);
    EXPECT_EQ(finished, n_co);
    EXPECT_EQ(ok, n_co * n_queries);
    EXPECT_EQ(failed, 0);
}

TEST(Connection, NoFdLeakOver500ConnectCloseCycles)
{
    asio::io_context io;
    // Warm up once so lazily created process-wide descriptors (resolver, epoll) exist already.
    run(io,
        [&]() -> asio::awaitable<void>
        {
            auto c = co_await pgcoro::open_connection(io.get_executor(), test_server::get().tcp());
            PGCORO_CO_ASSERT(c.has_value());
        }());
    int before = pgcoro::test::open_fd_count();
    int connected = 0;
    run(io,
        [&]() -> asio::awaitable<void>
        {
            for (int i = 0; i < 500; ++i)
            {
                pgcoro::connection c(io.get_executor());
                auto r = co_await c.connect(test_server::get().tcp());
                PGCORO_CO_ASSERT(r.has_value());
                ++connected;
                if (i % 2 == 0)
                    c.close(); // explicit close on half, destructor on the other half
            }
        }());
    EXPECT_EQ(connected, 500);
    EXPECT_EQ(pgcoro::test::open_fd_count(), before);
}

TEST(Query, ParametersOutliveTheExpressionThatMadeThem)
{
    // query() is lazy: the awaitable may run after the caller's temporaries are gone, as when
    // a lambda returns it. Parameters must therefore be copied into the operation.
    asio::io_context io;
    run(io,
        [&]() -> asio::awaitable<void>
        {
            auto c = co_await pgcoro::open_connection(io.get_executor(), test_server::get().tcp());
            PGCORO_CO_ASSERT(c.has_value());
            auto make = [](pgcoro::connection& conn, int base)
            {
                std::string text = "copied-" + std::to_string(base);
                return conn.query("SELECT $1::int + 1, $2::text", base * 2, text);
            };
            auto pending = make(*c, 20);  // `text` and `base * 2` are gone after this line
            std::string clobber(64, 'z'); // reuse the stack and heap they used
            auto r = co_await std::move(pending);
            PGCORO_CO_ASSERT(r.has_value());
            EXPECT_EQ(r->get<int>(0, 0).value(), 41);
            EXPECT_EQ(r->get<std::string>(0, 1).value(), "copied-20");
        }());
}

TEST(Query, PgbouncerModeEnforcesStatementTimeoutOnTheClient)
{
    asio::io_context io;
    run(io,
        [&]() -> asio::awaitable<void>
        {
            auto cfg = test_server::get().tcp();
            cfg.pgbouncer = true;
            cfg.statement_timeout = 300ms;
            auto c = co_await pgcoro::open_connection(io.get_executor(), cfg);
            PGCORO_CO_ASSERT(c.has_value());
            // Nothing was sent to the server: its setting is the default.
            auto shown = co_await c->query("SHOW statement_timeout");
            PGCORO_CO_ASSERT(shown.has_value());
            EXPECT_EQ(shown->get<std::string>(0, 0).value(), "0");
            // ...but a statement running past it is cancelled by the client's deadline.
            auto start = std::chrono::steady_clock::now();
            auto r = co_await c->query("SELECT pg_sleep(5)");
            auto took = std::chrono::steady_clock::now() - start;
            PGCORO_CO_ASSERT(!r.has_value());
            EXPECT_TRUE(r.error().is(errc::timeout)) << r.error();
            EXPECT_GE(took, 300ms);
            EXPECT_LT(took, 2s);
            auto next = co_await c->query("SELECT 1");
            EXPECT_TRUE(next.has_value());
            // A shorter per-call timeout still wins.
            auto quick = co_await c->query(pgcoro::query_options{50ms}, "SELECT pg_sleep(5)");
            EXPECT_TRUE(!quick && quick.error().is(errc::timeout));
        }());
}
