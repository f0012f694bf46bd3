// SPDX-License-Identifier: BSL-1.0
// pgcoro/impl/stream.ipp - row_stream: inline from <pgcoro/stream.hpp> (header-only) or
// compiled once from <pgcoro/src.hpp> (PGCORO_SEPARATE_COMPILATION).
#ifndef PGCORO_IMPL_STREAM_IPP
#define PGCORO_IMPL_STREAM_IPP

#include <pgcoro/detail/pq_direct.hpp>
#include <pgcoro/stream.hpp>

namespace pgcoro
{

PGCORO_DECL row_stream::~row_stream()
{
    if (e_)
    {
        e_->cancel_and_close("stream abandoned before its end");
        e_->release();
    }
}

PGCORO_DECL boost::asio::awaitable<expected<bool>> row_stream::next()
{
    batch_.clear();
    if (!e_)
        co_return false;
    detail::pq_engine& e = *e_;
    PGconn* c = e.session().native();
    for (;;)
    {
        // Every result libpq has parsed, without a wait (one coroutine step per batch).
        while (!PQisBusy(c))
        {
            detail::pgresult_ptr r(PQgetResult(c));
            const auto status = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
            if (status != PGRES_SINGLE_TUPLE)
                co_return co_await end(std::move(r), status);
            batch_.emplace_back(std::move(r));
            if (batch_.size() >= max_batch_)
                co_return true;
        }
        if (!batch_.empty())
            co_return true; // deliver what is here rather than wait for more
        if (auto w = co_await wait_more(); !w)
            co_return tl::unexpected(std::move(w.error()));
    }
}

PGCORO_DECL boost::asio::awaitable<expected<void>> row_stream::wait_more()
{
    detail::pq_engine& e = *e_;
    const auto w = co_await e.io().wait(detail::wait_for::read, detail::pq_io::no_deadline);
    if (auto bad = detail::wait_error(w, "reading a stream"))
        co_return fail_stream(std::move(*bad));
    if (!PQconsumeInput(e.session().native()))
        co_return fail_stream(
            error(errc::connection_lost, detail::conn_message(e.session().native())));
    co_return expected<void>{};
}

PGCORO_DECL tl::unexpected<error> row_stream::fail_stream(error why)
{
    e_->cancel_and_close(why.message);
    release();
    return tl::unexpected(std::move(why));
}

PGCORO_DECL boost::asio::awaitable<expected<bool>> row_stream::end(detail::pgresult_ptr r,
                                                                   ExecStatusType status)
{
    detail::pq_engine& e = *e_;
    std::optional<error> bad;
    if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK)
        bad = detail::result_error(r.get(), e.session().native());
    if (auto rest = co_await detail::finish_results(e, detail::pq_io::no_deadline); !rest)
        bad = std::move(rest.error());
    else if (auto reset = co_await detail::end_single_row_mode(e); !reset)
        bad = std::move(reset.error());
    release();
    if (bad)
        co_return tl::unexpected(std::move(*bad));
    co_return !batch_.empty();
}

PGCORO_DECL void row_stream::release() noexcept
{
    if (e_)
        e_->release();
    e_.reset();
}

} // namespace pgcoro

#endif // PGCORO_IMPL_STREAM_IPP
