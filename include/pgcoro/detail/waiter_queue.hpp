// SPDX-License-Identifier: BSL-1.0
// pgcoro/detail/waiter_queue.hpp - a waiting acquire() and the pool's FIFO queue of them.
#ifndef PGCORO_DETAIL_WAITER_QUEUE_HPP
#define PGCORO_DETAIL_WAITER_QUEUE_HPP

#include <pgcoro/error.hpp>
#include <pgcoro/source_location.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>

namespace pgcoro::detail
{

struct node_rec;

// One waiting acquire, as the state machine sees it. Lives in the waiting coroutine's frame;
// the queue links it in place. The machine wakes it by setting `assigned`, `closed` or
// `failure` and calling wake(); `assigned` is checked first, so a node handed over just as
// the deadline passed is still received (and cannot be lost).
struct waiter_rec
{
    explicit waiter_rec(pgcoro::source_location loc) noexcept : where(loc) {}
    waiter_rec(const waiter_rec&) = delete;
    waiter_rec& operator=(const waiter_rec&) = delete;

    // Called by the machine (under the driver's lock) once an outcome is set.
    virtual void wake() noexcept = 0;

    pgcoro::source_location where;
    std::chrono::steady_clock::time_point since{}; // when it queued
    node_rec* assigned = nullptr;
    bool closed = false;
    std::optional<error> failure; // a connect failed in a way retrying cannot fix

protected:
    ~waiter_rec() = default;

private:
    friend class waiter_queue;
    waiter_rec* prev_ = nullptr;
    waiter_rec* next_ = nullptr;
    bool queued_ = false;
};

// A waiting acquire() in the driver: waking it cancels its timer, whose own expiry is the
// acquire deadline.
struct pool_waiter final : waiter_rec
{
    pool_waiter(boost::asio::any_io_executor ex, std::chrono::steady_clock::time_point deadline,
                pgcoro::source_location loc)
        : waiter_rec(loc), timer(std::move(ex), deadline)
    {
    }
    void wake() noexcept override { timer.cancel(); }

    boost::asio::steady_timer timer;
    // Keeps another shard's pool core alive while its connection, handed to this waiter, has
    // no lease yet (sharded pools).
    std::shared_ptr<void> lender;
};

// The FIFO of waiting acquires, linked through the waiters themselves: no allocation as
// waiters come and go (a std::deque allocates a block every 64), and a cancelled or timed-out
// waiter leaves in O(1). Not thread-safe: the pool guards it with its mutex.
class waiter_queue
{
public:
    waiter_queue() = default;
    waiter_queue(const waiter_queue&) = delete;
    waiter_queue& operator=(const waiter_queue&) = delete;

    bool empty() const noexcept { return head_ == nullptr; }
    const waiter_rec* front() const noexcept { return head_; }
    std::size_t size() const noexcept { return size_; }

    // Appends `w`, which must not be queued already.
    void push_back(waiter_rec* w) noexcept
    {
        w->prev_ = tail_;
        w->next_ = nullptr;
        w->queued_ = true;
        (tail_ ? tail_->next_ : head_) = w;
        tail_ = w;
        ++size_;
    }

    // Removes and returns the oldest waiter; nullptr when empty.
    waiter_rec* pop_front() noexcept
    {
        waiter_rec* w = head_;
        if (w)
            erase(w);
        return w;
    }

    // Removes `w` wherever it is; a waiter that is not queued is left alone.
    void erase(waiter_rec* w) noexcept
    {
        if (!w->queued_)
            return;
        (w->prev_ ? w->prev_->next_ : head_) = w->next_;
        (w->next_ ? w->next_->prev_ : tail_) = w->prev_;
        w->prev_ = w->next_ = nullptr;
        w->queued_ = false;
        --size_;
    }

    // Whether `w` is in a queue.
    static bool queued(const waiter_rec& w) noexcept { return w.queued_; }

private:
    waiter_rec* head_ = nullptr;
    waiter_rec* tail_ = nullptr;
    std::size_t size_ = 0;
};

} // namespace pgcoro::detail

#endif // PGCORO_DETAIL_WAITER_QUEUE_HPP
