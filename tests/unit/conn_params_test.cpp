// The keyword arrays a connection passes to libpq (detail::conn_params).
#include <pgcoro/connect_config.hpp>
#include <pgcoro/detail/conn_params.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

using namespace std::chrono_literals;

namespace
{
std::vector<std::string> values_of(const pgcoro::detail::conn_params& p, const std::string& key)
{
    std::vector<std::string> out;
    for (int i = 0; p.keys()[i]; ++i)
        if (key == p.keys()[i])
            out.emplace_back(p.values()[i]);
    return out;
}
} // namespace

// Issue 19: a URL's `options=-c statement_timeout=0` came after pgcoro's own `options` and
// libpq keeps only the last value of a key, so it silently removed the configured
// statement_timeout (15aed96 passed two `options` keys, the URL's last).
TEST(ConnParams, UrlOptionsCannotUndoTheConfiguredStatementTimeout)
{
    pgcoro::connect_config c;
    c.hosts = {{"127.0.0.1", 5432}};
    c.statement_timeout = 30s;
    c.extra = {{"options", "-c statement_timeout=0 -c search_path=app"}};
    pgcoro::detail::conn_params p(c, "127.0.0.1", "", 5432);
    const auto opts = values_of(p, "options");
    ASSERT_EQ(opts.size(), 1u);
    EXPECT_EQ(opts[0], "-c statement_timeout=0 -c search_path=app -c statement_timeout=30000");
}

TEST(ConnParams, OptionsAloneOrStatementTimeoutAlone)
{
    pgcoro::connect_config c;
    c.hosts = {{"127.0.0.1", 5432}};
    {
        pgcoro::detail::conn_params p(c, "127.0.0.1", "", 5432);
        EXPECT_TRUE(values_of(p, "options").empty());
    }
    c.extra = {{"options", "-c search_path=app"}};
    {
        pgcoro::detail::conn_params p(c, "127.0.0.1", "", 5432);
        EXPECT_EQ(values_of(p, "options"), std::vector<std::string>{"-c search_path=app"});
    }
    c.extra.clear();
    c.statement_timeout = 5s;
    {
        pgcoro::detail::conn_params p(c, "127.0.0.1", "", 5432);
        EXPECT_EQ(values_of(p, "options"), std::vector<std::string>{"-c statement_timeout=5000"});
    }
    c.pgbouncer = true; // pgbouncer refuses startup options: none of pgcoro's own
    {
        pgcoro::detail::conn_params p(c, "127.0.0.1", "", 5432);
        EXPECT_TRUE(values_of(p, "options").empty());
    }
}
