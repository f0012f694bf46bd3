// SPDX-License-Identifier: BSL-1.0
// pgcoro/impl/pool.ipp - pool's operations on its core: inline from <pgcoro/pool.hpp>
// (header-only) or compiled once from <pgcoro/src.hpp> (PGCORO_SEPARATE_COMPILATION).
#ifndef PGCORO_IMPL_POOL_IPP
#define PGCORO_IMPL_POOL_IPP

#include <pgcoro/detail/pool_core.hpp>
#include <pgcoro/detail/spawn_on.hpp>
#include <pgcoro/pool.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <stdexcept>

namespace pgcoro::detail
{

// total / n, the first total % n shards one more: how a limit is split over n shards.
constexpr std::size_t shard_share(std::size_t total, std::size_t n, std::size_t i) noexcept
{
    return total / n + (i < total % n ? 1 : 0);
}

// A number for the calling thread, distinct from every other thread's.
inline std::size_t thread_number() noexcept
{
    static std::atomic<std::size_t> next{0};
    thread_local const std::size_t mine = next.fetch_add(1, std::memory_order_relaxed);
    return mine;
}

// The shard an acquire running on `ctx` starts from: the one made on that execution context
// (several on it, as with one io_context run by several threads: spread by thread), else
// any, spread by thread. Null once the pool is gone.
inline std::shared_ptr<pool_core> home_shard(const pool_group& g, const void* ctx)
{
    const auto n = g.contexts.size();
    std::size_t matches = 0;
    for (const void* c : g.contexts)
        matches += c == ctx ? 1 : 0;
    std::size_t pick = thread_number() % (matches ? matches : n);
    for (std::size_t i = 0; i < n; ++i)
        if (!matches || g.contexts[i] == ctx)
            if (pick-- == 0)
                return g.members[i].lock();
    return nullptr;
}

PGCORO_DECL pool_shards pool_open(std::vector<boost::asio::any_io_executor> executors,
                                  connect_config connect, pool_config cfg,
                                  std::shared_ptr<observer> obs)
{
    if (executors.empty())
        throw std::invalid_argument("pgcoro::pool: no executor for its shards");
    const std::size_t n =
        std::clamp<std::size_t>(executors.size(), 1, std::max<std::size_t>(cfg.max_size, 1));
    pool_shards shards;
    shards.reserve(n);
    for (std::size_t i = 0; i < n; ++i)
    {
        pool_config c = cfg;
        if (n > 1)
        {
            // max_size is shared (pool_group::slots): a busy shard may use what others do not
            c.min_size = shard_share(cfg.min_size, n, i);
            if (cfg.max_waiters > 0)
                c.max_waiters = std::max<std::size_t>(1, shard_share(cfg.max_waiters, n, i));
        }
        shards.push_back(std::make_shared<pool_core>(executors[i], connect, c, obs));
    }
    if (n > 1)
    {
        auto g = std::make_shared<pool_group>();
        g->slots = static_cast<std::ptrdiff_t>(cfg.max_size);
        g->max_size = cfg.max_size;
        g->fronts = std::make_unique<pool_group::front[]>(n);
        for (std::size_t i = 0; i < n; ++i)
        {
            g->members.push_back(shards[i]);
            g->contexts.push_back(
                &boost::asio::query(executors[i], boost::asio::execution::context));
        }
        for (std::size_t i = 0; i < n; ++i)
            shards[i]->join(g, i);
    }
    for (auto& core : shards)
        boost::asio::post(core->strand(), [c = core]() { c->start(); });
    return shards;
}

PGCORO_DECL void pool_shutdown(const pool_shards& shards)
{
    for (const auto& core : shards)
        boost::asio::post(core->strand(), [c = core]() { c->begin_shutdown(); });
}

PGCORO_DECL boost::asio::awaitable<expected<lease>> pool_acquire(std::shared_ptr<pool_core> core,
                                                                 source_location where)
{
    if (core->group())
    {
        const auto ex = co_await boost::asio::this_coro::executor;
        if (auto home = home_shard(*core->group(),
                                   &boost::asio::query(ex, boost::asio::execution::context)))
            core = std::move(home);
    }
    if (auto* n = core->try_acquire(where)) // an idle connection, without a strand hop
        co_return lease_access::make(std::move(core), n);
    if (core->group())
        if (auto lent = core->borrow(where)) // another shard's idle connection
            co_return lease_access::make(std::move(lent->lender), lent->node);
    auto r = co_await core->acquire_slow(where);
    if (!r)
        co_return tl::unexpected(std::move(r.error()));
    if (r->lender)
        co_return lease_access::make(std::move(r->lender), r->node);
    co_return lease_access::make(std::move(core), r->node);
}

PGCORO_DECL boost::asio::awaitable<expected<void>> pool_warmup(pool_shards shards)
{
    for (auto& core : shards)
    {
        auto r = co_await spawn_on(core->strand(), core->warmup());
        if (!r)
            co_return r;
    }
    co_return expected<void>{};
}

PGCORO_DECL boost::asio::awaitable<void> pool_close(pool_shards shards,
                                                    std::chrono::milliseconds grace)
{
    pool_shutdown(shards); // every shard stops handing out before the first one drains
    const auto until = std::chrono::steady_clock::now() + grace;
    for (auto& core : shards)
    {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            until - std::chrono::steady_clock::now());
        co_await boost::asio::co_spawn(core->strand(),
                                       core->close(std::max(left, std::chrono::milliseconds(0))),
                                       boost::asio::use_awaitable);
    }
}

PGCORO_DECL pool_stats pool_stats_of(const pool_shards& shards) noexcept
{
    pool_stats sum = shards.front()->stats();
    if (const auto& g = shards.front()->group())
        sum.max_size = g->max_size.load(); // the shards' own may not have heard of a change yet
    for (std::size_t i = 1; i < shards.size(); ++i)
        sum += shards[i]->stats();
    return sum;
}

PGCORO_DECL boost::asio::any_io_executor pool_executor(const pool_core& core) noexcept
{
    return core.strand().get_inner_executor();
}

PGCORO_DECL void pool_on_leak(const pool_shards& shards, std::function<void(const leak_info&)> h)
{
    for (const auto& core : shards)
        boost::asio::post(core->strand(),
                          [c = core, h]() mutable { c->set_leak_handler(std::move(h)); });
}

PGCORO_DECL void pool_set_max_size(const pool_shards& shards, std::size_t n)
{
    n = std::max<std::size_t>(n, 1);
    if (const auto& g = shards.front()->group())
    {
        const auto old = g->max_size.exchange(n);
        g->slots.fetch_add(static_cast<std::ptrdiff_t>(n) - static_cast<std::ptrdiff_t>(old));
    }
    for (const auto& core : shards) // each shard closes idle ones while the pool is over
        boost::asio::post(core->strand(), [c = core, n]() { c->set_max_size(n); });
}

PGCORO_DECL void pool_set_acquire_timeout(const pool_shards& shards, std::chrono::milliseconds d)
{
    for (const auto& core : shards)
        boost::asio::post(core->strand(), [c = core, d]() { c->set_acquire_timeout(d); });
}

PGCORO_DECL void pool_set_idle_timeout(const pool_shards& shards, std::chrono::milliseconds d)
{
    for (const auto& core : shards)
        boost::asio::post(core->strand(), [c = core, d]() { c->set_idle_timeout(d); });
}

} // namespace pgcoro::detail

#endif // PGCORO_IMPL_POOL_IPP
