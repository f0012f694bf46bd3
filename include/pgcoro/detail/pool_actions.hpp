// SPDX-License-Identifier: BSL-1.0
// pgcoro/detail/pool_actions.hpp - what the pool's state machine tells its driver to do.
#ifndef PGCORO_DETAIL_POOL_ACTIONS_HPP
#define PGCORO_DETAIL_POOL_ACTIONS_HPP

#include <pgcoro/close_reason.hpp>
#include <pgcoro/detail/pool_node.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <vector>

namespace pgcoro::detail
{

// The state a returned (or settled) connection is in, as its holder saw it.
enum class conn_condition
{
    reusable,       // open, settled, outside a transaction
    in_transaction, // open, inside a transaction (or a failed one): ROLLBACK first
    unsettled,      // a statement timed out or was cancelled: its results are still coming
    broken,         // closed, marked broken, or returned mid-statement
    oversized,      // its buffers grew past what a pooled connection may keep
};

// What the driver must do after an event: I/O the machine asked for. Filled by the events,
// taken (and cleared) by the driver, which applies it outside its lock.
template <class Node>
struct pool_actions
{
    struct close_action
    {
        std::unique_ptr<Node> node; // the machine no longer knows it
        close_reason why;
    };
    std::vector<Node*> open;     // start a connect, then connect_done()
    std::vector<Node*> validate; // ping (validation_timeout), then validated()
    std::vector<Node*> reset;    // ROLLBACK, then reset_done()
    std::vector<Node*> settle;   // finish the cancel and drain, then settled()
    std::vector<Node*> abort;    // cancel the connect, ping or reset in flight (shutdown)
    std::vector<close_action> close;
    std::vector<leak_info> leaks;                                   // report each
    std::optional<std::chrono::steady_clock::time_point> refill_at; // arm the refill timer
    bool drained = false; // closed, and the last connection is gone

    bool empty() const noexcept
    {
        return open.empty() && validate.empty() && reset.empty() && settle.empty() &&
               abort.empty() && close.empty() && leaks.empty() && !refill_at && !drained;
    }
};

// How acquire() ended.
enum class acquire_step
{
    assigned,         // w.assigned holds a leased node
    queued,           // w waits in the queue
    closed,           // the pool is closed
    too_many_waiters, // max_waiters are waiting already
};

} // namespace pgcoro::detail

#endif // PGCORO_DETAIL_POOL_ACTIONS_HPP
