// SPDX-License-Identifier: BSL-1.0
// pgcoro/detail/pq_connect.hpp - opening one libpq connection without blocking the event loop:
// name lookups on the blocking-call helpers, the handshake driven by PQconnectPoll.
#ifndef PGCORO_DETAIL_PQ_CONNECT_HPP
#define PGCORO_DETAIL_PQ_CONNECT_HPP

#include <pgcoro/connect_config.hpp>
#include <pgcoro/detail/blocking_calls.hpp>
#include <pgcoro/detail/conn_params.hpp>
#include <pgcoro/detail/pq_error.hpp>
#include <pgcoro/detail/pq_handles.hpp>
#include <pgcoro/detail/pq_io.hpp>
#include <pgcoro/detail/session_attrs.hpp>
#include <pgcoro/error.hpp>

#include <boost/asio/ip/address.hpp>

#include <libpq-fe.h>

#include <arpa/inet.h>
#include <atomic>
#include <chrono>
#include <netdb.h>
#include <netinet/in.h>
#include <string>
#include <vector>

namespace pgcoro::detail
{

// Replaces getaddrinfo() in tests (a slow or silent resolver, deterministically); null: none.
using resolve_override_fn = int (*)(const char* host, const char* service, const addrinfo* hints,
                                    addrinfo** out);
inline std::atomic<resolve_override_fn> resolve_override{nullptr};

// getaddrinfo() on a helper thread: the numeric addresses of a host name.
struct resolve_call final : blocking_call
{
    using blocking_call::blocking_call;
    std::string host, service;
    int rc = 0;
    std::vector<std::string> addresses;

    void run() noexcept override
    {
        addrinfo hints{};
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        addrinfo* res = nullptr;
        auto fn = resolve_override.load();
        rc = fn ? fn(host.c_str(), service.c_str(), &hints, &res)
                : ::getaddrinfo(host.c_str(), service.c_str(), &hints, &res);
        if (rc != 0)
            return;
        try
        {
            for (addrinfo* p = res; p; p = p->ai_next)
            {
                char buf[INET6_ADDRSTRLEN] = {};
                const void* a = p->ai_family == AF_INET6
                                    ? static_cast<const void*>(
                                          &reinterpret_cast<sockaddr_in6*>(p->ai_addr)->sin6_addr)
                                    : &reinterpret_cast<sockaddr_in*>(p->ai_addr)->sin_addr;
                if ((p->ai_family == AF_INET || p->ai_family == AF_INET6) &&
                    ::inet_ntop(p->ai_family, a, buf, sizeof buf))
                    addresses.emplace_back(buf);
            }
        }
        catch (...)
        {
            rc = EAI_MEMORY;
        }
        ::freeaddrinfo(res); // an override returns getaddrinfo()'s results too
    }
};

// Opens one connection: each host in turn (each address of a name in turn), the whole attempt
// within cfg.connect_timeout, name lookups included. Ends with the open PGconn (nonblocking) or
// the last error: connect_failed (with the server's SQLSTATE when it gave one), tls_failed,
// timeout, or cancelled (the caller's cancellation or the owner's close).
class pq_connector
{
    using clock = std::chrono::steady_clock;

public:
    pq_connector(pq_io& io, const connect_config& cfg, const asio::any_io_executor& ex)
        : io_(io), cfg_(cfg), ex_(ex)
    {
    }

    asio::awaitable<expected<pgconn_ptr>> run()
    {
        deadline_ = cfg_.connect_timeout.count() > 0 ? clock::now() + cfg_.connect_timeout
                                                     : pq_io::no_deadline;
        // target_session_attrs is checked by libpq against the one host it is given; the
        // choice among hosts is made here: in order (or shuffled, load_balance_hosts), and for
        // prefer-standby a pass accepting only standbys, then one accepting any server.
        const std::vector<host_port> order = host_order(cfg_);
        if (session_attrs_of(cfg_) == "prefer-standby")
        {
            attrs_ = "standby";
            auto r = co_await open_any(order);
            if (r || r.error().is(errc::timeout) || r.error().is(errc::cancelled))
                co_return r;
            attrs_ = "any";
        }
        co_return co_await open_any(order);
    }

private:
    asio::awaitable<expected<pgconn_ptr>> open_any(const std::vector<host_port>& order)
    {
        co_return co_await first_open(order, error(errc::connect_failed, "no host configured"),
                                      [this](const host_port& hp) { return connect_host(hp); });
    }

    // Tries `attempt(x)` for each x in turn: the first open connection wins; a timeout or a
    // cancellation ends the tries; else the last error (`none` when there was nothing to try).
    template <class Range, class Attempt>
    static asio::awaitable<expected<pgconn_ptr>> first_open(const Range& xs, error none,
                                                            Attempt attempt)
    {
        for (const auto& x : xs)
        {
            auto r = co_await attempt(x);
            if (r)
                co_return r;
            none = std::move(r.error());
            if (none.is(errc::timeout) || none.is(errc::cancelled))
                break;
        }
        co_return tl::unexpected(std::move(none));
    }

    asio::awaitable<expected<pgconn_ptr>> connect_host(const host_port& hp)
    {
        if (!hp.host.empty() && hp.host.front() == '/') // unix-socket directory: no DNS
            co_return co_await connect_address(hp.host, "", hp.port);
        boost::system::error_code ec;
        asio::ip::make_address(hp.host, ec);
        if (!ec) // numeric address: no DNS
            co_return co_await connect_address(hp.host, hp.host, hp.port);

        auto call = std::make_shared<resolve_call>(blocking_context_of(ex_));
        call->host = hp.host;
        call->service = std::to_string(hp.port);
        call->deadline = deadline_;
        if (!blocking_calls::instance().submit(call))
            co_return fail(errc::connect_failed,
                           "could not resolve host \"" + hp.host +
                               "\": too many name lookups waiting for a helper thread");
        switch (co_await io_.wait_call(call, deadline_))
        {
        case wait_result::ready:
            break;
        case wait_result::deadline:
            co_return fail(errc::timeout, "connect timed out resolving \"" + hp.host + "\" after " +
                                              std::to_string(cfg_.connect_timeout.count()) +
                                              " ms (connect_timeout)");
        case wait_result::closed:
            co_return fail(errc::cancelled,
                           "connect cancelled resolving " + hp.host + ": connection closed");
        default:
            co_return fail(errc::cancelled, "connect cancelled resolving " + hp.host);
        }
        if (call->skipped)
            co_return fail(errc::timeout, "connect timed out waiting to resolve \"" + hp.host +
                                              "\" (connect_timeout)");
        if (call->rc != 0)
            co_return fail(errc::connect_failed, "could not resolve host \"" + hp.host +
                                                     "\": " + ::gai_strerror(call->rc));
        co_return co_await first_open(
            call->addresses, error(errc::connect_failed, "no address for host \"" + hp.host + "\""),
            [this, &hp](const std::string& addr)
            { return connect_address(hp.host, addr, hp.port); });
    }

    asio::awaitable<expected<pgconn_ptr>>
    connect_address(const std::string& host, const std::string& hostaddr, std::uint16_t port)
    {
        const std::string where = (host.empty() ? hostaddr : host) + ":" + std::to_string(port);
        pgconn_ptr conn;
        {
            conn_params p(cfg_, host, hostaddr, port, attrs_);
            conn.reset(PQconnectStartParams(p.keys(), p.values(), 0));
        }
        if (!conn)
            co_return fail(errc::connect_failed, "out of memory starting a connection");
        // VERBOSE makes libpq put the SQLSTATE into connect failure texts ("FATAL:  28P01:").
        PQsetErrorVerbosity(conn.get(), PQERRORS_VERBOSE);
        if (PQstatus(conn.get()) == CONNECTION_BAD)
            co_return failure(conn, where);

        // As the manual says: behave as if the last poll returned PGRES_POLLING_WRITING.
        PostgresPollingStatusType st = PGRES_POLLING_WRITING;
        for (;;)
        {
            if (!io_.watch(conn.get()))
                co_return failure(conn, where);
            if (st == PGRES_POLLING_OK)
                break;
            if (st == PGRES_POLLING_FAILED)
                co_return failure(conn, where);
            const auto w = co_await io_.wait(
                st == PGRES_POLLING_READING ? wait_for::read : wait_for::write, deadline_);
            if (w == wait_result::deadline)
            {
                io_.unwatch();
                co_return fail(errc::timeout, "connect to " + where + " timed out after " +
                                                  std::to_string(cfg_.connect_timeout.count()) +
                                                  " ms");
            }
            if (w != wait_result::ready && w != wait_result::failed)
            {
                io_.unwatch();
                co_return fail(errc::cancelled,
                               "connect to " + where + " cancelled" +
                                   (w == wait_result::closed ? ": connection closed" : ""));
            }
            st = PQconnectPoll(conn.get());
        }
        PQsetErrorVerbosity(conn.get(), PQERRORS_DEFAULT);
        if (PQsetnonblocking(conn.get(), 1) != 0)
            co_return failure(conn, where);
        co_return std::move(conn);
    }

    tl::unexpected<error> failure(pgconn_ptr& conn, const std::string& where)
    {
        std::string msg = first_line(PQerrorMessage(conn.get()));
        sqlstate st = sqlstate_from_verbose_text(msg);
        // Drop the "FATAL:  28P01: " prefix's code from the readable text; keep severity.
        if (!st.empty())
        {
            auto p = msg.find(std::string(st.view()) + ": ");
            if (p != std::string::npos)
                msg.erase(p, 7);
        }
        io_.unwatch();
        conn.reset();
        if (st.empty() && is_tls_rejection(msg))
            return fail(errc::tls_failed,
                        "connect to " + where + " failed: " + msg +
                            " (TLS, sslmode=" + std::string(to_string(cfg_.sslmode)) + ")");
        return fail(errc::connect_failed, "connect to " + where + " failed: " + msg, st);
    }

    pq_io& io_;
    const connect_config& cfg_;
    asio::any_io_executor ex_;
    clock::time_point deadline_ = pq_io::no_deadline;
    std::string_view attrs_; // overrides target_session_attrs for this pass when not empty
};

} // namespace pgcoro::detail

#endif // PGCORO_DETAIL_PQ_CONNECT_HPP
