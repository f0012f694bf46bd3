// SPDX-License-Identifier: BSL-1.0
// pgcoro/logging_observer.hpp - an observer that writes one log line per event to a sink.
#ifndef PGCORO_LOGGING_OBSERVER_HPP
#define PGCORO_LOGGING_OBSERVER_HPP

#include <pgcoro/detail/render_text.hpp>
#include <pgcoro/detail/resilience_breaker.hpp>
#include <pgcoro/events.hpp>
#include <pgcoro/observer.hpp>
#include <pgcoro/profile.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>

namespace pgcoro
{

/// Where a logging_observer writes: a level and one line without a trailing newline. Called
/// on the pool's thread inside the transition, so it must not block (hand off to a queue).
using log_sink = std::function<void(log_level, std::string_view)>;

/// An observer that logs pool events as `event key=value ...` lines to a user sink, dropping
/// those below a minimum level (e.g. the profile's pool_config log level).
///
/// Levels: debug for connect started, acquire served/cancelled, release and statements;
/// info for connects, ordinary closes, breaker recovery; warn for connect failures, acquire
/// timeouts and rejections, slow statements, retries, leaks, broken closes and an opening
/// breaker; error for failed statements.
/// Privacy: parameter values are never available to it. A statement's fingerprint (literals
/// replaced by ?) is printed only when the minimum level is debug or trace (development);
/// otherwise only its 64-bit hash, to correlate lines. Error messages arrive redacted. A
/// failed statement is logged with its error code, SQLSTATE, SQLSTATE class and fingerprint;
/// the server's message and DETAIL, which quote data values (is_server_message()), only when
/// `server_messages` is true (settings::log_server_messages: off in staging and production).
/// Thread safety: as thread-safe as the sink; a sink that throws is ignored.
class logging_observer : public observer
{
public:
    /// Logs to `sink` every event at `min_level` or above; log_level::off logs nothing.
    /// `server_messages` adds the server's message to failed-statement and retry lines.
    explicit logging_observer(log_sink sink, log_level min_level = log_level::info,
                              bool server_messages = false)
        : sink_(std::move(sink)), min_(min_level), server_messages_(server_messages)
    {
    }

    /// Whether failed-statement lines carry the server's message (may quote data values).
    bool server_messages() const noexcept { return server_messages_; }

    /// The minimum level this observer writes.
    log_level min_level() const noexcept { return min_; }
    /// Whether a line at `l` would be written.
    bool enabled(log_level l) const noexcept
    {
        return sink_ && min_ != log_level::off && l != log_level::off && l >= min_;
    }

    void on_connect_started(const connect_started_event& e) noexcept override
    {
        emit(log_level::debug,
             [&](std::string& s)
             {
                 s += "connect_started in_flight=";
                 detail::append_uint(s, e.in_flight);
             });
    }
    void on_connect_succeeded(const connect_succeeded_event& e) noexcept override
    {
        emit(log_level::info,
             [&](std::string& s)
             {
                 s += "connect_succeeded";
                 pid(s, e.backend_pid);
                 ms(s, " elapsed_ms=", e.elapsed);
             });
    }
    void on_connect_failed(const connect_failed_event& e) noexcept override
    {
        emit(log_level::warn,
             [&](std::string& s)
             {
                 s += "connect_failed";
                 ms(s, " elapsed_ms=", e.elapsed);
                 failure(s, e.code, e.state, e.message);
             });
    }
    void on_acquire(const acquire_event& e) noexcept override
    {
        const bool bad =
            e.outcome == acquire_outcome::timed_out || e.outcome == acquire_outcome::rejected;
        emit(bad ? log_level::warn : log_level::debug,
             [&](std::string& s)
             {
                 s += "acquire outcome=";
                 s += to_string(e.outcome);
                 ms(s, " waited_ms=", e.waited);
                 s += " waiters=";
                 detail::append_uint(s, e.waiters);
                 where(s, e.where);
             });
    }
    void on_release(const release_event& e) noexcept override
    {
        emit(log_level::debug,
             [&](std::string& s)
             {
                 s += "release";
                 pid(s, e.backend_pid);
                 ms(s, " held_ms=", e.held);
                 s += e.reset ? " reset=true" : " reset=false";
             });
    }
    void on_query_finished(const query_event& e) noexcept override
    {
        const bool bad =
            e.outcome == query_outcome::failed || e.outcome == query_outcome::timed_out;
        emit(bad ? log_level::error : log_level::debug,
             [&](std::string& s)
             {
                 s += "query outcome=";
                 s += to_string(e.outcome);
                 pid(s, e.backend_pid);
                 ms(s, " elapsed_ms=", e.elapsed);
                 if (e.outcome == query_outcome::success)
                 {
                     s += " rows=";
                     detail::append_uint(s, e.rows);
                 }
                 statement(s, e.statement);
                 if (e.outcome != query_outcome::success)
                     failure(s, e.code, e.state, e.message);
             });
    }
    void on_slow_query(const slow_query_event& e) noexcept override
    {
        emit(log_level::warn,
             [&](std::string& s)
             {
                 s += "slow_query";
                 pid(s, e.backend_pid);
                 ms(s, " elapsed_ms=", e.elapsed);
                 s += " threshold_ms=";
                 detail::append_uint(s, static_cast<std::uint64_t>(e.threshold.count()));
                 statement(s, e.statement);
             });
    }
    void on_retry(const retry_attempt_event& e) noexcept override
    {
        emit(log_level::warn,
             [&](std::string& s)
             {
                 s += "retry attempt=";
                 detail::append_uint(s, e.attempt);
                 s += " delay_ms=";
                 detail::append_uint(s, static_cast<std::uint64_t>(e.delay.count()));
                 failure(s, e.code, e.state, e.message);
             });
    }
    void on_breaker_transition(const breaker_transition& e) noexcept override
    {
        emit(e.to == breaker_state::open ? log_level::warn : log_level::info,
             [&](std::string& s)
             {
                 s += "circuit_breaker from=";
                 s += to_string(e.from);
                 s += " to=";
                 s += to_string(e.to);
             });
    }
    void on_leak_suspected(const leak_suspected_event& e) noexcept override
    {
        emit(log_level::warn,
             [&](std::string& s)
             {
                 s += "leak_suspected";
                 pid(s, e.backend_pid);
                 s += " held_ms=";
                 detail::append_uint(s, static_cast<std::uint64_t>(e.held.count()));
                 where(s, e.where);
             });
    }
    void on_connection_closed(const connection_closed_event& e) noexcept override
    {
        const bool bad =
            e.reason == close_reason::broken || e.reason == close_reason::validation_failed;
        emit(bad ? log_level::warn : log_level::info,
             [&](std::string& s)
             {
                 s += "connection_closed reason=";
                 s += to_string(e.reason);
                 pid(s, e.backend_pid);
                 ms(s, " age_ms=", e.age);
             });
    }

private:
    // Formats only when the level is enabled; an allocation failure or a throwing sink drops
    // the line instead of escaping the noexcept hook.
    template <class Format>
    void emit(log_level level, Format&& format) noexcept
    {
        if (!enabled(level))
            return;
        try
        {
            std::string line;
            line.reserve(128);
            format(line);
            sink_(level, line);
        }
        catch (...)
        {
        }
    }

    static void pid(std::string& s, int backend_pid)
    {
        if (backend_pid == 0)
            return;
        s += " backend_pid=";
        detail::append_uint(s, static_cast<std::uint64_t>(backend_pid < 0 ? 0 : backend_pid));
    }
    static void ms(std::string& s, std::string_view key, std::chrono::nanoseconds d)
    {
        s += key;
        detail::append_double(s, detail::round_to(static_cast<double>(d.count()) / 1e6, 3));
    }
    static void where(std::string& s, const pgcoro::source_location& loc)
    {
        if (loc.line() == 0)
            return;
        s += " at=";
        s += loc.file_name();
        s += ':';
        detail::append_uint(s, loc.line());
    }
    // A quoted value: \ and " escaped, control characters (a newline in a message) as spaces,
    // so one event stays one line.
    static void quoted(std::string& s, std::string_view v)
    {
        s += '"';
        for (const char c : v)
        {
            if (c == '"' || c == '\\')
                s += '\\';
            s += static_cast<unsigned char>(c) < 0x20 ? ' ' : c;
        }
        s += '"';
    }
    void failure(std::string& s, std::error_code code, sqlstate state,
                 std::string_view message) const
    {
        if (code)
        {
            s += " error=";
            s += code.category() == error_category() ? to_string(static_cast<errc>(code.value()))
                                                     : std::string_view(code.message());
        }
        if (!state.empty())
        {
            s += " sqlstate=";
            s += state.view();
            s += " sqlstate_class=";
            s += state.class_code();
        }
        if (!message.empty() && (server_messages_ || !is_server_message(code)))
        {
            s += " message=";
            quoted(s, message);
        }
    }
    void statement(std::string& s, const statement_ref& st) const
    {
        if (st.empty())
            return;
        s += " fingerprint=";
        char buf[17];
        static constexpr char hex[] = "0123456789abcdef";
        std::uint64_t h = st.hash();
        for (int i = 15; i >= 0; --i, h >>= 4)
            buf[i] = hex[h & 0xf];
        s.append(buf, 16);
        if (min_ <= log_level::debug)
        {
            s += " statement=";
            quoted(s, st.fingerprint());
        }
    }

    log_sink sink_;
    log_level min_;
    bool server_messages_ = false;
};

} // namespace pgcoro

#endif // PGCORO_LOGGING_OBSERVER_HPP
