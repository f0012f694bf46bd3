// SPDX-License-Identifier: BSL-1.0
// pgcoro/detail/pq_direct.hpp - operations that drive libpq directly, outside the statement
// queue and pipeline mode: waiting for notifications, COPY and streamed (single-row) results.
// Each claims the engine (busy) for as long as it runs, which may span several calls.
#ifndef PGCORO_DETAIL_PQ_DIRECT_HPP
#define PGCORO_DETAIL_PQ_DIRECT_HPP

#include <pgcoro/detail/param_pack.hpp>
#include <pgcoro/detail/pq_engine.hpp>
#include <pgcoro/detail/pq_error.hpp>
#include <pgcoro/error.hpp>
#include <pgcoro/notification.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/this_coro.hpp>

#include <libpq-fe.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace pgcoro::detail
{

using direct_clock = std::chrono::steady_clock;

// A wait's outcome as an error (nothing when ready).
inline std::optional<error> wait_error(wait_result w, std::string_view what)
{
    switch (w)
    {
    case wait_result::ready:
        return std::nullopt;
    case wait_result::deadline:
        return error(errc::timeout, std::string(what) + ": deadline passed");
    case wait_result::cancelled:
        return error(errc::cancelled, std::string(what) + " was cancelled");
    case wait_result::closed:
        return error(errc::connection_lost, "connection closed by its owner");
    case wait_result::failed:
        break;
    }
    return error(errc::connection_lost, "socket error during " + std::string(what));
}

// Claims `e` for a direct operation: settled (an earlier cancelled statement drained), out of
// pipeline mode. On failure the claim is released.
inline asio::awaitable<expected<void>> begin_direct(pq_engine& e, direct_clock::time_point deadline)
{
    if (!e.is_open())
        co_return fail(errc::connection_lost, "connection is not open");
    if (!e.claim())
        co_return fail(errc::busy, "connection is running another operation");
    if (!e.settled())
        if (auto s = co_await e.settle(deadline); !s)
        {
            e.release();
            co_return tl::unexpected(std::move(s.error()));
        }
    e.session().leave_pipeline_if_idle();
    if (PQpipelineStatus(e.session().native()) != PQ_PIPELINE_OFF)
    {
        e.release();
        co_return fail(errc::protocol_error, "connection is still in pipeline mode");
    }
    co_return expected<void>{};
}

// Sends what libpq holds: PQflush until done, reading meanwhile (libpq manual 34.4). A failure
// closes the connection.
inline asio::awaitable<expected<void>> flush_direct(pq_engine& e, direct_clock::time_point deadline)
{
    PGconn* c = e.session().native();
    for (;;)
    {
        const int f = PQflush(c);
        if (f == 0)
            co_return expected<void>{};
        if (f < 0)
            co_return e.close_lost(conn_message(c));
        const auto w = co_await e.io().wait(wait_for::read_or_write, deadline);
        if (auto bad = wait_error(w, "sending"))
        {
            e.close_lost(bad->message);
            co_return tl::unexpected(std::move(*bad));
        }
        if (!PQconsumeInput(c))
            co_return e.close_lost(conn_message(c));
    }
}

// The next result, waiting for the socket while libpq needs more input. Null at the end of a
// statement's results. A wait that ends early (deadline, cancellation) closes the connection:
// it is mid-response and cannot be reused.
inline asio::awaitable<expected<pgresult_ptr>> next_result(pq_engine& e,
                                                           direct_clock::time_point deadline)
{
    PGconn* c = e.session().native();
    while (PQisBusy(c))
    {
        const auto w = co_await e.io().wait(wait_for::read, deadline);
        if (auto bad = wait_error(w, "reading"))
        {
            e.cancel_and_close(bad->message);
            co_return tl::unexpected(std::move(*bad));
        }
        if (!PQconsumeInput(c))
            co_return e.close_lost(conn_message(c));
    }
    co_return pgresult_ptr(PQgetResult(c));
}

// Reads the results that remain until the end of the statement (libpq returns null).
inline asio::awaitable<expected<void>> finish_results(pq_engine& e,
                                                      direct_clock::time_point deadline)
{
    for (;;)
    {
        auto r = co_await next_result(e, deadline);
        if (!r)
            co_return tl::unexpected(std::move(r.error()));
        if (!*r)
            co_return expected<void>{};
    }
}

// Sends `sql` (no parameters: COPY takes none) and waits until the server starts the COPY
// `expect` (PGRES_COPY_IN or PGRES_COPY_OUT). On success the engine stays claimed for the
// copy_writer / copy_reader; on failure it is released (and closed when mid-response).
inline asio::awaitable<expected<std::shared_ptr<pq_engine>>>
start_copy(std::shared_ptr<pq_engine> self, std::string_view sql, ExecStatusType expect)
{
    if (!self)
        co_return fail(errc::connection_lost, "connection was moved from");
    pq_engine& e = *self;
    if (sql.find('\0') != sql.npos)
        co_return fail(errc::invalid_argument, "SQL text contains an embedded NUL byte");
    const auto t = e.query_timeout();
    const auto deadline = t.count() > 0 ? direct_clock::now() + t : pq_io::no_deadline;
    if (auto ok = co_await begin_direct(e, deadline); !ok)
        co_return tl::unexpected(std::move(ok.error()));
    PGconn* c = e.session().native();
    const std::string text(sql);
    if (!PQsendQuery(c, text.c_str()))
    {
        auto lost = e.close_lost(conn_message(c));
        e.release();
        co_return lost;
    }
    std::optional<error> bad;
    if (auto f = co_await flush_direct(e, deadline); !f)
        bad = std::move(f.error());
    else if (auto r = co_await next_result(e, deadline); !r)
        bad = std::move(r.error());
    else
    {
        const auto status = *r ? PQresultStatus(r->get()) : PGRES_FATAL_ERROR;
        if (status == expect)
            co_return self;
        if (status == PGRES_COPY_IN || status == PGRES_COPY_OUT)
        { // the other direction: leaving it cleanly would mean serving it; close instead
            e.close_lost("COPY direction mismatch");
            bad = error(errc::invalid_argument,
                        expect == PGRES_COPY_IN
                            ? "the statement started COPY TO STDOUT: use copy_out()"
                            : "the statement started COPY FROM STDIN: use copy_in()");
        }
        else
        {
            bad = status == PGRES_FATAL_ERROR || status == PGRES_NONFATAL_ERROR
                      ? result_error(r->get(), c)
                      : error(errc::invalid_argument, expect == PGRES_COPY_IN
                                                          ? "not a COPY ... FROM STDIN statement"
                                                          : "not a COPY ... TO STDOUT statement");
            if (auto rest = co_await finish_results(e, deadline); !rest)
                bad = std::move(rest.error());
        }
    }
    e.release();
    co_return tl::unexpected(std::move(*bad));
}

// libpq 15 clears single-row mode only when the next query is sent outside pipeline mode, so a
// later pipelined statement would come back row by row: an empty query, sent and read after a
// streamed result, clears it.
inline asio::awaitable<expected<void>> end_single_row_mode(pq_engine& e)
{
    PGconn* c = e.session().native();
    if (!PQsendQuery(c, ""))
        co_return e.close_lost(conn_message(c));
    if (auto f = co_await flush_direct(e, pq_io::no_deadline); !f)
        co_return f;
    co_return co_await finish_results(e, pq_io::no_deadline);
}

// Sends `sql` with `params` in single-row mode; on success the engine stays claimed for the
// row_stream. On failure it is released (and closed when mid-response).
template <class... Params>
asio::awaitable<expected<std::shared_ptr<pq_engine>>>
start_stream(std::shared_ptr<pq_engine> self, std::string_view sql, const Params&... params)
{
    if (!self)
        co_return fail(errc::connection_lost, "connection was moved from");
    pq_engine& e = *self;
    if (auto ok = check_statement(sql, param_count(params...)); !ok)
        co_return tl::unexpected(std::move(ok.error()));
    const auto t = e.query_timeout();
    const auto deadline = t.count() > 0 ? direct_clock::now() + t : pq_io::no_deadline;
    if (auto ok = co_await begin_direct(e, deadline); !ok)
        co_return tl::unexpected(std::move(ok.error()));
    PGconn* c = e.session().native();
    const std::string text(sql);
    std::string buf;
    int sent = 0;
    if constexpr (is_runtime_list<Params...>)
    {
        const pgcoro::params& list = (params, ...);
        if (list.encoding_error())
        {
            e.release();
            co_return tl::unexpected(*list.encoding_error());
        }
        sent = PQsendQueryParams(c, text.c_str(), static_cast<int>(list.size()), list.types(),
                                 list.values(), list.lengths(), list.formats(), 0);
    }
    else
    {
        auto enc = encode_params(buf, params...);
        if (!enc)
        {
            e.release();
            co_return tl::unexpected(std::move(enc.error()));
        }
        sent = PQsendQueryParams(c, text.c_str(), enc->count(), enc->types.data(),
                                 enc->values.data(), enc->binary ? enc->lengths.data() : nullptr,
                                 enc->binary ? enc->formats.data() : nullptr, 0);
    }
    if (!sent || !PQsetSingleRowMode(c))
    {
        auto lost = e.close_lost(conn_message(c));
        e.release();
        co_return lost;
    }
    if (auto f = co_await flush_direct(e, deadline); !f)
    {
        e.release();
        co_return tl::unexpected(std::move(f.error()));
    }
    co_return self;
}

// connection::next_notification(): the oldest NOTIFY libpq holds (received during any earlier
// operation too), else waits for one until `timeout` (0: none), the owner's close or
// cancellation. A timeout or a cancellation leaves the connection usable.
inline asio::awaitable<expected<notification>> next_notification(std::shared_ptr<pq_engine> self,
                                                                 std::chrono::milliseconds timeout)
{
    if (!self)
        co_return fail(errc::connection_lost, "connection was moved from");
    pq_engine& e = *self;
    const auto deadline = timeout.count() > 0 ? direct_clock::now() + timeout : pq_io::no_deadline;
    const bool throw_prev = co_await asio::this_coro::throw_if_cancelled();
    co_await asio::this_coro::throw_if_cancelled(false);
    std::optional<expected<notification>> r;
    if (auto ok = co_await begin_direct(e, deadline); !ok)
        r.emplace(tl::unexpected(std::move(ok.error())));
    else
    {
        while (!r)
        {
            PGconn* c = e.session().native();
            if (PGnotify* n = PQnotifies(c))
            {
                notification got{n->relname, n->extra ? n->extra : "", n->be_pid};
                PQfreemem(n);
                r.emplace(std::move(got));
                break;
            }
            const auto w = co_await e.io().wait(wait_for::read, deadline);
            if (w == wait_result::failed)
                r.emplace(e.close_lost("socket error while waiting for a notification"));
            else if (auto bad = wait_error(w, "waiting for a notification"))
                r.emplace(tl::unexpected(std::move(*bad)));
            else if (!PQconsumeInput(c))
                r.emplace(e.close_lost(conn_message(c)));
        }
        e.release();
    }
    co_await asio::this_coro::throw_if_cancelled(throw_prev);
    co_return std::move(*r);
}

} // namespace pgcoro::detail

#endif // PGCORO_DETAIL_PQ_DIRECT_HPP
