// Unit tests of the replica set's pure parts: LSNs, lag from the primary's sampled positions,
// replica choice, DATABASE_REPLICA_URLS, load_balance_hosts and target_session_attrs.
#include <pgcoro/database_url.hpp>
#include <pgcoro/detail/replica_lag.hpp>
#include <pgcoro/detail/session_attrs.hpp>
#include <pgcoro/lsn.hpp>
#include <pgcoro/replica_set.hpp>

#include <gtest/gtest.h>

#include <set>
#include <string>

using namespace pgcoro;
using namespace std::chrono_literals;

TEST(Lsn, ParsesAndPrintsPostgresForm)
{
    auto l = lsn::parse("16/B374D848");
    ASSERT_TRUE(l);
    EXPECT_EQ(l->value(), (std::uint64_t{0x16} << 32) | 0xB374D848u);
    EXPECT_EQ(l->to_string(), "16/B374D848");
    EXPECT_EQ(lsn::parse("0/0")->to_string(), "0/0");
    EXPECT_FALSE(*lsn::parse("0/0"));
    EXPECT_EQ(lsn::parse("a/ff")->to_string(), "A/FF");
    for (const char* bad : {"", "/", "1/", "/1", "12", "1/2/3", "g/1", "123456789/0", "1 /2"})
        EXPECT_FALSE(lsn::parse(bad)) << bad;
    EXPECT_LT(*lsn::parse("0/FFFFFFFF"), *lsn::parse("1/0"));
    EXPECT_EQ(lsn::parse("1/10")->bytes_after(*lsn::parse("1/0")), 16u);
    EXPECT_EQ(lsn::parse("1/0")->bytes_after(*lsn::parse("1/10")), 0u);
}

TEST(LsnHistory, LagIsTheAgeOfTheFirstPositionNotReplayed)
{
    detail::lsn_history h;
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(h.lag(lsn(5), t0), 0ms); // nothing sampled
    h.add(t0, lsn(100));
    h.add(t0 + 100ms, lsn(100)); // no advance: not kept
    h.add(t0 + 200ms, lsn(200));
    h.add(t0 + 300ms, lsn(300));
    EXPECT_EQ(h.latest(), lsn(300));
    EXPECT_EQ(h.lag(lsn(300), t0 + 1000ms), 0ms); // caught up: no lag however old the writes
    EXPECT_EQ(h.lag(lsn(250), t0 + 1000ms), 700ms);
    EXPECT_EQ(h.lag(lsn(100), t0 + 1000ms), 800ms);
    EXPECT_EQ(h.lag(lsn(50), t0 + 1000ms), 1000ms);
    // A primary position going back is another server (after a failover): history restarts.
    h.add(t0 + 900ms, lsn(280));
    EXPECT_EQ(h.latest(), lsn(280));
    EXPECT_EQ(h.lag(lsn(250), t0 + 1000ms), 100ms);
}

TEST(ChooseReplica, LeastInUseAmongThoseInRotation)
{
    std::vector<detail::replica_choice> rs{
        {true, 3, lsn(10)}, {false, 0, lsn(10)}, {true, 1, lsn(5)}};
    EXPECT_EQ(detail::choose_replica(rs, 0), 2u);
    // read-your-writes: the one that replayed the position, though busier
    EXPECT_EQ(detail::choose_replica(rs, 0, lsn(8)), 0u);
    // none replayed it by the samples: still the least busy (the caller checks it live)
    EXPECT_EQ(detail::choose_replica(rs, 0, lsn(50)), 2u);
    rs[0].in_rotation = rs[2].in_rotation = false;
    EXPECT_FALSE(detail::choose_replica(rs, 0));
    // ties rotate with the start index
    std::vector<detail::replica_choice> tie{{true, 0, {}}, {true, 0, {}}};
    std::set<std::size_t> seen{*detail::choose_replica(tie, 0), *detail::choose_replica(tie, 1)};
    EXPECT_EQ(seen.size(), 2u);
}

TEST(ReplicaUrls, CommaSeparatedListOfOneHostUrls)
{
    auto r =
        parse_replica_urls("postgres://u@r1:5433/db, postgresql://u@r2:5434/db?connect_timeout=2");
    ASSERT_TRUE(r) << r.error();
    ASSERT_EQ(r->size(), 2u);
    EXPECT_EQ((*r)[0].hosts[0].host, "r1");
    EXPECT_EQ((*r)[1].hosts[0].port, 5434);
    EXPECT_EQ((*r)[1].connect_timeout, 2s);
    EXPECT_TRUE(parse_replica_urls("")->empty());
}

TEST(ReplicaUrls, EveryProblemReportedAtOnce)
{
    auto r = parse_replica_urls("postgres://u@a,b/db,postgres://u@r2:0/db?pool_timeout=x,"
                                "postgres://u@r3/db?target_session_attrs=bogus");
    ASSERT_FALSE(r);
    const auto text = r.error().to_string();
    EXPECT_GE(r.error().size(), 4u) << text;
    EXPECT_NE(text.find("#1"), std::string::npos) << text;
    EXPECT_NE(text.find("one host"), std::string::npos) << text;
    EXPECT_NE(text.find("#2"), std::string::npos) << text;
    EXPECT_NE(text.find("target_session_attrs"), std::string::npos) << text;
    EXPECT_FALSE(parse_replica_urls("host=r1 dbname=x"));
    // A list in code: the same rules, every problem at once.
    std::vector<std::string> in_code{"postgres://u@r1/db", "postgres://u@r2/db?sslmode=bogus",
                                     "host=r3"};
    auto c = parse_replica_urls(in_code);
    ASSERT_FALSE(c);
    EXPECT_EQ(c.error().size(), 2u) << c.error();
    in_code.resize(1);
    ASSERT_TRUE(parse_replica_urls(in_code));
}

TEST(SessionAttrs, UrlOptionsParsedAndValidated)
{
    auto u = parse_database_url(
        "postgres://a:1,b:2,c:3/db?target_session_attrs=prefer-standby&load_balance_hosts=random");
    ASSERT_TRUE(u) << u.error();
    EXPECT_TRUE(u->connect.load_balance_hosts);
    EXPECT_EQ(detail::session_attrs_of(u->connect), "prefer-standby");
    EXPECT_FALSE(detail::requires_writable(u->connect));
    EXPECT_NE(to_url(u->connect).find("load_balance_hosts=random"), std::string::npos);
    EXPECT_FALSE(parse_database_url("postgres://a/db?load_balance_hosts=yes"));
    EXPECT_FALSE(parse_database_url("host=a target_session_attrs=master"));
    for (auto v : detail::session_attrs_values)
        EXPECT_TRUE(parse_database_url("host=a,b target_session_attrs=" + std::string(v))) << v;
    auto rw =
        parse_database_url("host=a,b target_session_attrs=read-write load_balance_hosts=disable");
    ASSERT_TRUE(rw);
    EXPECT_TRUE(detail::requires_writable(rw->connect));
    EXPECT_FALSE(rw->connect.load_balance_hosts);
}

TEST(SessionAttrs, LoadBalancingShufflesTheHostOrder)
{
    connect_config c;
    c.hosts.clear();
    for (std::uint16_t p = 1; p <= 6; ++p)
        c.hosts.push_back({"h", p});
    auto first = [&]
    {
        return detail::host_order(c).front().port;
    };
    EXPECT_EQ(first(), 1); // disabled: as configured
    c.load_balance_hosts = true;
    std::set<std::uint16_t> firsts;
    for (int i = 0; i < 200; ++i)
        firsts.insert(first());
    EXPECT_GE(firsts.size(), 4u); // every host comes first sometimes (6 hosts, 200 tries)
    EXPECT_EQ(detail::host_order(c).size(), 6u);
}
