// SPDX-License-Identifier: BSL-1.0
// The fault suite's oracles must be able to fail: each is fed a state it has to reject.
#include "support/oracles.hpp"

#include <gtest/gtest.h>

// Issue 19: pool_drained() accepted more closes than opens (a double-counted close).
TEST(Oracles, PoolDrainedRequiresClosesToEqualOpens)
{
    pgcoro::pool_stats s;
    s.opened = 3;
    s.closed_shutdown = 2;
    s.closed_broken = 1;
    EXPECT_TRUE(pgcoro::test::pool_drained(s));
    s.closed_shutdown = 3; // one close too many
    EXPECT_FALSE(pgcoro::test::pool_drained(s));
    s.closed_shutdown = 1; // one missing: a leak
    EXPECT_FALSE(pgcoro::test::pool_drained(s));
    s.closed_shutdown = 2;
    s.idle = 1; // still holding one
    EXPECT_FALSE(pgcoro::test::pool_drained(s));
}
