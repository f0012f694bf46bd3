// SPDX-License-Identifier: BSL-1.0
// pgcoro/lease.hpp - a pooled connection on loan: returned to its pool when the lease ends.
#ifndef PGCORO_LEASE_HPP
#define PGCORO_LEASE_HPP

#include <pgcoro/connection.hpp>
#include <pgcoro/detail/config.hpp>
#include <pgcoro/detail/pool_node.hpp>
#include <pgcoro/source_location.hpp>

#include <memory>
#include <utility>

namespace pgcoro
{

class lease;

namespace detail
{
class pool_core;
struct lease_access;
} // namespace detail

/// A connection borrowed from a pool. Move-only. Destroying it (or calling release()) returns
/// the connection: the pool rolls back an open transaction, and closes the connection instead
/// if it is broken, was returned in the middle of a statement, or was marked broken. A
/// moved-from or released lease is empty (`bool(lease) == false`). No co_await is needed to
/// return it, and the pool's internals live on while any lease does, so a lease may outlive
/// the pool object.
class lease
{
public:
    /// An empty lease.
    lease() = default;
    lease(lease&& other) noexcept
        : core_(std::move(other.core_)), node_(std::exchange(other.node_, nullptr)),
          broken_(other.broken_)
    {
    }
    lease& operator=(lease&& other) noexcept
    {
        if (this != &other)
        {
            release();
            core_ = std::move(other.core_);
            node_ = std::exchange(other.node_, nullptr);
            broken_ = other.broken_;
        }
        return *this;
    }
    lease(const lease&) = delete;
    lease& operator=(const lease&) = delete;
    ~lease() { release(); }

    /// The borrowed connection. Precondition: the lease is not empty.
    connection& operator*() const noexcept { return node_->conn; }
    /// The borrowed connection. Precondition: the lease is not empty.
    connection* operator->() const noexcept { return &node_->conn; }
    /// True while the lease holds a connection.
    explicit operator bool() const noexcept { return node_ != nullptr; }

    /// Returns the connection to the pool now; the lease becomes empty. Idempotent.
    void release() noexcept;
    /// Marks the connection as unusable: it is closed, not reused, when the lease ends.
    void mark_broken() noexcept { broken_ = true; }
    /// Where the acquire() that produced this lease was called.
    source_location where() const noexcept
    {
        return node_ ? node_->acquired_at : source_location();
    }

private:
    friend class pool;
    friend struct detail::lease_access;
    lease(std::shared_ptr<detail::pool_core> core, detail::pool_node* node) noexcept
        : core_(std::move(core)), node_(node)
    {
    }

    std::shared_ptr<detail::pool_core> core_;
    detail::pool_node* node_ = nullptr;
    bool broken_ = false;
};

namespace detail
{

// Makes leases (for the pool's acquire path).
struct lease_access
{
    static lease make(std::shared_ptr<pool_core> core, pool_node* node) noexcept
    {
        return lease(std::move(core), node);
    }
};

} // namespace detail

} // namespace pgcoro

#ifndef PGCORO_SEPARATE_COMPILATION
#include <pgcoro/impl/lease.ipp>
#endif

#endif // PGCORO_LEASE_HPP
