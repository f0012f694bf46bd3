// tests/replica/replica_env.hpp - the primary + streaming replicas that
// scripts/test-replica-cluster.sh started (the `replica_cluster` fixture), and how the tests
// stop, start, promote and pause its members.
#ifndef PGCORO_TESTS_REPLICA_REPLICA_ENV_HPP
#define PGCORO_TESTS_REPLICA_REPLICA_ENV_HPP

#include <pgcoro/connect_config.hpp>
#include <pgcoro/connection.hpp>

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <vector>

namespace pgcoro::test
{

// One topology: read from STATE_DIR/env.
class replica_topology
{
public:
    explicit replica_topology(std::string state) : state_(std::move(state))
    {
        std::ifstream in(state_ + "/env");
        std::string line;
        while (std::getline(in, line))
            if (auto eq = line.find('='); eq != std::string::npos)
                env_[line.substr(0, eq)] = line.substr(eq + 1);
    }

    // The fixture's topology (two replicas, asynchronous).
    static replica_topology& fixture()
    {
        static replica_topology t(PGCORO_REPLICA_STATE_DIR);
        return t;
    }

    // Starts a topology of its own in `state` (blocking; for the test that destroys it).
    static bool start(const std::string& state, int replicas, bool sync)
    {
        return shell("start " + state + " " + std::to_string(replicas) + (sync ? " sync" : "")) ==
               0;
    }
    static void stop(const std::string& state) { shell("stop " + state); }

    bool ok() const { return env_.count("PGCORO_REPLICA_PRIMARY_PORT") != 0; }
    std::uint16_t primary_port() const { return port("PGCORO_REPLICA_PRIMARY_PORT"); }
    // Replica i, 1-based.
    std::uint16_t replica_port(int i) const
    {
        return port("PGCORO_REPLICA_" + std::to_string(i) + "_PORT");
    }
    int replica_count() const { return std::atoi(env_.at("PGCORO_REPLICA_COUNT").c_str()); }

    // The superuser over TCP to the given hosts (ports on 127.0.0.1), in order.
    connect_config config(const std::vector<std::uint16_t>& ports,
                          const std::string& app = "pgcoro-replica-tests") const
    {
        connect_config c;
        c.hosts.clear();
        for (auto p : ports)
            c.hosts.push_back({"127.0.0.1", p});
        c.dbname = "pgcoro_test";
        c.user = "pgcoro";
        c.application_name = app;
        c.sslmode = ssl_mode::disable;
        c.connect_timeout = std::chrono::seconds(3);
        return c;
    }

    // pg_ctl on a member ("primary", "replica1"): blocking, returns the exit status.
    int ctl(const std::string& member, const std::string& args) const
    {
        return shell("ctl " + state_ + " " + member + " " + args);
    }

private:
    static int shell(const std::string& args)
    {
        const std::string cmd = "bash " PGCORO_REPLICA_SCRIPT " " + args + " >/dev/null 2>&1";
        return std::system(cmd.c_str());
    }
    std::uint16_t port(const std::string& key) const
    {
        auto it = env_.find(key);
        return it == env_.end() ? 0 : static_cast<std::uint16_t>(std::stoi(it->second));
    }

    std::string state_;
    std::map<std::string, std::string> env_;
};

// The server port a connection is on, or -1.
inline boost::asio::awaitable<int> server_port(connection& c)
{
    auto r = co_await c.query("SELECT inet_server_port()");
    int port = -1;
    if (r)
        port = r->get<int>(0, 0).value_or(-1);
    co_return port;
}

} // namespace pgcoro::test

#endif // PGCORO_TESTS_REPLICA_REPLICA_ENV_HPP
