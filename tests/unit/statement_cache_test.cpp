// Tests for detail/statement_cache.hpp: keys by text and parameter types, LRU eviction,
// invalidation, and names that are never reused within a session.
#include <pgcoro/detail/statement_cache.hpp>

#include <gtest/gtest.h>

#include <array>

using pgcoro::detail::statement_cache;

namespace
{
// Looks `sql` up with parameter types `types`; on a miss inserts it (as a connection does after
// a successful PREPARE) and returns nullptr.
template <std::size_t N>
const statement_cache::entry* use(statement_cache& c, std::string_view sql,
                                  const std::array<Oid, N>& types)
{
    c.make_key(sql, types.data(), static_cast<int>(N));
    if (auto* e = c.find())
        return e;
    c.make_room();
    c.insert(c.take_name());
    return nullptr;
}
} // namespace

TEST(StatementCache, DisabledAtCapacityZero)
{
    statement_cache c;
    EXPECT_FALSE(c.enabled());
    c.reset(4);
    EXPECT_TRUE(c.enabled());
    EXPECT_EQ(c.capacity(), 4u);
}

TEST(StatementCache, KeyIsTextAndParameterTypes)
{
    statement_cache c(8);
    EXPECT_EQ(use(c, "SELECT $1", std::array<Oid, 1>{23}), nullptr);
    const auto* again = use(c, "SELECT $1", std::array<Oid, 1>{23});
    ASSERT_NE(again, nullptr);
    EXPECT_EQ(again->name, "pgcoro_1");
    // Same text, another parameter type: another statement.
    EXPECT_EQ(use(c, "SELECT $1", std::array<Oid, 1>{25}), nullptr);
    // A text that is a prefix of another's key must not match it.
    EXPECT_EQ(use(c, "SELECT", std::array<Oid, 0>{}), nullptr);
    EXPECT_EQ(c.size(), 3u);
    EXPECT_EQ(use(c, "SELECT $1", std::array<Oid, 1>{25})->name, "pgcoro_2");
}

TEST(StatementCache, EvictsTheLeastRecentlyUsedIntoStale)
{
    statement_cache c(2);
    use(c, "a", std::array<Oid, 0>{});                     // pgcoro_1
    use(c, "b", std::array<Oid, 0>{});                     // pgcoro_2
    ASSERT_NE(use(c, "a", std::array<Oid, 0>{}), nullptr); // a is now the most recent
    use(c, "c", std::array<Oid, 0>{});                     // evicts b
    ASSERT_EQ(c.stale().size(), 1u);
    EXPECT_EQ(c.stale()[0], "pgcoro_2");
    EXPECT_EQ(c.size(), 2u);
    EXPECT_NE(use(c, "a", std::array<Oid, 0>{}), nullptr);
    EXPECT_NE(use(c, "c", std::array<Oid, 0>{}), nullptr);
    EXPECT_EQ(use(c, "b", std::array<Oid, 0>{}), nullptr); // miss: prepared again, new name
    EXPECT_EQ(c.find()->name, "pgcoro_4");
    c.clear_stale();
    EXPECT_TRUE(c.stale().empty());
}

TEST(StatementCache, InvalidateForgetsOneAndKeepsItsNameForDeallocation)
{
    statement_cache c(4);
    use(c, "a", std::array<Oid, 0>{});
    use(c, "b", std::array<Oid, 0>{});
    c.make_key("a", nullptr, 0);
    c.invalidate();
    EXPECT_EQ(c.size(), 1u);
    ASSERT_EQ(c.stale().size(), 1u);
    EXPECT_EQ(c.stale()[0], "pgcoro_1");
    EXPECT_EQ(use(c, "a", std::array<Oid, 0>{}), nullptr);
    EXPECT_NE(use(c, "b", std::array<Oid, 0>{}), nullptr);
}

TEST(StatementCache, NamesAreNeverReusedEvenAfterForgetAll)
{
    statement_cache c(4);
    use(c, "a", std::array<Oid, 0>{});
    (void)c.take_name(); // a PREPARE that timed out: its name is spent
    c.forget_all();
    EXPECT_EQ(c.size(), 0u);
    EXPECT_TRUE(c.stale().empty());
    use(c, "a", std::array<Oid, 0>{});
    EXPECT_EQ(c.find()->name, "pgcoro_3");
}

// drop(): the pipelined connection's way to forget one entry by id, with (its PREPARE ran) or
// without (it failed or was skipped) a name to deallocate.
TEST(StatementCache, DropById)
{
    statement_cache c(8);
    use(c, "SELECT 1", std::array<Oid, 0>{});
    use(c, "SELECT 2", std::array<Oid, 0>{});
    c.make_key("SELECT 1", nullptr, 0);
    const auto* one = c.find();
    ASSERT_NE(one, nullptr);
    const auto id1 = one->id;
    c.make_key("SELECT 2", nullptr, 0);
    const auto id2 = c.find()->id;
    EXPECT_NE(id1, id2);
    EXPECT_TRUE(c.holds(id1));
    c.drop(id1, false);
    EXPECT_FALSE(c.holds(id1));
    EXPECT_TRUE(c.stale().empty()); // never prepared on the server: nothing to deallocate
    c.make_key("SELECT 1", nullptr, 0);
    EXPECT_EQ(c.find(), nullptr);
    c.drop(id2, true);
    ASSERT_EQ(c.stale().size(), 1u);
    EXPECT_EQ(c.stale()[0], "pgcoro_2");
    EXPECT_EQ(c.size(), 0u);
    c.drop(id2, true); // gone already: no-op
    EXPECT_EQ(c.stale().size(), 1u);
}

// forget_all_but(): DEALLOCATE ALL removed every statement except those prepared after it.
TEST(StatementCache, ForgetAllButKeepsTheGivenEntries)
{
    statement_cache c(8);
    use(c, "SELECT 1", std::array<Oid, 0>{});
    use(c, "SELECT 2", std::array<Oid, 0>{});
    use(c, "SELECT 3", std::array<Oid, 0>{});
    c.make_key("SELECT 3", nullptr, 0);
    const auto keep = c.find()->id;
    EXPECT_FALSE(c.full());
    c.forget_all_but({keep});
    EXPECT_EQ(c.size(), 1u);
    EXPECT_TRUE(c.holds(keep));
    c.make_key("SELECT 1", nullptr, 0);
    EXPECT_EQ(c.find(), nullptr);
    c.make_key("SELECT 3", nullptr, 0);
    EXPECT_NE(c.find(), nullptr);
    EXPECT_TRUE(c.stale().empty());
}

TEST(StatementCache, FullAtCapacity)
{
    statement_cache c(2);
    use(c, "SELECT 1", std::array<Oid, 0>{});
    EXPECT_FALSE(c.full());
    use(c, "SELECT 2", std::array<Oid, 0>{});
    EXPECT_TRUE(c.full());
}
