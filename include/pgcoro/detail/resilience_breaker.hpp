// SPDX-License-Identifier: BSL-1.0
// pgcoro/detail/resilience_breaker.hpp - the circuit breaker's pure state machine.
#ifndef PGCORO_DETAIL_RESILIENCE_BREAKER_HPP
#define PGCORO_DETAIL_RESILIENCE_BREAKER_HPP

#include <pgcoro/error.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace pgcoro
{

/// The three states of a circuit breaker.
enum class breaker_state
{
    closed,    ///< calls go through; failures are counted
    open,      ///< calls fail at once with `circuit_open` until open_duration has passed
    half_open, ///< a limited number of probe calls go through to test the database
};

/// A short, stable name for a breaker state ("half_open"), for logs and tests.
constexpr std::string_view to_string(breaker_state s) noexcept
{
    switch (s)
    {
    case breaker_state::closed:
        return "closed";
    case breaker_state::open:
        return "open";
    case breaker_state::half_open:
        return "half_open";
    }
    return "unknown";
}

/// When a circuit_breaker opens and how it recovers. A literal type, so it can be a
/// `constexpr` preset.
struct breaker_config
{
    /// Consecutive counted failures that open the breaker. Default 5; range 0..10,000;
    /// 0 disables this rule.
    unsigned failure_threshold = 5;
    /// Failure rate over the window that opens the breaker. Default 0.5; range 0.0..1.0;
    /// 0 disables this rule.
    double failure_rate_threshold = 0.5;
    /// Number of most recent calls the failure rate is computed over. Default 20; range
    /// 0..10,000; 0 disables the rate rule.
    unsigned window_size = 20;
    /// Calls the window must hold before the rate rule may open the breaker. Default 10;
    /// range 1..window_size (0 is treated as 1).
    unsigned minimum_calls = 10;
    /// A call taking at least this long counts as a failure even when it succeeded.
    /// Default 0 (disabled); range 0..24 h.
    std::chrono::milliseconds slow_call_threshold{0};
    /// How long the breaker stays open before letting probes through. Default 30 s; range
    /// 1 ms..24 h.
    std::chrono::milliseconds open_duration{std::chrono::seconds(30)};
    /// Probe calls allowed in half-open; that many successes close the breaker, one failure
    /// opens it again. Default 1; range 1..1,000 (0 is treated as 1).
    unsigned half_open_calls = 1;
    /// Which errors count as failures; nullptr (the default) means error::transient(), so a
    /// constraint violation (23505) or a syntax error never opens the breaker.
    bool (*counts_as_failure)(const error&) = nullptr;
};

/// A change of a breaker's state, as reported to its transition handler.
struct breaker_transition
{
    breaker_state from = breaker_state::closed; ///< state left
    breaker_state to = breaker_state::closed;   ///< state entered
};

} // namespace pgcoro

namespace pgcoro::detail
{

// What one finished call tells the breaker. `ignored` (a cancelled call, or an exception)
// says nothing about the database, so it only gives back a half-open probe slot.
enum class call_outcome
{
    success,
    failure,
    ignored,
};

// The decisions of a circuit breaker as a function of (config, counts, now): no clock, lock,
// callback or coroutine in here. The public class holds it under a mutex.
template <class TimePoint>
class breaker_machine
{
public:
    struct admission
    {
        bool admitted = false;
        std::uint64_t generation = 0;             // hand back to complete()
        std::optional<breaker_transition> change; // open -> half_open, when it happened now
        TimePoint open_until{};                   // when rejected: when probes start
    };

    explicit breaker_machine(const breaker_config& cfg)
        : window_(cfg.window_size > 0 && cfg.failure_rate_threshold > 0.0 ? cfg.window_size : 0)
    {
    }

    breaker_state state() const noexcept { return state_; }

    // Moves open -> half_open once open_duration has passed. Used by admit() and state reads.
    std::optional<breaker_transition> advance(const breaker_config& cfg, TimePoint now)
    {
        if (state_ == breaker_state::open && now >= opened_at_ + cfg.open_duration)
            return enter(breaker_state::half_open, now);
        return std::nullopt;
    }

    admission admit(const breaker_config& cfg, TimePoint now)
    {
        admission a;
        a.change = advance(cfg, now);
        switch (state_)
        {
        case breaker_state::closed:
            a.admitted = true;
            break;
        case breaker_state::open:
            a.open_until = opened_at_ + cfg.open_duration;
            break;
        case breaker_state::half_open:
            a.admitted = probes_admitted_ < max_probes(cfg);
            if (a.admitted)
                ++probes_admitted_;
            else
                a.open_until = now; // probes are in flight; try again shortly
            break;
        }
        a.generation = generation_;
        return a;
    }

    std::optional<breaker_transition> complete(const breaker_config& cfg, std::uint64_t generation,
                                               call_outcome outcome, TimePoint now)
    {
        // A call admitted before the last transition (a closed-state call finishing after the
        // breaker opened, a probe of an earlier half-open period) describes a past state; let
        // it change nothing, or one late success could close a breaker that just opened.
        if (generation != generation_)
            return std::nullopt;
        if (state_ == breaker_state::half_open)
        {
            if (outcome == call_outcome::ignored)
            {
                --probes_admitted_; // the slot goes to the next caller
                return std::nullopt;
            }
            if (outcome == call_outcome::failure)
                return enter(breaker_state::open, now);
            if (++probes_succeeded_ >= max_probes(cfg))
                return enter(breaker_state::closed, now);
            return std::nullopt;
        }
        if (state_ != breaker_state::closed || outcome == call_outcome::ignored)
            return std::nullopt;

        const bool failed = outcome == call_outcome::failure;
        consecutive_failures_ = failed ? consecutive_failures_ + 1 : 0;
        push(failed);
        if (cfg.failure_threshold > 0 && consecutive_failures_ >= cfg.failure_threshold)
            return enter(breaker_state::open, now);
        if (!window_.empty())
        {
            const unsigned minimum = cfg.minimum_calls > 0 ? cfg.minimum_calls : 1;
            if (window_count_ >= minimum &&
                static_cast<double>(window_failures_) >=
                    cfg.failure_rate_threshold * static_cast<double>(window_count_))
                return enter(breaker_state::open, now);
        }
        return std::nullopt;
    }

    unsigned consecutive_failures() const noexcept { return consecutive_failures_; }
    unsigned window_count() const noexcept { return window_count_; }
    unsigned window_failures() const noexcept { return window_failures_; }

private:
    static unsigned max_probes(const breaker_config& cfg) noexcept
    {
        return cfg.half_open_calls > 0 ? cfg.half_open_calls : 1;
    }

    // Every transition starts from clean counts and a new generation.
    breaker_transition enter(breaker_state to, TimePoint now)
    {
        breaker_transition t{state_, to};
        state_ = to;
        ++generation_;
        opened_at_ = now;
        consecutive_failures_ = 0;
        probes_admitted_ = 0;
        probes_succeeded_ = 0;
        window_count_ = 0;
        window_failures_ = 0;
        window_pos_ = 0;
        return t;
    }

    // A ring of the last window_.size() outcomes; the counts are kept incrementally so a call
    // costs O(1) under the lock.
    void push(bool failed)
    {
        if (window_.empty())
            return;
        if (window_count_ == window_.size())
            window_failures_ -= window_[window_pos_];
        else
            ++window_count_;
        window_[window_pos_] = failed ? 1 : 0;
        window_failures_ += window_[window_pos_];
        window_pos_ = (window_pos_ + 1) % static_cast<unsigned>(window_.size());
    }

    breaker_state state_ = breaker_state::closed;
    std::uint64_t generation_ = 0;
    TimePoint opened_at_{};
    unsigned consecutive_failures_ = 0;
    unsigned probes_admitted_ = 0;
    unsigned probes_succeeded_ = 0;
    std::vector<unsigned char> window_;
    unsigned window_count_ = 0;
    unsigned window_failures_ = 0;
    unsigned window_pos_ = 0;
};

} // namespace pgcoro::detail

#endif // PGCORO_DETAIL_RESILIENCE_BREAKER_HPP
