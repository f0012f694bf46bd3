// pool_stats::operator+= (a sharded pool's stats are its shards' sums): every field but
// max_size is added, so a field added to pool_stats and not to the sum fails here.
#include <pgcoro/pool_stats.hpp>

#include <boost/pfr.hpp>

#include <gtest/gtest.h>

#include <cstddef>
#include <sstream>

namespace
{

// Field i of `s` set to (i + 1) * k.
pgcoro::pool_stats numbered(unsigned k)
{
    pgcoro::pool_stats s;
    boost::pfr::for_each_field(s, [k](auto& f, std::size_t i) { f = (i + 1) * k; });
    return s;
}

TEST(PoolStats, SumAddsEveryFieldButMaxSize)
{
    auto sum = numbered(1);
    sum += numbered(100);
    boost::pfr::for_each_field(sum,
                               [](const auto& f, std::size_t i)
                               {
                                   if (i == 0) // max_size: the pool's, not a sum
                                       EXPECT_EQ(f, 1u);
                                   else
                                       EXPECT_EQ(f, (i + 1) * 101) << "field " << i;
                               });
    std::ostringstream os;
    os << sum;
    EXPECT_NE(os.str().find("max_size=1 size=202 idle=303"), std::string::npos) << os.str();
}

} // namespace
