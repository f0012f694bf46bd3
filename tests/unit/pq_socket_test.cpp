// pq_socket: readiness waits on a dup'ed descriptor, against a socketpair (no server needed).
// Run twice: as is (the reactor-level path on Boost 1.81 + epoll) and with the environment
// variable PGCORO_NO_EDGE_WAIT=1 (the stream_descriptor path), so both keep the same behaviour.
#include <pgcoro/detail/pq_socket.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <fstream>
#include <optional>
#include <string>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

namespace
{

namespace asio = boost::asio;
using pgcoro::detail::pq_socket;
using namespace std::chrono_literals;
using ec_opt = std::optional<boost::system::error_code>;

struct PqSocket : ::testing::Test
{
    asio::io_context io;
    int ours = -1; // the "libpq" end: pq_socket watches a dup of it
    int peer = -1; // the "server" end
    pq_socket sock{io.get_executor()};

    void SetUp() override
    {
        int sv[2];
        ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
        ours = sv[0];
        peer = sv[1];
        boost::system::error_code ec;
        sock.assign(::fcntl(ours, F_DUPFD_CLOEXEC, 0), ec);
        ASSERT_FALSE(ec) << ec.message();
    }
    void TearDown() override
    {
        boost::system::error_code ignored;
        sock.close(ignored);
        ::close(ours);
        ::close(peer);
    }

    void send_from_peer(const char* s) { ASSERT_GT(::write(peer, s, std::strlen(s)), 0); }
    void drain_ours()
    {
        char buf[256];
        while (::read(ours, buf, sizeof buf) > 0)
        {
        }
    }
    // Runs the loop until `done` or `limit` passes (bounded: a wrong wait fails, never hangs).
    template <class Pred>
    void run_until(Pred done, std::chrono::milliseconds limit = 2s)
    {
        const auto end = std::chrono::steady_clock::now() + limit;
        while (!done() && std::chrono::steady_clock::now() < end)
        {
            io.restart();
            io.run_for(5ms);
        }
    }
    auto recorder(ec_opt& out)
    {
        return [&out](boost::system::error_code ec)
        {
            out = ec;
        };
    }
};

TEST_F(PqSocket, ResponseWaitCompletesWhenTheResponseArrives)
{
    // Twice: the second wait starts after the first found the socket drained, the steady
    // state of a statement loop (on epoll: no epoll_ctl, the arrival edge completes it).
    for (int round = 0; round < 2; ++round)
    {
        ec_opt got;
        sock.async_wait_response(recorder(got));
        run_until([&] { return got.has_value(); }, 20ms);
        // It may complete at once (first round: the reactor has not seen the socket yet), but
        // once it did, a second wait must wait for the data.
        if (got)
        {
            EXPECT_FALSE(*got);
            got.reset();
            sock.async_wait_response(recorder(got));
            run_until([&] { return got.has_value(); }, 20ms);
        }
        EXPECT_FALSE(got) << "completed without data, round " << round;
        asio::steady_timer t(io, 10ms);
        t.async_wait([&](boost::system::error_code) { send_from_peer("response"); });
        run_until([&] { return got.has_value(); });
        ASSERT_TRUE(got) << "the response did not wake the wait, round " << round;
        EXPECT_FALSE(*got) << got->message();
        drain_ours();
    }
}

TEST_F(PqSocket, ReadWaitSeesDataThatIsAlreadyThere)
{
    // The rest of a response that came in pieces: the reactor reported it already, and only a
    // level check (async_wait) can see it.
    ec_opt got;
    sock.async_wait_response(recorder(got));
    send_from_peer("first piece");
    run_until([&] { return got.has_value(); });
    ASSERT_TRUE(got);
    send_from_peer("second piece");
    run_until([] { return false; }, 20ms); // the reactor consumes the edge, nobody waits
    got.reset();
    sock.async_wait(pq_socket::wait_read, recorder(got));
    run_until([&] { return got.has_value(); });
    ASSERT_TRUE(got) << "data already in the socket was not seen";
    EXPECT_FALSE(*got);
}

TEST_F(PqSocket, WriteWaitCompletesOnAWritableSocket)
{
    ec_opt got;
    sock.async_wait(pq_socket::wait_write, recorder(got));
    run_until([&] { return got.has_value(); });
    ASSERT_TRUE(got);
    EXPECT_FALSE(*got);
}

TEST_F(PqSocket, CancelEndsEveryPendingWait)
{
    ec_opt a, b;
    sock.async_wait(pq_socket::wait_read, recorder(a));
    sock.async_wait_response(recorder(b));
    run_until([] { return false; }, 10ms);
    ASSERT_FALSE(a);
    sock.cancel();
    run_until([&] { return a && b; });
    ASSERT_TRUE(a && b);
    EXPECT_EQ(*a, asio::error::operation_aborted);
    // b may have completed at once (it is allowed to), else it was cancelled.
    EXPECT_TRUE(!*b || *b == asio::error::operation_aborted) << b->message();
}

TEST_F(PqSocket, PerOperationCancellationEndsOnlyThatWait)
{
    asio::cancellation_signal sig;
    ec_opt read;
    sock.async_wait(pq_socket::wait_read, asio::bind_cancellation_slot(sig.slot(), recorder(read)));
    run_until([] { return false; }, 10ms);
    ASSERT_FALSE(read);
    sig.emit(asio::cancellation_type::terminal);
    run_until([&] { return read.has_value(); });
    ASSERT_TRUE(read);
    EXPECT_EQ(*read, asio::error::operation_aborted);
    // The socket still works.
    ec_opt again;
    sock.async_wait(pq_socket::wait_read, recorder(again));
    send_from_peer("x");
    run_until([&] { return again.has_value(); });
    ASSERT_TRUE(again);
    EXPECT_FALSE(*again);
}

TEST_F(PqSocket, CloseEndsPendingWaitsAndLaterWaitsFail)
{
    ec_opt pending;
    sock.async_wait(pq_socket::wait_read, recorder(pending));
    run_until([] { return false; }, 10ms);
    boost::system::error_code ec;
    sock.close(ec);
    EXPECT_FALSE(ec);
    EXPECT_FALSE(sock.is_open());
    run_until([&] { return pending.has_value(); });
    ASSERT_TRUE(pending);
    EXPECT_EQ(*pending, asio::error::operation_aborted);
    ec_opt late, late_response;
    sock.async_wait(pq_socket::wait_read, recorder(late));
    sock.async_wait_response(recorder(late_response));
    run_until([&] { return late && late_response; });
    ASSERT_TRUE(late && late_response);
    EXPECT_TRUE(*late);
    EXPECT_TRUE(*late_response);
}

// Issue 18, finding 8: PGCORO_NO_EDGE_WAIT was a macro that changed pq_socket's layout, so
// translation units built with and without it broke the ODR. The path is now chosen at run
// time, per socket, and the class is the same everywhere.
TEST(PqSocketPath, IsARuntimeChoice)
{
    boost::asio::io_context io;
    auto& flag = pgcoro::detail::edge_wait_enabled();
    const bool before = flag.load();
    const char* env = std::getenv("PGCORO_NO_EDGE_WAIT");
    EXPECT_EQ(before, !(env && std::string(env) == "1"));
    flag = false;
    {
        pgcoro::detail::pq_socket s(io.get_executor());
        EXPECT_FALSE(s.edge());
    }
    flag = true;
    {
        pgcoro::detail::pq_socket s(io.get_executor());
        EXPECT_EQ(s.edge(), PGCORO_DETAIL_EDGE_WAIT == 1);
    }
    flag = before;
}

#if PGCORO_DETAIL_EDGE_WAIT
// The fd numbers an epoll instance of this process watches (from /proc/self/fdinfo).
std::vector<int> watched_fds()
{
    std::vector<int> out;
    DIR* d = ::opendir("/proc/self/fd");
    if (!d)
        return out;
    while (dirent* e = ::readdir(d))
    {
        std::string name = e->d_name;
        if (name == "." || name == "..")
            continue;
        char target[256] = {};
        std::string link = "/proc/self/fd/" + name;
        if (::readlink(link.c_str(), target, sizeof target - 1) <= 0 ||
            std::string(target) != "anon_inode:[eventpoll]")
            continue;
        std::ifstream info("/proc/self/fdinfo/" + name);
        std::string word;
        while (info >> word)
            if (word == "tfd:" && info >> word)
                out.push_back(std::atoi(word.c_str()));
    }
    ::closedir(d);
    return out;
}

TEST_F(PqSocket, CloseTakesTheDupOutOfTheEpollSet)
{
    // The watched fd is a dup: closing it alone would leave the file in the epoll set (libpq's
    // fd keeps it open), pointing at freed reactor state. close() must remove it explicitly.
    ec_opt got;
    sock.async_wait_response(recorder(got));
    run_until([] { return false; }, 5ms);
    const auto before = watched_fds();
    ASSERT_FALSE(before.empty()) << "no epoll instance found in /proc/self/fdinfo";
    boost::system::error_code ec;
    sock.close(ec);
    run_until([&] { return got.has_value(); });
    const auto after = watched_fds();
    EXPECT_EQ(after.size() + 1, before.size()) << "the dup is still registered";
}
#endif

} // namespace
