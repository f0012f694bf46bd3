// SPDX-License-Identifier: BSL-1.0
// pgcoro/detail/pq_session.hpp - the one libpq session behind every connection front end:
// what libpq and PostgreSQL make us track, with no I/O and no waiting of its own.
#ifndef PGCORO_DETAIL_PQ_SESSION_HPP
#define PGCORO_DETAIL_PQ_SESSION_HPP

#include <pgcoro/detail/pq_error.hpp>
#include <pgcoro/detail/pq_handles.hpp>
#include <pgcoro/detail/pq_queue.hpp>
#include <pgcoro/detail/statement_cache.hpp>
#include <pgcoro/error.hpp>
#include <pgcoro/result.hpp>

#include <libpq-fe.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace pgcoro::detail
{

// The session always talks to the server in libpq's pipeline mode while statements are queued:
// a statement is Parse/Bind/Describe/Execute (or Bind/Execute for a cached named statement, with
// its PREPARE queued right before it: one round trip for a cache miss too), and a Sync ends a
// segment. Two front ends drive it (see pq_engine.hpp):
// - exclusive (pgcoro::connection): one caller at a time, each statement its own segment;
//   transactions allowed; the statement cache evicts (DEALLOCATE in a segment of its own);
//   pipeline mode is left whenever nothing is queued, so native_handle() users see a plain
//   connection between operations.
// - shared (pgcoro::pipelined_connection): many callers; statements batched under one Sync;
//   transaction control refused (the session is shared); the cache does not evict.
//
// A statement's caller may leave before its results come (deadline, cancellation): its slot is
// then "abandoned" and its results discarded when they come. If it is still running on the
// server after its budget, the driver sends a cancel request (review()), and closes the session
// if it still runs cancel_timeout after that.

class pq_session : public pq_queue
{
public:
    pq_session(session_mode m, std::size_t cache_capacity, bool resend_rolled_back)
        : mode_(m), cache_(cache_capacity), resend_rolled_back_(resend_rolled_back)
    {
    }
    pq_session(const pq_session&) = delete;
    pq_session& operator=(const pq_session&) = delete;

    // ---- the connection -----------------------------------------------------------------

    // Takes over a connected PGconn (nonblocking); the cache starts empty.
    void adopt(pgconn_ptr c, std::size_t cache_capacity) noexcept
    {
        conn_ = std::move(c);
        cache_.reset(cache_capacity);
        cancel_target_ = no_seq;
        cancel_unconsumed_ = false;
    }
    PGconn* native() const noexcept { return conn_.get(); }
    bool is_open() const noexcept { return conn_ && PQstatus(conn_.get()) == CONNECTION_OK; }
    session_mode mode() const noexcept { return mode_; }
    void set_mode(session_mode m) noexcept { mode_ = m; }
    void set_resend_rolled_back(bool b) noexcept { resend_rolled_back_ = b; }
    statement_cache& cache() noexcept { return cache_; }
    const statement_cache& cache() const noexcept { return cache_; }
    // A statement failed with 25006 read_only_sql_transaction (a read-write pool drops it).
    bool saw_read_only() const noexcept { return saw_read_only_; }

    // Ends the session: every statement not yet delivered completes with `why`; PQfinish.
    void close(const error& why) noexcept
    {
        for (auto& s : slots_)
            if (s.op)
                deliver(s, copy_or_bare(why));
        clear_queue();
        unsynced_ = 0;
        conn_.reset();
        cache_.forget_all();
    }

    // `e` as a failed outcome; when copying its message cannot allocate, `e`'s code alone (a
    // noexcept path must not end the program over a message).
    static expected<result> copy_or_bare(const error& e) noexcept
    {
        try
        {
            return tl::unexpected(e);
        }
        catch (...)
        {
            return tl::unexpected(error(e.value(), std::string()));
        }
    }

    // In pipeline mode while statements are queued; an exclusive session leaves it when idle.
    bool enter_pipeline() noexcept
    {
        PGconn* c = conn_.get();
        return PQpipelineStatus(c) != PQ_PIPELINE_OFF || PQenterPipelineMode(c) == 1;
    }
    void leave_pipeline_if_idle() noexcept
    {
        if (mode_ == session_mode::exclusive && slots_.empty() && conn_)
            PQexitPipelineMode(conn_.get());
    }

    // ---- sending --------------------------------------------------------------------------

    // Queues one statement for `op` (and, when `alone` or by the sync policy, a Sync). On
    // success the statement's slot refers to `op` and op.seq names it. `sql` must be
    // NUL-terminated. The caller flushes (flush()) afterwards.
    expected<void> submit(pq_op& op, bool alone, const char* sql, std::string_view sql_view,
                          const statement_params& p, std::size_t statements_per_sync)
    {
        if (!is_open())
            return fail(errc::connection_lost, "connection is not open");
        if (!enter_pipeline())
            return PQstatus(conn_.get()) != CONNECTION_OK
                       ? fail(errc::connection_lost, conn_message(conn_.get()))
                       : fail(errc::protocol_error,
                              "could not enter pipeline mode: " + conn_message(conn_.get()));
        if (alone && unsynced_ > 0)
            if (auto s = sync_now(); !s)
                return s;
        PGconn* c = conn_.get();
        const statement_cache::entry* named = nullptr;
        std::uint64_t prepared = 0; // the entry prepared just now, in this call
        if (use_cache())
        {
            cache_.make_key(sql_view, p.types, p.n);
            named = cache_.find();
            if (!named)
            {
                if (mode_ == session_mode::exclusive)
                {
                    cache_.make_room();
                    if (auto d = deallocate_stale(); !d)
                        return d;
                }
                if (!cache_.full())
                {
                    auto name = cache_.take_name();
                    if (!PQsendPrepare(c, name.c_str(), sql, p.n, p.types))
                        return send_failed();
                    named = cache_.insert(std::move(name));
                    prepared = named->id;
                    push(slot_kind::prepare, nullptr).named = prepared;
                }
            }
        }
        const bool sent =
            named ? PQsendQueryPrepared(c, named->name.c_str(), p.n, p.values, p.lengths, p.formats,
                                        0)
                  : PQsendQueryParams(c, sql, p.n, p.types, p.values, p.lengths, p.formats, 0);
        if (!sent)
        {
            if (prepared) // a PREPARE without its statement would put the queue out of step
            {
                error e(errc::connection_lost, conn_message(c));
                close(e);
                return tl::unexpected(std::move(e));
            }
            return send_failed();
        }
        slot& s = push(slot_kind::statement, &op);
        op.seq = s.seq;
        if (named)
            s.named = named->id;
        if (alone || ++unsynced_ >= statements_per_sync)
            return sync_now();
        return {};
    }

    // Ends the current segment with a Sync (libpq sends what is buffered).
    expected<void> sync_now()
    {
        unsynced_ = 0;
        if (PQpipelineSync(conn_.get()) != 1)
        {
            error e(errc::connection_lost, conn_message(conn_.get()));
            close(e);
            return tl::unexpected(std::move(e));
        }
        push(slot_kind::sync, nullptr);
        return {};
    }

    // PQflush: 0 all sent, 1 more to send (wait until writable, reading meanwhile), -1 broken
    // (the session is then closed).
    int flush() noexcept
    {
        const int f = PQflush(conn_.get());
        if (f < 0)
            close(error(errc::connection_lost, conn_message(conn_.get())));
        return f;
    }

    // ---- receiving ------------------------------------------------------------------------

    // After the socket turned readable: PQconsumeInput. False when the connection broke (the
    // session is then closed, with the server's error if it said why first).
    bool consume() noexcept
    {
        if (PQconsumeInput(conn_.get()))
            return true;
        drain(); // a FATAL (57P01, shutdown) may be parsed already: its statement gets it
        if (conn_)
            close(error(errc::connection_lost, conn_message(conn_.get())));
        return false;
    }

    // Takes every result libpq can give without waiting and matches it to its slot.
    void drain() noexcept
    {
        while (conn_)
        {
            PGconn* c = conn_.get();
            if (PQisBusy(c) || cursor_ == slots_.size())
            {
                if (PQstatus(c) != CONNECTION_OK)
                    close(error(errc::connection_lost, conn_message(c)));
                return;
            }
            slot& s = slots_[cursor_];
            pgresult_ptr r(PQgetResult(c));
            if (s.kind == slot_kind::sync)
            {
                if (r && PQresultStatus(r.get()) == PGRES_PIPELINE_SYNC)
                    finish_segment();
                else
                    out_of_step(r.get(), "the end of a pipeline segment");
                continue;
            }
            if (!r)
            {
                // No result for a statement: the connection broke before its answer (EOF
                // after a FATAL for an earlier one, as at a fast shutdown), else libpq is out
                // of step with the slots.
                if (s.kind == slot_kind::statement && s.op && !s.op->outcome)
                    s.op->outcome =
                        PQstatus(c) != CONNECTION_OK
                            ? fail(errc::connection_lost, conn_message(c))
                            : fail(errc::protocol_error, "statement returned no result");
                ++cursor_;
                head_since_ = clock::now();
                continue;
            }
            if (s.kind == slot_kind::prepare)
                take_prepare(s, std::move(r));
            else
                take(s, std::move(r));
        }
    }

private:
    bool use_cache() const noexcept
    {
        return cache_.enabled() && PQtransactionStatus(conn_.get()) != PQTRANS_INERROR;
    }

    // Evicted statements are deallocated in a segment of their own before the statement that
    // evicted them, and only outside a transaction (where a failure cannot abort the caller's).
    expected<void> deallocate_stale()
    {
        if (cache_.stale().empty() || PQtransactionStatus(conn_.get()) != PQTRANS_IDLE ||
            !slots_.empty())
            return {};
        for (const auto& name : cache_.stale())
        {
            const std::string sql = "DEALLOCATE " + name;
            if (!PQsendQueryParams(conn_.get(), sql.c_str(), 0, nullptr, nullptr, nullptr, nullptr,
                                   0))
                return send_failed();
            push(slot_kind::internal, nullptr);
        }
        cache_.clear_stale();
        return sync_now();
    }

    expected<void> send_failed()
    {
        error e(errc::query_failed, conn_message(conn_.get()));
        if (PQstatus(conn_.get()) != CONNECTION_OK)
        {
            e.code = make_error_code(errc::connection_lost);
            close(e);
        }
        return tl::unexpected(std::move(e));
    }

    static bool tag_is(PGresult* r, const char* a, const char* b) noexcept
    {
        const char* tag = PQcmdStatus(r);
        return tag && (std::strcmp(tag, a) == 0 || std::strcmp(tag, b) == 0);
    }

    // The session's prepared statements were removed (DEALLOCATE ALL, DISCARD ALL, or 26000
    // after one we did not see) by the statement at the head: the cache forgets them, except
    // those whose PREPARE is queued behind it and so comes after the removal.
    void forget_prepared()
    {
        keep_.clear();
        for (std::size_t k = cursor_ + 1; k < slots_.size(); ++k)
            if (slots_[k].kind == slot_kind::prepare)
                keep_.push_back(slots_[k].named);
        cache_.forget_all_but(keep_);
    }

    // A statement cache entry's PREPARE. If it failed, the statement it serves (the next slot)
    // fails with its error and the entry is forgotten; if it was skipped, the entry is
    // forgotten and the statement, skipped too, is sent again and prepared anew.
    void take_prepare(slot& s, pgresult_ptr r)
    {
        switch (PQresultStatus(r.get()))
        {
        case PGRES_COMMAND_OK:
            return;
        case PGRES_PIPELINE_ABORTED:
            s.failed = s.aborted = true;
            cache_.drop(s.named, false);
            return;
        case PGRES_FATAL_ERROR:
        case PGRES_NONFATAL_ERROR:
        case PGRES_BAD_RESPONSE:
        {
            error e = result_error(r.get(), conn_.get());
            s.failed = true;
            cache_.drop(s.named, false);
            slot& stmt = slots_[cursor_ + 1]; // submit() queues the statement right after
            if (e.is(errc::connection_lost))
            {
                if (stmt.op)
                    deliver(stmt, tl::unexpected(e));
                close(e);
                return;
            }
            stmt.prepare_failed = true;
            if (stmt.op)
                stmt.op->outcome = tl::unexpected(std::move(e));
            return;
        }
        default:
            out_of_step(r.get(), "the result of a PREPARE");
            return;
        }
    }

    void take(slot& s, pgresult_ptr r)
    {
        switch (PQresultStatus(r.get()))
        {
        case PGRES_TUPLES_OK:
        case PGRES_COMMAND_OK:
        case PGRES_EMPTY_QUERY:
            if (mode_ == session_mode::shared && tag_is(r.get(), "BEGIN", "START TRANSACTION"))
            {
                refuse_transaction(s);
                return;
            }
            if (tag_is(r.get(), "DEALLOCATE ALL", "DISCARD ALL"))
                forget_prepared();
            if (s.op && !s.failed)
                s.op->outcome.emplace(result(std::move(r)));
            return;
        case PGRES_PIPELINE_ABORTED:
            s.failed = true;
            if (s.prepare_failed)
                return; // the outcome is the PREPARE's error (take_prepare)
            s.aborted = true;
            if (s.op)
                s.op->outcome = fail(errc::query_failed,
                                     "not run: an earlier statement in the same pipeline segment "
                                     "(same Sync) failed");
            return;
        case PGRES_FATAL_ERROR:
        case PGRES_NONFATAL_ERROR:
        case PGRES_BAD_RESPONSE:
            take_error(s, result_error(r.get(), conn_.get()));
            return;
        default:
            out_of_step(r.get(), "a statement's result");
            return;
        }
    }

    void take_error(slot& s, error e)
    {
        if (s.named && (e.state == "26000" || e.state == "0A000"))
        {
            // The named statement is gone (a DEALLOCATE we did not see) or its plan no longer
            // fits (a table changed). It did not run: prepared anew, it is sent again once.
            if (e.state == "0A000")
                cache_.drop(s.named, true);
            else if (cache_.holds(s.named))
                forget_prepared(); // else its PREPARE failed, and it is known to be gone
            s.reprepare = s.op && !s.op->reprepared;
        }
        if (e.state == "57014" && cancel_unconsumed_)
        {
            cancel_unconsumed_ = false;
            if (!s.abandoned)
            {
                // The cancel raced with the end of the statement it was meant for.
                s.stray_cancel = true;
                e.message += "\n(most likely hit by the cancel request sent for an earlier, "
                             "abandoned statement on this connection; it did not take effect "
                             "and is safe to retry)";
            }
        }
        s.failed = true;
        saw_read_only_ = saw_read_only_ || e.state == "25006";
        if (e.is(errc::connection_lost))
        {
            // FATAL (57P01 terminate, shutdown): this statement gets the server's error, every
            // other pending one connection_lost.
            if (s.op)
                deliver(s, tl::unexpected(e));
            close(error(errc::connection_lost, "connection lost: " + e.message, e.state));
            return;
        }
        if (s.op && !(s.op->outcome && !*s.op->outcome))
            s.op->outcome = tl::unexpected(std::move(e));
    }

    void refuse_transaction(slot& s)
    {
        if (s.op)
            deliver(s, fail(errc::invalid_argument, refused_transaction_text));
        close(error(errc::connection_lost,
                    "a statement opened a transaction on the pipelined connection (not "
                    "supported); connection closed and the transaction rolled back"));
    }
    static constexpr const char* refused_transaction_text =
        "transaction control (BEGIN/COMMIT/ROLLBACK) is not supported on a pipelined "
        "connection: its session is shared by concurrent callers. Use a pool connection; the "
        "transaction was rolled back and the pipelined connection closed";

    void out_of_step(const PGresult* r, std::string_view expected_what)
    {
        PGconn* c = conn_.get();
        if (PQstatus(c) != CONNECTION_OK)
        {
            close(error(errc::connection_lost, conn_message(c)));
            return;
        }
        if (r && PQresultStatus(r) == PGRES_FATAL_ERROR)
            if (auto e = result_error(r, c); e.is(errc::connection_lost))
            {
                close(std::move(e)); // a FATAL (57P01 at a fast shutdown) ends the session
                return;
            }
        std::string got = r ? PQresStatus(PQresultStatus(r)) : "no result";
        if (r && (PQresultStatus(r) == PGRES_COPY_IN || PQresultStatus(r) == PGRES_COPY_OUT))
            got += " (COPY is not supported by query())";
        close(error(errc::protocol_error, "connection out of step: expected " +
                                              std::string(expected_what) + ", got " + got +
                                              "; connection closed"));
    }

    // A Sync's result: the statements before it are final. Either all succeeded, or one failed
    // and the implicit transaction was rolled back: that one gets its error; the others were
    // rolled back or not run and are sent again, each alone in a segment (resend_rolled_back),
    // or fail. In an explicit transaction (exclusive mode) nothing is sent again.
    void finish_segment()
    {
        const auto tx = PQtransactionStatus(conn_.get());
        const bool in_tx = tx == PQTRANS_INTRANS || tx == PQTRANS_INERROR;
        bool segment_failed = false;
        for (std::size_t k = 0; k < cursor_; ++k)
            segment_failed = segment_failed || slots_[k].failed;
        for (std::size_t k = 0; k < cursor_; ++k)
        {
            slot& s = slots_[k];
            if (!s.op)
                continue;
            const bool again =
                s.stray_cancel || s.reprepare || (segment_failed && (s.aborted || !s.failed));
            if (in_tx && mode_ == session_mode::shared)
                s.op->outcome = fail(errc::invalid_argument, refused_transaction_text);
            else if (again && !in_tx && (resend_rolled_back_ || s.reprepare))
            {
                s.op->reprepared = s.op->reprepared || s.reprepare;
                resend_.push_back(s.op);
                s.op = nullptr;
                continue;
            }
            else if (segment_failed && (s.aborted || !s.failed))
                s.op->outcome =
                    fail(errc::query_failed,
                         s.aborted ? "not run: an earlier statement in the same pipeline segment "
                                     "(same Sync) failed"
                                   : "rolled back: another statement in the same pipeline "
                                     "segment (same Sync, one implicit transaction) failed");
            s.op->done = true;
            s.op->wake();
            s.op = nullptr;
        }
        pop_segment();
        if (in_tx && mode_ == session_mode::shared)
        {
            close(error(errc::connection_lost,
                        "a statement left a transaction open on the pipelined connection "
                        "(not supported); connection closed and the transaction rolled back"));
            return;
        }
        if (!resend_.empty())
            resend_rolled_back();
        if (slots_.empty())
        {
            cancel_unconsumed_ = false; // the backend goes idle: a late cancel is ignored
            cancel_target_ = no_seq;
        }
    }

    void resend_rolled_back()
    {
        resending_.swap(resend_);
        for (pq_op* op : resending_)
        {
            op->outcome.reset();
            auto r = is_open() ? op->resend()
                               : expected<void>(fail(errc::connection_lost, "connection closed"));
            if (!r)
            {
                op->outcome = tl::unexpected(std::move(r.error()));
                op->done = true;
                op->wake();
            }
        }
        resending_.clear();
    }

    session_mode mode_;
    pgconn_ptr conn_;
    statement_cache cache_;
    bool resend_rolled_back_;
    bool saw_read_only_ = false;
    std::vector<pq_op*> resending_;   // resend_rolled_back(): the ones being sent (reused)
    std::vector<std::uint64_t> keep_; // forget_prepared(): entries still being prepared
};

} // namespace pgcoro::detail

#endif // PGCORO_DETAIL_PQ_SESSION_HPP
