// 05_typed_rows: PostgreSQL types both ways, and rows straight into C++ types.
//
// Shows: a struct described with Boost.Describe read by column name (query() + result::as),
// a tuple loop with structured bindings, bytea sent in binary, timestamptz as
// std::chrono::sys_time in UTC, text[] as std::vector, `= ANY($1)` with a vector, a
// run-time parameter list (pgcoro::params), query_one / query_opt, and an error that names the
// column. Leaves out: the pool (see 02), retries (see 03).
// Reads the server address from libpq's PGHOST / PGPORT / PGUSER / PGDATABASE.
#include <pgcoro.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/describe/class.hpp>

#include <cstdlib>
#include <iostream>

namespace asio = boost::asio;
using namespace std::chrono;

struct account
{
    std::int64_t id;
    std::string email;
    sys_time<microseconds> created_at;
    std::vector<std::string> tags;
    std::optional<std::vector<std::byte>> avatar;
};
BOOST_DESCRIBE_STRUCT(account, (), (id, email, created_at, tags, avatar))

static std::string env_or(const char* name, const char* fallback)
{
    const char* v = std::getenv(name);
    return v && *v ? v : fallback;
}

asio::awaitable<int> demo(pgcoro::connect_config cfg)
{
    auto conn = co_await pgcoro::open_connection(co_await asio::this_coro::executor, cfg);
    if (!conn)
    {
        std::cerr << "connect: " << conn.error() << "\n";
        co_return 1;
    }
    // A session-local table: gone when the connection closes.
    auto made = co_await conn->query("CREATE TEMP TABLE accounts (id bigserial PRIMARY KEY, "
                                     "email text NOT NULL, created_at timestamptz NOT NULL, "
                                     "tags text[] NOT NULL, avatar bytea)");
    if (!made)
    {
        std::cerr << "create: " << made.error() << "\n";
        co_return 1;
    }

    // Parameters keep their types: bytea goes in binary (NUL bytes included), the time point
    // as UTC, the vector as text[].
    const std::vector<std::byte> avatar{std::byte{0x89}, std::byte{'P'}, std::byte{0},
                                        std::byte{'G'}};
    const auto created = sys_days(2024y / March / 10) + 7h;
    const std::vector<std::string> admin_tags{"admin", "ops"};
    const std::vector<std::string> no_tags;
    auto ann = co_await conn->query("INSERT INTO accounts (email, created_at, tags, avatar) "
                                    "VALUES ($1, $2, $3, $4)",
                                    std::string("ann@example.com"), created, admin_tags,
                                    pgcoro::bytes_view(avatar));
    auto bob = co_await conn->query("INSERT INTO accounts (email, created_at, tags) "
                                    "VALUES ($1, $2, $3)",
                                    std::string("bob@example.com"), created + 24h, no_tags);
    if (!ann || !bob)
    {
        std::cerr << "insert: " << (ann ? bob.error() : ann.error()) << "\n";
        co_return 1;
    }

    // Whole rows into a described struct, by column name (any column order).
    auto all = co_await conn->query("SELECT * FROM accounts ORDER BY id");
    if (!all)
        co_return 1;
    auto accounts = all->as<account>();
    if (!accounts)
    {
        std::cerr << "mapping: " << accounts.error() << "\n";
        co_return 1;
    }
    for (const auto& a : *accounts)
        std::cout << a.id << " " << a.email << " created "
                  << a.created_at.time_since_epoch().count() << " us after the epoch, "
                  << a.tags.size() << " tags, avatar "
                  << (a.avatar ? std::to_string(a.avatar->size()) + " bytes" : "none") << "\n";

    // A tuple loop with structured bindings; `= ANY($1)` takes a vector.
    const std::vector<std::string> wanted{"bob@example.com", "nobody@example.com"};
    auto some =
        co_await conn->query("SELECT id, email FROM accounts WHERE email = ANY($1)", wanted);
    if (!some)
        co_return 1;
    // Keep the mapped rows in a variable: a range-for over `f().value()` would iterate a
    // destroyed temporary (C++20 extends only the outer temporary's lifetime).
    auto matched = some->as<std::tuple<std::int64_t, std::string>>();
    if (!matched)
        co_return 1;
    for (auto [id, email] : *matched)
        std::cout << "matched " << id << " " << email << "\n";

    // A filter built at run time.
    pgcoro::params p;
    std::string sql = "SELECT count(*) FROM accounts WHERE true";
    if (true) // e.g. a query-string filter was given
    {
        p.add(std::string("admin"));
        sql += " AND $" + std::to_string(p.size()) + " = ANY(tags)";
    }
    auto n = co_await conn->query_one<std::int64_t>(sql, p);
    std::cout << "admins: " << n.value_or(-1) << "\n";
    auto none = co_await conn->query_opt<std::string>("SELECT email FROM accounts WHERE id = $1",
                                                      std::int64_t{42});
    std::cout << "account 42: " << (none && *none ? **none : "absent") << "\n";

    // A conversion error names the column, its type and the C++ type.
    auto wrong = all->get<std::int32_t>(0, 2);
    std::cout << "expected error: " << wrong.error() << "\n";
    co_return accounts->size() == 2 && some->size() == 1 && n.value_or(0) == 1 ? 0 : 1;
}

int main()
{
    pgcoro::connect_config cfg;
    cfg.hosts = {{env_or("PGHOST", "127.0.0.1"),
                  static_cast<std::uint16_t>(std::stoi(env_or("PGPORT", "5432")))}};
    cfg.user = env_or("PGUSER", "postgres");
    cfg.dbname = env_or("PGDATABASE", "postgres");
    cfg.application_name = "pgcoro-example-05";

    asio::io_context io;
    int rc = 1;
    asio::co_spawn(io, demo(cfg),
                   [&](std::exception_ptr e, int r)
                   {
                       rc = e ? 2 : r;
                       if (e)
                           try
                           {
                               std::rethrow_exception(e);
                           }
                           catch (const std::exception& x)
                           {
                               std::cerr << "exception: " << x.what() << "\n";
                           }
                   });
    io.run();
    return rc;
}
