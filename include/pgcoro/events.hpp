// SPDX-License-Identifier: BSL-1.0
// pgcoro/events.hpp - the plain structs a pool hands to its observer, one per transition.
#ifndef PGCORO_EVENTS_HPP
#define PGCORO_EVENTS_HPP

#include <pgcoro/close_reason.hpp>
#include <pgcoro/detail/resilience_breaker.hpp>
#include <pgcoro/error.hpp>
#include <pgcoro/fingerprint.hpp>
#include <pgcoro/source_location.hpp>

#include <chrono>
#include <cstdint>
#include <string_view>
#include <system_error>

namespace pgcoro
{

// Every event is a small aggregate built on the stack at the transition point, only when an
// observer is installed. Views (std::string_view, statement_ref) are valid only while the hook
// runs: copy what you keep. No event carries a parameter value or a password; messages are
// the already-redacted pgcoro::error messages.

/// How an acquire() ended.
enum class acquire_outcome
{
    immediate, ///< served from the idle stack without waiting
    waited,    ///< served after waiting for a release or a connect
    timed_out, ///< failed with pool_timeout after acquire_timeout
    cancelled, ///< the caller cancelled the wait
    rejected,  ///< refused: too_many_waiters, pool_closed, or a connect error retrying cannot fix
};

/// "immediate", "waited", "timed_out", "cancelled" or "rejected".
constexpr std::string_view to_string(acquire_outcome o) noexcept
{
    switch (o)
    {
    case acquire_outcome::immediate:
        return "immediate";
    case acquire_outcome::waited:
        return "waited";
    case acquire_outcome::timed_out:
        return "timed_out";
    case acquire_outcome::cancelled:
        return "cancelled";
    case acquire_outcome::rejected:
        return "rejected";
    }
    return "unknown";
}

/// How a statement ended.
enum class query_outcome
{
    success,   ///< the server answered without error
    failed,    ///< the server or the connection reported an error (see code and state)
    timed_out, ///< the statement's own deadline passed (errc::timeout)
    cancelled, ///< the awaiting coroutine was cancelled
};

/// "success", "failed", "timed_out" or "cancelled".
constexpr std::string_view to_string(query_outcome o) noexcept
{
    switch (o)
    {
    case query_outcome::success:
        return "success";
    case query_outcome::failed:
        return "failed";
    case query_outcome::timed_out:
        return "timed_out";
    case query_outcome::cancelled:
        return "cancelled";
    }
    return "unknown";
}

/// A connect began (the pool opening a connection for a waiter, min_size or a replacement).
struct connect_started_event
{
    std::size_t in_flight = 0; ///< connects in flight, this one included
};

/// A connect finished successfully.
struct connect_succeeded_event
{
    std::chrono::nanoseconds elapsed{0}; ///< from connect start to ready
    int backend_pid = 0;                 ///< the server process now serving the connection
};

/// A connect failed (refused, DNS, auth, TLS, timeout).
struct connect_failed_event
{
    std::chrono::nanoseconds elapsed{0}; ///< from connect start to the failure
    std::error_code code{};              ///< errc::connect_failed, errc::timeout, ...
    sqlstate state{};                    ///< the server's SQLSTATE (e.g. 28P01), if any
    std::string_view message{};          ///< the redacted error message
};

/// An acquire() finished, served or not.
struct acquire_event
{
    acquire_outcome outcome = acquire_outcome::immediate; ///< how it ended
    std::chrono::nanoseconds waited{0};                   ///< time spent in acquire()
    std::size_t waiters = 0;                              ///< acquires still waiting after this one
    pgcoro::source_location where = {};                   ///< the call site of acquire()
    std::error_code code{}; ///< pool_timeout, cancelled, too_many_waiters, ...; empty if served
};

/// A lease gave its connection back.
struct release_event
{
    std::chrono::nanoseconds held{0}; ///< from acquire() returning to the release
    int backend_pid = 0;              ///< the server process behind the connection
    bool reset = false; ///< true when returned inside a transaction (the pool rolls it back)
};

/// True when a failure's message was written by the server about a statement
/// (errc::query_failed). Such messages and their DETAIL quote data values ("Key
/// (email)=(alice@example.com) already exists", "invalid input syntax for type date: ...",
/// "Failing row contains (...)"), so logging_observer and stats_collector leave them out
/// unless told otherwise (log_server_messages); SQLSTATE, its class and the fingerprint stay.
inline bool is_server_message(std::error_code code) noexcept
{
    return code == make_error_code(errc::query_failed);
}

/// A statement finished (fired for every statement, slow or not).
struct query_event
{
    statement_ref statement{};                      ///< its fingerprint, never its text
    std::chrono::nanoseconds elapsed{0};            ///< from send to the last result
    query_outcome outcome = query_outcome::success; ///< how it ended
    std::error_code code{};                         ///< the failure's code; empty on success
    sqlstate state{};                               ///< the server's SQLSTATE, if any
    std::string_view message{};                     ///< the redacted message; empty on success
    std::uint64_t rows = 0;                         ///< rows returned or affected
    int backend_pid = 0;                            ///< the server process that ran it

    /// True for a failure that may pass on retry (see is_transient); false on success.
    bool transient() const noexcept
    {
        if (outcome == query_outcome::success || outcome == query_outcome::cancelled)
            return false;
        const errc e =
            code.category() == error_category() ? static_cast<errc>(code.value()) : errc{};
        return outcome == query_outcome::timed_out || is_transient(e, state);
    }
};

/// A statement ran at least pool_config::slow_query_threshold (fired after its query_event).
struct slow_query_event
{
    statement_ref statement{};              ///< its fingerprint, never its text
    std::chrono::nanoseconds elapsed{0};    ///< how long it ran
    std::chrono::milliseconds threshold{0}; ///< the threshold it crossed
    int backend_pid = 0;                    ///< the server process that ran it
};

/// retry() is about to sleep before another attempt (see retry_event in retry.hpp).
struct retry_attempt_event
{
    unsigned attempt = 0;               ///< the attempt that just failed (1 = the first)
    std::chrono::milliseconds delay{0}; ///< the sleep before the next attempt
    std::error_code code{};             ///< why that attempt failed
    sqlstate state{};                   ///< the server's SQLSTATE, if any
    std::string_view message{};         ///< the redacted message
};

/// A lease has been held longer than pool_config::leak_threshold (fired once per lease).
struct leak_suspected_event
{
    pgcoro::source_location where = {}; ///< the acquire() that took the lease
    std::chrono::milliseconds held{0};  ///< how long it has been held so far
    int backend_pid = 0;                ///< the server process behind it
};

/// The pool closed a connection.
struct connection_closed_event
{
    close_reason reason = close_reason::shutdown; ///< why
    std::chrono::nanoseconds age{0};              ///< how long the connection lived
    int backend_pid = 0;                          ///< the server process it was served by
};

/// An operation ended at its caller's deadline (with_timeout() given an observer): a failure
/// for the success rate, although the operation itself reported only its cancellation.
struct deadline_event
{
    std::chrono::nanoseconds deadline{0}; ///< the deadline it was given
};

// breaker_transition (pgcoro/detail/resilience_breaker.hpp) is the breaker's event as is.

} // namespace pgcoro

#endif // PGCORO_EVENTS_HPP
