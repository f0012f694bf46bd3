// SPDX-License-Identifier: BSL-1.0
// pgcoro/detail/notice.hpp - a server notice as passed to a connection's notice handler.
#ifndef PGCORO_DETAIL_NOTICE_HPP
#define PGCORO_DETAIL_NOTICE_HPP

#include <pgcoro/error.hpp>

#include <string_view>

namespace pgcoro::detail
{

/// A server notice as passed to a notice handler; views are valid during the call only.
struct notice
{
    std::string_view severity; ///< "NOTICE", "WARNING", ... (not localized)
    pgcoro::sqlstate state;    ///< e.g. 01000
    std::string_view message;  ///< primary message
};

} // namespace pgcoro::detail

#endif // PGCORO_DETAIL_NOTICE_HPP
