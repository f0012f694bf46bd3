// Round trips of the typed layer (issue 20) against the real server: every value is sent as a
// parameter and compared with the server's own text of it (`$1::text`) and with a literal the
// server parsed itself, then read back; edge values per type (limits, NaN, -0, 40-digit numeric,
// every byte value, DST, a non-UTC session TimeZone, BC dates, infinity, arrays with NULLs and
// quotes, UTF-8).
#include <pgcoro/connection.hpp>
#include <pgcoro/params.hpp>

#include "support/test_server.hpp"

#include <boost/describe/class.hpp>

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <vector>

// GCC 12 at -O2 warns "operator delete called on pointer returned from a mismatched allocation
// function" for Asio's awaitable frames when it inlines a helper coroutine's frame allocation
// (round_trip below); both come from awaitable_frame_base's own operator new/delete.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace asio = boost::asio;
using namespace std::chrono;
using pgcoro::test::run;
using pgcoro::test::test_server;

namespace
{

using us_time = sys_time<microseconds>;

// Sends `v` as $1 and checks: the server's text of it is `server_text`, it equals the literal
// `literal` (parsed by the server), and reading it back gives `v` again.
template <class T>
asio::awaitable<void> round_trip(pgcoro::connection& c, const T& v, std::string_view server_text,
                                 std::string literal, std::string cast = "")
{
    const std::string sql = "SELECT $1" + cast + "::text, $1" + cast + ", ($1" + cast +
                            " IS NOT DISTINCT FROM " + literal + ")";
    pgcoro::expected<pgcoro::result> r = co_await c.query(sql, v);
    EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().to_string()) << " for " << literal;
    if (!r)
        co_return;
    EXPECT_EQ(r->get<std::string>(0, 0).value_or("?"), server_text) << literal;
    EXPECT_TRUE(r->get<bool>(0, 2).value_or(false)) << literal << " differs from the value sent";
    auto back = r->get<T>(0, 1);
    EXPECT_TRUE(back.has_value()) << (back ? "" : back.error().message) << " for " << literal;
    if (back)
    {
        if constexpr (std::is_floating_point_v<T>)
        {
            if (std::isnan(v))
            {
                EXPECT_TRUE(std::isnan(*back));
            }
            else
            {
                EXPECT_EQ(*back, v) << literal;
                EXPECT_EQ(std::signbit(*back), std::signbit(v)) << literal;
            }
        }
        else
        {
            EXPECT_TRUE(*back == v) << literal;
        }
    }
    // And the literal, parsed by the server, read as T.
    pgcoro::expected<pgcoro::result> lit = co_await c.query("SELECT " + literal + cast);
    EXPECT_TRUE(lit.has_value());
    if (lit)
    {
        auto x = lit->template get<T>(0, 0);
        EXPECT_TRUE(x.has_value()) << (x ? "" : x.error().message) << " reading " << literal;
        if constexpr (!std::is_floating_point_v<T>)
        {
            EXPECT_TRUE(x && *x == v) << "reading " << literal;
        }
    }
}

struct account
{
    std::int64_t id;
    std::string email;
    us_time created_at;
    std::vector<std::string> tags;
    std::optional<std::vector<std::byte>> avatar;
};
BOOST_DESCRIBE_STRUCT(account, (), (id, email, created_at, tags, avatar))

} // namespace

TEST(TypedData, IntegersAndFloatsAtTheirLimits)
{
    asio::io_context io;
    run(io,
        []() -> asio::awaitable<void>
        {
            auto c = co_await pgcoro::open_connection(co_await asio::this_coro::executor,
                                                      test_server::get().tcp());
            PGCORO_CO_ASSERT(c.has_value());
            using L64 = std::numeric_limits<std::int64_t>;
            co_await round_trip(*c, L64::max(), "9223372036854775807", "9223372036854775807::int8");
            co_await round_trip(*c, L64::min(), "-9223372036854775808",
                                "(-9223372036854775808)::int8");
            co_await round_trip(*c, std::int16_t{-32768}, "-32768", "(-32768)::int2");
            co_await round_trip(*c, std::int32_t{2147483647}, "2147483647", "2147483647");
            co_await round_trip(*c, std::numeric_limits<double>::quiet_NaN(), "NaN",
                                "'NaN'::float8");
            co_await round_trip(*c, std::numeric_limits<double>::infinity(), "Infinity",
                                "'Infinity'::float8");
            co_await round_trip(*c, -std::numeric_limits<double>::infinity(), "-Infinity",
                                "'-Infinity'::float8");
            co_await round_trip(*c, -0.0, "-0", "'-0'::float8");
            co_await round_trip(*c, 0.1, "0.1", "0.1::float8");
            co_await round_trip(*c, std::numeric_limits<double>::max(), "1.7976931348623157e+308",
                                "1.7976931348623157e+308::float8");
            co_await round_trip(*c, std::numeric_limits<double>::denorm_min(), "5e-324",
                                "5e-324::float8");
            co_await round_trip(*c, 3.4028235e38f, "3.4028235e+38", "3.4028235e+38::float4");
            // the server's own extremes, read and refused
            auto r = co_await c->query("SELECT 9007199254740993::int8, 1e300::float8, (-1)::int4");
            EXPECT_TRUE(r->get<double>(0, 0).error().is(pgcoro::errc::out_of_range));
            EXPECT_TRUE(r->get<float>(0, 1).error().is(pgcoro::errc::out_of_range));
            EXPECT_TRUE(r->get<std::uint32_t>(0, 2).error().is(pgcoro::errc::out_of_range));
            EXPECT_EQ(r->get<std::uint32_t>(0, 2).error().message,
                      "column 2 \"int4\" (integer) as uint32_t: negative value cannot be read as "
                      "uint32_t");
        }());
}

TEST(TypedData, NumericFortyDigitsExactly)
{
    asio::io_context io;
    run(io,
        []() -> asio::awaitable<void>
        {
            auto c = co_await pgcoro::open_connection(co_await asio::this_coro::executor,
                                                      test_server::get().tcp());
            PGCORO_CO_ASSERT(c.has_value());
            const std::string forty = "-123456789012345678901234567890.1234567890";
            co_await round_trip(*c, pgcoro::numeric::parse(forty).value(), forty,
                                "'" + forty + "'::numeric");
            co_await round_trip(*c, pgcoro::numeric::parse("NaN").value(), "NaN", "'NaN'::numeric");
            auto r = co_await c->query("SELECT 0.1::numeric, 0.10000000000000001::numeric, "
                                       "12345678901234567890::numeric");
            EXPECT_EQ(r->get<double>(0, 0).value(), 0.1);
            auto lossy = r->get<double>(0, 1);
            PGCORO_CO_ASSERT(!(lossy.has_value()));
            EXPECT_EQ(lossy.error().message,
                      "column 1 \"numeric\" (numeric) as double: numeric value cannot be "
                      "represented exactly as double; read it as pgcoro::numeric");
            EXPECT_FALSE(r->get<double>(0, 2).has_value());
            EXPECT_EQ(r->get<pgcoro::numeric>(0, 2)->str(), "12345678901234567890");
        }());
}

TEST(TypedData, ByteaEveryByteValueInBinary)
{
    asio::io_context io;
    run(io,
        []() -> asio::awaitable<void>
        {
            auto c = co_await pgcoro::open_connection(co_await asio::this_coro::executor,
                                                      test_server::get().tcp());
            PGCORO_CO_ASSERT(c.has_value());
            std::vector<std::byte> all;
            std::string hex;
            for (int i = 0; i < 256; ++i)
            {
                all.push_back(static_cast<std::byte>(i));
                constexpr char digits[] = "0123456789abcdef";
                hex += digits[i >> 4];
                hex += digits[i & 15];
            }
            co_await round_trip(*c, all, "\\x" + hex, "decode('" + hex + "', 'hex')");
            co_await round_trip(*c, std::vector<std::byte>{}, "\\x", "''::bytea");
            // a view, not copied; with other parameters in text beside it
            auto r =
                co_await c->query("SELECT length($1), $2::int + 1", pgcoro::bytes_view(all), 41);
            EXPECT_EQ(r->get<int>(0, 0).value(), 256);
            EXPECT_EQ(r->get<int>(0, 1).value(), 42);
            // escape output format reads the same bytes
            co_await c->query("SET bytea_output = 'escape'");
            auto e = co_await c->query("SELECT decode('" + hex + "', 'hex')");
            EXPECT_EQ(e->get<std::vector<std::byte>>(0, 0).value(), all);
        }());
}

TEST(TypedData, TimestampsAcrossDstInANonUtcSession)
{
    asio::io_context io;
    run(io,
        []() -> asio::awaitable<void>
        {
            auto c = co_await pgcoro::open_connection(co_await asio::this_coro::executor,
                                                      test_server::get().tcp());
            PGCORO_CO_ASSERT(c.has_value());
            co_await c->query("SET TimeZone = 'America/New_York'");
            const us_time before = sys_days(2024y / March / 10) + 6h + 59min + 59s + 999999us;
            const us_time after = sys_days(2024y / March / 10) + 7h;
            co_await round_trip(*c, before, "2024-03-10 01:59:59.999999-05",
                                "'2024-03-10 06:59:59.999999+00'::timestamptz");
            co_await round_trip(*c, after, "2024-03-10 03:00:00-04",
                                "'2024-03-10 07:00:00+00'::timestamptz");
            co_await c->query("SET TimeZone = 'Asia/Kolkata'");
            co_await round_trip(*c, after, "2024-03-10 12:30:00+05:30",
                                "'2024-03-10 07:00:00+00'::timestamptz");
            co_await c->query("SET TimeZone = 'Africa/Monrovia'"); // -00:44:30 before 1972
            co_await round_trip(*c, us_time(sys_days(1960y / January / 1)),
                                "1959-12-31 23:15:30-00:44:30",
                                "'1960-01-01 00:00:00+00'::timestamptz");
            co_await round_trip(*c, us_time::max(), "infinity", "'infinity'::timestamptz");
            co_await round_trip(*c, us_time::min(), "-infinity", "'-infinity'::timestamptz");
            co_await round_trip(*c, us_time(sys_days(year(-99) / June / 1) + 12h),
                                "0100-06-01 11:16:52-00:43:08 BC", // Monrovia LMT
                                "'0100-06-01 12:00:00+00 BC'::timestamptz");
            // timestamp (no zone): local_time, untouched by TimeZone
            const auto local = local_days(2024y / March / 10) + 2h + 30min; // not a NY time
            co_await round_trip(*c, local_time<microseconds>(local), "2024-03-10 02:30:00",
                                "'2024-03-10 02:30:00'::timestamp");
            // system_clock::now() goes in (truncated to microseconds) and comes back
            const auto now = floor<microseconds>(system_clock::now());
            auto r = co_await c->query("SELECT $1", now);
            EXPECT_EQ(r->get<us_time>(0, 0).value(), now);
        }());
}

TEST(TypedData, DatesTimesIntervalsBcAndInfinity)
{
    asio::io_context io;
    run(io,
        []() -> asio::awaitable<void>
        {
            auto c = co_await pgcoro::open_connection(co_await asio::this_coro::executor,
                                                      test_server::get().tcp());
            PGCORO_CO_ASSERT(c.has_value());
            co_await round_trip(*c, sys_days(2024y / February / 29), "2024-02-29",
                                "'2024-02-29'::date");
            co_await round_trip(*c, sys_days(year(-43) / March / 15), "0044-03-15 BC",
                                "'0044-03-15 BC'::date");
            co_await round_trip(*c, sys_days(year(-4713) / November / 24), "4714-11-24 BC",
                                "'4714-11-24 BC'::date");
            co_await round_trip(*c, sys_days::max(), "infinity", "'infinity'::date");
            co_await round_trip(*c, sys_days::min(), "-infinity", "'-infinity'::date");
            co_await round_trip(*c, 1999y / January / 8, "1999-01-08", "'1999-01-08'::date");
            co_await round_trip(*c, microseconds(23h + 59min + 59s + 1us), "23:59:59.000001",
                                "'23:59:59.000001'::time");
            co_await round_trip(*c, pgcoro::interval{14, -3, 4h + 5min + 6s + 789ms},
                                "1 year 2 mons -3 days +04:05:06.789",
                                "'1 year 2 mons -3 days 04:05:06.789'::interval");
            co_await round_trip(*c, pgcoro::interval{0, 0, -(1h + 1us)}, "-01:00:00.000001",
                                "'-01:00:00.000001'::interval");
            auto r = co_await c->query("SELECT '5874897-12-31'::date, 'infinity'::date");
            EXPECT_EQ(r->get<sys_days>(0, 0).value(), sys_days(days(2145042905)));
            EXPECT_TRUE(r->get<year_month_day>(0, 1).error().is(pgcoro::errc::out_of_range));
        }());
}

TEST(TypedData, ArraysEmptyWithNullsQuotesAndUtf8)
{
    asio::io_context io;
    run(io,
        []() -> asio::awaitable<void>
        {
            auto c = co_await pgcoro::open_connection(co_await asio::this_coro::executor,
                                                      test_server::get().tcp());
            PGCORO_CO_ASSERT(c.has_value());
            co_await round_trip(*c, std::vector<int>{}, "{}", "'{}'::int4[]");
            const std::vector<std::optional<int>> with_null{1, std::nullopt, -3};
            co_await round_trip(*c, with_null, "{1,NULL,-3}", "ARRAY[1,NULL,-3]");
            using strs = std::vector<std::optional<std::string>>;
            const strs odd{"a\"b",        std::nullopt, "c,d",  "NULL",        "",
                           "back\\slash", "{x}",        " sp ", "héllo 日本 🎉"};
            const std::string odd_text =
                R"({"a\"b",NULL,"c,d","NULL","","back\\slash","{x}"," sp ","héllo 日本 🎉"})";
            const std::string odd_literal =
                R"(ARRAY['a"b', NULL, 'c,d', 'NULL', '', E'back\\slash', '{x}', ' sp ', 'héllo 日本 🎉'])";
            co_await round_trip(*c, odd, odd_text, odd_literal, "::text[]");
            const std::vector<us_time> stamps{us_time(sys_days(2024y / January / 1))};
            const std::string stamps_text = R"({"2024-01-01 00:00:00+00"})";
            co_await round_trip(*c, stamps, stamps_text,
                                "ARRAY['2024-01-01 00:00:00+00'::timestamptz]");
            const std::vector<bool> flags{true, false};
            co_await round_trip(*c, flags, "{t,f}", "ARRAY[true,false]");
            const std::vector<double> reals{1.5, -0.25};
            co_await round_trip(*c, reals, "{1.5,-0.25}", "ARRAY[1.5,-0.25]::float8[]");
            const std::vector<std::vector<std::byte>> blobs{{std::byte{0}, std::byte{255}}};
            const std::string blobs_text = R"({"\\x00ff"})";
            co_await round_trip(*c, blobs, blobs_text, R"(ARRAY['\x00ff'::bytea])");
            const std::string utf8 = "héllo wörld 日本 🎉";
            co_await round_trip(*c, utf8, utf8, "'" + utf8 + "'::text");
            auto m = co_await c->query("SELECT ARRAY[[1,2],[3,4]]");
            EXPECT_TRUE(m->get<std::vector<int>>(0, 0).error().is(pgcoro::errc::type_mismatch));
        }());
}

TEST(TypedData, AnyOfAnArrayAndRuntimeParameterLists)
{
    asio::io_context io;
    run(io,
        []() -> asio::awaitable<void>
        {
            auto c = co_await pgcoro::open_connection(co_await asio::this_coro::executor,
                                                      test_server::get().tcp());
            PGCORO_CO_ASSERT(c.has_value());
            const std::vector<int> wanted{2, 3, 5, 11};
            auto r = co_await c->query(
                "SELECT count(*) FROM generate_series(1, 10) g WHERE g = ANY($1)", wanted);
            EXPECT_EQ(r->get<int>(0, 0).value(), 3);
            const std::vector<std::string> names{"a", "c"};
            auto s = co_await c->query("SELECT count(*) FROM (VALUES ('a'), ('b'), ('c')) v(x) "
                                       "WHERE x = ANY($1)",
                                       names);
            EXPECT_EQ(s->get<int>(0, 0).value(), 2);
            // a filter built at run time
            pgcoro::params p;
            std::string sql = "SELECT count(*) FROM generate_series(1, 100) g WHERE true";
            const std::vector<int> bounds{10, 90};
            for (int bound : bounds)
            {
                p.add(bound);
                sql += (p.size() == 1 ? " AND g > $" : " AND g < $") + std::to_string(p.size());
            }
            auto f = co_await c->query(sql, p);
            EXPECT_TRUE(f.has_value()) << f.error().to_string();
            if (!(f.has_value()))
                co_return;
            EXPECT_EQ(f->get<int>(0, 0).value(), 79);
            pgcoro::params bad;
            bad.add(1).add(std::string_view("a\0b", 3));
            auto b = co_await c->query("SELECT $1, $2", bad);
            PGCORO_CO_ASSERT(!(b.has_value()));
            EXPECT_TRUE(b.error().is(pgcoro::errc::invalid_argument));
            EXPECT_EQ(b.error().message.rfind("parameter $2: ", 0), 0u);
            // a null const char* is NULL, not a crash
            const char* none = nullptr;
            auto n = co_await c->query("SELECT $1::text IS NULL", none);
            EXPECT_TRUE(n->get<bool>(0, 0).value());
        }());
}

TEST(TypedData, RowsIntoStructsUuidJsonEnumsAndDomains)
{
    asio::io_context io;
    run(io,
        []() -> asio::awaitable<void>
        {
            auto c = co_await pgcoro::open_connection(co_await asio::this_coro::executor,
                                                      test_server::get().tcp());
            PGCORO_CO_ASSERT(c.has_value());
            auto acc = co_await c->query_one<account>(
                "SELECT 7::int8 AS id, 'a@example.com' AS email, "
                "'2024-01-01 00:00:00+00'::timestamptz AS created_at, ARRAY['x','y'] AS tags, "
                "NULL::bytea AS avatar");
            EXPECT_TRUE(acc.has_value()) << acc.error().message;
            if (!(acc.has_value()))
                co_return;
            EXPECT_EQ(acc->id, 7);
            EXPECT_EQ(acc->tags, (std::vector<std::string>{"x", "y"}));
            EXPECT_EQ(acc->avatar, std::nullopt);
            auto none = co_await c->query_opt<int>("SELECT 1 WHERE false");
            EXPECT_EQ(none.value(), std::nullopt);
            auto many = co_await c->query_one<int>("SELECT generate_series(1, 2)");
            EXPECT_TRUE(many.error().is(pgcoro::errc::out_of_range));

            auto u = co_await c->query("SELECT gen_random_uuid()");
            auto id = u->get<boost::uuids::uuid>(0, 0).value();
            auto eq =
                co_await c->query("SELECT $1 = $2::uuid", id, u->get<std::string>(0, 0).value());
            EXPECT_TRUE(eq->get<bool>(0, 0).value());

            auto j = co_await c->query("SELECT '{\"a\": [1, 2]}'::jsonb, $1::json",
                                       std::string("{\"b\":1}"));
            EXPECT_EQ(j->get<std::string>(0, 0).value(), "{\"a\": [1, 2]}");
            EXPECT_EQ(j->get<std::string>(0, 1).value(), "{\"b\":1}");

            // enums and domains (their own OIDs) read as their base text / type
            co_await c->query("DROP TYPE IF EXISTS pgcoro_mood; DROP DOMAIN IF EXISTS pgcoro_pos");
            co_await c->query("CREATE TYPE pgcoro_mood AS ENUM ('sad', 'happy')");
            co_await c->query("CREATE DOMAIN pgcoro_pos AS int CHECK (VALUE > 0)");
            auto e = co_await c->query("SELECT 'happy'::pgcoro_mood, 5::pgcoro_pos, "
                                       "ARRAY['sad'::pgcoro_mood], $1::pgcoro_mood",
                                       std::string("sad"));
            EXPECT_TRUE(e.has_value()) << e.error().to_string();
            if (!(e.has_value()))
                co_return;
            EXPECT_EQ(e->get<std::string>(0, 0).value(), "happy");
            EXPECT_EQ(e->get<int>(0, 1).value(), 5);
            EXPECT_EQ(e->get<std::vector<std::string>>(0, 2).value(),
                      std::vector<std::string>{"sad"});
            EXPECT_EQ(e->get<std::string>(0, 3).value(), "sad");
            co_await c->query("DROP TYPE pgcoro_mood; DROP DOMAIN pgcoro_pos");

            auto mismatch = co_await c->query("SELECT now() AS created_at");
            EXPECT_EQ(mismatch->get<std::int32_t>(0, 0).error().message,
                      "column 0 \"created_at\" is timestamptz, cannot read as int32_t");
        }());
}
