// SPDX-License-Identifier: BSL-1.0
// pgcoro/notification.hpp - one NOTIFY as the server delivered it.
#ifndef PGCORO_NOTIFICATION_HPP
#define PGCORO_NOTIFICATION_HPP

#include <string>

namespace pgcoro
{

/// A notification (NOTIFY channel, 'payload' or pg_notify()) received on a LISTENing session.
struct notification
{
    std::string channel; ///< the channel as the server names it
    std::string payload; ///< the payload ("" when none was given)
    int sender_pid = 0;  ///< the notifying session's backend pid
};

} // namespace pgcoro

#endif // PGCORO_NOTIFICATION_HPP
