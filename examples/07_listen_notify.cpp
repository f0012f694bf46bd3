// 07_listen_notify: cache invalidation over LISTEN/NOTIFY with pgcoro::listener.
//
// Shows: a listener on its own connection (never a pool lease), quoted channel names,
// notifications with payload and sender pid, the `resync` event after the connection is lost
// (here: the listener's backend is terminated on purpose) and delivery resuming after it.
// Reads the server address from libpq's PGHOST / PGPORT / PGUSER / PGDATABASE.
#include <pgcoro.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <array>
#include <cstdlib>
#include <iostream>

namespace asio = boost::asio;
using namespace std::chrono_literals;

static std::string env_or(const char* name, const char* fallback)
{
    const char* v = std::getenv(name);
    return v && *v ? v : fallback;
}

asio::awaitable<int> demo(pgcoro::connect_config cfg)
{
    auto ex = co_await asio::this_coro::executor;
    auto l = co_await pgcoro::listener::open(ex, cfg);
    if (!l)
    {
        std::cerr << "listener: " << l.error() << "\n";
        co_return 1;
    }
    if (auto r = co_await l->listen("cache invalidation"); !r)
    {
        std::cerr << "listen: " << r.error() << "\n";
        co_return 1;
    }
    auto writer = co_await pgcoro::open_connection(ex, cfg);
    if (!writer)
        co_return 1;

    // A writer announces changed keys; the listener reads them in order.
    const std::array<const char*, 2> keys{"user:1", "user:2"};
    for (const char* key : keys)
        co_await writer->query("SELECT pg_notify('cache invalidation', $1)", key);
    for (int i = 0; i < 2; ++i)
    {
        auto ev = co_await l->next(5s);
        if (!ev)
            co_return 1;
        std::cout << "invalidate " << ev->what.payload << " (from backend " << ev->what.sender_pid
                  << ")\n";
    }

    // The listener's session dies: next() reconnects, LISTENs again and says so. Whatever was
    // sent meanwhile may be lost: a cache would drop everything here.
    co_await writer->query("SELECT pg_terminate_backend($1)", l->backend_pid());
    auto ev = co_await l->next(10s);
    if (!ev || ev->type != pgcoro::listen_event::kind::resync)
        co_return 1;
    std::cout << "resync after: " << ev->cause << " - dropping the whole cache\n";

    co_await writer->query("SELECT pg_notify('cache invalidation', 'user:3')");
    auto after = co_await l->next(5s);
    if (!after)
        co_return 1;
    std::cout << "invalidate " << after->what.payload << "\n";
    co_return after->what.payload == "user:3" ? 0 : 1;
}

int main()
{
    pgcoro::connect_config cfg;
    cfg.hosts = {{env_or("PGHOST", "127.0.0.1"),
                  static_cast<std::uint16_t>(std::stoi(env_or("PGPORT", "5432")))}};
    cfg.user = env_or("PGUSER", "postgres");
    cfg.dbname = env_or("PGDATABASE", "postgres");
    cfg.application_name = "pgcoro-example-07";

    asio::io_context io;
    int rc = 1;
    asio::co_spawn(io, demo(cfg), [&](std::exception_ptr e, int r) { rc = e ? 2 : r; });
    io.run();
    return rc;
}
