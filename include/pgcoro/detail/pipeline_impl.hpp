// pgcoro/detail/pipeline_impl.hpp - the engine behind pgcoro::pipelined_connection: libpq
// pipeline mode shared by many coroutines.
#ifndef PGCORO_DETAIL_PIPELINE_IMPL_HPP
#define PGCORO_DETAIL_PIPELINE_IMPL_HPP

#include <pgcoro/connection.hpp>
#include <pgcoro/detail/cancel_service.hpp>
#include <pgcoro/detail/param_pack.hpp>
#include <pgcoro/detail/pq_error.hpp>
#include <pgcoro/detail/pq_handles.hpp>
#include <pgcoro/detail/statement_cache.hpp>
#include <pgcoro/error.hpp>
#include <pgcoro/result.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/execution/context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/query.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <libpq-fe.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <deque>
#include <fcntl.h>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <unistd.h>
#include <utility>
#include <vector>

namespace pgcoro::detail
{

namespace asio = boost::asio;

// The knobs of one pipelined connection (pgcoro::pipeline_config, resolved).
struct pipeline_settings
{
    std::size_t statements_per_sync = 64;
    bool resend_rolled_back = true;
    std::chrono::milliseconds query_timeout{0};
    std::chrono::milliseconds cancel_timeout{std::chrono::seconds(5)};
};

// One statement waiting for its outcome. It lives in the frame of the query() coroutine that
// awaits it, so a statement costs no allocation of its own; the pipeline refers to it from its
// slot until it is delivered (`done`) or the waiter leaves (abandon/forget clear the pointer).
class pipeline_state;

struct pipeline_op
{
    explicit pipeline_op(const asio::any_io_executor& ex) : timer(ex) {}
    pipeline_op(const pipeline_op&) = delete;
    pipeline_op& operator=(const pipeline_op&) = delete;
    // Sends the statement again, alone in its segment (its first segment failed because of
    // another statement: it was rolled back or not run).
    virtual expected<void> resend(pipeline_state& st) = 0;

    asio::steady_timer timer;                // the deadline; cancelled to wake the waiter
    std::optional<expected<result>> outcome; // may be filled before delivery (batched syncs)
    std::uint64_t seq = 0;                   // its slot (changes when it is resent)
    bool done = false;                       // delivered: the waiter may return `outcome`
    bool reprepared = false;                 // sent again once for a 26000 / 0A000 already

protected:
    ~pipeline_op() = default;
};

class pipeline_state : public std::enable_shared_from_this<pipeline_state>
{
    using clock = std::chrono::steady_clock;
    static constexpr std::uint64_t no_seq = std::numeric_limits<std::uint64_t>::max();

    // One entry of libpq's command queue, in the same order: a statement, the PREPARE of a
    // statement cache entry (always right before the statement it serves), or a Sync.
    enum class slot_kind : unsigned char
    {
        statement,
        prepare,
        sync,
    };
    struct slot
    {
        std::uint64_t seq = 0;
        slot_kind kind = slot_kind::statement;
        bool abandoned = false;      // the waiter left (timeout, cancellation): discard the results
        bool failed = false;         // the statement failed or was skipped (PIPELINE_ABORTED)
        bool aborted = false;        // skipped: PIPELINE_ABORTED
        bool stray_cancel = false;   // 57014 from a cancel meant for an earlier statement
        bool prepare_failed = false; // its PREPARE failed: op->outcome holds that error
        bool reprepare = false;      // its named statement was gone (26000) or outdated (0A000)
        std::uint64_t named = 0;     // statement_cache entry id it prepares / runs; 0 = unnamed
        pipeline_op* op = nullptr;
        std::chrono::milliseconds budget{0}; // abandoned: run time allowed before a cancel
    };

public:
    pipeline_state(connection&& c, pipeline_settings s)
        : ex_(c.get_executor()), conn_(std::move(c)), socket_(ex_), watch_(ex_), settings_(s)
    {
        if (settings_.statements_per_sync == 0)
            settings_.statements_per_sync = 1;
        if (settings_.cancel_timeout.count() <= 0)
            settings_.cancel_timeout = std::chrono::seconds(5);
    }
    pipeline_state(const pipeline_state&) = delete;
    pipeline_state& operator=(const pipeline_state&) = delete;
    ~pipeline_state() { close(error(errc::connection_lost, "pipelined connection destroyed")); }

    // Switches the (idle, open) connection to pipeline mode and starts reading results.
    expected<void> start()
    {
        PGconn* c = conn_.native_handle();
        if (!conn_.is_open())
            return fail(errc::connection_lost, "connection is not open");
        if (PQtransactionStatus(c) != PQTRANS_IDLE || PQisBusy(c))
            return fail(errc::busy, "connection is not idle (in a transaction or running a "
                                    "statement); pipeline mode needs an idle connection");
        if (PQenterPipelineMode(c) != 1)
            return fail(errc::protocol_error, "could not enter pipeline mode: " + conn_message(c));
        // Our own dup of libpq's socket (as connection_impl does): closing it can never touch
        // an fd number libpq closed and the process reused.
        int mine = ::fcntl(PQsocket(c), F_DUPFD_CLOEXEC, 0);
        if (mine < 0)
            return fail(errc::connection_lost, "could not duplicate the connection's socket");
        boost::system::error_code ec;
        socket_.assign(mine, ec);
        if (ec)
        {
            ::close(mine);
            return fail(errc::connection_lost, "could not watch the socket: " + ec.message());
        }
        open_ = true;
        asio::co_spawn(ex_, read_loop(shared_from_this()), asio::detached);
        return {};
    }

    const asio::any_io_executor& get_executor() const noexcept { return ex_; }
    bool is_open() const noexcept { return open_; }
    int backend_pid() const noexcept { return open_ ? conn_.backend_pid() : 0; }
    std::size_t pending() const noexcept
    {
        std::size_t n = 0;
        for (const auto& s : slots_)
            n += s.kind == slot_kind::statement && !s.abandoned;
        return n;
    }
    const pipeline_settings& settings() const noexcept { return settings_; }
    // Entries in libpq's command queue (statements, abandoned ones included, and Syncs): the
    // load a pipeline_group balances on, in O(1).
    std::size_t queued() const noexcept { return slots_.size(); }
    // Named prepared statements the session holds (connect_config::statement_cache_size).
    std::size_t prepared_statements() const noexcept { return conn_.impl_->statements().size(); }

    // Closes the connection; every statement not yet delivered completes with `why`.
    void close(const error& why) noexcept
    {
        if (!open_)
            return;
        open_ = false;
        for (auto& s : slots_)
            if (s.op)
                deliver(s, tl::unexpected(why));
        slots_.clear();
        base_seq_ = next_seq_;
        cursor_ = 0;
        ++watch_gen_;
        watch_.cancel();
        boost::system::error_code ignored;
        socket_.close(ignored);
        conn_.close();
    }

    // Sends one statement (and, by the sync policy, a Sync) into the pipeline. On success the
    // statement's slot refers to `op` and op.seq names it. `alone`: in a segment of its own.
    template <class... Params>
    expected<void> submit(pipeline_op& op, bool alone, std::string_view sql,
                          const Params&... params)
    {
        if (alone && unsynced_ > 0)
            sync_now();
        if (!open_)
            return fail(errc::connection_lost, "pipelined connection is not open");
        if (auto ok = check_statement(sql, sizeof...(Params)); !ok)
            return ok;
        auto enc = encode_params(params_, params...);
        if (!enc)
            return tl::unexpected(std::move(enc.error()));
        sql_.assign(sql);
        PGconn* c = conn_.native_handle();
        const int n = enc->count();
        const Oid* types = enc->types.data();
        const statement_cache::entry* named = nullptr;
        std::uint64_t prepared = 0; // the entry prepared just now, in this call
        if (statement_cache& cache = conn_.impl_->statements(); cache.enabled())
        {
            // Named statements: Bind/Execute only, no Parse and plan per statement. A miss is
            // prepared in the same segment, right before it; a full cache does not evict (a
            // DEALLOCATE in the pipeline could fail the caller's segment): the statements
            // beyond its capacity run unnamed.
            cache.make_key(sql, types, n);
            named = cache.find();
            if (!named && !cache.full())
            {
                auto name = cache.take_name();
                if (!PQsendPrepare(c, name.c_str(), sql_.c_str(), n, types))
                    return send_failed(c);
                named = cache.insert(std::move(name));
                prepared = named->id;
                find(push(slot_kind::prepare, nullptr))->named = prepared;
            }
        }
        const bool sent = named ? PQsendQueryPrepared(c, named->name.c_str(), n, enc->values.data(),
                                                      nullptr, nullptr, 0)
                                : PQsendQueryParams(c, sql_.c_str(), n, types, enc->values.data(),
                                                    nullptr, nullptr, 0);
        if (!sent)
        {
            if (prepared)
            {
                // A PREPARE without its statement would put the queue out of step.
                error e(errc::connection_lost, conn_message(c));
                close(e);
                return tl::unexpected(std::move(e));
            }
            return send_failed(c);
        }
        op.seq = push(slot_kind::statement, &op);
        if (named)
            find(op.seq)->named = named->id;
        if (alone || ++unsynced_ >= settings_.statements_per_sync)
            sync_now();
        else if (!sync_posted_)
        {
            // Batch: the Sync goes out once the coroutines that are ready now have queued
            // their statements too.
            sync_posted_ = true;
            asio::post(ex_,
                       [self = shared_from_this()]
                       {
                           self->sync_posted_ = false;
                           if (self->open_ && self->unsynced_ > 0)
                               self->sync_now();
                       });
        }
        return {};
    }

    // A PQsend* call refused: the statement's error; closes the connection if it broke.
    expected<void> send_failed(PGconn* c)
    {
        error e(errc::query_failed, conn_message(c));
        if (PQstatus(c) != CONNECTION_OK)
        {
            e.code = make_error_code(errc::connection_lost);
            close(e);
        }
        return tl::unexpected(std::move(e));
    }

    // The waiter of statement `seq` left (timeout or cancellation): its results will be
    // discarded, and if it runs on the server for longer than `budget` it is cancelled there.
    void abandon(std::uint64_t seq, std::chrono::milliseconds budget) noexcept
    {
        slot* s = find(seq);
        if (!s)
            return;
        s->op = nullptr;
        s->abandoned = true;
        s->budget = budget;
        if (s == head())
            review_head();
    }
    // The waiter's frame is going away without having been resumed (io_context destroyed).
    void forget(std::uint64_t seq) noexcept
    {
        if (slot* s = find(seq))
        {
            s->op = nullptr;
            s->abandoned = true;
        }
    }

private:
    // ---- sending ------------------------------------------------------------------------

    std::uint64_t push(slot_kind k, pipeline_op* op)
    {
        if (k == slot_kind::statement && cursor_ == slots_.size())
            head_since_ = clock::now(); // the server starts on it right away
        slot s;
        s.seq = next_seq_++;
        s.kind = k;
        s.op = op;
        slots_.push_back(s);
        return s.seq;
    }

    void sync_now()
    {
        unsynced_ = 0;
        PGconn* c = conn_.native_handle();
        if (PQpipelineSync(c) != 1)
        {
            close(error(errc::connection_lost, conn_message(c)));
            return;
        }
        push(slot_kind::sync, nullptr);
        flush();
    }

    // PQpipelineSync already tried to send; if the socket buffer was full, keep flushing
    // when it becomes writable (the reader keeps consuming meanwhile: libpq manual 34.4).
    void flush()
    {
        if (flushing_ || !open_)
            return;
        PGconn* c = conn_.native_handle();
        int f = PQflush(c);
        if (f == 0)
            return;
        if (f < 0)
        {
            close(error(errc::connection_lost, conn_message(c)));
            return;
        }
        flushing_ = true;
        asio::co_spawn(ex_, flush_loop(shared_from_this()), asio::detached);
    }

    static asio::awaitable<void> flush_loop(std::shared_ptr<pipeline_state> self)
    {
        using sd = asio::posix::stream_descriptor;
        while (self->open_)
        {
            auto [ec] = co_await self->socket_.async_wait(sd::wait_write,
                                                          asio::as_tuple(asio::use_awaitable));
            if (!self->open_)
                break;
            PGconn* c = self->conn_.native_handle();
            int f = ec ? -1 : PQflush(c);
            if (f == 0)
                break;
            if (f < 0)
            {
                self->close(
                    error(errc::connection_lost,
                          ec ? "socket error while sending: " + ec.message() : conn_message(c)));
                break;
            }
        }
        self->flushing_ = false;
    }

    // ---- receiving ----------------------------------------------------------------------

    static asio::awaitable<void> read_loop(std::shared_ptr<pipeline_state> self)
    {
        using sd = asio::posix::stream_descriptor;
        while (self->open_)
        {
            self->drain();
            if (!self->open_)
                break;
            // Also while nothing is expected: a terminated backend or a restart shows up as
            // readable (FATAL, then EOF), so idle connections notice it at once.
            auto [ec] =
                co_await self->socket_.async_wait(sd::wait_read, asio::as_tuple(asio::deferred));
            if (!self->open_)
                break;
            PGconn* c = self->conn_.native_handle();
            if (ec)
                self->close(error(errc::connection_lost,
                                  "socket error while waiting for results: " + ec.message()));
            else if (!PQconsumeInput(c))
                self->close(error(errc::connection_lost, conn_message(c)));
        }
    }

    // Takes every result libpq can give without waiting and matches it to its slot.
    void drain()
    {
        PGconn* c = conn_.native_handle();
        while (open_)
        {
            if (PQstatus(c) != CONNECTION_OK)
            {
                close(error(errc::connection_lost, conn_message(c)));
                return;
            }
            if (PQisBusy(c) || cursor_ == slots_.size())
                return; // PQisBusy also parses notices that arrive while idle
            slot& s = slots_[cursor_];
            pgresult_ptr r(PQgetResult(c));
            if (s.kind == slot_kind::sync)
            {
                if (r && PQresultStatus(r.get()) == PGRES_PIPELINE_SYNC)
                    finish_segment();
                else
                    unexpected_result(r.get(), "the end of a pipeline segment");
                continue;
            }
            if (!r)
            {
                // The statement's results are complete; the next slot is the server's now.
                if (s.kind == slot_kind::statement && s.op && !s.op->outcome)
                    s.op->outcome = fail(errc::protocol_error, "statement returned no result");
                ++cursor_;
                head_changed();
                continue;
            }
            if (s.kind == slot_kind::prepare)
                take_prepare(s, std::move(r));
            else
                take(s, std::move(r));
        }
    }

    statement_cache& cache() noexcept { return conn_.impl_->statements(); }

    // The session's prepared statements were removed (DEALLOCATE ALL, or 26000 after one we
    // did not see) by the statement at the head: the cache forgets them, except those whose
    // PREPARE is queued behind it and so comes after the removal.
    void forget_prepared()
    {
        keep_.clear();
        for (std::size_t k = cursor_ + 1; k < slots_.size(); ++k)
            if (slots_[k].kind == slot_kind::prepare)
                keep_.push_back(slots_[k].named);
        cache().forget_all_but(keep_);
    }

    // The result of a statement cache entry's PREPARE. If it failed, the statement it serves
    // (the next slot) fails with its error, not as "not run", and the entry is forgotten; if it
    // was skipped (an earlier statement of the segment failed), the entry is forgotten too and
    // the statement, skipped as well, is sent again and prepared anew.
    void take_prepare(slot& s, pgresult_ptr r)
    {
        PGconn* c = conn_.native_handle();
        switch (PQresultStatus(r.get()))
        {
        case PGRES_COMMAND_OK:
            return;
        case PGRES_PIPELINE_ABORTED:
            s.failed = true;
            s.aborted = true;
            cache().drop(s.named, false);
            return;
        case PGRES_FATAL_ERROR:
        case PGRES_NONFATAL_ERROR:
        case PGRES_BAD_RESPONSE:
        {
            error e = result_error(r.get(), c);
            s.failed = true;
            cache().drop(s.named, false);
            slot& stmt = slots_[cursor_ + 1]; // submit() queues the statement right after
            if (e.is(errc::connection_lost))
            {
                if (stmt.op)
                    deliver(stmt, tl::unexpected(e));
                close(error(errc::connection_lost, "pipelined connection lost: " + e.message));
                return;
            }
            stmt.prepare_failed = true;
            if (stmt.op)
                stmt.op->outcome = tl::unexpected(std::move(e));
            return;
        }
        default:
            unexpected_result(r.get(), "the result of a PREPARE");
            return;
        }
    }

    void take(slot& s, pgresult_ptr r)
    {
        PGconn* c = conn_.native_handle();
        switch (PQresultStatus(r.get()))
        {
        case PGRES_TUPLES_OK:
        case PGRES_COMMAND_OK:
        case PGRES_EMPTY_QUERY:
            if (opens_transaction(r.get()))
            {
                refuse_transaction(s);
                return;
            }
            if (forgets_statements(r.get()))
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
        {
            error e = result_error(r.get(), c); // connection_lost for FATAL/PANIC
            if (s.named && (e.state == "26000" || e.state == "0A000"))
            {
                // The named statement is gone (a DEALLOCATE we did not see) or its plan no
                // longer fits (a table changed: "cached plan must not change result type").
                // It did not run: prepared anew, it is sent again (resend_rolled_back).
                if (e.state == "0A000")
                    cache().drop(s.named, true);
                else if (cache().holds(s.named))
                    forget_prepared(); // else its PREPARE failed, and it is known to be gone
                s.reprepare = s.op && !s.op->reprepared; // once: a real 0A000 would repeat
            }
            if (e.state == "57014" && cancel_unconsumed_)
            {
                cancel_unconsumed_ = false;
                if (!s.abandoned)
                {
                    // The cancel raced with the end of the statement it was meant for.
                    s.stray_cancel = true;
                    e.message += "\n(most likely hit by the cancel request sent for an earlier, "
                                 "abandoned statement on this pipelined connection; it did not "
                                 "take effect and is safe to retry)";
                }
            }
            s.failed = true;
            if (e.is(errc::connection_lost))
            {
                // The server closes the session after FATAL (57P01 terminate, shutdown): this
                // statement gets the server's error, every other pending one connection_lost.
                if (s.op)
                    deliver(s, tl::unexpected(e));
                close(error(errc::connection_lost, "pipelined connection lost: " + e.message));
                return;
            }
            if (s.op && !(s.op->outcome && !*s.op->outcome))
                s.op->outcome = tl::unexpected(std::move(e));
            return;
        }
        default:
            unexpected_result(r.get(), "a statement's result");
            return;
        }
    }

    // BEGIN / START TRANSACTION: the explicit transaction would take in the statements of
    // every other caller sent after it. (PQtransactionStatus cannot tell: in pipeline mode it
    // says ACTIVE while later statements are queued.)
    static bool opens_transaction(PGresult* r) noexcept
    {
        const char* tag = PQcmdStatus(r);
        return tag &&
               (std::strcmp(tag, "BEGIN") == 0 || std::strcmp(tag, "START TRANSACTION") == 0);
    }

    // DEALLOCATE ALL (or DISCARD ALL) removed the session's prepared statements.
    static bool forgets_statements(PGresult* r) noexcept
    {
        const char* tag = PQcmdStatus(r);
        return tag &&
               (std::strcmp(tag, "DEALLOCATE ALL") == 0 || std::strcmp(tag, "DISCARD ALL") == 0);
    }

    // Closing the session rolls the transaction back, with everything sent after it.
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

    void unexpected_result(const PGresult* r, std::string_view expected_what)
    {
        PGconn* c = conn_.native_handle();
        if (PQstatus(c) != CONNECTION_OK)
        {
            close(error(errc::connection_lost, conn_message(c)));
            return;
        }
        std::string got = r ? PQresStatus(PQresultStatus(r)) : "no result";
        if (r && PQresultStatus(r) == PGRES_COPY_IN)
            got += " (COPY is not supported on a pipelined connection)";
        close(error(errc::protocol_error, "pipeline out of step: expected " +
                                              std::string(expected_what) + ", got " + got +
                                              "; connection closed"));
    }

    // A Sync's result arrived: the statements before it are final. Either all succeeded
    // (committed), or one failed and the implicit transaction was rolled back: that one gets
    // its error; the others were rolled back or not run and are sent again, each alone in a
    // segment (resend_rolled_back), or fail.
    void finish_segment()
    {
        PGconn* c = conn_.native_handle();
        // Belt and braces for transactions not opened by BEGIN (see opens_transaction());
        // only decisive when nothing is queued after this Sync.
        const auto tx = PQtransactionStatus(c);
        const bool in_tx = tx == PQTRANS_INTRANS || tx == PQTRANS_INERROR;
        bool segment_failed = false;
        for (std::size_t k = 0; k < cursor_; ++k)
            segment_failed = segment_failed || slots_[k].failed;
        for (std::size_t k = 0; k < cursor_; ++k)
        {
            slot& s = slots_[k];
            if (!s.op)
                continue;
            if (in_tx)
                s.op->outcome = fail(errc::invalid_argument, refused_transaction_text);
            else if (settings_.resend_rolled_back && (s.stray_cancel || s.reprepare ||
                                                      (segment_failed && (s.aborted || !s.failed))))
            {
                s.op->reprepared = s.op->reprepared || s.reprepare;
                resend_.push_back(s.op);
                s.op = nullptr;
                continue;
            }
            else if (segment_failed && (s.aborted || !s.failed))
            {
                s.op->outcome = s.aborted
                                    ? fail(errc::query_failed,
                                           "not run: an earlier statement in the same pipeline "
                                           "segment (same Sync) failed")
                                    : fail(errc::query_failed,
                                           "rolled back: another statement in the same pipeline "
                                           "segment (same Sync, one implicit transaction) failed");
            }
            s.op->done = true;
            s.op->timer.cancel();
            s.op = nullptr;
        }
        const std::size_t n = cursor_ + 1;
        slots_.erase(slots_.begin(), slots_.begin() + static_cast<std::ptrdiff_t>(n));
        base_seq_ += n;
        cursor_ = 0;
        if (in_tx)
        {
            close(error(errc::connection_lost,
                        "a statement left a transaction open on the pipelined connection "
                        "(not supported); connection closed and the transaction rolled back"));
            return;
        }
        if (!resend_.empty())
            resend_rolled_back();
        if (slots_.empty() && !cancel_in_flight_)
            cancel_unconsumed_ = false; // the backend goes idle: a late cancel is ignored
        head_changed();
    }

    void resend_rolled_back()
    {
        for (pipeline_op* op : resend_)
        {
            op->outcome.reset();
            auto r =
                open_ ? op->resend(*this)
                      : expected<void>(fail(errc::connection_lost, "pipelined connection closed"));
            if (!r)
            {
                op->outcome = tl::unexpected(std::move(r.error()));
                op->done = true;
                op->timer.cancel();
            }
        }
        resend_.clear();
    }

    void deliver(slot& s, expected<result> r) noexcept
    {
        s.op->outcome = std::move(r);
        s.op->done = true;
        s.op->timer.cancel();
        s.op = nullptr;
    }

    // ---- abandoned statements: cancel on the server -------------------------------------

    slot* find(std::uint64_t seq) noexcept
    {
        if (seq < base_seq_ || seq >= next_seq_)
            return nullptr;
        return &slots_[static_cast<std::size_t>(seq - base_seq_)];
    }
    // The statement the server is working on (the oldest whose results are incomplete).
    slot* head() noexcept
    {
        if (cursor_ < slots_.size() && slots_[cursor_].kind == slot_kind::statement)
            return &slots_[cursor_];
        return nullptr;
    }

    void head_changed()
    {
        if (slot* h = head())
        {
            head_since_ = clock::now();
            if (h->abandoned || watch_armed_)
                review_head();
        }
        else if (watch_armed_)
            disarm_watch();
    }

    // If the statement at the head of the pipeline was abandoned and has run longer than its
    // budget, ask the server to cancel it (PQcancel on the cancel_service thread). If it is
    // still there cancel_timeout after that, close the connection (as connection::query does
    // when a cancelled statement does not drain in time).
    void review_head()
    {
        if (!open_)
            return;
        slot* h = head();
        if (!h || !h->abandoned)
        {
            disarm_watch();
            return;
        }
        const auto now = clock::now();
        if (cancel_target_ == h->seq)
        {
            const auto give_up = cancel_sent_at_ + settings_.cancel_timeout;
            if (now >= give_up)
                close(error(errc::connection_lost,
                            "an abandoned statement did not stop within cancel_timeout after a "
                            "cancel request; pipelined connection closed"));
            else
                arm_watch(give_up);
            return;
        }
        const auto due = head_since_ + h->budget;
        if (now < due)
        {
            arm_watch(due);
            return;
        }
        if (cancel_in_flight_)
        {
            disarm_watch(); // reviewed again when that cancel request finishes
            return;
        }
        send_cancel(*h);
        arm_watch(cancel_sent_at_ + settings_.cancel_timeout);
    }

    void send_cancel(const slot& h)
    {
        pgcancel_ptr pc{PQgetCancel(conn_.native_handle())};
        if (!pc)
        {
            close(error(errc::connection_lost,
                        "could not create a cancel request; pipelined connection closed"));
            return;
        }
        auto sig = std::make_shared<cancel_signal>(ex_);
        sig->timer.expires_after(settings_.cancel_timeout);
        cancel_in_flight_ = true;
        cancel_unconsumed_ = true;
        cancel_target_ = h.seq;
        cancel_sent_at_ = clock::now();
        sig->timer.async_wait(
            [w = weak_from_this(), sig](boost::system::error_code)
            {
                if (auto self = w.lock())
                {
                    self->cancel_in_flight_ = false;
                    self->review_head();
                }
            });
        asio::use_service<cancel_service>(asio::query(ex_, asio::execution::context))
            .start(std::move(pc), sig, ex_);
    }

    void arm_watch(clock::time_point at)
    {
        const auto gen = ++watch_gen_;
        watch_armed_ = true;
        watch_.expires_at(at);
        watch_.async_wait(
            [w = weak_from_this(), gen](boost::system::error_code ec)
            {
                if (ec)
                    return;
                if (auto self = w.lock(); self && self->watch_gen_ == gen)
                {
                    self->watch_armed_ = false;
                    self->review_head();
                }
            });
    }
    void disarm_watch()
    {
        if (!watch_armed_)
            return;
        watch_armed_ = false;
        ++watch_gen_;
        watch_.cancel();
    }

    asio::any_io_executor ex_;
    connection conn_;                       // owns the PGconn (and libpq's socket)
    asio::posix::stream_descriptor socket_; // a dup of PQsocket(); ours to close
    asio::steady_timer watch_;              // deadline for the abandoned head statement
    pipeline_settings settings_;
    std::deque<slot> slots_;     // libpq's command queue, mirrored: statements and Syncs
    std::uint64_t base_seq_ = 0; // seq of slots_.front()
    std::uint64_t next_seq_ = 0;
    std::size_t cursor_ = 0;       // slots_[cursor_] is the next one results belong to
    std::size_t unsynced_ = 0;     // statements sent since the last Sync
    clock::time_point head_since_; // when the head statement became the head
    std::uint64_t cancel_target_ = no_seq;
    clock::time_point cancel_sent_at_;
    unsigned watch_gen_ = 0;
    bool open_ = false;
    bool flushing_ = false;
    bool sync_posted_ = false;
    bool watch_armed_ = false;
    bool cancel_in_flight_ = false;
    bool cancel_unconsumed_ = false;   // a cancel was sent and no 57014 has shown up yet
    std::string params_;               // encoded parameters, reused (submit is synchronous)
    std::string sql_;                  // NUL-terminated statement text, reused
    std::vector<pipeline_op*> resend_; // finish_segment(): statements to send again, reused
    std::vector<std::uint64_t> keep_;  // forget_prepared(): cache entries still being prepared
};

// A statement of query(): lives in the awaiting coroutine's frame with its parameters, so it
// can be sent again (resend) without any allocation.
template <class... Params>
struct pipeline_statement final : pipeline_op
{
    pipeline_statement(const asio::any_io_executor& ex, std::string_view s, Params&&... p)
        : pipeline_op(ex), sql(s), params(std::move(p)...)
    {
    }
    expected<void> send(pipeline_state& st, bool alone)
    {
        return std::apply([&](const auto&... p) { return st.submit(*this, alone, sql, p...); },
                          params);
    }
    expected<void> resend(pipeline_state& st) override { return send(st, true); }

    std::string_view sql;
    std::tuple<Params...> params;
};

// Releases the slot of a statement whose frame is destroyed before delivery.
struct pipeline_op_guard
{
    pipeline_op_guard(pipeline_state* s, const pipeline_op* o) noexcept : st(s), op(o) {}
    pipeline_op_guard(const pipeline_op_guard&) = delete;
    pipeline_op_guard& operator=(const pipeline_op_guard&) = delete;
    ~pipeline_op_guard()
    {
        if (!op->done)
            st->forget(op->seq);
    }
    pipeline_state* st;
    const pipeline_op* op;
};

// query() on a pipelined connection: send, then wait for delivery, the deadline or
// cancellation, whichever comes first.
template <class... Params>
asio::awaitable<expected<result>> pipeline_query(std::shared_ptr<pipeline_state> st,
                                                 std::chrono::milliseconds timeout,
                                                 std::string_view sql, Params... params)
{
    if (!st)
        co_return fail(errc::connection_lost, "pipelined connection is not open");
    {
        auto cs = co_await asio::this_coro::cancellation_state;
        if (cs.cancelled() != asio::cancellation_type::none)
            co_return fail(errc::cancelled, "statement cancelled before it was sent");
    }
    if (timeout.count() <= 0)
        timeout = st->settings().query_timeout;
    pipeline_statement<Params...> op(st->get_executor(), sql, std::move(params)...);
    if (timeout.count() > 0)
        op.timer.expires_after(timeout);
    else
        op.timer.expires_at(std::chrono::steady_clock::time_point::max());
    if (auto sent = op.send(*st, false); !sent)
        co_return tl::unexpected(std::move(sent.error()));
    pipeline_op_guard guard(st.get(), &op);

    if (!op.done)
    {
        bool throw_prev = co_await asio::this_coro::throw_if_cancelled();
        co_await asio::this_coro::throw_if_cancelled(false);
        // deferred, not use_awaitable: no coroutine frame for the wait.
        auto [ec] = co_await op.timer.async_wait(asio::as_tuple(asio::deferred));
        co_await asio::this_coro::throw_if_cancelled(throw_prev);
        if (!op.done)
        {
            // Not delivered: our deadline passed (ec is success) or we were cancelled.
            const bool timed_out = !ec;
            st->abandon(op.seq, timed_out ? timeout : std::chrono::milliseconds(0));
            op.done = true;
            if (timed_out)
                co_return fail(errc::timeout, "statement timed out after " +
                                                  std::to_string(timeout.count()) +
                                                  " ms (pipelined)");
            co_return fail(errc::cancelled, "statement cancelled (pipelined)");
        }
    }
    co_return std::move(*op.outcome);
}

} // namespace pgcoro::detail

#endif // PGCORO_DETAIL_PIPELINE_IMPL_HPP
