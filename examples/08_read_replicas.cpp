// 08_read_replicas: writes to the primary, reads from streaming replicas, read-your-writes.
//
// Shows: a pgcoro::replica_set from DATABASE_URL (the primary; a host list with
// target_session_attrs=read-write follows a failover) and DATABASE_REPLICA_URLS (one URL per
// replica, comma-separated); acquire(read_write) and acquire(read_only); a read that must see
// the write just made (read_options::min_lsn from wal_position()); the health report.
// Without DATABASE_REPLICA_URLS the reads fall back to the primary.
//   scripts/test-replica-cluster.sh start /tmp/rs
//   scripts/test-replica-cluster.sh run /tmp/rs build/examples/example_08_read_replicas
#include <pgcoro.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <cstdlib>
#include <iostream>
#include <map>

namespace asio = boost::asio;
using namespace std::chrono_literals;

// Which server a connection is on, for the printout.
static asio::awaitable<std::string> where(pgcoro::connection& c)
{
    auto r = co_await c.query("SELECT inet_server_port()::text || CASE WHEN pg_is_in_recovery() "
                              "THEN ' (replica)' ELSE ' (primary)' END");
    std::string out = "?";
    if (r)
        out = r->get<std::string>(0, 0).value_or("?");
    co_return out;
}

static asio::awaitable<int> demo(pgcoro::connect_config primary,
                                 std::vector<pgcoro::connect_config> replicas)
{
    auto ex = co_await asio::this_coro::executor;
    pgcoro::replica_set_config cfg;
    cfg.max_replica_lag = 2s;    // a replica further behind leaves rotation
    cfg.sample_interval = 200ms; // health and lag checks
    pgcoro::replica_set set(ex, primary, replicas, cfg);
    if (auto w = co_await set.warmup(); !w)
    {
        std::cerr << "primary: " << w.error() << "\n";
        co_return 1;
    }

    // A write on the primary, and the WAL position after its commit.
    pgcoro::lsn written;
    {
        auto w = co_await set.acquire(pgcoro::read_write);
        if (!w)
        {
            std::cerr << "acquire(read_write): " << w.error() << "\n";
            co_return 1;
        }
        co_await (*w)->query("CREATE TABLE IF NOT EXISTS example_08 (id bigserial, note text)");
        auto ins = co_await (*w)->query("INSERT INTO example_08 (note) VALUES ('hello') "
                                        "RETURNING id");
        auto pos = co_await pgcoro::replica_set::wal_position(**w);
        if (!ins || !pos)
            co_return 1;
        written = *pos;
        // GCC 12: a co_await in its own statement, never inside a longer expression.
        const std::string server = co_await where(**w);
        std::cout << "wrote row " << ins->get<std::int64_t>(0, 0).value_or(0) << " on " << server
                  << " at WAL " << written << "\n";
    }

    // Read-your-writes: a replica that has replayed the write, waiting up to 1 s for one.
    pgcoro::read_options ryw;
    ryw.min_lsn = written;
    ryw.if_behind = pgcoro::replay_policy::wait_for_replay;
    ryw.max_wait = 1s;
    {
        auto r = co_await set.acquire(pgcoro::read_only, ryw);
        if (!r)
        {
            std::cerr << "acquire(read_only, min_lsn): " << r.error() << "\n";
            co_return 1;
        }
        auto n = co_await (*r)->query("SELECT count(*) FROM example_08");
        const std::string server = co_await where(**r);
        std::int64_t rows = -1;
        if (n)
            rows = n->get<std::int64_t>(0, 0).value_or(0);
        std::cout << "read-your-writes on " << server << ": " << rows << " row(s)\n";
    }

    // Plain reads: spread over the replicas in rotation, least in use first.
    std::map<std::string, int> served;
    std::vector<pgcoro::lease> held;
    for (int i = 0; i < 6; ++i)
    {
        auto r = co_await set.acquire(pgcoro::read_only);
        if (!r)
            co_return 1;
        const std::string server = co_await where(**r);
        ++served[server];
        held.push_back(std::move(*r)); // held: the next read goes to the least busy
    }
    held.clear();
    for (const auto& [server, n] : served)
        std::cout << n << " concurrent reads on " << server << "\n";

    std::cout << "health report:\n";
    for (const auto& m : set.members())
        std::cout << "  " << m << "\n";
    co_await set.close(5s);
    co_return 0;
}

int main()
{
    const char* url = std::getenv("DATABASE_URL");
    auto primary = pgcoro::parse_database_url(url ? url : "postgres://localhost/postgres");
    if (!primary)
    {
        std::cerr << primary.error() << "\n";
        return 1;
    }
    auto replicas = pgcoro::replica_urls_from_env(); // DATABASE_REPLICA_URLS
    if (!replicas)
    {
        std::cerr << replicas.error() << "\n";
        return 1;
    }
    std::cout << replicas->size() << " replica(s) configured\n";
    asio::io_context io;
    int rc = 1;
    asio::co_spawn(io, demo(primary->connect_config_with_settings(), std::move(*replicas)),
                   [&](std::exception_ptr e, int r)
                   {
                       if (e)
                           std::rethrow_exception(e);
                       rc = r;
                   });
    io.run();
    return rc;
}
