// pgcoro/detail/pool_node.hpp - one pooled connection and its bookkeeping.
#ifndef PGCORO_DETAIL_POOL_NODE_HPP
#define PGCORO_DETAIL_POOL_NODE_HPP

#include <pgcoro/connection.hpp>
#include <pgcoro/detail/pool_policy.hpp>
#include <pgcoro/source_location.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <chrono>

namespace pgcoro::detail
{

namespace asio = boost::asio;

// One pooled connection and its bookkeeping. Owned by pool_core::nodes_.
struct pool_node
{
    using time_point = std::chrono::steady_clock::time_point;
    explicit pool_node(asio::any_io_executor ex) : conn(std::move(ex)) {}

    connection conn;
    node_state state = node_state::connecting;
    time_point retire = time_point::max(); // max_lifetime (with jitter) ends here
    time_point connect_started{};          // when its connect began
    time_point opened_at{};                // when it became ready; time_point{} while never opened
    time_point idle_since{};
    time_point leased_at{};
    pgcoro::source_location acquired_at{};
    bool leak_reported = false;
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
