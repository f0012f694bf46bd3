// SPDX-License-Identifier: BSL-1.0
// pgcoro/observer.hpp - the observer interface: one virtual hook per pool event, and a fan-out.
#ifndef PGCORO_OBSERVER_HPP
#define PGCORO_OBSERVER_HPP

#include <pgcoro/events.hpp>

#include <cstddef>
#include <initializer_list>
#include <memory>
#include <utility>
#include <vector>

namespace pgcoro
{

/// The metrics and logging interface of a pool: one virtual hook per event, each with an
/// empty body, so an implementation overrides only what it needs.
///
/// Cost model: the pool holds at most one observer pointer and fires a hook as
/// `if (observer_) observer_->on_x(event{...});` at the transition point that keeps its books.
/// With no observer installed, the hot path pays that one predictable branch and nothing
/// else: the event is built inside the branch, and no hook allocates on the pool's behalf.
/// With one installed, each event costs a virtual call plus whatever the hook does.
///
/// Rules for implementations:
/// - Hooks must not block (no I/O, no waiting locks): they run inside the transition (on the
///   pool's strand, or on the thread of the acquire() or release behind it) and delay every
///   acquire() behind them.
/// - Hooks are noexcept: nothing thrown can escape into the pool.
/// - Hooks may run concurrently on several threads (several pools sharing an observer, or a
///   multi-threaded io_context), so shared state must be atomic or guarded.
/// - Views inside an event (messages, statement_ref) die when the hook returns: copy them.
/// - An observer must outlive every pool it is installed in.
class observer
{
public:
    virtual ~observer() = default;

    /// A connect began.
    virtual void on_connect_started(const connect_started_event&) noexcept {}
    /// A connect finished successfully.
    virtual void on_connect_succeeded(const connect_succeeded_event&) noexcept {}
    /// A connect failed.
    virtual void on_connect_failed(const connect_failed_event&) noexcept {}
    /// An acquire() finished: served immediately, after a wait, timed out, cancelled, rejected.
    virtual void on_acquire(const acquire_event&) noexcept {}
    /// A lease gave its connection back, with how long it was held.
    virtual void on_release(const release_event&) noexcept {}
    /// A statement finished, with its duration, outcome and SQLSTATE.
    virtual void on_query_finished(const query_event&) noexcept {}
    /// A statement crossed slow_query_threshold (after its on_query_finished).
    virtual void on_slow_query(const slow_query_event&) noexcept {}
    /// retry() is about to sleep before another attempt.
    virtual void on_retry(const retry_attempt_event&) noexcept {}
    /// A circuit breaker changed state.
    virtual void on_breaker_transition(const breaker_transition&) noexcept {}
    /// A lease has been held past leak_threshold.
    virtual void on_leak_suspected(const leak_suspected_event&) noexcept {}
    /// The pool closed a connection, with the reason.
    virtual void on_connection_closed(const connection_closed_event&) noexcept {}
    /// An operation ended at its caller's deadline (with_timeout() or check_health()).
    virtual void on_deadline_expired(const deadline_event&) noexcept {}
};

/// Forwards every event to several observers, in the order they were added. Install it where
/// one observer is expected (e.g. a stats_collector and a logging_observer together).
/// Thread safety: the list is fixed once the fan-out is installed; add() only before that.
class fanout_observer final : public observer
{
public:
    /// An empty fan-out; add observers with add() before installing it.
    fanout_observer() = default;
    /// A fan-out over `observers` (null entries are skipped).
    fanout_observer(std::initializer_list<std::shared_ptr<observer>> observers)
    {
        for (const auto& o : observers)
            add(o);
    }

    /// Appends `o` (ignored when null). Not thread-safe: call before the fan-out is in use.
    void add(std::shared_ptr<observer> o)
    {
        if (o)
            observers_.push_back(std::move(o));
    }
    /// How many observers receive each event.
    std::size_t size() const noexcept { return observers_.size(); }

    void on_connect_started(const connect_started_event& e) noexcept override
    {
        for (const auto& o : observers_)
            o->on_connect_started(e);
    }
    void on_connect_succeeded(const connect_succeeded_event& e) noexcept override
    {
        for (const auto& o : observers_)
            o->on_connect_succeeded(e);
    }
    void on_connect_failed(const connect_failed_event& e) noexcept override
    {
        for (const auto& o : observers_)
            o->on_connect_failed(e);
    }
    void on_acquire(const acquire_event& e) noexcept override
    {
        for (const auto& o : observers_)
            o->on_acquire(e);
    }
    void on_release(const release_event& e) noexcept override
    {
        for (const auto& o : observers_)
            o->on_release(e);
    }
    void on_query_finished(const query_event& e) noexcept override
    {
        for (const auto& o : observers_)
            o->on_query_finished(e);
    }
    void on_slow_query(const slow_query_event& e) noexcept override
    {
        for (const auto& o : observers_)
            o->on_slow_query(e);
    }
    void on_retry(const retry_attempt_event& e) noexcept override
    {
        for (const auto& o : observers_)
            o->on_retry(e);
    }
    void on_breaker_transition(const breaker_transition& e) noexcept override
    {
        for (const auto& o : observers_)
            o->on_breaker_transition(e);
    }
    void on_leak_suspected(const leak_suspected_event& e) noexcept override
    {
        for (const auto& o : observers_)
            o->on_leak_suspected(e);
    }
    void on_connection_closed(const connection_closed_event& e) noexcept override
    {
        for (const auto& o : observers_)
            o->on_connection_closed(e);
    }
    void on_deadline_expired(const deadline_event& e) noexcept override
    {
        for (const auto& o : observers_)
            o->on_deadline_expired(e);
    }

private:
    std::vector<std::shared_ptr<observer>> observers_;
};

} // namespace pgcoro

#endif // PGCORO_OBSERVER_HPP
