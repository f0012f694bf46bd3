// Client-side checks of a statement before it is sent: placeholders as PostgreSQL's lexer sees
// them, the parameter count, and libpq texts that mean TLS refused (pure functions, no server).
#include <pgcoro/detail/param_pack.hpp>
#include <pgcoro/detail/pq_error.hpp>
#include <pgcoro/detail/sql_scan.hpp>

#include <gtest/gtest.h>

#include <string>

using pgcoro::detail::highest_placeholder;

TEST(SqlScan, HighestPlaceholderOutsideLiteralsAndComments)
{
    EXPECT_EQ(highest_placeholder("SELECT 1"), 0u);
    EXPECT_EQ(highest_placeholder("SELECT $1::int + $2::int"), 2u);
    EXPECT_EQ(highest_placeholder("SELECT $2, $1, $10"), 10u);
    EXPECT_EQ(highest_placeholder("SELECT $1 -- and $9\n, 'x$7' "), 1u);
    EXPECT_EQ(highest_placeholder("SELECT /* $5 /* nested $6 */ $7 */ $1"), 1u);
    EXPECT_EQ(highest_placeholder("SELECT \"col$3\", $1"), 1u);
    EXPECT_EQ(highest_placeholder("SELECT 'it''s $4', $2"), 2u);
    EXPECT_EQ(highest_placeholder("SELECT E'\\' $4', $1"), 1u);
    EXPECT_EQ(highest_placeholder("SELECT $$ $3 $$, $tag$ $5 $tag$, $1"), 1u);
    EXPECT_EQ(highest_placeholder("SELECT a$1 FROM t"), 0u) << "identifiers may contain $";
    EXPECT_EQ(highest_placeholder("SELECT 1.5e3, $1"), 1u);
    EXPECT_EQ(highest_placeholder("SELECT x[1:$2]"), 2u);
}

TEST(SqlScan, UnfinishedTextIsLeftToTheServer)
{
    EXPECT_FALSE(highest_placeholder("SELECT 'open $1").has_value());
    EXPECT_FALSE(highest_placeholder("SELECT /* open $1").has_value());
    EXPECT_FALSE(highest_placeholder("SELECT $q$ open $1").has_value());
    EXPECT_FALSE(highest_placeholder("SELECT $99999999").has_value());
}

TEST(StatementCheck, CountMustMatchTheHighestPlaceholder)
{
    using pgcoro::detail::check_statement;
    EXPECT_TRUE(check_statement("SELECT $1::int + $2::int", 2).has_value());
    auto many = check_statement("SELECT $1::int + $2::int", 3);
    ASSERT_FALSE(many.has_value());
    EXPECT_TRUE(many.error().is(pgcoro::errc::invalid_argument));
    EXPECT_NE(many.error().message.find("3 parameters given"), std::string::npos) << many.error();
    EXPECT_NE(many.error().message.find("$2"), std::string::npos) << many.error();
    // Too few are left to the server, which names both counts (08P01).
    EXPECT_TRUE(check_statement("SELECT $2", 1).has_value());
    EXPECT_TRUE(check_statement("SELECT $1 || '$2'", 1).has_value());
    EXPECT_TRUE(check_statement("SELECT $1", 0).has_value());
    EXPECT_FALSE(check_statement(std::string("SELECT 1\0 2", 11), 0).has_value());
}

TEST(PqError, TlsRefusalsAreRecognisedButNetworkErrorsAreNot)
{
    using pgcoro::detail::is_tls_rejection;
    EXPECT_TRUE(is_tls_rejection("connection to server at \"127.0.0.1\", port 5432 failed: SSL "
                                 "error: certificate verify failed"));
    EXPECT_TRUE(is_tls_rejection("server certificate for \"localhost\" does not match host "
                                 "name \"db.example\""));
    EXPECT_TRUE(is_tls_rejection("root certificate file \"/x/root.crt\" does not exist"));
    EXPECT_TRUE(is_tls_rejection("server does not support SSL, but SSL was required"));
    EXPECT_FALSE(is_tls_rejection("SSL SYSCALL error: EOF detected"));
    EXPECT_FALSE(is_tls_rejection("Connection refused"));
    EXPECT_FALSE(is_tls_rejection("FATAL:  password authentication failed for user \"u\""));
}

TEST(PqError, LongServerTextsAreCutOnACharacterBoundary)
{
    using pgcoro::detail::bounded_field;
    using pgcoro::detail::max_error_field_bytes;
    EXPECT_EQ(bounded_field("short"), "short");
    std::string big(max_error_field_bytes - 1, 'x');
    big += "\xC3\xA9"; // é straddles the limit
    big += std::string(1000, 'y');
    auto cut = bounded_field(big);
    EXPECT_EQ(cut.substr(0, max_error_field_bytes - 1),
              std::string(max_error_field_bytes - 1, 'x'));
    EXPECT_EQ(cut.substr(max_error_field_bytes - 1, 3), "...") << "no half character kept";
    EXPECT_NE(cut.find("(1002 more bytes)"), std::string::npos) << cut;
    EXPECT_LT(cut.size(), max_error_field_bytes + 32);
}
