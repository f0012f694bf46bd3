// The pool's state machine on its own: no server, no executor, a manual clock. Each test
// drives pool_machine with events and checks the actions it asks for and the state it keeps.
#include <pgcoro/detail/pool_machine.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <limits>
#include <memory>
#include <string>
#include <vector>

namespace
{

using namespace std::chrono_literals;
using pgcoro::close_reason;
using pgcoro::errc;
using pgcoro::error;
using pgcoro::pool_config;
using pgcoro::detail::acquire_step;
using pgcoro::detail::conn_condition;
using pgcoro::detail::node_state;
using clk = std::chrono::steady_clock;

struct test_node : pgcoro::detail::node_rec
{
    bool closed = false;   // the connection is gone
    bool readable = false; // the server spoke while it idled
    int polls = 0;
    bool probe_broken(bool poll_socket)
    {
        if (closed)
            return true;
        if (!poll_socket)
            return false;
        ++polls;
        return readable;
    }
};

struct test_waiter final : pgcoro::detail::waiter_rec
{
    test_waiter() : waiter_rec(pgcoro::source_location::current()) {}
    void wake() noexcept override { ++wakes; }
    test_node* node() const { return static_cast<test_node*>(assigned); }
    int wakes = 0;
};

using machine = pgcoro::detail::pool_machine<test_node>;
using actions = pgcoro::detail::pool_actions<test_node>;

pool_config base_config()
{
    pool_config c;
    c.min_size = 0;
    c.max_size = 4;
    c.max_concurrent_connects = 4;
    c.validate_after_idle = 0ms;
    c.idle_timeout = 0ms;
    c.max_lifetime = 0ms;
    c.refill_backoff_initial = 100ms;
    c.refill_backoff_max = 1600ms;
    return c;
}

struct PoolMachine : ::testing::Test
{
    clk::time_point now = clk::time_point{} + 1h; // the manual clock
    std::unique_ptr<machine> m;
    int next_pid = 100;

    void make(pool_config c = base_config())
    {
        m = std::make_unique<machine>(c, [] { return std::make_unique<test_node>(); });
    }
    void advance(clk::duration d) { now += d; }
    actions take() { return m->take_pending(); }

    // Connects for every open action pending, successfully; returns the nodes.
    std::vector<test_node*> open_all(double unit_random = 0.0)
    {
        auto a = take();
        for (auto* n : a.open)
            m->connect_done(n, nullptr, next_pid++, now, unit_random);
        return a.open;
    }
    // A pool with `k` idle connections (opened now, released at once).
    std::vector<test_node*> with_idle(std::size_t k, pool_config c = base_config())
    {
        c.min_size = k;
        make(c);
        m->poke(now);
        auto nodes = open_all();
        EXPECT_EQ(m->stats().idle, k);
        return nodes;
    }
    test_node* fast(pgcoro::source_location loc = pgcoro::source_location::current())
    {
        return m->take_idle_fast(now, loc);
    }
    static error refused()
    {
        return error(errc::connect_failed, "auth", pgcoro::sqlstate("28P01"));
    }
    static error refused_transient() { return error(errc::connect_failed, "connection refused"); }
};

// ---- connecting and refill --------------------------------------------------------------

TEST_F(PoolMachine, StartOpensMinSize)
{
    auto c = base_config();
    c.min_size = 3;
    make(c);
    m->poke(now);
    auto a = take();
    EXPECT_EQ(a.open.size(), 3u);
    EXPECT_EQ(m->stats().connecting, 3u);
    EXPECT_EQ(m->stats().size, 3u);
    for (auto* n : a.open)
        EXPECT_EQ(n->state, node_state::connecting);
}

TEST_F(PoolMachine, ConnectsInFlightAreCappedByMaxConcurrentConnects)
{
    auto c = base_config();
    c.min_size = 4;
    c.max_concurrent_connects = 2;
    make(c);
    m->poke(now);
    auto a = take();
    ASSERT_EQ(a.open.size(), 2u);
    m->connect_done(a.open[0], nullptr, 1, now, 0);
    EXPECT_EQ(take().open.size(), 1u) << "one finished, one more starts";
}

TEST_F(PoolMachine, ASuccessfulConnectGoesIdleWithItsPid)
{
    auto nodes = with_idle(1);
    EXPECT_EQ(nodes[0]->state, node_state::idle);
    EXPECT_EQ(nodes[0]->backend_pid, 100);
    EXPECT_EQ(nodes[0]->opened_at, now);
    EXPECT_EQ(m->stats().opened, 1u);
}

TEST_F(PoolMachine, AFailedConnectBacksOffTheRefill)
{
    auto c = base_config();
    c.min_size = 1;
    make(c);
    m->poke(now);
    auto a = take();
    const auto e = refused_transient();
    m->connect_done(a.open[0], &e, 0, now, 0.0);
    auto b = take();
    EXPECT_TRUE(b.open.empty()) << "no tight reconnect loop";
    ASSERT_TRUE(b.refill_at);
    // equal jitter with unit_random 0: half of the initial 100 ms.
    EXPECT_EQ(*b.refill_at - now, 50ms);
    EXPECT_EQ(m->stats().size, 0u);
    EXPECT_EQ(m->stats().connect_failures, 1u);
    EXPECT_EQ(m->stats().closed_broken, 0u) << "a node that never opened is not a close";
    advance(50ms);
    m->refill_due(now);
    EXPECT_EQ(take().open.size(), 1u);
}

TEST_F(PoolMachine, RefillBackoffDoublesAndIsCapped)
{
    auto c = base_config();
    c.min_size = 1;
    make(c);
    m->poke(now);
    const auto e = refused_transient();
    std::vector<clk::duration> delays;
    for (int i = 0; i < 7; ++i)
    {
        auto a = take();
        ASSERT_EQ(a.open.size(), 1u) << i;
        m->connect_done(a.open[0], &e, 0, now, 0.0);
        auto b = take();
        ASSERT_TRUE(b.refill_at) << i;
        delays.push_back(*b.refill_at - now);
        now = *b.refill_at;
        m->refill_due(now);
    }
    EXPECT_EQ(delays[0], 50ms);
    EXPECT_EQ(delays[1], 100ms);
    EXPECT_EQ(delays[2], 200ms);
    EXPECT_EQ(delays[4], 800ms);
    EXPECT_EQ(delays[5], 800ms) << "capped at refill_backoff_max (1600 ms, halved by jitter)";
    EXPECT_EQ(delays[6], 800ms);
}

TEST_F(PoolMachine, RefillJitterComesFromTheRandomInput)
{
    // Two pools failing at the same instant reconnect at different times when their random
    // inputs differ (the driver draws one per connect); with the same input, the same time.
    auto c = base_config();
    c.min_size = 1;
    const auto e = refused_transient();
    auto delay_with = [&](double u)
    {
        make(c);
        m->poke(now);
        m->connect_done(take().open[0], &e, 0, now, u);
        return *take().refill_at - now;
    };
    EXPECT_EQ(delay_with(0.0), 50ms);
    EXPECT_EQ(delay_with(0.999), 99ms);
    EXPECT_EQ(delay_with(0.5), delay_with(0.5));
}

TEST_F(PoolMachine, ASuccessResetsTheBackoff)
{
    auto c = base_config();
    c.min_size = 2;
    c.max_concurrent_connects = 1;
    make(c);
    m->poke(now);
    const auto e = refused_transient();
    auto a = take();
    m->connect_done(a.open[0], &e, 0, now, 0.0);
    now = *take().refill_at;
    m->refill_due(now);
    m->connect_done(take().open[0], nullptr, 1, now, 0.0);
    EXPECT_EQ(take().open.size(), 1u) << "the second connect starts at once after a success";
}

TEST_F(PoolMachine, TheRefillTimerIsArmedOnceWhileBackingOff)
{
    auto c = base_config();
    c.min_size = 1;
    make(c);
    m->poke(now);
    const auto e = refused_transient();
    m->connect_done(take().open[0], &e, 0, now, 0.0);
    EXPECT_TRUE(take().refill_at);
    test_waiter w;
    EXPECT_EQ(m->acquire(w, now), acquire_step::queued);
    auto a = take();
    EXPECT_FALSE(a.refill_at) << "already armed";
    EXPECT_TRUE(a.open.empty()) << "a waiter does not bypass the backoff";
}

TEST_F(PoolMachine, AFailureRetryingCannotFixFailsTheWaitersAtOnce)
{
    make();
    test_waiter w1, w2;
    m->acquire(w1, now);
    m->acquire(w2, now);
    auto a = take();
    ASSERT_EQ(a.open.size(), 2u);
    const auto e = refused();
    m->connect_done(a.open[0], &e, 0, now, 0.0);
    ASSERT_TRUE(w1.failure);
    ASSERT_TRUE(w2.failure);
    EXPECT_EQ(w1.failure->state, pgcoro::sqlstate("28P01"));
    EXPECT_EQ(w1.wakes, 1);
    EXPECT_EQ(m->stats().waiters, 0u);
}

TEST_F(PoolMachine, ATransientFailureKeepsTheWaitersWaiting)
{
    make();
    test_waiter w;
    m->acquire(w, now);
    const auto e = refused_transient();
    m->connect_done(take().open[0], &e, 0, now, 0.0);
    EXPECT_FALSE(w.failure);
    EXPECT_EQ(w.wakes, 0);
    EXPECT_EQ(m->stats().waiters, 1u);
    ASSERT_TRUE(m->last_error());
}

// ---- acquire ----------------------------------------------------------------------------

TEST_F(PoolMachine, TheFastPathTakesTheHottestIdle)
{
    auto nodes = with_idle(2);
    auto* a = fast();
    ASSERT_NE(a, nullptr);
    EXPECT_EQ(a, nodes[1]) << "LIFO: the last one made idle";
    EXPECT_EQ(a->state, node_state::leased);
    EXPECT_EQ(a->leased_at, now);
    EXPECT_EQ(m->stats().acquired_immediately, 1u);
    EXPECT_EQ(m->stats().leased, 1u);
    EXPECT_TRUE(take().empty()) << "the fast path asks for nothing";
}

TEST_F(PoolMachine, TheFastPathDeclinesWhenEmptyClosedOrDueAValidation)
{
    make();
    EXPECT_EQ(fast(), nullptr);
    auto c = base_config();
    c.validate_after_idle = 1s;
    with_idle(1, c);
    advance(1s);
    EXPECT_EQ(fast(), nullptr) << "due a validation: the slow path validates";
    EXPECT_EQ(m->stats().idle, 1u);
    m->shutdown(now);
    EXPECT_EQ(fast(), nullptr);
}

TEST_F(PoolMachine, TheFastPathDeclinesARetiredConnection)
{
    auto c = base_config();
    c.max_lifetime = 10s;
    with_idle(1, c);
    advance(10s);
    EXPECT_EQ(fast(), nullptr);
    EXPECT_EQ(m->stats().idle, 1u) << "left for the slow path to close";
}

TEST_F(PoolMachine, TheSlowPathHandsAnIdleConnectionAtOnce)
{
    auto nodes = with_idle(1);
    test_waiter w;
    EXPECT_EQ(m->acquire(w, now), acquire_step::assigned);
    EXPECT_EQ(w.node(), nodes[0]);
    EXPECT_EQ(m->stats().waiters, 0u);
    EXPECT_EQ(m->stats().acquired_immediately, 1u);
}

TEST_F(PoolMachine, AWaiterOnAnEmptyPoolStartsAConnectAndGetsIt)
{
    make();
    test_waiter w;
    EXPECT_EQ(m->acquire(w, now), acquire_step::queued);
    auto a = take();
    ASSERT_EQ(a.open.size(), 1u);
    EXPECT_EQ(m->stats().waiters, 1u);
    m->connect_done(a.open[0], nullptr, 7, now, 0);
    EXPECT_EQ(w.node(), a.open[0]);
    EXPECT_EQ(w.wakes, 1);
    EXPECT_EQ(a.open[0]->state, node_state::leased);
}

TEST_F(PoolMachine, AFullPoolQueuesWithoutConnecting)
{
    auto c = base_config();
    c.max_size = 1;
    with_idle(1, c);
    ASSERT_NE(fast(), nullptr);
    test_waiter w;
    EXPECT_EQ(m->acquire(w, now), acquire_step::queued);
    EXPECT_TRUE(take().open.empty());
}

TEST_F(PoolMachine, WaitersAreServedInArrivalOrder)
{
    auto c = base_config();
    c.max_size = 1;
    with_idle(1, c);
    auto* held = fast();
    test_waiter w1, w2, w3;
    m->acquire(w1, now);
    m->acquire(w2, now);
    m->acquire(w3, now);
    m->release(held, conn_condition::reusable, now);
    EXPECT_EQ(w1.node(), held);
    EXPECT_EQ(w2.node(), nullptr);
    m->release(w1.node(), conn_condition::reusable, now);
    EXPECT_EQ(w2.node(), held);
    EXPECT_EQ(w3.node(), nullptr);
}

TEST_F(PoolMachine, MaxWaitersRejectsTheNextOne)
{
    auto c = base_config();
    c.max_size = 1;
    c.max_waiters = 1;
    with_idle(1, c);
    fast();
    test_waiter w1, w2;
    EXPECT_EQ(m->acquire(w1, now), acquire_step::queued);
    EXPECT_EQ(m->acquire(w2, now), acquire_step::too_many_waiters);
    EXPECT_EQ(m->stats().rejected, 1u);
    EXPECT_EQ(m->stats().waiters, 1u);
}

TEST_F(PoolMachine, AnAcquireOnAClosedPoolIsRejected)
{
    make();
    m->shutdown(now);
    test_waiter w;
    EXPECT_EQ(m->acquire(w, now), acquire_step::closed);
    EXPECT_EQ(m->stats().rejected, 1u);
}

TEST_F(PoolMachine, AnIdleSocketTheServerSpokeOnIsClosedNotHandedOut)
{
    auto nodes = with_idle(2);
    advance(5ms);
    nodes[1]->readable = true; // e.g. FATAL: terminating connection
    test_waiter w;
    EXPECT_EQ(m->acquire(w, now), acquire_step::assigned);
    EXPECT_EQ(w.node(), nodes[0]);
    auto a = take();
    ASSERT_EQ(a.close.size(), 1u);
    EXPECT_EQ(a.close[0].why, close_reason::broken);
    EXPECT_EQ(a.close[0].node.get(), nodes[1]);
}

TEST_F(PoolMachine, TheSocketProbeIsSkippedForAConnectionReusedWithinAMillisecond)
{
    auto nodes = with_idle(1);
    auto* n = fast();
    m->release(n, conn_condition::reusable, now);
    advance(500us);
    ASSERT_EQ(fast(), n);
    EXPECT_EQ(n->polls, 0);
    m->release(n, conn_condition::reusable, now);
    advance(2ms);
    ASSERT_EQ(fast(), n);
    EXPECT_EQ(n->polls, 1);
}

TEST_F(PoolMachine, TimeoutErrorDescribesThePool)
{
    auto c = base_config();
    c.max_size = 1;
    c.acquire_timeout = 500ms;
    with_idle(1, c);
    fast(pgcoro::source_location::current());
    test_waiter w;
    m->acquire(w, now);
    auto e = pgcoro::detail::pool_timeout_error(500ms, c.acquire_timeout, m->describe());
    EXPECT_TRUE(e.is(errc::pool_timeout));
    EXPECT_NE(e.message.find("no connection within 500 ms"), std::string::npos) << e.message;
    EXPECT_NE(e.message.find("size=1/1 in_use=1 idle=0 connecting=0 waiters=1"), std::string::npos)
        << e.message;
    EXPECT_NE(e.message.find("pool_machine_test.cpp"), std::string::npos) << e.message;
}

TEST_F(PoolMachine, ACancelledAcquireSaysWhereThePoolWas)
{
    // Issue 19: with_timeout() keeps its operation's message, so an acquire it cancels must
    // say why it waited (15aed96: "acquire cancelled" only).
    make();
    test_waiter w;
    m->acquire(w, now);
    const auto e = refused_transient();
    m->connect_done(take().open[0], &e, 0, now, 0);
    auto c = pgcoro::detail::acquire_cancelled_error(850ms, m->describe());
    EXPECT_TRUE(c.is(errc::cancelled));
    EXPECT_NE(c.message.find("acquire cancelled after 850 ms: size=0/4"), std::string::npos)
        << c.message;
    EXPECT_NE(c.message.find("last connect error: "), std::string::npos) << c.message;
    EXPECT_NE(c.message.find("connection refused"), std::string::npos) << c.message;
}

// ---- waiters leaving --------------------------------------------------------------------

TEST_F(PoolMachine, ALeavingWaiterKeepsTheOthersInOrder)
{
    auto c = base_config();
    c.max_size = 1;
    with_idle(1, c);
    auto* held = fast();
    test_waiter w1, w2, w3;
    m->acquire(w1, now);
    m->acquire(w2, now);
    m->acquire(w3, now);
    EXPECT_EQ(m->leave(w2), nullptr);
    EXPECT_EQ(m->stats().waiters, 2u);
    m->release(held, conn_condition::reusable, now);
    m->release(w1.node(), conn_condition::reusable, now);
    EXPECT_EQ(w3.node(), held);
}

TEST_F(PoolMachine, AWaiterThatLeavesAfterBeingAssignedGivesTheNodeBack)
{
    // The frame of a woken waiter is destroyed before it resumes (io_context destroyed).
    auto c = base_config();
    c.max_size = 1;
    with_idle(1, c);
    auto* held = fast();
    test_waiter w1, w2;
    m->acquire(w1, now);
    m->acquire(w2, now);
    m->release(held, conn_condition::reusable, now);
    ASSERT_EQ(w1.node(), held);
    auto* back = m->leave(w1);
    ASSERT_EQ(back, held);
    m->release(back, conn_condition::reusable, now);
    EXPECT_EQ(w2.node(), held) << "the next waiter gets it";
}

TEST_F(PoolMachine, LeavingTwiceIsHarmless)
{
    make();
    test_waiter w;
    m->acquire(w, now);
    EXPECT_EQ(m->leave(w), nullptr);
    EXPECT_EQ(m->leave(w), nullptr);
    EXPECT_EQ(m->stats().waiters, 0u);
}

// ---- validation -------------------------------------------------------------------------

pool_config validating_config()
{
    auto c = base_config();
    c.validate_after_idle = 1s;
    return c;
}

TEST_F(PoolMachine, AConnectionDueAValidationIsPingedInTheBackground)
{
    auto nodes = with_idle(1, validating_config());
    advance(2s);
    test_waiter w;
    EXPECT_EQ(m->acquire(w, now), acquire_step::queued);
    auto a = take();
    ASSERT_EQ(a.validate.size(), 1u);
    EXPECT_TRUE(a.open.empty()) << "the validation is the waiter's supply: no connect";
    EXPECT_EQ(nodes[0]->state, node_state::validating);
    m->validated(nodes[0], true, now);
    EXPECT_EQ(w.node(), nodes[0]);
}

TEST_F(PoolMachine, OneValidationPerWaiter)
{
    with_idle(4, validating_config());
    advance(2s);
    test_waiter w1, w2;
    m->acquire(w1, now);
    EXPECT_EQ(take().validate.size(), 1u);
    m->acquire(w2, now);
    EXPECT_EQ(take().validate.size(), 1u);
    EXPECT_EQ(m->stats().idle, 2u) << "the other two stay idle";
}

TEST_F(PoolMachine, AFailedValidationClosesAndValidatesTheNextIdle)
{
    auto nodes = with_idle(3, validating_config());
    advance(2s);
    test_waiter w;
    m->acquire(w, now);
    auto a = take();
    ASSERT_EQ(a.validate.size(), 1u);
    m->validated(a.validate[0], false, now);
    auto b = take();
    ASSERT_EQ(b.close.size(), 1u);
    EXPECT_EQ(b.close[0].why, close_reason::validation_failed);
    ASSERT_EQ(b.validate.size(), 1u) << "the waiter's next candidate";
    EXPECT_EQ(b.open.size(), 1u) << "back to min_size (3); not for the waiter";
    EXPECT_EQ(m->stats().closed_validation, 1u);
    m->validated(b.validate[0], true, now);
    EXPECT_NE(w.node(), nullptr);
}

TEST_F(PoolMachine, AFailedValidationWithNothingIdleLeftConnects)
{
    auto nodes = with_idle(1, validating_config());
    advance(2s);
    test_waiter w;
    m->acquire(w, now);
    m->validated(take().validate[0], false, now);
    auto b = take();
    EXPECT_EQ(b.open.size(), 1u);
}

TEST_F(PoolMachine, AWaiterCancelledDuringValidationClosesNothing)
{
    // Finding 2: the cancelled acquire leaves; the ping goes on and the connection goes back.
    auto nodes = with_idle(4, validating_config());
    advance(2s);
    test_waiter w;
    m->acquire(w, now);
    auto a = take();
    ASSERT_EQ(a.validate.size(), 1u);
    EXPECT_EQ(m->leave(w), nullptr);
    m->count(pgcoro::acquire_outcome::cancelled);
    m->validated(a.validate[0], true, now);
    auto s = m->stats();
    EXPECT_EQ(s.idle, 4u) << s;
    EXPECT_EQ(s.closed_validation + s.closed_broken, 0u) << s;
    EXPECT_EQ(s.cancelled, 1u) << s;
    EXPECT_TRUE(take().close.empty());
}

TEST_F(PoolMachine, AValidationWhoseWaiterLeftServesTheNextWaiter)
{
    auto c = validating_config();
    c.max_size = 2;
    auto nodes = with_idle(2, c);
    advance(2s);
    test_waiter w1;
    m->acquire(w1, now);
    auto a = take();
    ASSERT_EQ(a.validate.size(), 1u);
    m->leave(w1);
    test_waiter w2; // arrives while the ping is in flight: that ping is its supply
    m->acquire(w2, now);
    EXPECT_TRUE(take().validate.empty());
    m->validated(a.validate[0], true, now);
    EXPECT_EQ(w2.node(), a.validate[0]);
    EXPECT_EQ(m->stats().idle, 1u);
}

TEST_F(PoolMachine, AValidationTimeoutCountsAsAFailedValidation)
{
    // The driver's ping has validation_timeout; at its deadline it reports failure and the
    // connection is closed at once, with no cancel round.
    auto nodes = with_idle(1, validating_config());
    advance(2s);
    test_waiter w;
    m->acquire(w, now);
    auto a = take();
    advance(2s); // validation_timeout passed
    m->validated(a.validate[0], false, now);
    auto b = take();
    ASSERT_EQ(b.close.size(), 1u);
    EXPECT_TRUE(b.reset.empty());
    EXPECT_TRUE(b.settle.empty());
    EXPECT_EQ(w.node(), nullptr);
}

TEST_F(PoolMachine, KeepalivesPingIdleConnectionsInTheSweep)
{
    auto c = base_config();
    c.keepalive_interval = 30s;
    auto nodes = with_idle(2, c);
    advance(31s);
    m->sweep(now);
    auto a = take();
    EXPECT_EQ(a.validate.size(), 2u);
    EXPECT_EQ(m->stats().idle, 0u);
    m->validated(a.validate[0], true, now);
    m->validated(a.validate[1], false, now);
    EXPECT_EQ(m->stats().idle, 1u);
    EXPECT_EQ(m->stats().closed_validation, 1u);
}

TEST_F(PoolMachine, AKeepaliveInFlightDoesNotHoldBackAWaiter)
{
    auto c = base_config();
    c.keepalive_interval = 30s;
    c.max_size = 2;
    auto nodes = with_idle(1, c);
    advance(31s);
    m->sweep(now); // node 0 is being pinged
    take();
    test_waiter w;
    m->acquire(w, now);
    auto a = take();
    EXPECT_EQ(a.open.size(), 1u) << "a keepalive is not a supply reserved for this waiter";
}

// ---- release ----------------------------------------------------------------------------

TEST_F(PoolMachine, AReusableReleaseGoesIdleWithNoActions)
{
    with_idle(1);
    auto* n = fast();
    advance(1s);
    m->release(n, conn_condition::reusable, now);
    EXPECT_EQ(n->state, node_state::idle);
    EXPECT_EQ(n->idle_since, now);
    EXPECT_TRUE(take().empty());
}

TEST_F(PoolMachine, AReleaseInsideATransactionIsRolledBackFirst)
{
    with_idle(1);
    auto* n = fast();
    m->release(n, conn_condition::in_transaction, now);
    auto a = take();
    ASSERT_EQ(a.reset.size(), 1u);
    EXPECT_EQ(n->state, node_state::resetting);
    test_waiter w;
    m->acquire(w, now);
    EXPECT_EQ(w.node(), nullptr) << "not handed out while resetting";
    m->reset_done(n, true, now);
    EXPECT_EQ(w.node(), n);
}

TEST_F(PoolMachine, AFailedRollbackClosesTheConnection)
{
    with_idle(1);
    auto* n = fast();
    m->release(n, conn_condition::in_transaction, now);
    take();
    m->reset_done(n, false, now);
    EXPECT_EQ(take().close.size(), 1u);
    EXPECT_EQ(m->stats().closed_broken, 1u);
}

TEST_F(PoolMachine, AnUnsettledReleaseIsSettledOffTheCallersPath)
{
    with_idle(1);
    auto* n = fast();
    m->release(n, conn_condition::unsettled, now);
    ASSERT_EQ(take().settle.size(), 1u);
    m->settled(n, conn_condition::reusable, now);
    EXPECT_EQ(n->state, node_state::idle);
    EXPECT_EQ(m->stats().closed_broken, 0u);
}

TEST_F(PoolMachine, ABrokenReleaseClosesAndAWaiterGetsANewConnection)
{
    auto c = base_config();
    c.max_size = 1;
    with_idle(1, c);
    auto* n = fast();
    test_waiter w;
    m->acquire(w, now);
    EXPECT_TRUE(take().open.empty());
    m->release(n, conn_condition::broken, now);
    auto a = take();
    ASSERT_EQ(a.close.size(), 1u);
    EXPECT_EQ(a.close[0].why, close_reason::broken);
    ASSERT_EQ(a.open.size(), 1u) << "replaced for the waiter";
}

TEST_F(PoolMachine, AnOversizedReleaseIsClosedAndReplaced)
{
    auto c = base_config();
    c.min_size = 1;
    with_idle(1, c);
    auto* n = fast();
    m->release(n, conn_condition::oversized, now);
    auto a = take();
    ASSERT_EQ(a.close.size(), 1u);
    EXPECT_EQ(a.close[0].why, close_reason::lifetime);
    EXPECT_EQ(a.open.size(), 1u) << "min_size";
}

// ---- max_lifetime on every path ---------------------------------------------------------

pool_config lifetime_config()
{
    auto c = base_config();
    c.max_lifetime = 60s;
    return c;
}

TEST_F(PoolMachine, LifetimeIsSetAtConnectWithJitter)
{
    auto c = lifetime_config();
    c.max_lifetime_jitter = 10s;
    c.min_size = 1;
    make(c);
    m->poke(now);
    auto* n = open_all(0.5)[0];
    EXPECT_EQ(n->retire, now + 55s);
}

TEST_F(PoolMachine, LifetimeOnRelease)
{
    auto c = lifetime_config();
    c.min_size = 1;
    with_idle(1, c);
    auto* n = fast();
    advance(61s);
    m->release(n, conn_condition::reusable, now);
    auto a = take();
    ASSERT_EQ(a.close.size(), 1u);
    EXPECT_EQ(a.close[0].why, close_reason::lifetime);
    EXPECT_EQ(a.open.size(), 1u) << "refilled to min_size";
}

TEST_F(PoolMachine, LifetimeOnTheSlowAcquire)
{
    auto nodes = with_idle(2, lifetime_config());
    nodes[1]->retire = now + 1s; // the hot one retires first
    advance(2s);
    test_waiter w;
    EXPECT_EQ(m->acquire(w, now), acquire_step::assigned);
    EXPECT_EQ(w.node(), nodes[0]);
    EXPECT_EQ(m->stats().closed_lifetime, 1u);
}

TEST_F(PoolMachine, LifetimeInTheSweep)
{
    with_idle(2, lifetime_config());
    advance(61s);
    m->sweep(now);
    EXPECT_EQ(take().close.size(), 2u);
    EXPECT_EQ(m->stats().closed_lifetime, 2u);
}

TEST_F(PoolMachine, LifetimeAfterAValidation)
{
    auto c = lifetime_config();
    c.validate_after_idle = 1s;
    auto nodes = with_idle(1, c);
    advance(59s);
    test_waiter w;
    m->acquire(w, now);
    auto a = take();
    advance(2s);
    m->validated(a.validate[0], true, now);
    auto b = take();
    ASSERT_EQ(b.close.size(), 1u);
    EXPECT_EQ(b.close[0].why, close_reason::lifetime);
    EXPECT_EQ(b.open.size(), 1u) << "the waiter needs a connection";
}

TEST_F(PoolMachine, LifetimeAfterAReset)
{
    with_idle(1, lifetime_config());
    auto* n = fast();
    m->release(n, conn_condition::in_transaction, now);
    take();
    advance(61s);
    m->reset_done(n, true, now);
    EXPECT_EQ(m->stats().closed_lifetime, 1u);
}

// ---- idle timeout and resizing ----------------------------------------------------------

TEST_F(PoolMachine, IdleTimeoutClosesTheColdestAndKeepsMinSize)
{
    auto c = base_config();
    c.idle_timeout = 10s;
    c.min_size = 1;
    auto nodes = with_idle(1, c);
    // two more connections, used and returned at different times
    test_waiter w1, w2;
    fast();
    m->acquire(w1, now);
    m->acquire(w2, now);
    for (auto* n : take().open)
        m->connect_done(n, nullptr, 1, now, 0);
    m->release(nodes[0], conn_condition::reusable, now);
    advance(1s);
    m->release(w1.node(), conn_condition::reusable, now);
    advance(1s);
    m->release(w2.node(), conn_condition::reusable, now);
    advance(10s);
    m->sweep(now);
    auto a = take();
    ASSERT_EQ(a.close.size(), 2u);
    EXPECT_EQ(a.close[0].node.get(), nodes[0]) << "coldest first";
    EXPECT_EQ(m->stats().idle, 1u) << "min_size stays";
    EXPECT_EQ(m->stats().closed_idle, 2u);
}

TEST_F(PoolMachine, ShrinkingClosesTheColdestIdle)
{
    auto nodes = with_idle(4);
    m->set_max_size(2, now);
    auto a = take();
    ASSERT_EQ(a.close.size(), 2u);
    EXPECT_EQ(a.close[0].node.get(), nodes[0]);
    EXPECT_EQ(a.close[1].node.get(), nodes[1]);
    EXPECT_EQ(m->stats().max_size, 2u);
}

TEST_F(PoolMachine, ShrinkingBelowTheLeasedCountClosesReturnedConnections)
{
    // Finding 6.
    with_idle(4);
    std::vector<test_node*> held;
    for (int i = 0; i < 4; ++i)
        held.push_back(fast());
    m->set_max_size(1, now);
    for (auto* n : held)
        m->release(n, conn_condition::reusable, now);
    EXPECT_EQ(m->stats().size, 1u);
    EXPECT_EQ(m->stats().idle, 1u);
}

TEST_F(PoolMachine, GrowingServesTheWaitersWithNewConnects)
{
    auto c = base_config();
    c.max_size = 1;
    with_idle(1, c);
    fast();
    test_waiter w1, w2;
    m->acquire(w1, now);
    m->acquire(w2, now);
    EXPECT_TRUE(take().open.empty());
    m->set_max_size(3, now);
    EXPECT_EQ(take().open.size(), 2u);
}

// ---- shutdown ---------------------------------------------------------------------------

TEST_F(PoolMachine, ShutdownWakesWaitersAndClosesIdle)
{
    auto c = base_config();
    c.max_size = 2;
    auto nodes = with_idle(2, c);
    auto* held = fast();
    test_waiter w;
    fast();
    m->acquire(w, now);
    m->release(held, conn_condition::reusable, now); // w takes it
    test_waiter w2, w3;
    m->acquire(w2, now);
    m->acquire(w3, now);
    m->shutdown(now);
    EXPECT_TRUE(w2.closed);
    EXPECT_TRUE(w3.closed);
    EXPECT_EQ(w2.wakes, 1);
    EXPECT_EQ(m->stats().waiters, 0u);
    EXPECT_FALSE(take().drained) << "two leases are out";
}

TEST_F(PoolMachine, ShutdownClosesLeasesAsTheyReturnAndReportsDrained)
{
    with_idle(2);
    auto* a = fast();
    auto* b = fast();
    m->shutdown(now);
    take();
    m->release(a, conn_condition::reusable, now);
    auto x = take();
    ASSERT_EQ(x.close.size(), 1u);
    EXPECT_EQ(x.close[0].why, close_reason::shutdown);
    EXPECT_FALSE(x.drained);
    m->release(b, conn_condition::in_transaction, now);
    auto y = take();
    EXPECT_TRUE(y.reset.empty()) << "no rollback for a connection about to close";
    EXPECT_TRUE(y.drained);
}

TEST_F(PoolMachine, ShutdownWhileConnectingValidatingOrResetting)
{
    auto c = validating_config();
    c.max_size = 4;
    auto nodes = with_idle(2, c);
    auto* leased = fast();
    advance(2s);
    test_waiter w1, w2;
    m->acquire(w1, now); // validates nodes[0]
    m->acquire(w2, now); // connects
    auto a = take();
    ASSERT_EQ(a.validate.size(), 1u);
    ASSERT_EQ(a.open.size(), 1u);
    m->release(leased, conn_condition::in_transaction, now);
    ASSERT_EQ(take().reset.size(), 1u);
    m->shutdown(now);
    m->connect_done(a.open[0], nullptr, 1, now, 0);
    m->validated(a.validate[0], true, now);
    m->reset_done(leased, true, now);
    auto s = m->stats();
    EXPECT_EQ(s.size, 0u) << s;
    EXPECT_EQ(s.closed_shutdown, 3u) << s;
    EXPECT_EQ(s.opened, 3u) << "the connect that finished after shutdown did open" << s;
    EXPECT_TRUE(take().drained);
}

TEST_F(PoolMachine, ShutdownAbortsWhatIsInFlightButNotLeases)
{
    // Finding 10: close() waited out its grace for a connect stuck in name resolution.
    auto c = validating_config();
    auto nodes = with_idle(2, c);
    auto* leased = fast();
    advance(2s);
    test_waiter w1, w2;
    m->acquire(w1, now); // validates nodes[0]
    m->acquire(w2, now); // connects
    auto a = take();
    m->shutdown(now);
    auto b = take();
    ASSERT_EQ(b.abort.size(), 2u);
    for (auto* n : b.abort)
        EXPECT_NE(n, leased);
    const auto e = error(errc::cancelled, "connect cancelled");
    m->connect_done(a.open[0], &e, 0, now, 0);
    m->validated(a.validate[0], false, now);
    EXPECT_FALSE(take().drained);
    m->release(leased, conn_condition::reusable, now);
    EXPECT_TRUE(take().drained);
    auto s = m->stats(); // a drained pool closed exactly what it opened
    EXPECT_EQ(s.opened, s.closed_idle + s.closed_lifetime + s.closed_broken + s.closed_validation +
                            s.closed_shutdown)
        << s;
}

TEST_F(PoolMachine, ShutdownIsIdempotentAndStopsRefill)
{
    auto c = base_config();
    c.min_size = 2;
    make(c);
    m->poke(now);
    take();
    m->shutdown(now);
    m->shutdown(now);
    m->refill_due(now);
    m->sweep(now);
    EXPECT_TRUE(take().open.empty());
}

TEST_F(PoolMachine, ShutdownDuringBackoffLeavesNothingToStart)
{
    auto c = base_config();
    c.min_size = 1;
    make(c);
    m->poke(now);
    const auto e = refused_transient();
    m->connect_done(take().open[0], &e, 0, now, 0);
    take();
    m->shutdown(now);
    advance(1s);
    m->refill_due(now);
    auto a = take();
    EXPECT_TRUE(a.open.empty());
    EXPECT_TRUE(a.drained);
}

// ---- leaks and gauges -------------------------------------------------------------------

TEST_F(PoolMachine, ALeakIsReportedOnceWithThePidRecordedAtConnect)
{
    // Finding 8: the report never reads the leased connection itself.
    auto c = base_config();
    c.leak_threshold = 5s;
    auto nodes = with_idle(1, c);
    fast();
    advance(6s);
    m->sweep(now);
    auto a = take();
    ASSERT_EQ(a.leaks.size(), 1u);
    EXPECT_EQ(a.leaks[0].backend_pid, 100);
    EXPECT_EQ(a.leaks[0].held, 6s);
    advance(6s);
    m->sweep(now);
    EXPECT_TRUE(take().leaks.empty());
    EXPECT_EQ(m->stats().leaks_reported, 1u);
}

TEST_F(PoolMachine, GaugesAddUpThroughALifecycle)
{
    auto c = validating_config();
    c.max_size = 3;
    auto nodes = with_idle(2, c);
    auto check = [&]
    {
        auto s = m->stats();
        EXPECT_EQ(s.size, s.idle + s.leased + s.connecting) << s;
        EXPECT_LE(s.size, s.max_size) << s;
    };
    auto* l = fast();
    check();
    advance(2s);
    test_waiter w1, w2;
    m->acquire(w1, now);
    check();
    m->acquire(w2, now);
    check();
    auto a = take();
    m->release(l, conn_condition::in_transaction, now);
    check();
    for (auto* n : a.validate)
        m->validated(n, true, now);
    for (auto* n : a.open)
        m->connect_done(n, nullptr, 1, now, 0);
    check();
    m->shutdown(now);
    check();
}

// ---- shards: a shared connection budget, transfers between shards --------------------------

TEST_F(PoolMachine, SharedSlotsCapConnectsAcrossShards)
{
    std::atomic<std::ptrdiff_t> slots{3}; // the whole pool may open 3
    auto c = base_config();               // each shard alone would open 4
    machine a(c, [] { return std::make_unique<test_node>(); });
    machine b(c, [] { return std::make_unique<test_node>(); });
    a.share(&slots, nullptr);
    b.share(&slots, nullptr);
    test_waiter wa1, wa2, wb1, wb2;
    a.acquire(wa1, now);
    a.acquire(wa2, now);
    EXPECT_EQ(a.take_pending().open.size(), 2u);
    b.acquire(wb1, now);
    b.acquire(wb2, now);
    auto ob = b.take_pending();
    EXPECT_EQ(ob.open.size(), 1u); // one slot left for shard b
    EXPECT_EQ(slots.load(), 0);
    const auto e = refused_transient();
    b.connect_done(ob.open[0], &e, 0, now, 0); // a failed connect
    EXPECT_EQ(slots.load(), 1);                // gives its slot back
}

TEST_F(PoolMachine, AShrunkSharedBudgetClosesReturnedConnections)
{
    std::atomic<std::ptrdiff_t> slots{2};
    make();
    m->share(&slots, nullptr);
    m->poke(now);
    test_waiter w1, w2;
    m->acquire(w1, now);
    m->acquire(w2, now);
    for (auto* n : take().open)
        m->connect_done(n, nullptr, next_pid++, now, 0);
    ASSERT_NE(w1.node(), nullptr);
    ASSERT_NE(w2.node(), nullptr);
    slots -= 1; // set_max_size(1) on the pool: one connection too many
    m->release(w1.node(), conn_condition::reusable, now);
    EXPECT_EQ(take().close.size(), 1u); // closed, not kept idle
    EXPECT_EQ(slots.load(), 0);
    m->release(w2.node(), conn_condition::reusable, now);
    EXPECT_EQ(m->stats().idle, 1u); // within the budget again
}

TEST_F(PoolMachine, ATransferTakesTheReleasedNodeBackAndAnotherShardAdoptsIt)
{
    auto nodes = with_idle(2);
    auto* n = fast();
    ASSERT_NE(n, nullptr);
    m->release(n, conn_condition::reusable, now); // back on the idle stack
    EXPECT_TRUE(m->take_for_transfer(n, now));
    EXPECT_EQ(n->state, node_state::leased);
    EXPECT_EQ(m->stats().idle, 1u);
    EXPECT_EQ(m->stats().leased, 1u);
    EXPECT_EQ(m->stats().acquired_immediately, 1u); // the transfer is counted where it lands
    EXPECT_FALSE(m->take_for_transfer(n, now));     // no longer idle

    machine other(base_config(), [] { return std::make_unique<test_node>(); });
    EXPECT_EQ(other.adopt(), nullptr); // no waiter there: the node goes back
    test_waiter w;
    other.acquire(w, now);
    other.take_pending();
    EXPECT_EQ(other.stats().waiters, 1u);
    EXPECT_EQ(other.adopt(), &w); // the first waiter leaves the queue for it
    EXPECT_EQ(other.stats().waiters, 0u);
    m->stamp(n, pgcoro::source_location::current(), now);
    EXPECT_EQ(n->acquired_at.line(), static_cast<std::uint_least32_t>(__LINE__ - 1));
    m->release(n, conn_condition::reusable, now); // its lease returns it to its own shard
    EXPECT_EQ(m->stats().idle, 2u);
}

TEST_F(PoolMachine, ATransferLosesToThisShardsOwnWaiter)
{
    auto nodes = with_idle(1);
    auto* n = fast();
    test_waiter w;
    m->acquire(w, now); // queued: the shard is dry
    m->release(n, conn_condition::reusable, now);
    EXPECT_EQ(w.node(), n); // handed to the shard's own waiter first
    EXPECT_FALSE(m->take_for_transfer(n, now));
}

// The other shards read when this shard's oldest waiter queued; a release can hold a node for
// a shard whose waiter waited longer, unless the node is not fit to hand on.
TEST_F(PoolMachine, TheOldestWaiterIsPublishedAndAReleaseCanPassANodeOn)
{
    constexpr auto none = std::numeric_limits<clk::rep>::max();
    std::atomic<std::ptrdiff_t> slots{4};
    std::atomic<clk::rep> front{0};
    auto nodes = with_idle(2);
    m->share(&slots, &front);
    EXPECT_EQ(front.load(), none); // no waiter
    auto* a = fast();
    auto* b = fast();
    ASSERT_NE(b, nullptr);
    test_waiter w1, w2;
    const auto first = now;
    m->acquire(w1, now);
    advance(5ms);
    m->acquire(w2, now);
    take();
    EXPECT_EQ(front.load(), first.time_since_epoch().count()); // the oldest one's
    EXPECT_TRUE(m->pass_on(a, conn_condition::reusable, now)); // kept leased, for elsewhere
    EXPECT_EQ(a->state, node_state::leased);
    EXPECT_EQ(w1.node(), nullptr);
    EXPECT_FALSE(m->pass_on(b, conn_condition::in_transaction, now)); // needs a ROLLBACK first
    m->release(a, conn_condition::reusable, now);
    EXPECT_EQ(w1.node(), a);
    EXPECT_EQ(front.load(), (first + 5ms).time_since_epoch().count()); // w2 is the oldest now
    m->leave(w2);
    EXPECT_EQ(front.load(), none);
    slots = -1; // the pool shrank below what it holds: closed as it comes back, not handed on
    EXPECT_FALSE(m->pass_on(b, conn_condition::reusable, now));
}

} // namespace
