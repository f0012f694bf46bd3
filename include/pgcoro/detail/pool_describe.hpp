// SPDX-License-Identifier: BSL-1.0
// pgcoro/detail/pool_describe.hpp - where a pool stood when an acquire failed, in words, for
// the pool_timeout and cancelled errors.
#ifndef PGCORO_DETAIL_POOL_DESCRIBE_HPP
#define PGCORO_DETAIL_POOL_DESCRIBE_HPP

#include <pgcoro/detail/pool_node.hpp>
#include <pgcoro/error.hpp>
#include <pgcoro/pool_stats.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace pgcoro::detail
{

inline std::string whole_ms(std::chrono::steady_clock::duration d)
{
    return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
}

// "size=1/4 in_use=1 idle=0 connecting=0 waiters=1; oldest lease taken at f.cpp:12; last
// connect error: ...".
template <class Node>
std::string describe_pool(const pool_stats& s, std::size_t max_size,
                          const std::vector<std::unique_ptr<Node>>& nodes,
                          const std::optional<error>& last_error)
{
    std::string msg = "size=" + std::to_string(s.size) + "/" + std::to_string(max_size) +
                      " in_use=" + std::to_string(s.leased) + " idle=" + std::to_string(s.idle) +
                      " connecting=" + std::to_string(s.connecting) +
                      " waiters=" + std::to_string(s.waiters);
    const node_rec* oldest = nullptr;
    for (const auto& p : nodes)
        if (p->state == node_state::leased && (!oldest || p->leased_at < oldest->leased_at))
            oldest = p.get();
    if (oldest)
        msg += "; oldest lease taken at " + std::string(oldest->acquired_at.file_name()) + ":" +
               std::to_string(oldest->acquired_at.line());
    if (last_error)
        msg += "; last connect error: " + last_error->to_string();
    return msg;
}

// No connection within `waited` (acquire_timeout `limit`); `where` from describe_pool().
inline error pool_timeout_error(std::chrono::steady_clock::duration waited,
                                std::chrono::milliseconds limit, const std::string& where)
{
    return error(errc::pool_timeout, "no connection within " + whole_ms(waited) +
                                         " ms (acquire_timeout " + std::to_string(limit.count()) +
                                         " ms): " + where);
}

// A waiting acquire cancelled by its caller (or by with_timeout) after `waited`.
inline error acquire_cancelled_error(std::chrono::steady_clock::duration waited,
                                     const std::string& where)
{
    return error(errc::cancelled, "acquire cancelled after " + whole_ms(waited) + " ms: " + where);
}

} // namespace pgcoro::detail

#endif // PGCORO_DETAIL_POOL_DESCRIBE_HPP
