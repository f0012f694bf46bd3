// Unit tests for the opt-in pgcoro/boost_json.hpp (json / jsonb <-> boost::json::value).
#include <pgcoro/boost_json.hpp>
#include <pgcoro/detail/text_codec.hpp>

#include <boost/json/src.hpp> // Boost.JSON compiled into this test binary, once

#include <gtest/gtest.h>

using pgcoro::errc;
namespace d = pgcoro::detail;

TEST(BoostJson, ReadsAndSendsJsonb)
{
    auto v = d::decode_field<boost::json::value>(R"({"a": [1, 2.5, null, "x"]})", d::oid_jsonb);
    ASSERT_TRUE(v);
    EXPECT_EQ(v->at("a").as_array().size(), 4u);
    EXPECT_EQ(v->at("a").at(0).as_int64(), 1);
    std::string out;
    auto e = d::encode_param(*v, out);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->type, d::oid_jsonb);
    EXPECT_EQ(std::string(out.c_str()), R"({"a":[1,2.5E0,null,"x"]})");
    auto bad = d::decode_field<boost::json::value>("{", d::oid_json);
    ASSERT_FALSE(bad);
    EXPECT_TRUE(bad.error().is(errc::type_mismatch));
    EXPECT_TRUE(
        d::decode_field<boost::json::value>("1", d::oid_int4).error().is(errc::type_mismatch));
}
