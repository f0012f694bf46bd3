// 04_http_service: a small HTTP service (Boost.Beast) with a database health endpoint,
// Prometheus metrics and a read route guarded by retry + circuit breaker.
//
//   GET /health/database  JSON health report; HTTP 503 when unhealthy, 200 otherwise
//   GET /metrics          Prometheus text exposition (pool gauges, latencies, retries, breaker)
//   GET /kv/{id}          reads `SELECT v FROM kv WHERE id = $1` through the pool, with retry
//                         and a circuit breaker; 404 for a missing id, 503 when the breaker is
//                         open or the database does not answer
//
// Shows: a pool with a fanout_observer (stats_collector + logging_observer at the profile's
// level), check_health(), to_json(), to_prometheus(), observe_retries()/observe_breaker().
// Configuration comes from the environment (DATABASE_URL, PGCORO_ENV, ...).
//
// Usage: example_04_http_service [--port N] [--seconds S]
//   --port 0 (the default) picks a free port; the first line printed is "listening on
//   http://127.0.0.1:PORT". It serves on 127.0.0.1 only, for S seconds (default 60; 0 means
//   until SIGINT/SIGTERM), then closes the pool and exits.
#include <pgcoro.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <charconv>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

namespace
{

// Everything a request handler needs; lives in main() for the whole run.
struct service
{
    pgcoro::pool& pool;
    std::shared_ptr<pgcoro::stats_collector> stats;
    pgcoro::circuit_breaker& breaker;
    std::shared_ptr<pgcoro::observer> observer;
};

using response = http::response<http::string_body>;

response reply(const http::request<http::string_body>& req, http::status status,
               std::string_view content_type, std::string body)
{
    response res{status, req.version()};
    res.set(http::field::content_type, content_type);
    res.keep_alive(req.keep_alive());
    res.body() = std::move(body);
    res.prepare_payload();
    return res;
}

asio::awaitable<response> health(service& s, const http::request<http::string_body>& req)
{
    pgcoro::health_options opts;
    opts.metrics = s.stats.get();
    opts.breaker = [&s]
    {
        return s.breaker.state();
    };
    opts.report_to = s.observer.get(); // a ping failing at its deadline counts as a failure
    auto report = co_await pgcoro::check_health(s.pool, opts);
    const auto status = report.status == pgcoro::health_status::unhealthy
                            ? http::status::service_unavailable
                            : http::status::ok;
    co_return reply(req, status, "application/json", pgcoro::to_json(report));
}

asio::awaitable<response> kv(service& s, const http::request<http::string_body>& req,
                             std::string_view id_text)
{
    int id = 0;
    auto [end, ec] = std::from_chars(id_text.data(), id_text.data() + id_text.size(), id);
    if (ec != std::errc() || end != id_text.data() + id_text.size())
        co_return reply(req, http::status::bad_request, "text/plain", "id must be an integer\n");

    pgcoro::retry_policy policy; // up to 3 attempts within 3 s; a read may be repeated
    policy.idempotent = true;
    policy.backoff.initial = 50ms;
    policy.deadline = 3s;
    pgcoro::retry_hooks hooks;
    hooks.on_retry = pgcoro::observe_retries(s.observer);
    auto r = co_await pgcoro::retry(
        policy,
        [&]()
        {
            return s.breaker.run(
                [&]()
                {
                    return pgcoro::with_timeout(
                        1s,
                        [&]()
                        {
                            return s.pool.run(
                                [id](pgcoro::connection& c)
                                { return c.query("SELECT v FROM kv WHERE id = $1", id); });
                        },
                        s.observer.get()); // its deadline counts as a failure
                });
        },
        hooks);
    if (!r)
        co_return reply(req,
                        r.error().transient() ? http::status::service_unavailable
                                              : http::status::internal_server_error,
                        "text/plain", std::string(to_string(r.error().value())) + "\n");
    if (r->empty())
        co_return reply(req, http::status::not_found, "text/plain", "no such id\n");
    co_return reply(req, http::status::ok, "text/plain",
                    r->get<std::string>(0, 0).value_or("") + "\n");
}

asio::awaitable<response> route(service& s, const http::request<http::string_body>& req)
{
    const std::string_view target(req.target().data(), req.target().size());
    if (req.method() != http::verb::get)
        co_return reply(req, http::status::method_not_allowed, "text/plain", "GET only\n");
    if (target == "/health/database")
        co_return co_await health(s, req);
    if (target == "/metrics")
        co_return reply(req, http::status::ok, "text/plain; version=0.0.4",
                        pgcoro::to_prometheus(s.stats->snapshot(s.pool.stats())));
    if (target.starts_with("/kv/"))
        co_return co_await kv(s, req, target.substr(4));
    co_return reply(req, http::status::not_found, "text/plain", "not found\n");
}

// One HTTP/1.1 connection: requests in turn until the client closes or 30 s of silence.
asio::awaitable<void> session(service& s, tcp::socket socket)
{
    beast::tcp_stream stream(std::move(socket));
    beast::flat_buffer buffer;
    for (;;)
    {
        http::request<http::string_body> req;
        stream.expires_after(30s);
        auto [ec, n] =
            co_await http::async_read(stream, buffer, req, asio::as_tuple(asio::use_awaitable));
        if (ec)
            break;
        response res = co_await route(s, req);
        const bool keep = res.keep_alive();
        auto [wec, wn] =
            co_await http::async_write(stream, res, asio::as_tuple(asio::use_awaitable));
        if (wec || !keep)
            break;
    }
    beast::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
}

asio::awaitable<void> listen(service& s, tcp::acceptor& acceptor)
{
    for (;;)
    {
        auto [ec, socket] = co_await acceptor.async_accept(asio::as_tuple(asio::use_awaitable));
        if (ec)
            co_return; // closed at shutdown
        asio::co_spawn(acceptor.get_executor(), session(s, std::move(socket)), asio::detached);
    }
}

// Creates the kv table with a few rows, so /kv/1 answers on a fresh database.
asio::awaitable<pgcoro::expected<pgcoro::result>> seed(pgcoro::pool& pool)
{
    auto created = co_await pool.run(
        [](pgcoro::connection& c)
        { return c.query("CREATE TABLE IF NOT EXISTS kv (id int PRIMARY KEY, v text NOT NULL)"); });
    if (!created)
        co_return created;
    co_return co_await pool.run(
        [](pgcoro::connection& c)
        {
            return c.query("INSERT INTO kv SELECT g, 'value-' || g FROM generate_series(1, 100) g "
                           "ON CONFLICT DO NOTHING");
        });
}

} // namespace

int main(int argc, char** argv)
{
    unsigned short port = 0;
    long seconds = 60;
    for (int i = 1; i + 1 < argc; i += 2)
    {
        std::string_view flag = argv[i];
        if (flag == "--port")
            port = static_cast<unsigned short>(std::atoi(argv[i + 1]));
        else if (flag == "--seconds")
            seconds = std::atol(argv[i + 1]);
    }

    auto settings = pgcoro::settings_from_env();
    if (!settings)
    {
        std::cerr << settings.error() << "\n"; // names each bad variable; never a password
        return 1;
    }
    for (const auto& w : settings->warnings) // e.g. a secret file others can read
        std::cerr << "warn settings: " << w << "\n";

    // Metrics for /metrics and /health, and log lines at the profile's level (development:
    // queries and info; production: warnings and errors only).
    auto stats = std::make_shared<pgcoro::stats_collector>();
    auto logger = std::make_shared<pgcoro::logging_observer>(
        [](pgcoro::log_level level, std::string_view line)
        { std::cerr << pgcoro::to_string(level) << " " << line << "\n"; },
        settings->log);
    auto observers = std::make_shared<pgcoro::fanout_observer>(
        std::initializer_list<std::shared_ptr<pgcoro::observer>>{stats, logger});

    asio::io_context io;
    pgcoro::pool pool(io.get_executor(), settings->connect, settings->pool, observers);
    pgcoro::breaker_config bc;
    bc.failure_threshold = 5;
    bc.open_duration = 2s;
    pgcoro::circuit_breaker breaker(bc);
    pgcoro::observe_breaker(breaker, observers);
    service s{pool, stats, breaker, observers};

    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    asio::steady_timer lifetime(io);
    asio::signal_set signals(io, SIGINT, SIGTERM);
    int rc = 0;
    auto shutdown = [&]() -> asio::awaitable<void>
    {
        boost::system::error_code ignored;
        acceptor.close(ignored);
        signals.cancel();
        lifetime.cancel();
        co_await pool.close(5s);
        io.stop(); // ends sessions still waiting for their clients
    };

    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void>
        {
            if (auto r = co_await seed(pool); !r)
            {
                std::cerr << "seeding kv: " << r.error() << "\n";
                rc = 1;
                co_await shutdown();
                co_return;
            }
            std::cout << "listening on http://127.0.0.1:" << acceptor.local_endpoint().port()
                      << std::endl;
            co_await listen(s, acceptor);
        },
        asio::detached);
    signals.async_wait(
        [&](boost::system::error_code ec, int)
        {
            if (!ec)
                asio::co_spawn(io, shutdown(), asio::detached);
        });
    if (seconds > 0)
    {
        lifetime.expires_after(std::chrono::seconds(seconds));
        lifetime.async_wait(
            [&](boost::system::error_code ec)
            {
                if (!ec)
                    asio::co_spawn(io, shutdown(), asio::detached);
            });
    }
    io.run();
    std::cout << "stopped; " << pool.stats() << std::endl;
    return rc;
}
