// tests/support/test_server.hpp - where the test cluster is, and how to run a coroutine test.
#ifndef PGCORO_TESTS_SUPPORT_TEST_SERVER_HPP
#define PGCORO_TESTS_SUPPORT_TEST_SERVER_HPP

#include <pgcoro/connect_config.hpp>
#include <pgcoro/detail/pq_handles.hpp>
#include <pgcoro/detail/pq_socket.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <chrono>
#include <cstdlib>
#include <dirent.h>
#include <fstream>
#include <map>
#include <optional>
#include <string>

namespace pgcoro::test
{

// Fails the current test and leaves the coroutine (ASSERT_* cannot be used in coroutines).
#define PGCORO_CO_ASSERT(cond)                                                                     \
    do                                                                                             \
    {                                                                                              \
        if (!(cond))                                                                               \
        {                                                                                          \
            ADD_FAILURE() << "assertion failed: " #cond;                                           \
            co_return;                                                                             \
        }                                                                                          \
    } while (0)

// The server the tests talk to: read from the env file scripts/test-cluster.sh wrote
// (directory in PGCORO_TEST_CLUSTER), or from PGCORO_TEST_DSN.
class test_server
{
public:
    static const test_server& get()
    {
        static const test_server s;
        return s;
    }

    // Superuser over TCP on 127.0.0.1.
    connect_config tcp() const
    {
        connect_config c;
        c.hosts = {{host_, port_}};
        c.dbname = dbname_;
        c.user = user_;
        c.password = secret(password_for_user_);
        c.application_name = "pgcoro-tests";
        c.sslmode = ssl_mode::disable;
        return c;
    }
    // Superuser over the unix socket directory (none when pointed at an external DSN).
    std::optional<connect_config> unix_socket() const
    {
        if (socket_dir_.empty())
            return std::nullopt;
        auto c = tcp();
        c.hosts = {{socket_dir_, port_}};
        return c;
    }
    // The role that must authenticate with a password, over TCP (empty user when unknown).
    connect_config password_role(std::string password) const
    {
        auto c = tcp();
        c.user = password_user_;
        c.password = secret(std::move(password));
        return c;
    }
    const std::string& password() const { return password_; }
    bool has_password_role() const { return !password_user_.empty(); }
    // True when this run started the server itself (so tests may stop and restart it).
    bool owned() const { return !pgdata_.empty(); }
    std::uint16_t port() const { return port_; }

    // Runs pg_ctl against the owned cluster (as postgres when root); returns its exit status.
    int pg_ctl(const std::string& args) const
    {
        std::string cmd = pgbin_ + "/pg_ctl -D " + pgdata_ + "/data -l " + pgdata_ +
                          "/server.log -w -t 30 " + args + " >/dev/null 2>&1";
        if (::geteuid() == 0)
            cmd = "runuser -u postgres -- " + cmd;
        return std::system(cmd.c_str());
    }

private:
    test_server()
    {
        std::map<std::string, std::string> env;
        const char* dir = std::getenv("PGCORO_TEST_CLUSTER");
        if (const char* portable = std::getenv("PGCORO_TEST_CLUSTER_PORTABLE"))
        {
            // The suite's second run (tests/CMakeLists.txt): the same cluster, every socket
            // on the portable stream_descriptor path. Set before the first connection.
            dir = portable;
            pgcoro::detail::edge_wait_enabled().store(false);
        }
        if (dir)
        {
            std::ifstream in(std::string(dir) + "/env");
            std::string line;
            while (std::getline(in, line))
                if (auto eq = line.find('='); eq != std::string::npos)
                    env[line.substr(0, eq)] = line.substr(eq + 1);
        }
        if (const char* dsn = std::getenv("PGCORO_TEST_DSN"))
            env["PGCORO_TEST_DSN"] = dsn;
        if (auto it = env.find("PGCORO_TEST_DSN"); it != env.end())
        {
            from_dsn(it->second);
            return;
        }
        if (env.empty())
        {
            std::fprintf(stderr, "no test server: run through ctest (fixture pg_cluster) or set "
                                 "PGCORO_TEST_DSN\n");
            std::abort();
        }
        host_ = env["PGCORO_TEST_HOST"];
        port_ = static_cast<std::uint16_t>(std::stoi(env["PGCORO_TEST_PORT"]));
        socket_dir_ = env["PGCORO_TEST_SOCKET_DIR"];
        dbname_ = env["PGCORO_TEST_DBNAME"];
        user_ = env["PGCORO_TEST_USER"];
        password_user_ = env["PGCORO_TEST_PASSWORD_USER"];
        password_ = env["PGCORO_TEST_PASSWORD"];
        pgdata_ = env["PGCORO_TEST_PGDATA"];
        pgbin_ = env["PGCORO_TEST_PGBIN"];
    }

    // PQconninfoParse is pure parsing: no I/O.
    void from_dsn(const std::string& dsn)
    {
        char* err = nullptr;
        detail::pqconninfo_ptr opts(PQconninfoParse(dsn.c_str(), &err));
        if (!opts)
        {
            std::fprintf(stderr, "PGCORO_TEST_DSN does not parse\n");
            PQfreemem(err);
            std::abort();
        }
        for (auto* o = opts.get(); o->keyword; ++o)
        {
            if (!o->val)
                continue;
            std::string k = o->keyword, v = o->val;
            if (k == "host")
                host_ = v;
            else if (k == "port")
                port_ = static_cast<std::uint16_t>(std::stoi(v));
            else if (k == "dbname")
                dbname_ = v;
            else if (k == "user")
                user_ = v;
            else if (k == "password")
                password_for_user_ = v;
        }
        if (host_.empty())
            host_ = "127.0.0.1";
    }

    std::string host_ = "127.0.0.1";
    std::uint16_t port_ = 5432;
    std::string socket_dir_, dbname_, user_, password_for_user_;
    std::string password_user_, password_;
    std::string pgdata_, pgbin_;
};

// Runs `aw` on `io` to completion, failing the test if it takes longer than `limit` or throws.
inline void run(boost::asio::io_context& io, boost::asio::awaitable<void> aw,
                std::chrono::seconds limit = std::chrono::seconds(60))
{
    bool done = false;
    std::exception_ptr ex;
    boost::asio::co_spawn(io, std::move(aw),
                          [&](std::exception_ptr e)
                          {
                              ex = e;
                              done = true;
                          });
    io.restart();
    auto until = std::chrono::steady_clock::now() + limit;
    while (!done && std::chrono::steady_clock::now() < until)
        io.run_one_until(until);
    if (ex)
        std::rethrow_exception(ex);
    if (!done)
        ADD_FAILURE() << "coroutine did not finish within " << limit.count() << " s";
    // Let handlers that were already queued (timer cancellations, ...) run out.
    io.poll();
}

// Number of open file descriptors of this process.
inline int open_fd_count()
{
    int n = 0;
    if (DIR* d = ::opendir("/proc/self/fd"))
    {
        while (::readdir(d))
            ++n;
        ::closedir(d);
    }
    return n;
}

} // namespace pgcoro::test

#endif // PGCORO_TESTS_SUPPORT_TEST_SERVER_HPP
