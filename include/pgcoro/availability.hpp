// SPDX-License-Identifier: BSL-1.0
// pgcoro/availability.hpp - "is the database there?": a ping retried with backoff.
#ifndef PGCORO_AVAILABILITY_HPP
#define PGCORO_AVAILABILITY_HPP

#include <pgcoro/connection.hpp>
#include <pgcoro/error.hpp>
#include <pgcoro/pool.hpp>
#include <pgcoro/retry.hpp>

#include <boost/asio/awaitable.hpp>

#include <chrono>

namespace pgcoro
{

/// The availability check's defaults: 3 attempts, 1 s then 2 s apart (equal jitter), each
/// ping limited to 2 s.
inline constexpr retry_policy availability_policy = []
{
    retry_policy p;
    p.max_attempts = 3;
    p.attempt_timeout = std::chrono::seconds(2);
    p.idempotent = true; // a ping has no side effects: a timed-out one may be repeated
    return p;
}();

/// Pings the database through `target` (acquire + an empty statement), retrying transient
/// failures per `policy`.
///
/// Completes with: true as soon as one ping succeeds; false only after every attempt failed
///   (or a non-transient error such as a wrong password ended the attempts).
/// Errors: none; the last error is available through `last_error` when given.
/// Cancellation: terminal; completes with false.
/// Resumes on: the caller's executor.
inline boost::asio::awaitable<bool> is_database_available(pool& target,
                                                          retry_policy policy = availability_policy,
                                                          error* last_error = nullptr)
{
    policy.idempotent = true;
    auto r = co_await retry(policy, [&target]()
                            { return target.run([](connection& c) { return c.query(""); }); });
    if (!r && last_error)
        *last_error = r.error();
    co_return r.has_value();
}

} // namespace pgcoro

#endif // PGCORO_AVAILABILITY_HPP
