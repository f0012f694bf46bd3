// Covers pgcoro/version.hpp: the macros agree with each other and with the CMake project
// version, which tests/packaging.cmake passes in as PGCORO_TEST_PROJECT_VERSION.
#include <pgcoro/version.hpp>

#include <gtest/gtest.h>

#include <string>

TEST(Version, NumberMatchesComponents)
{
    // Check: the single number is major * 10000 + minor * 100 + patch.
    static_assert(PGCORO_VERSION ==
                  PGCORO_VERSION_MAJOR * 10000 + PGCORO_VERSION_MINOR * 100 + PGCORO_VERSION_PATCH);
    static_assert(PGCORO_VERSION_MINOR < 100 && PGCORO_VERSION_PATCH < 100);
    SUCCEED();
}

TEST(Version, StringMatchesComponents)
{
    // Setup: the text the three components spell.
    const std::string expected = std::to_string(PGCORO_VERSION_MAJOR) + "." +
                                 std::to_string(PGCORO_VERSION_MINOR) + "." +
                                 std::to_string(PGCORO_VERSION_PATCH);
    // Check: PGCORO_VERSION_STRING says the same.
    EXPECT_EQ(PGCORO_VERSION_STRING, expected);
}

#ifdef PGCORO_TEST_PROJECT_VERSION
TEST(Version, EqualsCMakeProjectVersion)
{
    // Check: the header was bumped together with project(pgcoro VERSION ...).
    EXPECT_EQ(std::string(PGCORO_VERSION_STRING), std::string(PGCORO_TEST_PROJECT_VERSION));
}
#endif
