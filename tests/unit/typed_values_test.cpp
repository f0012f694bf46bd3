// Unit tests for the typed layer (issue 20): value_traits for bytea, dates and times, uuid,
// numeric and arrays; rows into tuples, aggregates and described structs; the error messages.
// Results are built with libpq's own PQmakeEmptyPGresult/PQsetvalue, so every column type and
// odd value can be fed without a server (the round trips against the server are in
// tests/integration/typed_data_test.cpp).
#include <pgcoro/detail/param_pack.hpp>
#include <pgcoro/params.hpp>
#include <pgcoro/result.hpp>

#include <boost/describe/class.hpp>

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

using namespace std::chrono;
using pgcoro::errc;
namespace d = pgcoro::detail;

namespace
{

struct column
{
    std::string name;
    Oid type;
};

// A result with the given columns and rows (nullopt: NULL), as the server would send it.
pgcoro::result make_result(const std::vector<column>& cols,
                           const std::vector<std::vector<std::optional<std::string>>>& rows)
{
    PGresult* r = PQmakeEmptyPGresult(nullptr, PGRES_TUPLES_OK);
    std::vector<PGresAttDesc> attrs;
    for (const auto& c : cols)
        attrs.push_back(PGresAttDesc{const_cast<char*>(c.name.c_str()), 0, 0, 0, c.type, -1, -1});
    EXPECT_TRUE(PQsetResultAttrs(r, static_cast<int>(attrs.size()), attrs.data()));
    for (std::size_t i = 0; i < rows.size(); ++i)
        for (std::size_t j = 0; j < rows[i].size(); ++j)
        {
            const auto& v = rows[i][j];
            EXPECT_TRUE(PQsetvalue(r, static_cast<int>(i), static_cast<int>(j),
                                   v ? const_cast<char*>(v->c_str()) : nullptr,
                                   v ? static_cast<int>(v->size()) : -1));
        }
    return pgcoro::result(pgcoro::detail::pgresult_ptr(r));
}

pgcoro::result one_value(Oid type, std::optional<std::string> text, std::string name = "v")
{
    return make_result({{name, type}}, {{std::move(text)}});
}

template <class T>
std::string text_of(const T& v)
{
    std::string out;
    auto r = d::encode_param(v, out);
    EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().message);
    if (!out.empty() && out.back() == '\0')
        out.pop_back();
    return out;
}

template <class T>
std::string message_of(const pgcoro::expected<T>& r)
{
    return r ? std::string("(no error)") : r.error().message;
}

struct user_row
{
    int id;
    std::string name;
    std::optional<std::string> email;
};
BOOST_DESCRIBE_STRUCT(user_row, (), (id, name, email))

struct plain_row
{
    std::int64_t id;
    std::string name;
};

} // namespace

// ---- docs/api.md "Adding a type": the extension example, verbatim -----------------------
struct cents
{
    std::int64_t v;
}; // money-like amounts kept as integer cents, sent as numeric
template <>
struct pgcoro::value_traits<cents>
{
    static constexpr std::string_view name = "cents";
    static constexpr Oid oid = 1700; // numeric
    static pgcoro::expected<void> encode(cents c, std::string& out)
    {
        const std::int64_t a = c.v < 0 ? -c.v : c.v;
        out += (c.v < 0 ? "-" : "") + std::to_string(a / 100) + (a % 100 < 10 ? ".0" : ".") +
               std::to_string(a % 100);
        return {};
    }
    static bool accepts(Oid t) { return t == 1700; }
    static pgcoro::expected<cents> decode(std::string_view text, Oid t)
    {
        auto n = pgcoro::value_traits<pgcoro::numeric>::decode(text, t);
        if (!n)
            return tl::unexpected(n.error());
        auto scaled = pgcoro::numeric::parse(std::string(n->str()) + "e2"); // exact
        auto v = scaled ? scaled->to<std::int64_t>() : tl::unexpected(scaled.error());
        if (!v)
            return tl::unexpected(v.error());
        return cents{*v};
    }
};

TEST(Extension, ReadmeCentsTypeBothWays)
{
    EXPECT_EQ(text_of(cents{-5}), "-0.05");
    EXPECT_EQ(text_of(cents{123456}), "1234.56");
    std::string buf;
    auto enc = d::encode_params(buf, cents{7});
    ASSERT_TRUE(enc);
    EXPECT_EQ(enc->types[0], 1700u);
    EXPECT_EQ(one_value(d::oid_numeric, "12.34").get<cents>(0, 0).value().v, 1234);
    EXPECT_EQ(one_value(d::oid_numeric, "-0.5").get<cents>(0, 0).value().v, -50);
    EXPECT_TRUE(one_value(d::oid_numeric, "0.001").get<cents>(0, 0).error().is(errc::out_of_range));
    EXPECT_TRUE(one_value(d::oid_int4, "1").get<cents>(0, 0).error().is(errc::type_mismatch));
    EXPECT_EQ(make_result({{"price", d::oid_numeric}}, {{"1.00"}, {std::nullopt}})
                  .as<std::optional<cents>>()
                  .value()
                  .size(),
              2u);
}

// ---- errors name the column, its type and the C++ target ------------------------------------

TEST(TypedErrors, MismatchNamesColumnTypeAndTarget)
{
    auto r = make_result(
        {{"id", d::oid_int4}, {"name", d::oid_text}, {"created_at", d::oid_timestamptz}},
        {{"1", "x", "2024-01-01 00:00:00+00"}});
    auto v = r[0][2].get<std::int32_t>();
    ASSERT_FALSE(v);
    EXPECT_TRUE(v.error().is(errc::type_mismatch));
    EXPECT_EQ(v.error().message, "column 2 \"created_at\" is timestamptz, cannot read as int32_t");
}

TEST(TypedErrors, OutOfRangeIsNotInvalidText)
{
    auto neg = one_value(d::oid_int4, "-1").get<std::uint32_t>(0, 0);
    ASSERT_FALSE(neg);
    EXPECT_TRUE(neg.error().is(errc::out_of_range)) << neg.error().message;
    EXPECT_NE(neg.error().message.find("column 0 \"v\""), std::string::npos);

    auto big = one_value(d::oid_float8, "1e+300").get<float>(0, 0);
    ASSERT_FALSE(big);
    EXPECT_TRUE(big.error().is(errc::out_of_range)) << big.error().message;

    auto i8 = one_value(d::oid_int8, "9007199254740993").get<double>(0, 0); // 2^53 + 1
    ASSERT_FALSE(i8);
    EXPECT_TRUE(i8.error().is(errc::out_of_range));
    EXPECT_EQ(one_value(d::oid_int8, "9007199254740992").get<double>(0, 0).value(),
              9007199254740992.0);

    auto num = one_value(d::oid_numeric, "0.10000000000000001").get<double>(0, 0);
    ASSERT_FALSE(num);
    EXPECT_TRUE(num.error().is(errc::out_of_range));
    EXPECT_NE(num.error().message.find("pgcoro::numeric"), std::string::npos);
    auto forty =
        one_value(d::oid_numeric, "1234567890123456789012345678901234567890").get<double>(0, 0);
    EXPECT_FALSE(forty);
    EXPECT_EQ(one_value(d::oid_numeric, "0.1").get<double>(0, 0).value(), 0.1);
    EXPECT_EQ(one_value(d::oid_numeric, "-12.500").get<double>(0, 0).value(), -12.5);
    EXPECT_EQ(one_value(d::oid_int2, "-0").get<std::uint16_t>(0, 0).value(), 0);
}

TEST(TypedErrors, UnknownColumnNameIsAnErrorNotNull)
{
    auto r = make_result({{"id", d::oid_int4}}, {{"1"}});
    auto v = r[0]["typo"].get<int>();
    ASSERT_FALSE(v);
    EXPECT_TRUE(v.error().is(errc::out_of_range));
    EXPECT_EQ(v.error().message, "no column named \"typo\"");
    EXPECT_FALSE(r[0]["typo"].exists());
    try
    {
        (void)r[0]["typo"].is_null();
        ADD_FAILURE() << "is_null() on a missing column must not answer";
    }
    catch (const std::out_of_range& e)
    {
        EXPECT_NE(std::string(e.what()).find("\"typo\""), std::string::npos);
    }
    EXPECT_FALSE(r[0]["id"].is_null());
}

TEST(TypedErrors, NullIntoNonOptionalNamesColumnAndRow)
{
    auto r = make_result({{"id", d::oid_int4}, {"email", d::oid_text}},
                         {{"1", "a"}, {"2", std::nullopt}});
    auto v = r.as<std::tuple<int, std::string>>();
    ASSERT_FALSE(v);
    EXPECT_TRUE(v.error().is(errc::unexpected_null));
    EXPECT_EQ(v.error().message,
              "column 1 \"email\" is NULL in row 1; read it as std::optional<std::string>");
    auto ok = r.as<std::tuple<int, std::optional<std::string>>>();
    ASSERT_TRUE(ok);
    EXPECT_EQ(std::get<1>((*ok)[1]), std::nullopt);
}

// ---- rows into C++ types ------------------------------------------------------------------

TEST(RowMapping, TuplesStructuredBindings)
{
    auto r = make_result({{"id", d::oid_int4}, {"name", d::oid_text}}, {{"1", "a"}, {"2", "b"}});
    auto rows = r.as<std::tuple<int, std::string>>();
    ASSERT_TRUE(rows) << rows.error().message;
    std::string names;
    int sum = 0;
    for (auto [id, name] : *rows)
    {
        sum += id;
        names += name;
    }
    EXPECT_EQ(sum, 3);
    EXPECT_EQ(names, "ab");
    auto [id, name] = r[1].as<std::tuple<int, std::string>>().value();
    EXPECT_EQ(id, 2);
    EXPECT_EQ(name, "b");
    auto wide = r.as<std::tuple<int, std::string, int>>();
    ASSERT_FALSE(wide);
    EXPECT_EQ(wide.error().message, "the result has 2 columns, the row type 3");
}

TEST(RowMapping, DescribedStructsByNameInAnyOrder)
{
    auto r = make_result({{"email", d::oid_text}, {"name", d::oid_varchar}, {"id", d::oid_int4}},
                         {{std::nullopt, "ann", "7"}});
    auto u = r.one<user_row>();
    ASSERT_TRUE(u) << u.error().message;
    EXPECT_EQ(u->id, 7);
    EXPECT_EQ(u->name, "ann");
    EXPECT_EQ(u->email, std::nullopt);

    auto missing =
        make_result({{"id", d::oid_int4}, {"nme", d::oid_text}}, {{"1", "x"}}).as<user_row>();
    ASSERT_FALSE(missing);
    EXPECT_EQ(
        missing.error().message,
        "columns do not match the struct's members: missing \"name\", \"email\"; extra \"nme\"");
    auto typed = make_result({{"id", d::oid_text}, {"name", d::oid_text}, {"email", d::oid_text}},
                             {{"1", "x", "y"}})
                     .as<user_row>();
    ASSERT_FALSE(typed);
    EXPECT_EQ(typed.error().message, "column 0 \"id\" is text, cannot read as int32_t");
}

TEST(RowMapping, AggregatesByPositionAndSingleColumns)
{
    auto r = make_result({{"id", d::oid_int8}, {"name", d::oid_text}}, {{"10", "x"}});
    auto p = r.one<plain_row>();
    ASSERT_TRUE(p) << p.error().message;
    EXPECT_EQ(p->id, 10);
    EXPECT_EQ(p->name, "x");
    auto n = one_value(d::oid_int4, "5").one<int>();
    EXPECT_EQ(n.value(), 5);
    EXPECT_EQ(make_result({{"v", d::oid_int4}}, {}).opt<int>().value(), std::nullopt);
    auto two = make_result({{"v", d::oid_int4}}, {{"1"}, {"2"}});
    EXPECT_TRUE(two.one<int>().error().is(errc::out_of_range));
    EXPECT_EQ(two.one<int>().error().message, "expected exactly one row, the statement returned 2");
    EXPECT_TRUE(two.opt<int>().error().is(errc::out_of_range));
}

// ---- bytea --------------------------------------------------------------------------------

TEST(Bytea, EveryByteValueBothWays)
{
    std::vector<std::byte> all;
    std::string hex = "\\x";
    for (int i = 0; i < 256; ++i)
    {
        all.push_back(static_cast<std::byte>(i));
        constexpr char digits[] = "0123456789abcdef";
        hex.push_back(digits[i >> 4]);
        hex.push_back(digits[i & 15]);
    }
    EXPECT_EQ(one_value(d::oid_bytea, hex).get<std::vector<std::byte>>(0, 0).value(), all);
    // escape format (bytea_output = escape)
    EXPECT_EQ(
        one_value(d::oid_bytea, "a\\000\\\\\\377").get<std::vector<std::byte>>(0, 0).value(),
        (std::vector<std::byte>{std::byte{'a'}, std::byte{0}, std::byte{'\\'}, std::byte{255}}));
    EXPECT_FALSE(one_value(d::oid_bytea, "\\x0").get<std::vector<std::byte>>(0, 0));
    // sent in binary, where it is: no copy, no hex, NULs included
    std::string buf;
    auto enc = d::encode_params(buf, all, pgcoro::bytes_view(all), std::vector<std::byte>{});
    ASSERT_TRUE(enc);
    EXPECT_TRUE(enc->binary);
    EXPECT_EQ(enc->formats[0], 1);
    EXPECT_EQ(enc->lengths[0], 256);
    EXPECT_EQ(enc->values[0], reinterpret_cast<const char*>(all.data()));
    EXPECT_EQ(enc->types[1], d::oid_bytea);
    EXPECT_NE(enc->values[2], nullptr); // empty bytea is not NULL
    EXPECT_EQ(enc->lengths[2], 0);
    EXPECT_TRUE(buf.empty());
}

// ---- dates and times ----------------------------------------------------------------------

TEST(Chrono, DatesIncludingBcAndInfinity)
{
    using std::chrono::sys_days;
    auto read = [](const char* t)
    {
        return one_value(d::oid_date, t).get<sys_days>(0, 0);
    };
    EXPECT_EQ(read("2024-02-29").value(), sys_days(2024y / February / 29));
    EXPECT_EQ(read("0044-03-15 BC").value(), sys_days(year(-43) / March / 15));
    EXPECT_EQ(read("4714-11-24 BC").value(), sys_days(year(-4713) / November / 24));
    EXPECT_EQ(read("infinity").value(), sys_days::max());
    EXPECT_EQ(read("-infinity").value(), sys_days::min());
    EXPECT_EQ(read("5874897-12-31").value().time_since_epoch().count(),
              2145042905); // PostgreSQL's last date
    auto ymd = one_value(d::oid_date, "infinity").get<year_month_day>(0, 0);
    ASSERT_FALSE(ymd);
    EXPECT_NE(ymd.error().message.find("infinity"), std::string::npos);
    EXPECT_FALSE(one_value(d::oid_date, "5874897-12-31").get<year_month_day>(0, 0));
    EXPECT_EQ(one_value(d::oid_date, "1999-01-08").get<year_month_day>(0, 0).value(),
              1999y / January / 8);
    EXPECT_FALSE(one_value(d::oid_date, "01/08/1999").get<sys_days>(0, 0)); // DateStyle SQL

    EXPECT_EQ(text_of(sys_days(2024y / February / 29)), "2024-02-29");
    EXPECT_EQ(text_of(sys_days(year(-43) / March / 15)), "0044-03-15 BC");
    EXPECT_EQ(text_of(sys_days::max()), "infinity");
    EXPECT_EQ(text_of(1999y / January / 8), "1999-01-08");
}

TEST(Chrono, TimestamptzIsUtcWhateverTheOffset)
{
    using us_time = sys_time<microseconds>;
    auto read = [](const char* t)
    {
        return one_value(d::oid_timestamptz, t).get<us_time>(0, 0);
    };
    const us_time noon = sys_days(2024y / March / 10) + 12h;
    EXPECT_EQ(read("2024-03-10 12:00:00+00").value(), noon);
    EXPECT_EQ(read("2024-03-10 17:30:00+05:30").value(), noon);
    EXPECT_EQ(read("2024-03-10 08:00:00-04").value(), noon);
    EXPECT_EQ(read("1883-11-18 11:56:01.5-04:56:02").value(),
              sys_days(1883y / November / 18) + 16h + 52min + 3s + 500ms);
    EXPECT_EQ(read("2024-03-10 12:00:00.000001+00").value(), noon + 1us);
    EXPECT_EQ(read("infinity").value(), us_time::max());
    EXPECT_EQ(read("0001-01-01 00:00:00+00 BC").value(), us_time(sys_days(year(0) / January / 1)));
    EXPECT_TRUE(one_value(d::oid_timestamp, "2024-03-10 12:00:00")
                    .get<us_time>(0, 0)
                    .error()
                    .is(errc::type_mismatch));
    // seconds: exact or out_of_range
    EXPECT_EQ(
        one_value(d::oid_timestamptz, "2024-03-10 12:00:00+00").get<sys_seconds>(0, 0).value(),
        sys_seconds(noon.time_since_epoch() / 1s * 1s));
    EXPECT_TRUE(one_value(d::oid_timestamptz, "2024-03-10 12:00:00.5+00")
                    .get<sys_seconds>(0, 0)
                    .error()
                    .is(errc::out_of_range));
    // nanoseconds past year 2262 do not fit
    EXPECT_TRUE(one_value(d::oid_timestamptz, "2300-01-01 00:00:00+00")
                    .get<system_clock::time_point>(0, 0)
                    .error()
                    .is(errc::out_of_range));

    EXPECT_EQ(text_of(noon + 1us), "2024-03-10 12:00:00.000001+00");
    EXPECT_EQ(text_of(us_time(sys_days(year(0) / January / 1))),
              "0001-01-01 00:00:00.000000+00 BC");
    EXPECT_EQ(text_of(us_time::min()), "-infinity");
    EXPECT_EQ(text_of(local_time<microseconds>(local_days(2024y / March / 10) + 2h + 30min)),
              "2024-03-10 02:30:00.000000");
    EXPECT_EQ(one_value(d::oid_timestamp, "2024-03-10 02:30:00")
                  .get<local_time<microseconds>>(0, 0)
                  .value(),
              local_days(2024y / March / 10) + 2h + 30min);
}

TEST(Chrono, TimeAndInterval)
{
    EXPECT_EQ(one_value(d::oid_time, "13:45:06.25").get<microseconds>(0, 0).value(),
              13h + 45min + 6s + 250ms);
    EXPECT_EQ(one_value(d::oid_time, "24:00:00").get<microseconds>(0, 0).value(), 24h);
    EXPECT_EQ(text_of(microseconds(13h + 45min + 6s + 250ms)), "13:45:06.250000");
    auto iv = [](const char* t)
    {
        return one_value(d::oid_interval, t).get<pgcoro::interval>(0, 0).value();
    };
    EXPECT_EQ(iv("1 year 2 mons 3 days 04:05:06.789"),
              (pgcoro::interval{14, 3, 4h + 5min + 6s + 789ms}));
    EXPECT_EQ(iv("-1 days +02:03:00"), (pgcoro::interval{0, -1, 2h + 3min}));
    EXPECT_EQ(iv("-2 years -3 mons -4 days -05:06:07"),
              (pgcoro::interval{-27, -4, -(5h + 6min + 7s)}));
    EXPECT_EQ(iv("00:00:00"), pgcoro::interval{});
    EXPECT_EQ(iv("1 mon"), (pgcoro::interval{1, 0, 0us}));
    EXPECT_EQ(iv("100:00:00.000001"), (pgcoro::interval{0, 0, 100h + 1us}));
    EXPECT_FALSE(one_value(d::oid_interval, "P1Y2M").get<pgcoro::interval>(0, 0)); // iso_8601 style
    EXPECT_EQ(text_of(pgcoro::interval{14, -3, -(1h + 1us)}), "14 mons -3 days -01:00:00.000001");
}

// ---- uuid, numeric ------------------------------------------------------------------------

TEST(Uuid, ReadAndSend)
{
    auto u = one_value(d::oid_uuid, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
                 .get<boost::uuids::uuid>(0, 0);
    ASSERT_TRUE(u);
    EXPECT_EQ(u->data[0], 0xa0);
    EXPECT_EQ(u->data[15], 0x11);
    EXPECT_EQ(text_of(*u), "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
    EXPECT_EQ(one_value(d::oid_uuid, "{a0eebc999c0b4ef8bb6d6bb9bd380a11}")
                  .get<boost::uuids::uuid>(0, 0)
                  .value(),
              *u);
    EXPECT_FALSE(one_value(d::oid_uuid, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1")
                     .get<boost::uuids::uuid>(0, 0));
    EXPECT_FALSE(one_value(d::oid_uuid, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11z")
                     .get<boost::uuids::uuid>(0, 0));
}

TEST(Numeric, ExactAndLossless)
{
    const std::string forty = "-1234567890123456789012345678901234.567890";
    auto n = one_value(d::oid_numeric, forty).get<pgcoro::numeric>(0, 0);
    ASSERT_TRUE(n);
    EXPECT_EQ(n->str(), forty);
    EXPECT_EQ(text_of(*n), forty);
    EXPECT_FALSE(n->to<double>());
    EXPECT_TRUE(n->to<std::int64_t>().error().is(errc::out_of_range));
    EXPECT_EQ(pgcoro::numeric::parse("120").value().to<int>().value(), 120);
    EXPECT_EQ(pgcoro::numeric::parse("1.2e2").value().to<int>().value(), 120);
    EXPECT_FALSE(pgcoro::numeric::parse("12.5").value().to<int>());
    EXPECT_EQ(pgcoro::numeric::parse("0.25").value().to<double>().value(), 0.25);
    EXPECT_FALSE(pgcoro::numeric::parse("12,5"));
    EXPECT_FALSE(pgcoro::numeric::parse("NaN").value().to<int>());
    EXPECT_TRUE(std::isnan(pgcoro::numeric::parse("NaN").value().to<double>().value()));
    EXPECT_EQ(pgcoro::numeric::parse("1.50").value(), pgcoro::numeric::parse("1.5").value());
    EXPECT_EQ(pgcoro::numeric::from(-42).str(), "-42");
}

// ---- arrays -------------------------------------------------------------------------------

TEST(Arrays, ReadWithNullsQuotesAndBounds)
{
    using opt_ints = std::vector<std::optional<int>>;
    EXPECT_EQ(one_value(1007, "{1,NULL,-3}").get<opt_ints>(0, 0).value(),
              (opt_ints{1, std::nullopt, -3}));
    auto no_null = one_value(1007, "{1,NULL,-3}").get<std::vector<int>>(0, 0);
    ASSERT_FALSE(no_null);
    EXPECT_TRUE(no_null.error().is(errc::unexpected_null));
    EXPECT_NE(no_null.error().message.find("array element 2"), std::string::npos);
    EXPECT_EQ(one_value(1007, "{}").get<std::vector<int>>(0, 0).value(), std::vector<int>{});
    EXPECT_EQ(one_value(1007, "[0:1]={5,6}").get<std::vector<int>>(0, 0).value(),
              (std::vector<int>{5, 6}));
    using strs = std::vector<std::optional<std::string>>;
    EXPECT_EQ(one_value(1009, R"({"a\"b","c,d",NULL,"NULL",plain,"back\\slash","",  sp  })")
                  .get<strs>(0, 0)
                  .value(),
              (strs{"a\"b", "c,d", std::nullopt, "NULL", "plain", "back\\slash", "", "sp"}));
    EXPECT_TRUE(one_value(1007, "{{1,2},{3,4}}")
                    .get<std::vector<int>>(0, 0)
                    .error()
                    .is(errc::type_mismatch));
    EXPECT_TRUE(
        one_value(d::oid_int4, "1").get<std::vector<int>>(0, 0).error().is(errc::type_mismatch));
    auto bad = one_value(1007, "{1,x}").get<std::vector<int>>(0, 0);
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().message.find("array element 2"), std::string::npos);
    EXPECT_EQ(one_value(1185, R"({"2024-01-01 00:00:00+00"})")
                  .get<std::vector<sys_time<microseconds>>>(0, 0)
                  .value()
                  .at(0),
              sys_time<microseconds>(sys_days(2024y / January / 1)));
    EXPECT_EQ(one_value(1000, "{t,f}").get<std::vector<bool>>(0, 0).value(),
              (std::vector<bool>{true, false}));
}

TEST(Arrays, SendQuotedWithTheArrayType)
{
    Oid t = 0;
    std::string out;
    auto r = d::encode_param(
        std::vector<std::optional<std::string>>{"a\"b", std::nullopt, "c,d", "\\"}, out);
    ASSERT_TRUE(r);
    out.pop_back();
    EXPECT_EQ(out, R"({"a\"b",NULL,"c,d","\\"})");
    EXPECT_EQ(r->type, d::oid_unknown); // text[] inferred by the server
    t = d::encode_param(std::vector<int>{}, out)->type;
    EXPECT_EQ(t, 1007u);
    EXPECT_EQ(text_of(std::vector<std::int64_t>{1, -2}), "{\"1\",\"-2\"}");
    EXPECT_EQ(text_of(std::vector<bool>{true}), "{\"t\"}");
    EXPECT_EQ(text_of(std::vector<std::vector<std::byte>>{{std::byte{0}, std::byte{255}}}),
              R"({"\\x00ff"})");
    out.clear();
    EXPECT_TRUE(d::encode_param(std::vector<std::string>{std::string("a\0b", 3)}, out)
                    .error()
                    .is(errc::invalid_argument));
}

// ---- parameters -----------------------------------------------------------------------------

TEST(Params, RuntimeListsKeepTypesNullsAndTheFirstError)
{
    pgcoro::params p;
    p.add(1).add(std::string("x")).add(std::optional<int>{}).add(std::vector<int>{1, 2}).add_null();
    const char* nothing = nullptr;
    p.add(nothing);
    ASSERT_EQ(p.size(), 6u);
    EXPECT_FALSE(p.encoding_error());
    EXPECT_EQ(p.types()[0], d::oid_int4);
    EXPECT_EQ(p.types()[3], 1007u);
    EXPECT_STREQ(p.values()[1], "x");
    EXPECT_EQ(p.values()[2], nullptr);
    EXPECT_EQ(p.values()[4], nullptr);
    EXPECT_EQ(p.values()[5], nullptr);
    EXPECT_EQ(p.formats(), nullptr); // all text
    p.add(std::string_view("a\0b", 3));
    ASSERT_TRUE(p.encoding_error());
    EXPECT_EQ(p.encoding_error()->message.rfind("parameter $7: ", 0), 0u);
    p.clear();
    std::vector<std::byte> b{std::byte{0}};
    p.add(b);
    ASSERT_NE(p.formats(), nullptr);
    EXPECT_EQ(p.formats()[0], 1);
    EXPECT_EQ(p.lengths()[0], 1);
}
