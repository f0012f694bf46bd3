// Unit tests for pgcoro/observer.hpp, pgcoro/fingerprint.hpp and pgcoro/logging_observer.hpp:
// the fan-out, fingerprints that never carry a literal, and what the logger prints when.
#include <pgcoro/fingerprint.hpp>
#include <pgcoro/logging_observer.hpp>
#include <pgcoro/observer.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using pgcoro::fingerprint;
using pgcoro::fingerprint_hash;
using pgcoro::log_level;

namespace
{

// Records which hooks ran, tagged with this observer's name.
struct recording_observer : pgcoro::observer
{
    recording_observer(std::string n, std::vector<std::string>& l) : name(std::move(n)), log(l) {}
    void on_acquire(const pgcoro::acquire_event& e) noexcept override
    {
        log.push_back(name + ":acquire:" + std::string(to_string(e.outcome)));
    }
    void on_query_finished(const pgcoro::query_event&) noexcept override
    {
        log.push_back(name + ":query");
    }
    void on_connection_closed(const pgcoro::connection_closed_event& e) noexcept override
    {
        log.push_back(name + ":closed:" + std::string(to_string(e.reason)));
    }
    std::string name;
    std::vector<std::string>& log;
};

struct captured
{
    std::vector<std::pair<log_level, std::string>> lines;
    pgcoro::log_sink sink()
    {
        return [this](log_level l, std::string_view s)
        {
            lines.emplace_back(l, std::string(s));
        };
    }
};

} // namespace

TEST(Observer, DefaultHooksDoNothing)
{
    // The base class is usable as is: every hook is an empty body.
    pgcoro::observer o;
    o.on_connect_started({});
    o.on_connect_succeeded({});
    o.on_connect_failed({});
    o.on_acquire({});
    o.on_release({});
    o.on_query_finished({});
    o.on_slow_query({});
    o.on_retry({});
    o.on_breaker_transition({});
    o.on_leak_suspected({});
    o.on_connection_closed({});
    SUCCEED();
}

TEST(Observer, FanoutForwardsToEveryObserverInOrder)
{
    // Setup: two recorders and a null entry, which is skipped.
    std::vector<std::string> log;
    pgcoro::fanout_observer fan{std::make_shared<recording_observer>("a", log), nullptr};
    fan.add(std::make_shared<recording_observer>("b", log));
    fan.add(nullptr);
    EXPECT_EQ(fan.size(), 2u);
    // Act
    pgcoro::observer& o = fan;
    o.on_acquire({.outcome = pgcoro::acquire_outcome::timed_out});
    o.on_query_finished({});
    o.on_connection_closed({.reason = pgcoro::close_reason::lifetime});
    o.on_retry({}); // neither overrides it
    // Check
    EXPECT_EQ(log,
              (std::vector<std::string>{"a:acquire:timed_out", "b:acquire:timed_out", "a:query",
                                        "b:query", "a:closed:lifetime", "b:closed:lifetime"}));
}

TEST(Observer, EnumsHaveNames)
{
    EXPECT_EQ(to_string(pgcoro::close_reason::validation_failed), "validation_failed");
    EXPECT_EQ(to_string(pgcoro::acquire_outcome::rejected), "rejected");
    EXPECT_EQ(to_string(pgcoro::query_outcome::timed_out), "timed_out");
}

TEST(Observer, QueryEventTransientFollowsTheTable)
{
    pgcoro::query_event e;
    EXPECT_FALSE(e.transient()); // success
    e.outcome = pgcoro::query_outcome::failed;
    e.code = make_error_code(pgcoro::errc::query_failed);
    e.state = pgcoro::sqlstate("40001");
    EXPECT_TRUE(e.transient());
    e.state = pgcoro::sqlstate("23505");
    EXPECT_FALSE(e.transient());
    e.outcome = pgcoro::query_outcome::timed_out;
    EXPECT_TRUE(e.transient());
    e.outcome = pgcoro::query_outcome::cancelled;
    EXPECT_FALSE(e.transient());
}

TEST(Fingerprint, ReplacesLiteralsAndCollapsesWhitespace)
{
    EXPECT_EQ(fingerprint("select *\n  from users\twhere id = 42 and name = 'bob'"),
              "select * from users where id = ? and name = ?");
    EXPECT_EQ(fingerprint("  SELECT 1  "), "SELECT ?");
    EXPECT_EQ(fingerprint("insert into t(a,b) values (1.5e-3, -7), (.5, 0x1F)"),
              "insert into t(a,b) values (?, -?), (?, ?)");
}

TEST(Fingerprint, KeepsIdentifiersPlaceholdersAndQuotedNames)
{
    EXPECT_EQ(fingerprint("select t1.col2 from \"Tab 9\" t1 where x = $1 and y = $12"),
              "select t1.col2 from \"Tab 9\" t1 where x = $1 and y = $12");
}

TEST(Fingerprint, HandlesEveryStringForm)
{
    EXPECT_EQ(fingerprint("select 'it''s', E'a\\'b', B'0101', X'ff', N'x'"),
              "select ?, ?, ?, ?, ?");
    EXPECT_EQ(fingerprint("select $$body 'x'$$, $tag$a $$ b$tag$ + 1"), "select ?, ? + ?");
}

TEST(Fingerprint, DropsComments)
{
    EXPECT_EQ(fingerprint("select 1 -- password=hunter2\nfrom t /* token /* nested */ 99 */"),
              "select ? from t");
}

TEST(Fingerprint, UnterminatedLiteralSwallowsTheRest)
{
    EXPECT_EQ(fingerprint("select 'secret-without-end"), "select ?");
    EXPECT_EQ(fingerprint("select $q$secret"), "select ?");
}

TEST(Fingerprint, NeverContainsALiteralValue)
{
    // Every statement embeds the marker in some literal form; no fingerprint may show it.
    const std::vector<std::string> statements = {
        "update users set password = 'S3CRET' where id = 1",
        "select * from t where token = E'S3CRET\\n'",
        "select $$S3CRET$$",
        "select $x$ S3CRET $x$",
        "insert into t values ('a', 'S3CRET', 31337)",
        "select 'S3CRET' || 'x'",
        "select 'unterminated S3CRET",
        "/* S3CRET */ select 1",
        "select 1 -- S3CRET",
        "select 'it''s S3CRET'",
    };
    for (const auto& sql : statements)
    {
        const std::string f = fingerprint(sql);
        EXPECT_EQ(f.find("S3CRET"), std::string::npos) << sql << " -> " << f;
        EXPECT_EQ(f.find("31337"), std::string::npos) << sql << " -> " << f;
    }
}

TEST(Fingerprint, HashIgnoresLiteralsAndMatchesTheText)
{
    EXPECT_EQ(fingerprint_hash("select * from t where id = 1"),
              fingerprint_hash("select  *  from t where id = 99 -- other"));
    EXPECT_NE(fingerprint_hash("select * from t where id = 1"),
              fingerprint_hash("select * from u where id = 1"));
    static_assert(fingerprint_hash("select 1") == fingerprint_hash("select 2"));
    const pgcoro::statement_ref ref("select 'x' from t");
    EXPECT_EQ(ref.fingerprint(), "select ? from t");
    EXPECT_EQ(ref.hash(), fingerprint_hash("select 'y' from t"));
    EXPECT_TRUE(pgcoro::statement_ref().empty());
}

TEST(ObserverLogging, DropsLinesBelowTheMinimumLevel)
{
    // Setup: info and above.
    captured c;
    pgcoro::logging_observer o(c.sink(), log_level::info);
    // Act: a debug event (release) and a warn event (acquire timeout).
    o.on_release({.held = 3ms, .backend_pid = 7});
    o.on_acquire({.outcome = pgcoro::acquire_outcome::timed_out,
                  .waited = 5s,
                  .waiters = 2,
                  .where = pgcoro::source_location::current()});
    // Check
    ASSERT_EQ(c.lines.size(), 1u);
    EXPECT_EQ(c.lines[0].first, log_level::warn);
    EXPECT_EQ(c.lines[0].second.rfind("acquire outcome=timed_out waited_ms=5000 waiters=2 at=", 0),
              0u)
        << c.lines[0].second;
    EXPECT_NE(c.lines[0].second.find("observer_test.cpp:"), std::string::npos);
}

TEST(ObserverLogging, StatementTextOnlyAtDebugOrTrace)
{
    const pgcoro::query_event failed{.statement = pgcoro::statement_ref("select * from t where "
                                                                        "k = 'S3CRET'"),
                                     .elapsed = 1500us,
                                     .outcome = pgcoro::query_outcome::failed,
                                     .code = make_error_code(pgcoro::errc::query_failed),
                                     .state = pgcoro::sqlstate("42P01"),
                                     .message = "relation \"t\" does not exist",
                                     .backend_pid = 42};
    // Production-like: error line with the hash, no text.
    captured prod;
    pgcoro::logging_observer(prod.sink(), log_level::warn).on_query_finished(failed);
    ASSERT_EQ(prod.lines.size(), 1u);
    EXPECT_EQ(prod.lines[0].first, log_level::error);
    EXPECT_EQ(prod.lines[0].second.find("statement="), std::string::npos);
    EXPECT_NE(prod.lines[0].second.find("fingerprint="), std::string::npos);
    // The server's message may quote data values: left out unless asked for (issue 19).
    EXPECT_NE(prod.lines[0].second.find("error=query_failed sqlstate=42P01 sqlstate_class=42"),
              std::string::npos)
        << prod.lines[0].second;
    EXPECT_EQ(prod.lines[0].second.find("message="), std::string::npos) << prod.lines[0].second;
    captured opted_in;
    pgcoro::logging_observer(opted_in.sink(), log_level::warn, true).on_query_finished(failed);
    ASSERT_EQ(opted_in.lines.size(), 1u);
    EXPECT_NE(opted_in.lines[0].second.find("error=query_failed sqlstate=42P01 sqlstate_class=42 "
                                            "message=\"relation \\\"t\\\" does not exist\""),
              std::string::npos)
        << opted_in.lines[0].second;
    // Development: the fingerprint text, literals replaced.
    captured dev;
    pgcoro::logging_observer(dev.sink(), log_level::debug).on_query_finished(failed);
    ASSERT_EQ(dev.lines.size(), 1u);
    EXPECT_NE(dev.lines[0].second.find("statement=\"select * from t where k = ?\""),
              std::string::npos)
        << dev.lines[0].second;
    EXPECT_EQ(dev.lines[0].second.find("S3CRET"), std::string::npos);
}

TEST(ObserverLogging, LevelsPerEvent)
{
    captured c;
    pgcoro::logging_observer o(c.sink(), log_level::trace);
    o.on_connect_succeeded({.elapsed = 12ms, .backend_pid = 9});
    o.on_breaker_transition({pgcoro::breaker_state::closed, pgcoro::breaker_state::open});
    o.on_connection_closed({.reason = pgcoro::close_reason::broken});
    o.on_connection_closed({.reason = pgcoro::close_reason::idle_timeout});
    o.on_slow_query({.elapsed = 2s, .threshold = 1s});
    ASSERT_EQ(c.lines.size(), 5u);
    EXPECT_EQ(c.lines[0],
              std::make_pair(log_level::info, std::string("connect_succeeded backend_pid=9 "
                                                          "elapsed_ms=12")));
    EXPECT_EQ(c.lines[1],
              std::make_pair(log_level::warn, std::string("circuit_breaker from=closed to=open")));
    EXPECT_EQ(c.lines[2].first, log_level::warn);
    EXPECT_EQ(c.lines[3].first, log_level::info);
    EXPECT_EQ(c.lines[4],
              std::make_pair(log_level::warn,
                             std::string("slow_query elapsed_ms=2000 threshold_ms=1000")));
}

TEST(ObserverLogging, OffAndThrowingSinkAreSilent)
{
    captured c;
    pgcoro::logging_observer off(c.sink(), log_level::off);
    off.on_connect_failed({});
    EXPECT_TRUE(c.lines.empty());
    // A sink that throws must not escape the noexcept hook.
    pgcoro::logging_observer bad([](log_level, std::string_view) { throw 1; }, log_level::trace);
    bad.on_connect_failed({});
    pgcoro::logging_observer none(nullptr, log_level::trace);
    none.on_connect_failed({});
    SUCCEED();
}
