// SPDX-License-Identifier: BSL-1.0
// pgcoro/detail/pq_queue.hpp - libpq's command queue, mirrored: which statement each result
// belongs to, which waiter (if any) gets it, and which abandoned statement needs a cancel.
#ifndef PGCORO_DETAIL_PQ_QUEUE_HPP
#define PGCORO_DETAIL_PQ_QUEUE_HPP

#include <pgcoro/error.hpp>
#include <pgcoro/result.hpp>

#include <libpq-fe.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <deque>
#include <limits>
#include <optional>
#include <vector>

namespace pgcoro::detail
{

// One statement waiting for its outcome, in the frame of the coroutine that awaits it.
struct pq_op
{
    pq_op() = default;
    pq_op(const pq_op&) = delete;
    pq_op& operator=(const pq_op&) = delete;
    // Sends the statement again, alone in its segment (rolled back, not run, or re-prepared).
    virtual expected<void> resend() = 0;
    // The outcome is there (done): wake the waiter if it sleeps (shared mode).
    virtual void wake() noexcept {}

    std::optional<expected<result>> outcome; // may be filled before delivery (batched syncs)
    std::uint64_t seq = 0;                   // its slot (changes when it is resent)
    bool done = false;                       // delivered: the waiter may return `outcome`
    bool reprepared = false;                 // sent again once for a 26000 / 0A000 already

protected:
    ~pq_op() = default;
};

// Parameters as libpq takes them (lengths/formats may be null: all text).
struct statement_params
{
    const Oid* types = nullptr;
    const char* const* values = nullptr;
    const int* lengths = nullptr;
    const int* formats = nullptr;
    int n = 0;
};

enum class session_mode : unsigned char
{
    exclusive,
    shared,
};

// The slots of the statements, PREPAREs and Syncs libpq has queued, in libpq's order, and the
// cancel bookkeeping of the statement at the head. pq_session fills and drains it.
class pq_queue
{
public:
    using clock = std::chrono::steady_clock;

    // Nothing queued: every statement sent has been answered (or none was sent).
    bool idle() const noexcept { return slots_.empty(); }
    // Entries queued (statements, abandoned ones included, and Syncs).
    std::size_t queued() const noexcept { return slots_.size(); }
    // Statements whose waiter still waits.
    std::size_t pending() const noexcept
    {
        std::size_t n = 0;
        for (const auto& s : slots_)
            n += s.kind == slot_kind::statement && !s.abandoned;
        return n;
    }
    // Statements sent since the last Sync.
    std::size_t unsynced() const noexcept { return unsynced_; }

    // ---- callers that leave ---------------------------------------------------------------

    // The waiter of statement `seq` left (deadline, cancellation): its results will be
    // discarded; if it runs on the server for longer than `budget`, review() says to cancel it.
    void abandon(std::uint64_t seq, std::chrono::milliseconds budget) noexcept
    {
        if (slot* s = find(seq))
        {
            s->op = nullptr;
            s->abandoned = true;
            s->budget = budget;
        }
    }

    // The waiter's frame goes away before delivery (io_context destroyed, or an exception):
    // unlink it, so nothing refers to it any more; its results are discarded.
    void forget(const pq_op& op) noexcept
    {
        if (slot* s = find(op.seq); s && s->op == &op)
        {
            s->op = nullptr;
            s->abandoned = true;
        }
        std::erase(resend_, &op);
    }

    // What the driver should do about an abandoned statement at the head of the queue.
    struct review_result
    {
        enum
        {
            nothing,     // no abandoned statement is running
            wait,        // look again at `at`
            send_cancel, // send a cancel request now (then cancel_sent()), look again at `at`
            give_up,     // it ignored the cancel request: close the session
        } what = nothing;
        clock::time_point at{};
    };
    review_result review(clock::time_point now, std::chrono::milliseconds cancel_timeout,
                         bool cancel_in_flight) const noexcept
    {
        const slot* h = head();
        if (!h || !h->abandoned)
            return {};
        if (cancel_target_ == h->seq)
        {
            const auto give_up = cancel_sent_at_ + cancel_timeout;
            if (now >= give_up)
                return {review_result::give_up, give_up};
            return {review_result::wait, give_up};
        }
        const auto due = head_since_ + h->budget;
        if (now < due)
            return {review_result::wait, due};
        if (cancel_in_flight)
            return {review_result::wait, now + cancel_timeout};
        return {review_result::send_cancel, now + cancel_timeout};
    }
    // A cancel request for the head statement was sent at `now`.
    void cancel_sent(clock::time_point now) noexcept
    {
        if (const slot* h = head())
            cancel_target_ = h->seq;
        cancel_sent_at_ = now;
        cancel_unconsumed_ = true;
    }

protected:
    static constexpr std::uint64_t no_seq = std::numeric_limits<std::uint64_t>::max();

    // One entry of libpq's command queue, in the same order.
    enum class slot_kind : unsigned char
    {
        statement, // a caller's statement
        prepare,   // the PREPARE of a statement cache entry (right before the statement)
        internal,  // the session's own (DEALLOCATE of evicted entries); outcome ignored
        sync,
    };
    struct slot
    {
        std::uint64_t seq = 0;
        slot_kind kind = slot_kind::statement;
        bool abandoned = false;      // the waiter left: discard the results
        bool failed = false;         // the statement failed or was skipped (PIPELINE_ABORTED)
        bool aborted = false;        // skipped: PIPELINE_ABORTED
        bool stray_cancel = false;   // 57014 from a cancel meant for an earlier statement
        bool prepare_failed = false; // its PREPARE failed: op->outcome holds that error
        bool reprepare = false;      // its named statement was gone (26000) or outdated (0A000)
        std::uint64_t named = 0;     // statement_cache entry id it prepares / runs; 0 = unnamed
        pq_op* op = nullptr;
        std::chrono::milliseconds budget{0}; // abandoned: run time allowed before a cancel
    };

    // Forgets every slot (the session closed); their waiters were told already.
    void clear_queue() noexcept
    {
        slots_.clear();
        base_seq_ = next_seq_;
        cursor_ = 0;
        resend_.clear();
        cancel_target_ = no_seq;
    }
    // Removes the finished segment: slots_[0 .. cursor_] (the Sync included).
    void pop_segment() noexcept
    {
        const std::size_t n = cursor_ + 1;
        slots_.erase(slots_.begin(), slots_.begin() + static_cast<std::ptrdiff_t>(n));
        base_seq_ += n;
        cursor_ = 0;
        head_since_ = clock::now();
    }

    slot& push(slot_kind k, pq_op* op)
    {
        if (cursor_ == slots_.size())
            head_since_ = clock::now(); // the server starts on it right away
        slot s;
        s.seq = next_seq_++;
        s.kind = k;
        s.op = op;
        slots_.push_back(s);
        return slots_.back();
    }

    slot* find(std::uint64_t seq) noexcept
    {
        if (seq < base_seq_ || seq >= next_seq_)
            return nullptr;
        return &slots_[static_cast<std::size_t>(seq - base_seq_)];
    }
    // The statement the server is working on (the oldest whose results are incomplete).
    const slot* head() const noexcept
    {
        if (cursor_ < slots_.size() && slots_[cursor_].kind == slot_kind::statement)
            return &slots_[cursor_];
        return nullptr;
    }

    static void deliver(slot& s, expected<result> r) noexcept
    {
        s.op->outcome = std::move(r);
        s.op->done = true;
        s.op->wake();
        s.op = nullptr;
    }

    std::deque<slot> slots_;     // libpq's command queue, mirrored
    std::uint64_t base_seq_ = 0; // seq of slots_.front()
    std::uint64_t next_seq_ = 0;
    std::size_t cursor_ = 0;       // slots_[cursor_] is the next one results belong to
    std::size_t unsynced_ = 0;     // statements sent since the last Sync
    clock::time_point head_since_; // when the head statement became the head
    std::uint64_t cancel_target_ = no_seq;
    clock::time_point cancel_sent_at_;
    bool cancel_unconsumed_ = false; // a cancel was sent and no 57014 has shown up yet
    std::vector<pq_op*> resend_;     // finish_segment(): statements to send again
};

} // namespace pgcoro::detail

#endif // PGCORO_DETAIL_PQ_QUEUE_HPP
