// SPDX-License-Identifier: BSL-1.0
// pgcoro/observe.hpp - connects retry() and circuit_breaker to an observer.
#ifndef PGCORO_OBSERVE_HPP
#define PGCORO_OBSERVE_HPP

#include <pgcoro/circuit_breaker.hpp>
#include <pgcoro/observer.hpp>
#include <pgcoro/retry.hpp>

#include <functional>
#include <memory>

namespace pgcoro
{

/// A retry_hooks::on_retry that reports each retry to `o` as a retry_attempt_event
/// (`hooks.on_retry = observe_retries(collector);`). `o` is kept alive by the returned function.
inline std::function<void(const retry_event&)> observe_retries(std::shared_ptr<observer> o)
{
    return [o = std::move(o)](const retry_event& e)
    {
        o->on_retry(retry_attempt_event{e.attempt, e.delay, e.failure.code, e.failure.state,
                                        e.failure.message});
    };
}

/// Makes `breaker` report its state changes to `o` (replaces its on_transition handler).
inline void observe_breaker(circuit_breaker& breaker, std::shared_ptr<observer> o)
{
    breaker.on_transition([o = std::move(o)](const breaker_transition& t)
                          { o->on_breaker_transition(t); });
}

} // namespace pgcoro

#endif // PGCORO_OBSERVE_HPP
