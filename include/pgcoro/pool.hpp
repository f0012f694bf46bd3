// SPDX-License-Identifier: BSL-1.0
// pgcoro/pool.hpp - the connection pool: `co_await pool.acquire()`.
#ifndef PGCORO_POOL_HPP
#define PGCORO_POOL_HPP

#include <pgcoro/connect_config.hpp>
#include <pgcoro/connection.hpp>
#include <pgcoro/detail/async_op.hpp>
#include <pgcoro/detail/config.hpp>
#include <pgcoro/detail/pool_node.hpp>
#include <pgcoro/error.hpp>
#include <pgcoro/lease.hpp>
#include <pgcoro/observer.hpp>
#include <pgcoro/pool_config.hpp>
#include <pgcoro/pool_stats.hpp>
#include <pgcoro/source_location.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <span>
#include <type_traits>
#include <vector>

namespace pgcoro
{

namespace detail
{

class pool_core;

// pool's operations on its type-erased core (impl/pool.ipp): inline when header-only,
// compiled once from <pgcoro/src.hpp> in separate compilation.

// A pool's shards, as a pool holds them: one core, or one per executor it was given.
using pool_shards = std::vector<std::shared_ptr<pool_core>>;

// New cores, one per executor (at most max_size), started (min_size connects begin in the
// background); several are joined into one pool_group. Throws std::invalid_argument for none.
PGCORO_DECL pool_shards pool_open(std::vector<boost::asio::any_io_executor> executors,
                                  connect_config connect, pool_config cfg,
                                  std::shared_ptr<observer> obs);
// Begins the shutdown of every shard (posted to their strands).
PGCORO_DECL void pool_shutdown(const pool_shards& shards);
// pool::acquire(): from the caller's shard (`first` leads to the others), an idle
// connection without a strand hop, else another shard's idle one, else the slow path.
PGCORO_DECL boost::asio::awaitable<expected<lease>> pool_acquire(std::shared_ptr<pool_core> first,
                                                                 source_location where);
// pool::warmup().
PGCORO_DECL boost::asio::awaitable<expected<void>> pool_warmup(pool_shards shards);
// pool::close().
PGCORO_DECL boost::asio::awaitable<void> pool_close(pool_shards shards,
                                                    std::chrono::milliseconds grace);
// pool::stats(): the shards' sums.
PGCORO_DECL pool_stats pool_stats_of(const pool_shards& shards) noexcept;
// pool::get_executor(): the executor the pool (its first shard) was created with.
PGCORO_DECL boost::asio::any_io_executor pool_executor(const pool_core& core) noexcept;
// pool::on_leak().
PGCORO_DECL void pool_on_leak(const pool_shards& shards, std::function<void(const leak_info&)> h);
// pool::set_max_size().
PGCORO_DECL void pool_set_max_size(const pool_shards& shards, std::size_t n);
// pool::set_acquire_timeout().
PGCORO_DECL void pool_set_acquire_timeout(const pool_shards& shards, std::chrono::milliseconds d);
// pool::set_idle_timeout().
PGCORO_DECL void pool_set_idle_timeout(const pool_shards& shards, std::chrono::milliseconds d);

} // namespace detail

/// A lease held longer than pool_config::leak_threshold, as reported to the leak handler.
using leak_report = detail::leak_info;

/// An asynchronous PostgreSQL connection pool on an Asio executor.
///
/// The pool keeps between min_size and max_size connections (connecting ones count), hands
/// the most recently used idle one out first, and queues acquirers FIFO with a deadline. Idle
/// connections are retired after idle_timeout (above min_size) and max_lifetime (with jitter),
/// validated before hand-out after validate_after_idle, pinged every keepalive_interval, and a
/// connection the server closed while idle is replaced, not handed out. Failed connects are
/// retried with capped exponential backoff.
///
/// Thread safety: the pool's asynchronous work runs on a strand of its executor, its shared
/// state behind a mutex; acquire(), leases, stats() and the setters may be used from
/// coroutines on any thread of a multi-threaded io_context. A leased connection is used by one
/// coroutine at a time.
class pool
{
public:
    /// The executor type of get_executor() and of the executors a pool is made with (any
    /// executor converts to it): the pool's internals are not templates of the executor.
    using executor_type = boost::asio::any_io_executor;

    /// A pool that connects with `connect` and sizes itself by `cfg`. Starts opening min_size
    /// connections in the background; co_await warmup() to wait for them. `obs` (optional;
    /// a stats_collector, logging_observer or fanout_observer) receives the pool's events and
    /// its leases' statements, and is kept alive as long as the pool's internals.
    pool(executor_type ex, connect_config connect, pool_config cfg = {},
         std::shared_ptr<observer> obs = nullptr)
        : shards_(detail::pool_open({std::move(ex)}, std::move(connect), cfg, std::move(obs)))
    {
    }

    /// A pool split into shards, one per executor in `executors` (at most max_size of them):
    /// typically one io_context per core, each run by one thread. Each shard has its own
    /// connections, waiters, strand and lock, so a statement's whole path stays on one thread.
    /// max_size stays the limit of the whole pool (a busy shard may open what the others do
    /// not use); min_size and max_waiters are split evenly. acquire() starts at the shard on
    /// the caller's io_context (several on it: spread by calling thread), borrows another
    /// shard's idle connection when its own has none, and a shard with no waiter of its own
    /// hands a returned connection to another shard's waiter (also, for fairness, when another
    /// shard's oldest waiter waited over twice as long as its own, and 10 ms longer). FIFO
    /// holds within a shard, not across shards; stats(), on_leak(), close() and the setters
    /// cover every shard. Lifetime: a lease (or a waiting acquire) on one io_context may hold
    /// another shard's connection, so let all the io_contexts run out of work before
    /// destroying any of them: keep each one's work guard until your own coroutines have all
    /// finished (one that ran out may get work again while another still runs).
    /// Throws std::invalid_argument when `executors` is empty.
    pool(std::span<const executor_type> executors, connect_config connect, pool_config cfg = {},
         std::shared_ptr<observer> obs = nullptr)
        : shards_(detail::pool_open({executors.begin(), executors.end()}, std::move(connect), cfg,
                                    std::move(obs)))
    {
    }
    pool(const pool&) = delete;
    pool& operator=(const pool&) = delete;

    /// Shuts the pool down without waiting: waiters fail with pool_closed, idle connections
    /// close now, leased ones close when their leases end. Safe while leases are alive.
    ~pool() { detail::pool_shutdown(shards_); }

    /// Borrows a connection.
    ///
    /// Completes with: a lease on an open connection (validated first if it was idle for
    ///   validate_after_idle or more).
    /// Errors: `pool_timeout` after acquire_timeout, with size, in-use, idle, connecting,
    ///   waiters, time waited, where the oldest lease was taken and the last connect error;
    ///   `too_many_waiters` at once when max_waiters are already waiting; `pool_closed`;
    ///   `cancelled`; a connect's own error (e.g. connect_failed with 28P01), not transient,
    ///   as soon as a connect fails in a way retrying cannot fix (authentication, TLS,
    ///   unknown database, configuration).
    /// Cancellation: terminal, partial and total; a cancelled waiter leaves the queue at once.
    /// Resumes on: the caller's executor.
    /// Lifetime: the pool may be destroyed while the operation is pending (it then fails with
    ///   pool_closed).
    boost::asio::awaitable<expected<lease>>
    acquire(source_location where = source_location::current())
    {
        return detail::pool_acquire(shards_.front(), where);
    }

    /// Acquires a connection, runs `fn(connection&)` (which returns an awaitable of
    /// expected<T>), and returns the connection. A connection_lost result closes it.
    /// Completes with: fn's result, or acquire()'s error.
    template <class F>
    auto run(F fn, source_location where = source_location::current())
        -> boost::asio::awaitable<typename std::invoke_result_t<F&, connection&>::value_type>
    {
        auto l = co_await acquire(where);
        if (!l)
            co_return tl::unexpected(std::move(l.error()));
        auto r = co_await fn(**l);
        if (!r && r.error().is(errc::connection_lost))
            l->mark_broken();
        co_return r;
    }

    /// Waits until min_size connections are open.
    /// Completes with: nothing once they are; the first connect error if a connect fails
    ///   (e.g. connect_failed with 28P01); `timeout` if connect_timeout passes.
    /// Cancellation: terminal; the connects go on in the background.
    boost::asio::awaitable<expected<void>> warmup() { return detail::pool_warmup(shards_); }

    /// Closes the pool gracefully: new acquires fail with pool_closed, waiters are woken with
    /// pool_closed, idle connections close, and the call waits up to `grace` for leased
    /// connections to come back (each closes as it returns).
    /// Completes with: nothing, when every connection is closed or `grace` has passed.
    boost::asio::awaitable<void> close(std::chrono::milliseconds grace = std::chrono::seconds(30))
    {
        return detail::pool_close(shards_, grace);
    }

    /// The executor the pool was created with: the default executor of the handlers of its
    /// async_* operations.
    executor_type get_executor() const noexcept { return detail::pool_executor(*shards_.front()); }

    /// acquire() as an Asio asynchronous operation, for any completion token (a callback,
    /// use_future, deferred, as_tuple, use_awaitable, parallel_group, ...). Completion
    /// signature `void(expected<lease>)`. The handler runs on its associated executor
    /// (default: get_executor()), never inside this call; its cancellation slot cancels the
    /// acquire as in acquire(). `co_await pool.acquire()` stays the cheapest spelling.
    template <class CompletionToken>
    auto async_acquire(CompletionToken&& token, source_location where = source_location::current())
    {
        return detail::async_run(get_executor(), acquire(where),
                                 std::forward<CompletionToken>(token));
    }

    /// warmup() as an asynchronous operation: `void(expected<void>)`.
    template <class CompletionToken>
    auto async_warmup(CompletionToken&& token)
    {
        return detail::async_run(get_executor(), warmup(), std::forward<CompletionToken>(token));
    }

    /// close(grace) as an asynchronous operation: `void()`.
    template <class CompletionToken>
    auto async_close(std::chrono::milliseconds grace, CompletionToken&& token)
    {
        return detail::async_run(get_executor(), close(grace),
                                 std::forward<CompletionToken>(token));
    }

    /// Gauges and totals, readable from any thread without waiting.
    pool_stats stats() const noexcept { return detail::pool_stats_of(shards_); }

    /// Calls `h` (on the pool's strand; it must not block) for each lease held longer than
    /// leak_threshold, with the file and line of its acquire(). Set before use.
    void on_leak(std::function<void(const leak_report&)> h)
    {
        detail::pool_on_leak(shards_, std::move(h));
    }

    /// Changes max_size at run time (shrinking closes idle connections above it).
    void set_max_size(std::size_t n) { detail::pool_set_max_size(shards_, n); }
    /// Changes acquire_timeout at run time (for acquires that start afterwards).
    void set_acquire_timeout(std::chrono::milliseconds d)
    {
        detail::pool_set_acquire_timeout(shards_, d);
    }
    /// Changes idle_timeout at run time (from the next sweep on).
    void set_idle_timeout(std::chrono::milliseconds d)
    {
        detail::pool_set_idle_timeout(shards_, d);
    }

private:
    detail::pool_shards shards_; // never empty
};

} // namespace pgcoro

#ifndef PGCORO_SEPARATE_COMPILATION
#include <pgcoro/impl/pool.ipp>
#endif

#endif // PGCORO_POOL_HPP
