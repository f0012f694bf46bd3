// SPDX-License-Identifier: BSL-1.0
// pgcoro/impl/pool.ipp - basic_pool's operations on its core: inline from <pgcoro/pool.hpp>
// (header-only) or compiled once from <pgcoro/src.hpp> (PGCORO_SEPARATE_COMPILATION).
#ifndef PGCORO_IMPL_POOL_IPP
#define PGCORO_IMPL_POOL_IPP

#include <pgcoro/detail/pool_core.hpp>
#include <pgcoro/detail/spawn_on.hpp>
#include <pgcoro/pool.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace pgcoro::detail
{

PGCORO_DECL std::shared_ptr<pool_core> pool_open(boost::asio::any_io_executor ex,
                                                 connect_config connect, pool_config cfg,
                                                 std::shared_ptr<observer> obs)
{
    auto core = std::make_shared<pool_core>(std::move(ex), std::move(connect), cfg, std::move(obs));
    boost::asio::post(core->strand(), [c = core]() { c->start(); });
    return core;
}

PGCORO_DECL void pool_shutdown(const std::shared_ptr<pool_core>& core)
{
    boost::asio::post(core->strand(), [c = core]() { c->begin_shutdown(); });
}

PGCORO_DECL boost::asio::awaitable<expected<lease>> pool_acquire(std::shared_ptr<pool_core> core,
                                                                 source_location where)
{
    if (auto* n = core->try_acquire(where)) // an idle connection, without a strand hop
        co_return lease_access::make(std::move(core), n);
    auto r = co_await core->acquire_slow(where);
    if (!r)
        co_return tl::unexpected(std::move(r.error()));
    co_return lease_access::make(std::move(core), *r);
}

PGCORO_DECL boost::asio::awaitable<expected<void>> pool_warmup(std::shared_ptr<pool_core> core)
{
    co_return co_await spawn_on(core->strand(), core->warmup());
}

PGCORO_DECL boost::asio::awaitable<void> pool_close(std::shared_ptr<pool_core> core,
                                                    std::chrono::milliseconds grace)
{
    co_await boost::asio::co_spawn(core->strand(), core->close(grace), boost::asio::use_awaitable);
}

PGCORO_DECL pool_stats pool_stats_of(const pool_core& core) noexcept
{
    return core.stats();
}

PGCORO_DECL boost::asio::any_io_executor pool_executor(const pool_core& core) noexcept
{
    return core.strand().get_inner_executor();
}

PGCORO_DECL void pool_on_leak(const std::shared_ptr<pool_core>& core,
                              std::function<void(const leak_info&)> h)
{
    boost::asio::post(core->strand(), [c = core, h = std::move(h)]() mutable
                      { c->set_leak_handler(std::move(h)); });
}

PGCORO_DECL void pool_set_max_size(const std::shared_ptr<pool_core>& core, std::size_t n)
{
    boost::asio::post(core->strand(), [c = core, n]() { c->set_max_size(n); });
}

PGCORO_DECL void pool_set_acquire_timeout(const std::shared_ptr<pool_core>& core,
                                          std::chrono::milliseconds d)
{
    boost::asio::post(core->strand(), [c = core, d]() { c->set_acquire_timeout(d); });
}

PGCORO_DECL void pool_set_idle_timeout(const std::shared_ptr<pool_core>& core,
                                       std::chrono::milliseconds d)
{
    boost::asio::post(core->strand(), [c = core, d]() { c->set_idle_timeout(d); });
}

} // namespace pgcoro::detail

#endif // PGCORO_IMPL_POOL_IPP
