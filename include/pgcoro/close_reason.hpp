// SPDX-License-Identifier: BSL-1.0
// pgcoro/close_reason.hpp - why the pool closed a connection.
#ifndef PGCORO_CLOSE_REASON_HPP
#define PGCORO_CLOSE_REASON_HPP

#include <cstddef>
#include <string_view>

namespace pgcoro
{

/// Why the pool closed a connection; the pool counts each, observers receive it.
enum class close_reason
{
    idle_timeout,      ///< idle longer than pool_config::idle_timeout
    lifetime,          ///< older than pool_config::max_lifetime (with jitter), or retired on return
                       ///< after sending a statement over 16 MiB (libpq keeps that buffer)
    broken,            ///< the connection broke, or was returned mid-statement
    validation_failed, ///< a validation ping on borrow failed
    shutdown,          ///< close() or the pool's destruction
};

/// "idle_timeout", "lifetime", "broken", "validation_failed" or "shutdown".
constexpr std::string_view to_string(close_reason r) noexcept
{
    switch (r)
    {
    case close_reason::idle_timeout:
        return "idle_timeout";
    case close_reason::lifetime:
        return "lifetime";
    case close_reason::broken:
        return "broken";
    case close_reason::validation_failed:
        return "validation_failed";
    case close_reason::shutdown:
        return "shutdown";
    }
    return "unknown";
}

/// The number of close_reason values (for arrays indexed by reason).
inline constexpr std::size_t close_reason_count = 5;

} // namespace pgcoro

#endif // PGCORO_CLOSE_REASON_HPP
