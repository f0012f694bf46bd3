// SPDX-License-Identifier: BSL-1.0
// pgcoro/stats_collector.hpp - an observer that keeps counters, histograms and a success rate.
#ifndef PGCORO_STATS_COLLECTOR_HPP
#define PGCORO_STATS_COLLECTOR_HPP

#include <pgcoro/detail/resilience_breaker.hpp>
#include <pgcoro/events.hpp>
#include <pgcoro/histogram.hpp>
#include <pgcoro/observer.hpp>
#include <pgcoro/pool_stats.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace pgcoro
{

/// How a stats_collector is built.
struct stats_collector_options
{
    /// Outcomes kept in the rolling success-rate window. Default 100; range 1..1,000,000;
    /// 0 is treated as 1.
    std::size_t window = 100;
    /// The wall clock stamped on the last failure; nullptr (the default) means
    /// std::chrono::system_clock::now. Tests pass a fixed clock.
    std::chrono::system_clock::time_point (*now)() = nullptr;
    /// Keep the server's message of a failed statement in last_failure_message. Default
    /// false: it may quote data values (is_server_message()), and health endpoints show it;
    /// the code and SQLSTATE are kept either way. settings::log_server_messages.
    bool server_messages = false;
};

/// What stats_collector::snapshot() returns: plain numbers, safe to copy, render and compare.
/// Counters are totals since the collector was created.
struct metrics_snapshot
{
    std::uint64_t connects_started = 0;     ///< connects begun
    std::uint64_t connects_succeeded = 0;   ///< connects that finished ready
    std::uint64_t connects_failed = 0;      ///< connects that failed
    std::uint64_t acquired_immediately = 0; ///< acquires served without waiting
    std::uint64_t acquired_after_wait = 0;  ///< acquires served after a wait
    std::uint64_t acquire_timeouts = 0;     ///< acquires failed with pool_timeout
    std::uint64_t acquire_cancelled = 0;    ///< waiting acquires cancelled by their caller
    std::uint64_t acquire_rejected = 0;     ///< acquires refused (too_many_waiters, pool_closed)
    std::uint64_t releases = 0;             ///< leases returned
    std::uint64_t queries_succeeded = 0;    ///< statements answered without error
    std::uint64_t queries_failed = 0;       ///< statements that failed (server or connection)
    std::uint64_t queries_timed_out = 0;    ///< statements that hit their own deadline
    std::uint64_t queries_cancelled = 0;    ///< statements cancelled by their caller
    std::uint64_t slow_queries = 0;         ///< statements past slow_query_threshold
    std::uint64_t retries = 0;              ///< retries retry() made (not first attempts)
    std::uint64_t leaks_suspected = 0;      ///< leases held past leak_threshold
    std::uint64_t breaker_transitions = 0;  ///< circuit-breaker state changes
    /// Connections closed, indexed by close_reason (see closed_by()).
    std::array<std::uint64_t, close_reason_count> closed{};
    /// The breaker's state after its last transition; empty until one was seen.
    std::optional<breaker_state> breaker;

    /// Successes over successes plus failures in the rolling window; 1.0 when it is empty.
    /// The window holds statement outcomes and failed acquires (timed out, rejected);
    /// cancellations and non-transient statement errors (constraint, syntax, permission: the
    /// application's fault, not the database's health) are left out, as in the breaker.
    double success_rate = 1.0;
    std::size_t window_outcomes = 0; ///< outcomes the window holds now (at most its capacity)
    std::size_t window_capacity = 0; ///< stats_collector_options::window

    /// When the last failure (window failure or failed connect) happened; empty if never.
    std::optional<std::chrono::system_clock::time_point> last_failure;
    /// Its redacted message ("pool_timeout: ...", "connect_failed [28P01]: ..."); may be empty.
    /// A failed statement's server message is left out ("query_failed [23505]") unless
    /// stats_collector_options::server_messages is set.
    std::string last_failure_message;

    histogram_snapshot acquire_wait;   ///< time acquire() waited (served, timed out, cancelled)
    histogram_snapshot query_duration; ///< statement durations, every outcome
    histogram_snapshot connect_time;   ///< durations of successful connects

    /// The pool's gauges at snapshot time, when the caller supplied them.
    std::optional<pool_stats> pool;

    /// Statements finished, every outcome.
    std::uint64_t queries_total() const noexcept
    {
        return queries_succeeded + queries_failed + queries_timed_out + queries_cancelled;
    }
    /// Connections closed for `r`.
    std::uint64_t closed_by(close_reason r) const noexcept
    {
        return closed[static_cast<std::size_t>(r)];
    }
};

/// An observer that keeps a pool's metrics: lock-free counters, latency histograms for
/// acquire wait, statement duration and connect time, and a rolling window of the last N
/// outcomes for the success rate. Every hook is a few relaxed atomic operations, except that
/// a failure also takes a mutex to store its message (failures are off the hot path).
/// Thread safety: every member may be called concurrently from any thread.
class stats_collector : public observer
{
public:
    /// A collector with a window of `options.window` outcomes.
    explicit stats_collector(stats_collector_options options = {})
        : window_size_(options.window == 0 ? 1 : options.window),
          window_(std::make_unique<std::atomic<std::uint8_t>[]>(window_size_)),
          now_(options.now ? options.now : &system_now), server_messages_(options.server_messages)
    {
    }

    /// The metrics now; cheap (a few KiB copied, no lock on the hot path) and thread-safe.
    metrics_snapshot snapshot() const
    {
        metrics_snapshot s;
        s.connects_started = load(connects_started_);
        s.connects_succeeded = load(connects_succeeded_);
        s.connects_failed = load(connects_failed_);
        s.acquired_immediately = load(acquires_[0]);
        s.acquired_after_wait = load(acquires_[1]);
        s.acquire_timeouts = load(acquires_[2]);
        s.acquire_cancelled = load(acquires_[3]);
        s.acquire_rejected = load(acquires_[4]);
        s.releases = load(releases_);
        s.queries_succeeded = load(queries_[0]);
        s.queries_failed = load(queries_[1]);
        s.queries_timed_out = load(queries_[2]);
        s.queries_cancelled = load(queries_[3]);
        s.slow_queries = load(slow_queries_);
        s.retries = load(retries_);
        s.leaks_suspected = load(leaks_);
        s.breaker_transitions = load(breaker_transitions_);
        for (std::size_t i = 0; i < close_reason_count; ++i)
            s.closed[i] = load(closed_[i]);
        const int b = breaker_.load(std::memory_order_relaxed);
        if (b >= 0)
            s.breaker = static_cast<breaker_state>(b);

        std::size_t ok = 0;
        std::size_t bad = 0;
        for (std::size_t i = 0; i < window_size_; ++i)
        {
            const std::uint8_t v = window_[i].load(std::memory_order_relaxed);
            ok += v == slot_success;
            bad += v == slot_failure;
        }
        s.window_outcomes = ok + bad;
        s.window_capacity = window_size_;
        s.success_rate =
            ok + bad == 0 ? 1.0 : static_cast<double>(ok) / static_cast<double>(ok + bad);

        s.acquire_wait = acquire_wait_.snapshot();
        s.query_duration = query_duration_.snapshot();
        s.connect_time = connect_time_.snapshot();
        {
            std::lock_guard lock(failure_mutex_);
            s.last_failure = last_failure_;
            s.last_failure_message = last_failure_message_;
        }
        return s;
    }
    /// The metrics now, with the pool's gauges (pool::stats()) embedded for rendering.
    metrics_snapshot snapshot(const pool_stats& gauges) const
    {
        metrics_snapshot s = snapshot();
        s.pool = gauges;
        return s;
    }

    void on_connect_started(const connect_started_event&) noexcept override
    {
        add(connects_started_);
    }
    void on_connect_succeeded(const connect_succeeded_event& e) noexcept override
    {
        add(connects_succeeded_);
        connect_time_.record(e.elapsed);
    }
    // The operation itself reported a cancellation (not counted); its deadline is a failure.
    void on_deadline_expired(const deadline_event&) noexcept override
    {
        push_outcome(false);
        note_failure(make_error_code(errc::timeout), {}, "operation timed out (caller's deadline)");
    }
    void on_connect_failed(const connect_failed_event& e) noexcept override
    {
        add(connects_failed_);
        note_failure(e.code, e.state, e.message);
    }
    void on_acquire(const acquire_event& e) noexcept override
    {
        add(acquires_[static_cast<std::size_t>(e.outcome)]);
        switch (e.outcome)
        {
        case acquire_outcome::immediate:
        case acquire_outcome::waited:
            acquire_wait_.record(e.waited);
            break;
        case acquire_outcome::timed_out:
            acquire_wait_.record(e.waited);
            push_outcome(false);
            note_failure(e.code ? e.code : make_error_code(errc::pool_timeout), {},
                         "acquire timed out");
            break;
        case acquire_outcome::cancelled:
            acquire_wait_.record(e.waited);
            break;
        case acquire_outcome::rejected:
            push_outcome(false);
            note_failure(e.code ? e.code : make_error_code(errc::too_many_waiters), {},
                         "acquire rejected");
            break;
        }
    }
    void on_release(const release_event&) noexcept override { add(releases_); }
    void on_query_finished(const query_event& e) noexcept override
    {
        add(queries_[static_cast<std::size_t>(e.outcome)]);
        query_duration_.record(e.elapsed);
        if (e.outcome == query_outcome::success)
            push_outcome(true);
        else if (e.transient())
        {
            push_outcome(false);
            note_failure(e.outcome == query_outcome::timed_out && !e.code
                             ? make_error_code(errc::timeout)
                             : e.code,
                         e.state, e.message);
        }
    }
    void on_slow_query(const slow_query_event&) noexcept override { add(slow_queries_); }
    void on_retry(const retry_attempt_event&) noexcept override { add(retries_); }
    void on_breaker_transition(const breaker_transition& e) noexcept override
    {
        breaker_.store(static_cast<int>(e.to), std::memory_order_relaxed);
        add(breaker_transitions_);
    }
    void on_leak_suspected(const leak_suspected_event&) noexcept override { add(leaks_); }
    void on_connection_closed(const connection_closed_event& e) noexcept override
    {
        const auto i = static_cast<std::size_t>(e.reason);
        if (i < close_reason_count)
            add(closed_[i]);
    }

private:
    using counter = std::atomic<std::uint64_t>;
    static constexpr std::uint8_t slot_empty = 0;
    static constexpr std::uint8_t slot_success = 1;
    static constexpr std::uint8_t slot_failure = 2;

    static std::chrono::system_clock::time_point system_now()
    {
        return std::chrono::system_clock::now();
    }
    static void add(counter& c) noexcept { c.fetch_add(1, std::memory_order_relaxed); }
    static std::uint64_t load(const counter& c) noexcept
    {
        return c.load(std::memory_order_relaxed);
    }

    // One ticket per outcome; concurrent pushes land in distinct slots unless the window
    // wraps within the race, which only overwrites an outcome that was about to age out.
    void push_outcome(bool ok) noexcept
    {
        const std::uint64_t ticket = window_head_.fetch_add(1, std::memory_order_relaxed);
        window_[ticket % window_size_].store(ok ? slot_success : slot_failure,
                                             std::memory_order_relaxed);
    }

    // Off the hot path: a failure's message is copied under a mutex. An allocation failure
    // keeps the time and drops the text rather than escaping the noexcept hook.
    void note_failure(std::error_code code, sqlstate state, std::string_view message) noexcept
    {
        const auto when = now_();
        std::lock_guard lock(failure_mutex_);
        last_failure_ = when;
        try
        {
            last_failure_message_.assign(code ? (code.category() == error_category()
                                                     ? to_string(static_cast<errc>(code.value()))
                                                     : std::string_view("error"))
                                              : std::string_view("error"));
            if (!state.empty())
            {
                last_failure_message_ += " [";
                last_failure_message_ += state.view();
                last_failure_message_ += ']';
            }
            if (!message.empty() && (server_messages_ || !is_server_message(code)))
            {
                last_failure_message_ += ": ";
                last_failure_message_ += message;
            }
        }
        catch (...)
        {
            last_failure_message_.clear();
        }
    }

    counter connects_started_{0};
    counter connects_succeeded_{0};
    counter connects_failed_{0};
    std::array<counter, 5> acquires_{}; // indexed by acquire_outcome
    counter releases_{0};
    std::array<counter, 4> queries_{}; // indexed by query_outcome
    counter slow_queries_{0};
    counter retries_{0};
    counter leaks_{0};
    counter breaker_transitions_{0};
    std::array<counter, close_reason_count> closed_{};
    std::atomic<int> breaker_{-1}; // -1: no transition seen

    std::size_t window_size_;
    std::unique_ptr<std::atomic<std::uint8_t>[]> window_;
    std::atomic<std::uint64_t> window_head_{0};

    latency_histogram acquire_wait_;
    latency_histogram query_duration_;
    latency_histogram connect_time_;

    std::chrono::system_clock::time_point (*now_)();
    bool server_messages_; // stats_collector_options::server_messages
    mutable std::mutex failure_mutex_;
    std::optional<std::chrono::system_clock::time_point> last_failure_;
    std::string last_failure_message_;
};

} // namespace pgcoro

#endif // PGCORO_STATS_COLLECTOR_HPP
