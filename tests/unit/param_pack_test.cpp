// SPDX-License-Identifier: BSL-1.0
// How parameters reach libpq (detail::encode_params): which are copied, which are not.
#include <pgcoro/detail/param_pack.hpp>

#include <gtest/gtest.h>

#include <optional>
#include <string>

using pgcoro::errc;

// Issue 18, finding 11: a 64 MiB parameter was copied into pgcoro's buffer before libpq copied
// it again, and that buffer kept its size. A std::string or C string is now passed in place.
TEST(ParamPack, StringsArePassedInPlaceNotCopied)
{
    std::string buf;
    const std::string big(1 << 20, 'x');
    const char* c = "a C string";
    auto e = pgcoro::detail::encode_params(buf, big, 42, c);
    ASSERT_TRUE(e) << e.error();
    EXPECT_EQ(e->values[0], big.c_str()); // the caller's own memory
    EXPECT_EQ(e->values[2], c);
    EXPECT_STREQ(e->values[1], "42"); // encoded into the buffer
    EXPECT_LT(buf.size(), 16u) << "only the integer went into pgcoro's buffer";
    EXPECT_EQ(e->bytes, big.size() + 10 + 3);
}

TEST(ParamPack, ANullCStringIsSqlNull)
{
    std::string buf;
    const char* none = nullptr;
    auto e = pgcoro::detail::encode_params(buf, none, std::optional<std::string>{});
    ASSERT_TRUE(e) << e.error();
    EXPECT_EQ(e->values[0], nullptr);
    EXPECT_EQ(e->values[1], nullptr);
}

TEST(ParamPack, AnEmbeddedNulIsRefusedInPlaceToo)
{
    std::string buf;
    const std::string bad("a\0b", 3);
    auto e = pgcoro::detail::encode_params(buf, bad);
    ASSERT_FALSE(e);
    EXPECT_TRUE(e.error().is(errc::invalid_argument)) << e.error();
    EXPECT_NE(e.error().message.find("embedded NUL"), std::string::npos);
}
