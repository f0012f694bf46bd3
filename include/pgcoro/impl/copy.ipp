// SPDX-License-Identifier: BSL-1.0
// pgcoro/impl/copy.ipp - copy_writer and copy_reader: inline from <pgcoro/copy.hpp> (header-only)
// or compiled once from <pgcoro/src.hpp> (PGCORO_SEPARATE_COMPILATION).
#ifndef PGCORO_IMPL_COPY_IPP
#define PGCORO_IMPL_COPY_IPP

#include <pgcoro/copy.hpp>
#include <pgcoro/detail/pq_direct.hpp>

namespace pgcoro
{

PGCORO_DECL copy_writer::~copy_writer()
{
    if (e_)
    {
        e_->cancel_and_close("COPY abandoned before finish()");
        e_->release();
    }
}

PGCORO_DECL boost::asio::awaitable<expected<void>> copy_writer::write_raw(std::string_view data)
{
    if (!e_)
        co_return fail(errc::invalid_argument, "COPY already finished");
    buf_.append(data);
    if (buf_.size() >= chunk)
        co_return co_await send();
    co_return expected<void>{};
}

PGCORO_DECL boost::asio::awaitable<expected<std::uint64_t>> copy_writer::finish()
{
    return end(nullptr);
}

PGCORO_DECL boost::asio::awaitable<expected<void>> copy_writer::abort(std::string reason)
{
    auto r = co_await end(reason.c_str());
    if (!r && r.error().state == sqlstate("57014"))
        co_return expected<void>{};
    if (!r)
        co_return tl::unexpected(std::move(r.error()));
    co_return expected<void>{};
}

PGCORO_DECL boost::asio::awaitable<expected<void>> copy_writer::send()
{
    detail::pq_engine& e = *e_;
    PGconn* c = e.session().native();
    const auto no_deadline = detail::pq_io::no_deadline;
    std::string_view rest = buf_;
    while (!rest.empty())
    {
        const int n = static_cast<int>(std::min<std::size_t>(rest.size(), INT_MAX));
        const int r = PQputCopyData(c, rest.data(), n);
        if (r == 1)
            rest.remove_prefix(static_cast<std::size_t>(n));
        else if (r == 0) // libpq's buffer is full: let the socket drain
        {
            if (auto f = co_await detail::flush_direct(e, no_deadline); !f)
                co_return fail_over(std::move(f.error()));
        }
        else
            co_return co_await server_error();
    }
    buf_.clear();
    if (auto f = co_await detail::flush_direct(e, no_deadline); !f)
        co_return fail_over(std::move(f.error()));
    co_return expected<void>{};
}

PGCORO_DECL boost::asio::awaitable<expected<std::uint64_t>> copy_writer::end(const char* reason)
{
    if (!e_)
        co_return fail(errc::invalid_argument, "COPY already finished");
    if (!reason && !buf_.empty())
        if (auto s = co_await send(); !s)
            co_return tl::unexpected(std::move(s.error()));
    detail::pq_engine& e = *e_;
    PGconn* c = e.session().native();
    for (;;)
    {
        const int r = PQputCopyEnd(c, reason);
        if (r == 1)
            break;
        if (r < 0)
            co_return fail_over(error(errc::connection_lost, detail::conn_message(c)));
        if (auto f = co_await detail::flush_direct(e, detail::pq_io::no_deadline); !f)
            co_return fail_over(std::move(f.error()));
    }
    if (auto f = co_await detail::flush_direct(e, detail::pq_io::no_deadline); !f)
        co_return fail_over(std::move(f.error()));
    auto res = co_await detail::next_result(e, detail::pq_io::no_deadline);
    if (!res)
        co_return fail_over(std::move(res.error()));
    std::optional<error> bad;
    std::uint64_t rows = 0;
    if (!*res || PQresultStatus(res->get()) != PGRES_COMMAND_OK)
        bad = detail::result_error(res->get(), c);
    else
        std::from_chars(PQcmdTuples(res->get()),
                        PQcmdTuples(res->get()) + std::strlen(PQcmdTuples(res->get())), rows);
    if (auto rest = co_await detail::finish_results(e, detail::pq_io::no_deadline); !rest)
        co_return fail_over(std::move(rest.error()));
    release();
    if (bad)
        co_return tl::unexpected(std::move(*bad));
    co_return rows;
}

PGCORO_DECL boost::asio::awaitable<expected<void>> copy_writer::server_error()
{
    detail::pq_engine& e = *e_;
    PGconn* c = e.session().native();
    auto res = co_await detail::next_result(e, detail::pq_io::no_deadline);
    if (!res)
        co_return fail_over(std::move(res.error()));
    error why = detail::result_error(res->get(), c);
    if (auto rest = co_await detail::finish_results(e, detail::pq_io::no_deadline); !rest)
        co_return fail_over(std::move(rest.error()));
    release();
    co_return tl::unexpected(std::move(why));
}

PGCORO_DECL tl::unexpected<error> copy_writer::fail_over(error why)
{
    e_->close_lost(why.message);
    release();
    return tl::unexpected(std::move(why));
}

PGCORO_DECL void copy_writer::release() noexcept
{
    if (e_)
        e_->release();
    e_.reset();
    buf_.clear();
}

PGCORO_DECL copy_reader::~copy_reader()
{
    if (e_)
    {
        e_->cancel_and_close("COPY TO STDOUT abandoned before its end");
        e_->release();
    }
}

PGCORO_DECL boost::asio::awaitable<expected<std::optional<std::string_view>>> copy_reader::next()
{
    data_.reset();
    if (!e_)
        co_return std::optional<std::string_view>{};
    detail::pq_engine& e = *e_;
    PGconn* c = e.session().native();
    for (;;)
    {
        char* buf = nullptr;
        const int n = PQgetCopyData(c, &buf, 1);
        if (n > 0)
        {
            data_.reset(buf);
            co_return std::optional<std::string_view>(
                std::string_view(buf, static_cast<std::size_t>(n)));
        }
        if (n == 0)
        {
            const auto w = co_await e.io().wait(detail::wait_for::read, detail::pq_io::no_deadline);
            if (auto bad = detail::wait_error(w, "COPY TO STDOUT"))
                co_return fail_over(std::move(*bad));
            if (!PQconsumeInput(c))
                co_return fail_over(error(errc::connection_lost, detail::conn_message(c)));
            continue;
        }
        if (n < -1)
            co_return fail_over(error(errc::connection_lost, detail::conn_message(c)));
        auto res = co_await detail::next_result(e, detail::pq_io::no_deadline);
        if (!res)
            co_return fail_over(std::move(res.error()));
        std::optional<error> bad;
        if (!*res || PQresultStatus(res->get()) != PGRES_COMMAND_OK)
            bad = detail::result_error(res->get(), c);
        else
            std::from_chars(PQcmdTuples(res->get()),
                            PQcmdTuples(res->get()) + std::strlen(PQcmdTuples(res->get())), rows_);
        if (auto rest = co_await detail::finish_results(e, detail::pq_io::no_deadline); !rest)
            co_return fail_over(std::move(rest.error()));
        e_->release();
        e_.reset();
        if (bad)
            co_return tl::unexpected(std::move(*bad));
        co_return std::optional<std::string_view>{};
    }
}

PGCORO_DECL tl::unexpected<error> copy_reader::fail_over(error why)
{
    e_->cancel_and_close(why.message);
    e_->release();
    e_.reset();
    return tl::unexpected(std::move(why));
}

} // namespace pgcoro

#endif // PGCORO_IMPL_COPY_IPP
