// SPDX-License-Identifier: BSL-1.0
// pgcoro/impl/lease.ipp - lease: inline from <pgcoro/lease.hpp> (header-only) or compiled once
// from <pgcoro/src.hpp> (PGCORO_SEPARATE_COMPILATION).
#ifndef PGCORO_IMPL_LEASE_IPP
#define PGCORO_IMPL_LEASE_IPP

#include <pgcoro/detail/pool_core.hpp>
#include <pgcoro/lease.hpp>

namespace pgcoro
{

PGCORO_DECL void lease::release() noexcept
{
    if (!node_)
        return;
    auto core = std::move(core_);
    core->release(std::exchange(node_, nullptr), broken_); // noexcept
}

} // namespace pgcoro

#endif // PGCORO_IMPL_LEASE_IPP
