// Unit tests for pgcoro/detail/text_codec.hpp: parameter encoding and field decoding.
#include <pgcoro/detail/text_codec.hpp>

#include <gtest/gtest.h>

#include <limits>

using namespace pgcoro::detail;
using pgcoro::errc;

namespace
{
template <class T>
std::string encoded(const T& v, Oid* type = nullptr)
{
    std::string out;
    auto r = encode_param(v, out);
    EXPECT_TRUE(r.has_value());
    if (type && r)
        *type = r->type;
    EXPECT_FALSE(out.empty());
    EXPECT_EQ(out.back(), '\0'); // libpq reads text parameters as C strings
    out.pop_back();
    return out;
}
} // namespace

TEST(TextCodec, EncodesScalarsWithTheirTypes)
{
    Oid t = 0;
    EXPECT_EQ(encoded(true, &t), "t");
    EXPECT_EQ(t, oid_bool);
    EXPECT_EQ(encoded(std::int16_t{-5}, &t), "-5");
    EXPECT_EQ(t, oid_int2);
    EXPECT_EQ(encoded(42, &t), "42");
    EXPECT_EQ(t, oid_int4);
    EXPECT_EQ(encoded(std::uint32_t{4000000000u}, &t), "4000000000");
    EXPECT_EQ(t, oid_int8); // does not fit int4
    EXPECT_EQ(encoded(0.1, &t), "0.1");
    EXPECT_EQ(t, oid_float8);
    EXPECT_EQ(encoded(-std::numeric_limits<double>::infinity()), "-Infinity");
    EXPECT_EQ(encoded(std::numeric_limits<double>::quiet_NaN()), "NaN");
    EXPECT_EQ(encoded(std::string_view("text"), &t), "text");
    EXPECT_EQ(t, oid_unknown); // the server infers the type from context
}

TEST(TextCodec, NullsAndBadValues)
{
    std::string out;
    EXPECT_TRUE(encode_param(std::nullopt, out)->is_null);
    EXPECT_TRUE(encode_param(std::optional<int>{}, out)->is_null);
    EXPECT_FALSE(encode_param(std::optional<int>{3}, out)->is_null);
    auto nul = encode_param(std::string_view("a\0b", 3), out);
    ASSERT_FALSE(nul.has_value());
    EXPECT_TRUE(nul.error().is(errc::invalid_argument));
    auto huge = encode_param(std::numeric_limits<std::uint64_t>::max(), out);
    ASSERT_FALSE(huge.has_value());
    EXPECT_TRUE(huge.error().is(errc::invalid_argument));
}

TEST(TextCodec, DecodesWithTypeChecks)
{
    EXPECT_EQ(decode_field<int>("123", oid_int4).value(), 123);
    EXPECT_EQ(decode_field<std::int64_t>("-9", oid_int8).value(), -9);
    EXPECT_TRUE(decode_field<std::int16_t>("70000", oid_int4).error().is(errc::out_of_range));
    EXPECT_TRUE(decode_field<int>("12x", oid_int4).error().is(errc::type_mismatch));
    EXPECT_TRUE(decode_field<int>("12", oid_unknown).error().is(errc::type_mismatch));
    EXPECT_EQ(decode_field<bool>("t", oid_bool).value(), true);
    EXPECT_TRUE(decode_field<bool>("t", oid_int4).error().is(errc::type_mismatch));
    EXPECT_EQ(decode_field<double>("2.5", oid_float8).value(), 2.5);
    EXPECT_EQ(decode_field<double>("7", oid_int4).value(), 7.0);
    EXPECT_EQ(decode_field<std::string>("x", oid_bool).value(), "x"); // text of any type
}
