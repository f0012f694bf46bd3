// SPDX-License-Identifier: BSL-1.0
// pgcoro/detail/pool_node.hpp - one pooled connection: the bookkeeping the pool's state
// machine keeps (node_rec) and the connection the driver runs (pool_node).
#ifndef PGCORO_DETAIL_POOL_NODE_HPP
#define PGCORO_DETAIL_POOL_NODE_HPP

#include <pgcoro/connection.hpp>
#include <pgcoro/detail/pool_policy.hpp>
#include <pgcoro/source_location.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>

#include <libpq-fe.h>
#include <poll.h>

#include <chrono>

namespace pgcoro::detail
{

class pool_upkeep;

// What the state machine (pool_machine) knows about one connection. No I/O: the machine reads
// and writes only these fields; the driver's pool_node adds the connection.
struct node_rec
{
    using time_point = std::chrono::steady_clock::time_point;

    node_state state = node_state::connecting;
    time_point retire = time_point::max(); // max_lifetime (with jitter) ends here
    time_point connect_started{};          // when its connect began
    time_point opened_at{};                // when it became ready; time_point{} while never opened
    time_point idle_since{};
    time_point leased_at{};
    pgcoro::source_location acquired_at{};
    int backend_pid = 0; // recorded when it opened: leak reports never touch a leased
                         // connection its holder may be closing
    bool leak_reported = false;
    bool for_waiter = false; // a validation started to serve a waiter (not a keepalive)
};

// A pooled connection as the driver (pool_core) runs it.
struct pool_node : node_rec
{
    pool_node(boost::asio::any_io_executor ex, pool_upkeep* shard)
        : conn(std::move(ex)), owner(shard)
    {
    }

    // Whether the connection cannot be handed out: closed, or (`poll_socket`) its socket turned
    // readable while idle - the server spoke unasked, in practice a FATAL before EOF.
    bool probe_broken(bool poll_socket)
    {
        if (!conn.is_open())
            return true;
        if (!poll_socket)
            return false;
        pollfd p{PQsocket(conn.native_handle()), POLLIN, 0};
        return p.fd < 0 || ::poll(&p, 1, 0) != 0;
    }

    connection conn;
    pool_upkeep* owner; // the pool (shard) the node belongs to, which its lease returns it to
    boost::asio::cancellation_signal abort; // ends its connect, ping or reset (shutdown)
};

// A suspected leak, as handed to the leak handler.
struct leak_info
{
    pgcoro::source_location where;  // the acquire() that took the lease
    std::chrono::milliseconds held; // how long it has been held so far
    int backend_pid;                // the server process behind it
};

} // namespace pgcoro::detail

#endif // PGCORO_DETAIL_POOL_NODE_HPP
