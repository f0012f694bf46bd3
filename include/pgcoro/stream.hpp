// SPDX-License-Identifier: BSL-1.0
// pgcoro/stream.hpp - a result read as it arrives (libpq single-row mode), in batches.
#ifndef PGCORO_STREAM_HPP
#define PGCORO_STREAM_HPP

#include <pgcoro/detail/config.hpp>
#ifndef PGCORO_SEPARATE_COMPILATION
#include <pgcoro/detail/pq_direct.hpp>
#endif
#include <pgcoro/error.hpp>
#include <pgcoro/result.hpp>

#include <boost/asio/awaitable.hpp>

#include <libpq-fe.h>

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace pgcoro
{

namespace detail
{
class pq_engine;
} // namespace detail

/// The rows of one statement as the server sends them (from connection::stream()): memory
/// holds one batch, whatever the result's size, and the server is read only as fast as
/// next() is called (back-pressure through the socket). Each batch holds the rows libpq has
/// already received, up to `max_batch`, so a fast consumer pays one wait per batch, not per row.
/// The connection is busy until the end; a stream destroyed (or cancelled) before its end closes
/// the connection, which ends the statement on the server: a half-read connection is never
/// reused.
class row_stream
{
public:
    row_stream(row_stream&& o) noexcept
        : e_(std::move(o.e_)), batch_(std::move(o.batch_)), max_batch_(o.max_batch_)
    {
    }
    row_stream& operator=(row_stream&&) = delete;
    ~row_stream();

    /// Reads the next batch into batch(); false at the end of the result. Errors: the
    /// statement's (query_failed with SQLSTATE: the rows before it were delivered; the
    /// connection is usable), connection_lost, cancelled (the connection is closed).
    boost::asio::awaitable<expected<bool>> next();

    /// The next rows mapped to T as they are read (see result::as; T owns its data: no
    /// string_view), each row's libpq result freed at once: the fastest way through a large
    /// result. `out` is cleared, then filled with up to the batch size; false at the end.
    /// Errors: as next(), and mapping errors (the stream then closes its connection).
    template <class T>
    boost::asio::awaitable<expected<bool>> next_as(std::vector<T>& out)
    {
        static_assert(!std::is_same_v<T, std::string_view>,
                      "next_as<T>: T must own its data; use next() and batch_as() for views");
#ifdef PGCORO_SEPARATE_COMPILATION
        // Separate compilation: next() (compiled once) reads a batch, mapped here.
        out.clear();
        auto more = co_await next();
        if (!more || !*more)
            co_return more;
        auto rows = batch_as<T>();
        batch_.clear();
        if (!rows && !e_) // the stream already ended with this batch
            co_return tl::unexpected(std::move(rows.error()));
        if (!rows)
            co_return fail_stream(std::move(rows.error()));
        out = std::move(*rows);
        co_return true;
#else
        out.clear();
        batch_.clear();
        if (!e_)
            co_return false;
        detail::pq_engine& e = *e_;
        PGconn* c = e.session().native();
        std::optional<detail::row_plan<T>> plan;
        for (;;)
        {
            while (!PQisBusy(c))
            {
                detail::pgresult_ptr r(PQgetResult(c));
                const auto status = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
                if (status != PGRES_SINGLE_TUPLE)
                {
                    auto end_ = co_await end(std::move(r), status);
                    if (!end_)
                        co_return end_;
                    co_return !out.empty();
                }
                if (!plan)
                {
                    auto p = detail::plan_rows<T>(r.get());
                    if (!p)
                        co_return fail_stream(std::move(p.error()));
                    plan.emplace(*p);
                }
                auto v = detail::read_row<T>(r.get(), 0, *plan);
                if (!v)
                    co_return fail_stream(std::move(v.error()));
                out.push_back(std::move(*v));
                if (out.size() >= max_batch_)
                    co_return true;
            }
            if (!out.empty())
                co_return true;
            if (auto w = co_await wait_more(); !w)
                co_return tl::unexpected(std::move(w.error()));
        }
#endif
    }

    /// The rows of the last batch, one single-row result each.
    const std::vector<result>& batch() const noexcept
    {
        return batch_;
    }

    /// The last batch's rows as T (see result::as), checked once per batch.
    template <class T>
    expected<std::vector<T>> batch_as() const
    {
        std::vector<T> out;
        if (batch_.empty())
            return out;
        auto plan = detail::plan_rows<T>(batch_.front().native_handle());
        if (!plan)
            return tl::unexpected(std::move(plan.error()));
        out.reserve(batch_.size());
        for (const auto& r : batch_)
        {
            auto v = detail::read_row<T>(r.native_handle(), 0, *plan);
            if (!v)
                return tl::unexpected(std::move(v.error()));
            out.push_back(std::move(*v));
        }
        return out;
    }

    /// True once the whole result was read (or the stream failed).
    bool done() const noexcept
    {
        return !e_;
    }

private:
    friend class connection;

    // Waits until more of the result arrived; a failure ends the stream (connection closed).
    boost::asio::awaitable<expected<void>> wait_more();
    // Ends the stream mid-result: cancel, close, release.
    tl::unexpected<error> fail_stream(error why);
    // The statement's last result (`status`, not a row): reads the rest, ends the stream.
    boost::asio::awaitable<expected<bool>> end(detail::pgresult_ptr r, ExecStatusType status);

    row_stream(std::shared_ptr<detail::pq_engine> e, std::size_t max_batch)
        : e_(std::move(e)), max_batch_(max_batch ? max_batch : 1)
    {
    }
    void release() noexcept;

    std::shared_ptr<detail::pq_engine> e_; // null at the end
    std::vector<result> batch_;
    std::size_t max_batch_;
};

} // namespace pgcoro

#ifndef PGCORO_SEPARATE_COMPILATION
#include <pgcoro/impl/stream.ipp>
#endif

#endif // PGCORO_STREAM_HPP
