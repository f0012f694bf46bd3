// tests/support/fault_proxy.hpp - a loopback TCP proxy that injects network faults.
//
// Sits between pgcoro and the test cluster: listens on 127.0.0.1:<ephemeral>, connects each
// accepted client to the upstream server, and forwards bytes both ways. Faults are switched at
// run time from any thread, per direction (client->server, server->client):
//
//   pass            forward as they come (the default)
//   delay(d)        hold every chunk for d before forwarding it
//   stall           blackhole: stop forwarding (data and EOF are held, sockets stay open); what
//                   was held flows again once the direction passes
//   close_after(n)  forward n more bytes per connection, then reset both sockets (RST)
//
// and for the listener: refuse (accept, then RST at once), stop_listening (nothing listens: the
// kernel answers "connection refused"), silent (accept, never connect upstream, never answer),
// drop_all (RST every current connection). accepted() counts accepted connections.
//
// The proxy runs on its own io_context and thread, so it keeps working while the loop under
// test is blocked or not running at all. The destructor closes every socket and joins the
// thread (closing also releases a PQcancel that is blocked on a stalled connection).
#ifndef PGCORO_TESTS_SUPPORT_FAULT_PROXY_HPP
#define PGCORO_TESTS_SUPPORT_FAULT_PROXY_HPP

#include "support/test_server.hpp"

#include <pgcoro/connect_config.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace pgcoro::test
{

class fault_proxy
{
public:
    enum class direction
    {
        client_to_server = 0,
        server_to_client = 1,
    };
    using clock = std::chrono::steady_clock;

    /// A proxy in front of `upstream_host:upstream_port` (a numeric loopback address).
    fault_proxy(const std::string& upstream_host, std::uint16_t upstream_port)
        : upstream_(boost::asio::ip::make_address(upstream_host), upstream_port)
    {
        namespace asio = boost::asio;
        asio::ip::tcp::endpoint local(asio::ip::make_address("127.0.0.1"), 0);
        boost::system::error_code ec;
        open_cloexec(acceptor_, local.protocol(), ec);
        if (ec)
            throw boost::system::system_error(ec);
        acceptor_.set_option(asio::socket_base::reuse_address(true));
        acceptor_.bind(local);
        acceptor_.listen();
        port_ = acceptor_.local_endpoint().port();
        listening_ = true;
        asio::co_spawn(io_, accept_loop(), asio::detached);
        thread_ = std::thread([this] { io_.run(); });
    }
    /// A proxy in front of the first host of `upstream` (by default the test cluster over TCP).
    explicit fault_proxy(const connect_config& upstream = test_server::get().tcp())
        : fault_proxy(upstream.hosts.at(0).host, upstream.hosts.at(0).port)
    {
    }
    fault_proxy(const fault_proxy&) = delete;
    fault_proxy& operator=(const fault_proxy&) = delete;

    ~fault_proxy()
    {
        boost::asio::post(io_,
                          [this]
                          {
                              stopping_ = true;
                              boost::system::error_code ec;
                              acceptor_.close(ec);
                              for (auto& w : sessions_)
                                  if (auto s = w.lock())
                                      s->close(true);
                              work_.reset();
                              io_.stop();
                          });
        thread_.join();
        // Coroutine frames still queued in io_ (sleeping stall loops) die with it, here.
    }

    std::uint16_t port() const noexcept { return port_; }

    /// `base` with its hosts replaced by the proxy's address.
    connect_config config(connect_config base = test_server::get().tcp()) const
    {
        base.hosts = {{"127.0.0.1", port_}};
        return base;
    }

    // ---- faults (any thread) ------------------------------------------------------------

    /// Everything back to normal: both directions pass, listening, not refusing, not silent.
    void heal()
    {
        {
            std::lock_guard lock(mutex_);
            for (int i = 0; i < 2; ++i)
            {
                rules_[i] = rule{};
                ++generations_[i];
            }
        }
        refuse_ = false;
        silent_ = false;
        resume_listening();
    }
    void pass(direction d) { set(d, rule{}); }
    void delay(direction d, std::chrono::milliseconds by) { set(d, rule{kind::delay, by, 0}); }
    void stall(direction d) { set(d, rule{kind::stall, {}, 0}); }
    /// Stalls both directions (a blackhole).
    void stall()
    {
        stall(direction::client_to_server);
        stall(direction::server_to_client);
    }
    /// Each connection forwards `bytes` more in direction `d`, then both its sockets are reset.
    void close_after(direction d, std::size_t bytes) { set(d, rule{kind::close_after, {}, bytes}); }
    /// Accept new connections, then reset them at once (true) or serve them again (false).
    void refuse(bool on = true) { refuse_ = on; }
    /// New connections are accepted but never connected upstream nor answered.
    void silent(bool on = true) { silent_ = on; }

    /// Closes the listening socket: connects fail with "connection refused".
    void stop_listening()
    {
        on_proxy_thread(
            [this]
            {
                listening_ = false;
                boost::system::error_code ec;
                acceptor_.close(ec);
            });
    }
    /// Listens again on the same port (after stop_listening()).
    void resume_listening()
    {
        on_proxy_thread(
            [this]
            {
                namespace asio = boost::asio;
                if (listening_ || stopping_)
                    return;
                asio::ip::tcp::endpoint local(asio::ip::make_address("127.0.0.1"), port_);
                boost::system::error_code ec;
                open_cloexec(acceptor_, local.protocol(), ec);
                acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
                acceptor_.bind(local, ec);
                if (!ec)
                    acceptor_.listen(asio::socket_base::max_listen_connections, ec);
                if (ec)
                {
                    acceptor_.close(ec);
                    return;
                }
                listening_ = true;
                asio::co_spawn(io_, accept_loop(), asio::detached);
            });
    }

    /// Resets (RST) every connection open now; returns how many there were.
    std::size_t drop_all()
    {
        std::size_t n = 0;
        on_proxy_thread(
            [this, &n]
            {
                for (auto& w : sessions_)
                    if (auto s = w.lock(); s && !s->closed)
                    {
                        s->close(true);
                        ++n;
                    }
            });
        return n;
    }

    // ---- observations (any thread) ------------------------------------------------------

    /// Connections accepted so far (refused and silent ones included).
    std::size_t accepted() const noexcept { return accepted_; }
    /// Connections (sessions) whose sockets are still open in the proxy.
    std::size_t active() const noexcept { return active_; }
    /// One line per open connection: bytes forwarded and what each direction is doing.
    std::string describe()
    {
        std::string out;
        on_proxy_thread(
            [this, &out]
            {
                for (auto& w : sessions_)
                    if (auto s = w.lock(); s && !s->closed)
                        out += "c->s " + std::to_string(s->total[0]) + " B " + s->doing[0] +
                               ", s->c " + std::to_string(s->total[1]) + " B " + s->doing[1] + "\n";
            });
        return out;
    }
    /// When each connection was accepted.
    std::vector<clock::time_point> accept_times() const
    {
        std::lock_guard lock(mutex_);
        return accept_times_;
    }

private:
    enum class kind
    {
        pass,
        delay,
        stall,
        close_after,
    };
    struct rule
    {
        kind what = kind::pass;
        std::chrono::milliseconds delay{0};
        std::size_t bytes = 0;
    };

    struct session
    {
        session(boost::asio::io_context& io, boost::asio::ip::tcp::socket c,
                std::atomic<std::size_t>& active)
            : client(std::move(c)), upstream(io), active_(active)
        {
            ++active_;
        }
        ~session() { close(false); }
        // Closes both sockets; `reset` sends RST instead of FIN.
        void close(bool reset)
        {
            if (closed)
                return;
            closed = true;
            --active_;
            for (auto* s : {&client, &upstream})
            {
                boost::system::error_code ec;
                if (reset && s->is_open())
                    s->set_option(boost::asio::socket_base::linger(true, 0), ec);
                s->close(ec);
            }
        }
        boost::asio::ip::tcp::socket client;
        boost::asio::ip::tcp::socket upstream;
        bool closed = false;
        std::array<std::size_t, 2> sent{};      // bytes forwarded since the rule generation
        std::array<unsigned, 2> generation{{}}; // which rule generation `sent` counts for
        std::array<std::size_t, 2> total{};     // bytes forwarded per direction
        std::array<const char*, 2> doing{{"connecting", "connecting"}}; // for describe()
        std::atomic<std::size_t>& active_;
    };

    // Opens `sock` with SOCK_CLOEXEC. Asio's own open() and accept() leave sockets inheritable,
    // and test_server::pg_ctl() runs pg_ctl through std::system(): a restarted postmaster
    // would inherit the proxy's sockets and keep them open after the proxy closed its copy,
    // so the peer never sees the close (a client waiting forever on a dead connection).
    template <class Socket, class Protocol>
    static void open_cloexec(Socket& sock, const Protocol& p, boost::system::error_code& ec)
    {
        int fd = ::socket(p.family(), p.type() | SOCK_CLOEXEC, p.protocol());
        if (fd < 0)
        {
            ec = boost::system::error_code(errno, boost::system::system_category());
            return;
        }
        sock.assign(p, fd, ec);
        if (ec)
            ::close(fd);
    }

    void set(direction d, rule r)
    {
        std::lock_guard lock(mutex_);
        rules_[static_cast<int>(d)] = r;
        ++generations_[static_cast<int>(d)];
    }
    // The rule for `d`, rebasing the session's byte count when the rules changed.
    rule rule_for(session& s, direction d)
    {
        std::lock_guard lock(mutex_);
        auto i = static_cast<int>(d);
        if (s.generation[i] != generations_[i])
        {
            s.generation[i] = generations_[i];
            s.sent[i] = 0;
        }
        return rules_[i];
    }
    bool stalled(direction d) const
    {
        std::lock_guard lock(mutex_);
        return rules_[static_cast<int>(d)].what == kind::stall;
    }

    // Runs `f` on the proxy thread and waits (at most 5 s) for it.
    template <class F>
    void on_proxy_thread(F f)
    {
        auto done = std::make_shared<std::promise<void>>();
        auto fut = done->get_future();
        boost::asio::post(io_,
                          [f = std::move(f), done]() mutable
                          {
                              f();
                              done->set_value();
                          });
        if (fut.wait_for(std::chrono::seconds(5)) != std::future_status::ready)
            ADD_FAILURE() << "fault_proxy: the proxy thread did not answer within 5 s";
    }

    boost::asio::awaitable<void> sleep(std::chrono::milliseconds d)
    {
        boost::asio::steady_timer t(io_, d);
        co_await t.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
    }

    // Ends when the acceptor is closed (stop_listening() or the destructor).
    boost::asio::awaitable<void> accept_loop()
    {
        namespace asio = boost::asio;
        while (listening_ && !stopping_)
        {
            // accept4(SOCK_CLOEXEC) by hand: Asio's accept leaves the socket inheritable.
            auto [ec] = co_await acceptor_.async_wait(asio::ip::tcp::acceptor::wait_read,
                                                      asio::as_tuple(asio::use_awaitable));
            if (!listening_ || stopping_ || ec == asio::error::operation_aborted ||
                ec == asio::error::bad_descriptor)
                co_return;
            int fd = ec ? -1
                        : ::accept4(acceptor_.native_handle(), nullptr, nullptr,
                                    SOCK_CLOEXEC | SOCK_NONBLOCK);
            if (fd < 0)
            {
                if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ECONNABORTED)
                    co_await sleep(std::chrono::milliseconds(5)); // EMFILE and the like: no spin
                continue;
            }
            asio::ip::tcp::socket sock(io_);
            boost::system::error_code aec;
            sock.assign(asio::ip::tcp::v4(), fd, aec); // the listener is 127.0.0.1
            if (aec)
            {
                ::close(fd);
                continue;
            }
            ++accepted_;
            {
                std::lock_guard lock(mutex_);
                accept_times_.push_back(clock::now());
            }
            std::erase_if(sessions_, [](const auto& w) { return w.expired(); });
            if (refuse_)
            {
                boost::system::error_code ignored;
                sock.set_option(asio::socket_base::linger(true, 0), ignored);
                sock.close(ignored);
                continue;
            }
            auto s = std::make_shared<session>(io_, std::move(sock), active_);
            sessions_.push_back(s);
            if (silent_)
                asio::co_spawn(io_, swallow(s), asio::detached);
            else
                asio::co_spawn(io_, connect_upstream(s), asio::detached);
        }
    }

    // Accept-then-silence: read and discard until the client goes away.
    boost::asio::awaitable<void> swallow(std::shared_ptr<session> s)
    {
        namespace asio = boost::asio;
        std::array<char, 4096> buf;
        while (!s->closed && !stopping_)
        {
            auto [ec, n] = co_await s->client.async_read_some(asio::buffer(buf),
                                                              asio::as_tuple(asio::use_awaitable));
            if (ec)
                break;
        }
        s->close(false);
    }

    boost::asio::awaitable<void> connect_upstream(std::shared_ptr<session> s)
    {
        namespace asio = boost::asio;
        boost::system::error_code oec;
        open_cloexec(s->upstream, upstream_.protocol(), oec);
        if (oec)
        {
            s->close(true);
            co_return;
        }
        auto [ec] =
            co_await s->upstream.async_connect(upstream_, asio::as_tuple(asio::use_awaitable));
        if (ec || s->closed)
        {
            s->close(true); // the server is not there: the client sees a reset
            co_return;
        }
        boost::system::error_code ignored;
        s->upstream.set_option(asio::ip::tcp::no_delay(true), ignored);
        s->client.set_option(asio::ip::tcp::no_delay(true), ignored);
        asio::co_spawn(io_, pump(s, direction::client_to_server), asio::detached);
        asio::co_spawn(io_, pump(s, direction::server_to_client), asio::detached);
    }

    // Holds while `d` is stalled. Bounded by the proxy's lifetime and the session's.
    boost::asio::awaitable<void> hold_while_stalled(session& s, direction d)
    {
        while (!s.closed && !stopping_ && stalled(d))
            co_await sleep(std::chrono::milliseconds(2));
    }

    boost::asio::awaitable<void> pump(std::shared_ptr<session> s, direction d)
    {
        struct mark_done
        {
            session& s;
            int i;
            ~mark_done() { s.doing[i] = "ended"; }
        } done{*s, static_cast<int>(d)};
        namespace asio = boost::asio;
        auto& from = d == direction::client_to_server ? s->client : s->upstream;
        auto& to = d == direction::client_to_server ? s->upstream : s->client;
        std::vector<char> buf(64 * 1024);
        const auto i = static_cast<int>(d);
        while (!s->closed && !stopping_)
        {
            s->doing[i] = "held";
            co_await hold_while_stalled(*s, d);
            if (s->closed || stopping_)
                break;
            s->doing[i] = "reading";
            auto [ec, n] = co_await from.async_read_some(asio::buffer(buf),
                                                         asio::as_tuple(asio::use_awaitable));
            // What arrived during a stall (data or EOF) waits until the direction passes.
            s->doing[i] = "holding";
            co_await hold_while_stalled(*s, d);
            if (s->closed || stopping_)
                break;
            if (ec)
            {
                // EOF: close both (PostgreSQL never half-closes); an error: pass the reset on.
                s->close(ec != asio::error::eof);
                break;
            }
            rule r = rule_for(*s, d);
            if (r.what == kind::delay && r.delay.count() > 0)
            {
                s->doing[i] = "delaying";
                co_await sleep(r.delay);
                if (s->closed || stopping_)
                    break;
            }
            std::size_t forward = n;
            bool cut = false;
            if (r.what == kind::close_after)
            {
                std::size_t left = r.bytes > s->sent[i] ? r.bytes - s->sent[i] : 0;
                if (n >= left)
                {
                    forward = left;
                    cut = true;
                }
            }
            if (forward > 0)
            {
                s->doing[i] = "writing";
                auto [wec, w] = co_await asio::async_write(to, asio::buffer(buf.data(), forward),
                                                           asio::as_tuple(asio::use_awaitable));
                if (wec)
                {
                    s->close(true);
                    break;
                }
                s->sent[i] += w;
                s->total[i] += w;
            }
            if (cut)
            {
                s->close(true);
                break;
            }
        }
    }

    // Declaration order matters: io_ (and the sessions its handlers own) dies before the
    // counters they touch.
    mutable std::mutex mutex_;
    std::array<rule, 2> rules_{};
    std::array<unsigned, 2> generations_{{1, 1}}; // bumped when a direction's rule changes
    std::vector<clock::time_point> accept_times_;
    std::atomic<std::size_t> accepted_{0};
    std::atomic<std::size_t> active_{0};
    std::atomic<bool> refuse_{false};
    std::atomic<bool> silent_{false};
    bool listening_ = false; // proxy thread only (set before the thread starts)
    bool stopping_ = false;  // proxy thread only
    boost::asio::ip::tcp::endpoint upstream_;
    std::uint16_t port_ = 0;
    boost::asio::io_context io_;
    boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_{
        io_.get_executor()};
    boost::asio::ip::tcp::acceptor acceptor_{io_};
    std::vector<std::weak_ptr<session>> sessions_; // proxy thread only
    std::thread thread_;
};

} // namespace pgcoro::test

#endif // PGCORO_TESTS_SUPPORT_FAULT_PROXY_HPP
