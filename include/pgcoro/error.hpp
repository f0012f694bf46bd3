// SPDX-License-Identifier: BSL-1.0
// pgcoro/error.hpp - the one error type of pgcoro, its codes, and the transient table.
#ifndef PGCORO_ERROR_HPP
#define PGCORO_ERROR_HPP

#include <tl/expected.hpp>

#include <array>
#include <ostream>
#include <string>
#include <string_view>
#include <system_error>

namespace pgcoro
{

/// pgcoro's error codes, in the `pgcoro` error category. Zero is never an error.
enum class errc
{
    pool_timeout = 1, ///< acquire() waited acquire_timeout without getting a connection
    pool_closed,      ///< the pool is closing or closed
    too_many_waiters, ///< acquire() rejected at once: the waiter queue is at its cap
    connect_failed,   ///< a connection could not be established (refused, DNS, auth, TLS)
    connection_lost,  ///< an established connection broke (server gone, socket error)
    query_failed,     ///< the server answered a statement with an error (see sqlstate)
    timeout,          ///< an operation's own deadline passed (connect, statement, cancel)
    cancelled,        ///< the awaiting coroutine was cancelled (Asio cancellation)
    circuit_open,     ///< a circuit breaker rejected the call without trying it
    config_invalid,   ///< a configuration value is invalid
    invalid_argument, ///< a bad argument: embedded NUL, wrong parameter count, empty SQL
    type_mismatch,    ///< a field was read as a C++ type it cannot be converted to
    out_of_range,     ///< a row or column index past the end, or a value too large
    unexpected_null,  ///< a NULL field was read as a non-optional type
    busy,             ///< the connection is already running an operation
    protocol_error,   ///< libpq reported something pgcoro does not expect
    /// TLS could not be set up with a server we trust: its certificate was rejected (unknown
    /// CA, expired, host name not in it), the root certificate file is missing, or the server
    /// offers no TLS although sslmode requires it. A configuration problem: never transient.
    tls_failed,
};

/// A short, stable name for an errc ("pool_timeout"), for logs and tests.
constexpr std::string_view to_string(errc e) noexcept
{
    switch (e)
    {
    case errc::pool_timeout:
        return "pool_timeout";
    case errc::pool_closed:
        return "pool_closed";
    case errc::too_many_waiters:
        return "too_many_waiters";
    case errc::connect_failed:
        return "connect_failed";
    case errc::connection_lost:
        return "connection_lost";
    case errc::query_failed:
        return "query_failed";
    case errc::timeout:
        return "timeout";
    case errc::cancelled:
        return "cancelled";
    case errc::circuit_open:
        return "circuit_open";
    case errc::config_invalid:
        return "config_invalid";
    case errc::invalid_argument:
        return "invalid_argument";
    case errc::type_mismatch:
        return "type_mismatch";
    case errc::out_of_range:
        return "out_of_range";
    case errc::unexpected_null:
        return "unexpected_null";
    case errc::busy:
        return "busy";
    case errc::protocol_error:
        return "protocol_error";
    case errc::tls_failed:
        return "tls_failed";
    }
    return "unknown";
}

namespace detail
{
class error_category_impl final : public std::error_category
{
public:
    const char* name() const noexcept override { return "pgcoro"; }
    std::string message(int ev) const override
    {
        return std::string(pgcoro::to_string(static_cast<errc>(ev)));
    }
};
} // namespace detail

/// The `pgcoro` error category.
inline const std::error_category& error_category() noexcept
{
    static const detail::error_category_impl instance;
    return instance;
}

/// Makes a std::error_code in the pgcoro category.
inline std::error_code make_error_code(errc e) noexcept
{
    return {static_cast<int>(e), error_category()};
}

/// A five-character SQLSTATE ("40001"); empty when the error did not come from the server.
class sqlstate
{
public:
    constexpr sqlstate() noexcept = default;
    /// Takes the first five characters of `s` (anything shorter leaves the state empty).
    constexpr explicit sqlstate(std::string_view s) noexcept
    {
        if (s.size() >= 5)
            for (std::size_t i = 0; i < 5; ++i)
                code_[i] = s[i];
    }
    /// The code, or "" when there is none.
    constexpr std::string_view view() const noexcept
    {
        return code_[0] ? std::string_view(code_.data(), 5) : std::string_view();
    }
    /// The two-character class ("40"), or "".
    constexpr std::string_view class_code() const noexcept { return view().substr(0, 2); }
    constexpr bool empty() const noexcept { return code_[0] == '\0'; }
    friend constexpr bool operator==(const sqlstate& a, const sqlstate& b) noexcept
    {
        return a.view() == b.view();
    }
    friend constexpr bool operator==(const sqlstate& a, std::string_view b) noexcept
    {
        return a.view() == b;
    }

private:
    std::array<char, 6> code_{};
};

/// Whether a failure may succeed when the same work is tried again later.
/// This is the single table that retry, the circuit breaker, the pool and metrics read.
/// Connection-level failures (class 08, 57P01-57P03, 53300 too many connections) and
/// transaction conflicts (40001, 40P01) are transient; 08P01 (protocol violation, e.g. pgbouncer
/// rejecting a startup parameter) is configuration, not transient. Data (22), constraint (23)
/// and syntax/permission (42) errors are never transient, and neither are authentication
/// failures (28xxx) and `tls_failed` (a rejected certificate or host name does not heal by
/// itself; retrying it only delays the alert and would open circuit breakers).
constexpr bool is_transient(errc code, sqlstate state) noexcept
{
    std::string_view s = state.view();
    if (!s.empty())
    {
        if (s == "08P01")
            return false; // protocol violation: a misconfiguration, retrying spins
        if (state.class_code() == "08")
            return true; // connection exception
        if (s == "40001" || s == "40P01")
            return true; // serialization failure, deadlock detected
        if (s == "57P01" || s == "57P02" || s == "57P03")
            return true; // admin/crash shutdown, cannot connect now
        if (s == "53300" || s == "53400")
            return true; // too many connections, configuration limit exceeded
        if (s == "55P03")
            return true; // lock not available (NOWAIT)
        // Authentication (28xxx), TLS and everything else the server said: not transient.
        return false;
    }
    switch (code)
    {
    case errc::pool_timeout:
    case errc::connect_failed:
    case errc::connection_lost:
    case errc::timeout:
    case errc::circuit_open:
    case errc::too_many_waiters:
        return true;
    case errc::tls_failed: // configuration: fail fast, do not count against the database
    default:
        return false;
    }
}

/// pgcoro's error: a code, the server's SQLSTATE when there is one, and a readable message.
/// Messages never contain passwords: every producer redacts before it stores text here.
struct error
{
    std::error_code code;   ///< an errc in the pgcoro category (or a system/Asio code)
    pgcoro::sqlstate state; ///< the server's SQLSTATE; empty for client-side failures
    std::string message;    ///< primary message, redacted; may carry detail after a newline

    error() = default;
    /// An error with a pgcoro code and message.
    error(errc e, std::string msg, pgcoro::sqlstate st = {})
        : code(make_error_code(e)), state(st), message(std::move(msg))
    {
    }

    /// The pgcoro code, or errc{} (0) when `code` is from another category.
    errc value() const noexcept
    {
        return code.category() == error_category() ? static_cast<errc>(code.value()) : errc{};
    }
    /// True when retrying later may succeed (see is_transient()).
    bool transient() const noexcept { return is_transient(value(), state); }
    /// True when this error carries `e`.
    bool is(errc e) const noexcept { return code == make_error_code(e); }

    /// "query_failed [42601]: syntax error at or near ..." - for logs and test output.
    std::string to_string() const
    {
        std::string out(code.category() == error_category() ? pgcoro::to_string(value())
                                                            : std::string_view(code.message()));
        if (!state.empty())
        {
            out += " [";
            out += state.view();
            out += ']';
        }
        if (!message.empty())
        {
            out += ": ";
            out += message;
        }
        return out;
    }
    friend std::ostream& operator<<(std::ostream& os, const error& e)
    {
        return os << e.to_string();
    }
};

/// The result of every fallible pgcoro operation: a T or an error, never an exception.
template <class T>
using expected = tl::expected<T, error>;

/// Shorthand for `tl::make_unexpected(error{e, msg})`.
inline tl::unexpected<error> fail(errc e, std::string msg, sqlstate st = {})
{
    return tl::unexpected<error>(error(e, std::move(msg), st));
}

} // namespace pgcoro

template <>
struct std::is_error_code_enum<pgcoro::errc> : std::true_type
{
};

#endif // PGCORO_ERROR_HPP
