// pgcoro/detail/waiter_queue.hpp - a waiting acquire() and the pool's FIFO queue of them.
#ifndef PGCORO_DETAIL_WAITER_QUEUE_HPP
#define PGCORO_DETAIL_WAITER_QUEUE_HPP

#include <pgcoro/error.hpp>
#include <pgcoro/source_location.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstddef>
#include <optional>

namespace pgcoro::detail
{

struct pool_node;

// One waiting acquire(). Lives in the waiting coroutine's frame; the queue links it in place.
// Waking it = setting `assigned` (or `closed`) and cancelling its timer; the timer's own
// expiry is the acquire deadline. `assigned` is checked first, so a node handed over just as
// the deadline passed is still received (and cannot be lost).
struct pool_waiter
{
    pool_waiter(boost::asio::any_io_executor ex, std::chrono::steady_clock::time_point deadline,
                pgcoro::source_location loc)
        : timer(std::move(ex), deadline), where(loc)
    {
    }
    pool_waiter(const pool_waiter&) = delete;
    pool_waiter& operator=(const pool_waiter&) = delete;

    boost::asio::steady_timer timer;
    pgcoro::source_location where;
    pool_node* assigned = nullptr;
    bool closed = false;
    std::optional<error> failure; // a connect failed in a way retrying cannot fix

private:
    friend class waiter_queue;
    pool_waiter* prev_ = nullptr;
    pool_waiter* next_ = nullptr;
    bool queued_ = false;
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
    std::size_t size() const noexcept { return size_; }

    // Appends `w`, which must not be queued already.
    void push_back(pool_waiter* w) noexcept
    {
        w->prev_ = tail_;
        w->next_ = nullptr;
        w->queued_ = true;
        (tail_ ? tail_->next_ : head_) = w;
        tail_ = w;
        ++size_;
    }

    // Removes and returns the oldest waiter; nullptr when empty.
    pool_waiter* pop_front() noexcept
    {
        pool_waiter* w = head_;
        if (w)
            erase(w);
        return w;
    }

    // Removes `w` wherever it is; a waiter that is not queued is left alone.
    void erase(pool_waiter* w) noexcept
    {
        if (!w->queued_)
            return;
        (w->prev_ ? w->prev_->next_ : head_) = w->next_;
        (w->next_ ? w->next_->prev_ : tail_) = w->prev_;
        w->prev_ = w->next_ = nullptr;
        w->queued_ = false;
        --size_;
    }

private:
    pool_waiter* head_ = nullptr;
    pool_waiter* tail_ = nullptr;
    std::size_t size_ = 0;
};

} // namespace pgcoro::detail

#endif // PGCORO_DETAIL_WAITER_QUEUE_HPP
