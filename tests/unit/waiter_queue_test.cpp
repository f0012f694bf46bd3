// The pool's intrusive FIFO of waiting acquires.
#include <pgcoro/detail/waiter_queue.hpp>

#include <boost/asio/io_context.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <vector>

namespace
{

using pgcoro::detail::pool_waiter;
using pgcoro::detail::waiter_queue;

struct WaiterQueue : ::testing::Test
{
    boost::asio::io_context io;
    std::vector<std::unique_ptr<pool_waiter>> ws;

    pool_waiter* make()
    {
        ws.push_back(std::make_unique<pool_waiter>(io.get_executor(),
                                                   std::chrono::steady_clock::now(),
                                                   pgcoro::source_location::current()));
        return ws.back().get();
    }
};

TEST_F(WaiterQueue, PopsInArrivalOrder)
{
    waiter_queue q;
    EXPECT_TRUE(q.empty());
    EXPECT_EQ(q.pop_front(), nullptr);
    auto* a = make();
    auto* b = make();
    auto* c = make();
    q.push_back(a);
    q.push_back(b);
    q.push_back(c);
    EXPECT_EQ(q.size(), 3u);
    EXPECT_EQ(q.pop_front(), a);
    EXPECT_EQ(q.pop_front(), b);
    EXPECT_EQ(q.pop_front(), c);
    EXPECT_EQ(q.pop_front(), nullptr);
    EXPECT_TRUE(q.empty());
    EXPECT_EQ(q.size(), 0u);
}

TEST_F(WaiterQueue, EraseFromAnyPositionKeepsTheOrderOfTheRest)
{
    waiter_queue q;
    auto* a = make();
    auto* b = make();
    auto* c = make();
    auto* d = make();
    for (auto* w : {a, b, c, d})
        q.push_back(w);
    q.erase(b); // middle
    q.erase(d); // tail
    EXPECT_EQ(q.size(), 2u);
    q.push_back(d); // a new tail after erasing the old one
    q.erase(a);     // head
    EXPECT_EQ(q.pop_front(), c);
    EXPECT_EQ(q.pop_front(), d);
    EXPECT_TRUE(q.empty());
}

TEST_F(WaiterQueue, EraseOfAWaiterNotQueuedChangesNothing)
{
    waiter_queue q;
    auto* a = make();
    auto* b = make();
    q.push_back(a);
    q.erase(b); // never queued
    EXPECT_EQ(q.pop_front(), a);
    q.erase(a); // already taken out
    EXPECT_TRUE(q.empty());
    q.push_back(a); // and it may queue again
    EXPECT_EQ(q.size(), 1u);
    EXPECT_EQ(q.pop_front(), a);
}

} // namespace
