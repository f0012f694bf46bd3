// Issue 19, "Personal data in logs": a failed statement is logged and kept as the last failure
// with its code, SQLSTATE, SQLSTATE class and fingerprint only. The server's message and
// DETAIL quote data values, so they appear only with log_server_messages, which is off in
// staging and production.
#include <pgcoro/events.hpp>
#include <pgcoro/logging_observer.hpp>
#include <pgcoro/settings.hpp>
#include <pgcoro/stats_collector.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using pgcoro::errc;
using pgcoro::log_level;

namespace
{
// What a unique violation looks like: the message quotes the row's values.
const std::string pii = "duplicate key value violates unique constraint \"users_email_key\"\n"
                        "DETAIL:  Key (email)=(alice@example.com) already exists.";

pgcoro::query_event unique_violation()
{
    return {.statement = pgcoro::statement_ref("insert into users(email) values ($1)"),
            .elapsed = 2ms,
            .outcome = pgcoro::query_outcome::failed,
            .code = make_error_code(errc::query_failed),
            .state = pgcoro::sqlstate("23505"),
            .message = pii,
            .backend_pid = 7};
}

std::vector<std::string> log_lines(bool server_messages, log_level min = log_level::warn)
{
    std::vector<std::string> lines;
    pgcoro::logging_observer log([&](log_level, std::string_view l) { lines.emplace_back(l); }, min,
                                 server_messages);
    log.on_query_finished(unique_violation());
    log.on_retry({.attempt = 1,
                  .delay = 100ms,
                  .code = make_error_code(errc::query_failed),
                  .state = pgcoro::sqlstate("40001"),
                  .message = "could not serialize access; DETAIL: SSN 078-05-1120"});
    return lines;
}

std::chrono::system_clock::time_point fixed_now()
{
    return std::chrono::system_clock::time_point(1'700'000'000s);
}
} // namespace

TEST(LogPrivacy_Observer, FailedStatementLogsCodesAndFingerprintOnly)
{
    auto lines = log_lines(false);
    ASSERT_EQ(lines.size(), 2u);
    // The error line: code, SQLSTATE, its class and the statement's fingerprint hash.
    EXPECT_NE(lines[0].find("error=query_failed sqlstate=23505 sqlstate_class=23"),
              std::string::npos)
        << lines[0];
    EXPECT_NE(lines[0].find("fingerprint="), std::string::npos) << lines[0];
    for (const auto& l : lines)
    {
        EXPECT_EQ(l.find("alice@example.com"), std::string::npos) << l;
        EXPECT_EQ(l.find("078-05-1120"), std::string::npos) << l;
        EXPECT_EQ(l.find("message="), std::string::npos) << l;
    }
    // Even at trace level (development's statement text is the fingerprint, no values).
    for (const auto& l : log_lines(false, log_level::trace))
        EXPECT_EQ(l.find("alice@example.com"), std::string::npos) << l;
}

TEST(LogPrivacy_Observer, ServerMessagesAreOptIn)
{
    auto lines = log_lines(true);
    ASSERT_EQ(lines.size(), 2u);
    EXPECT_NE(lines[0].find("Key (email)=(alice@example.com) already exists."), std::string::npos)
        << lines[0];
    EXPECT_NE(lines[1].find("078-05-1120"), std::string::npos) << lines[1];
}

TEST(LogPrivacy_Observer, ClientSideMessagesStay)
{
    // A lost connection or a timeout is described by libpq or pgcoro, not by the server
    // about a row: the message stays, it is what an operator needs.
    std::vector<std::string> lines;
    pgcoro::logging_observer log([&](log_level, std::string_view l) { lines.emplace_back(l); });
    log.on_query_finished({.outcome = pgcoro::query_outcome::failed,
                           .code = make_error_code(errc::connection_lost),
                           .state = pgcoro::sqlstate("08006"),
                           .message = "server closed the connection unexpectedly"});
    log.on_connect_failed(
        {.code = make_error_code(errc::connect_failed), .message = "Connection refused"});
    ASSERT_EQ(lines.size(), 2u);
    EXPECT_NE(lines[0].find("message=\"server closed the connection unexpectedly\""),
              std::string::npos)
        << lines[0];
    EXPECT_NE(lines[1].find("message=\"Connection refused\""), std::string::npos) << lines[1];
}

TEST(LogPrivacy_Stats, LastFailureKeepsCodeAndSqlstateOnly)
{
    // A transient statement failure is a health failure; its server message is not kept.
    pgcoro::query_event e = unique_violation();
    e.state = pgcoro::sqlstate("40001");
    pgcoro::stats_collector c({.now = &fixed_now});
    c.on_query_finished(e);
    EXPECT_EQ(c.snapshot().last_failure_message, "query_failed [40001]");
    pgcoro::stats_collector opted_in({.now = &fixed_now, .server_messages = true});
    opted_in.on_query_finished(e);
    EXPECT_EQ(opted_in.snapshot().last_failure_message, "query_failed [40001]: " + pii);
}

TEST(LogPrivacy_Settings, OffInStagingAndProductionOnInDevelopment)
{
    auto get = [](std::map<std::string, std::string, std::less<>> env,
                  pgcoro::settings_overrides code = {})
    {
        return pgcoro::settings_from_env(pgcoro::env_from_map(std::move(env)), code);
    };
    auto s = get({});
    ASSERT_TRUE(s) << s.error();
    EXPECT_TRUE(s->log_server_messages);
    for (const char* prof : {"staging", "production"})
    {
        s = get({{"PGCORO_ENV", prof}, {"DATABASE_URL", "postgres://db.example/app"}});
        ASSERT_TRUE(s) << prof << "\n" << s.error();
        EXPECT_FALSE(s->log_server_messages) << prof;
        EXPECT_NE(s->to_string().find("log_server_messages: false"), std::string::npos);
    }
    // Explicit opt-in (env) and opt-out (code beats env).
    s = get({{"PGCORO_ENV", "production"},
             {"DATABASE_URL", "postgres://db.example/app"},
             {"PGCORO_LOG_SERVER_MESSAGES", "true"}});
    ASSERT_TRUE(s) << s.error();
    EXPECT_TRUE(s->log_server_messages);
    pgcoro::settings_overrides code;
    code.log_server_messages = false;
    s = get({{"PGCORO_LOG_SERVER_MESSAGES", "true"}}, code);
    ASSERT_TRUE(s) << s.error();
    EXPECT_FALSE(s->log_server_messages);
    s = get({{"PGCORO_LOG_SERVER_MESSAGES", "sometimes"}});
    ASSERT_FALSE(s);
    EXPECT_NE(s.error().to_string().find("env PGCORO_LOG_SERVER_MESSAGES = \"sometimes\": not a "
                                         "boolean"),
              std::string::npos)
        << s.error();
}
