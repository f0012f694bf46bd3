// Unit tests for pgcoro/error.hpp: codes, SQLSTATE handling and the transient table.
#include <pgcoro/error.hpp>

#include <boost/system/error_code.hpp>

#include <gtest/gtest.h>

using pgcoro::errc;
using pgcoro::is_transient;
using pgcoro::sqlstate;

TEST(Error, CodesHaveStableNamesInThePgcoroCategory)
{
    std::error_code ec = errc::pool_timeout;
    EXPECT_EQ(ec.category().name(), std::string("pgcoro"));
    EXPECT_EQ(ec.message(), "pool_timeout");
    EXPECT_EQ(pgcoro::to_string(errc::circuit_open), "circuit_open");
}

TEST(Error, SqlstateKeepsFiveCharactersAndItsClass)
{
    sqlstate s("40P01 and more");
    EXPECT_EQ(s.view(), "40P01");
    EXPECT_EQ(s.class_code(), "40");
    EXPECT_TRUE(sqlstate("4").empty()); // too short: no state
    EXPECT_TRUE(sqlstate().empty());
}

TEST(Error, TransientTableBySqlstate)
{
    struct row
    {
        const char* state;
        bool transient;
    };
    // Connection-level and conflict states retry; data, constraint, syntax, auth do not.
    const row table[] = {
        {"08006", true},  {"08001", true},  {"08P01", false}, {"40001", true},
        {"40P01", true},  {"57P01", true},  {"57P02", true},  {"57P03", true},
        {"53300", true},  {"23505", false}, {"23503", false}, {"42601", false},
        {"42501", false}, {"22012", false}, {"28P01", false}, {"57014", false},
    };
    for (const auto& r : table)
        EXPECT_EQ(is_transient(errc::query_failed, sqlstate(r.state)), r.transient) << r.state;
}

TEST(Error, TransientTableByCodeWhenNoSqlstate)
{
    EXPECT_TRUE(is_transient(errc::connection_lost, {}));
    EXPECT_TRUE(is_transient(errc::connect_failed, {}));
    EXPECT_TRUE(is_transient(errc::timeout, {}));
    EXPECT_TRUE(is_transient(errc::pool_timeout, {}));
    EXPECT_FALSE(is_transient(errc::config_invalid, {}));
    EXPECT_FALSE(is_transient(errc::invalid_argument, {}));
    EXPECT_FALSE(is_transient(errc::cancelled, {}));
    EXPECT_FALSE(is_transient(errc::query_failed, {}));
    // The server's SQLSTATE decides over the code: a refused login is not transient.
    EXPECT_FALSE(is_transient(errc::connect_failed, sqlstate("28P01")));
}

TEST(Error, ToStringShowsCodeStateAndMessage)
{
    pgcoro::error e(errc::query_failed, "ERROR: division by zero", sqlstate("22012"));
    EXPECT_EQ(e.to_string(), "query_failed [22012]: ERROR: division by zero");
    EXPECT_TRUE(e.is(errc::query_failed));
    EXPECT_FALSE(e.transient());
}

// Asio code expects boost::system::error_code: pgcoro's codes convert both ways and keep their
// category, so `ec == pgcoro::errc::timeout` holds after the conversion.
TEST(Error, ConvertsToBoostSystemErrorCode)
{
    pgcoro::error e(pgcoro::errc::timeout, "statement timed out");
    boost::system::error_code from_error = e.code;
    EXPECT_TRUE(from_error.failed());
    EXPECT_EQ(from_error, e.code);
    EXPECT_EQ(from_error.message(), e.code.message());
    boost::system::error_code from_enum = pgcoro::errc::pool_timeout;
    EXPECT_EQ(std::error_code(from_enum), pgcoro::make_error_code(pgcoro::errc::pool_timeout));
    EXPECT_NE(from_enum, boost::system::error_code(pgcoro::errc::timeout));
}
