// SPDX-License-Identifier: BSL-1.0
// pgcoro/impl/connection.ipp - connection: inline from <pgcoro/connection.hpp> (header-only) or
// compiled once from <pgcoro/src.hpp> (PGCORO_SEPARATE_COMPILATION).
#ifndef PGCORO_IMPL_CONNECTION_IPP
#define PGCORO_IMPL_CONNECTION_IPP

#include <pgcoro/connection.hpp>
#include <pgcoro/detail/pq_direct.hpp>
#include <pgcoro/detail/pq_engine.hpp>

namespace pgcoro
{

namespace detail
{

// Runs the statement already sent (a PQsendQueryPrepared or PQsendPrepare/Describe): its one
// result, then the end of its results.
inline asio::awaitable<expected<result>> finish_direct(pq_engine& e,
                                                       direct_clock::time_point deadline)
{
    auto r = co_await next_result(e, deadline);
    if (!r)
        co_return tl::unexpected(std::move(r.error()));
    PGconn* c = e.session().native();
    const auto status = *r ? PQresultStatus(r->get()) : PGRES_FATAL_ERROR;
    std::optional<error> bad;
    if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK && status != PGRES_EMPTY_QUERY)
        bad = result_error(r->get(), c);
    if (auto rest = co_await finish_results(e, deadline); !rest)
        co_return tl::unexpected(std::move(rest.error()));
    if (bad)
        co_return tl::unexpected(std::move(*bad));
    co_return result(std::move(*r));
}

} // namespace detail

PGCORO_DECL connection::connection(executor_type ex)
    : e_(std::make_shared<detail::pq_engine>(std::move(ex)))
{
}

PGCORO_DECL connection& connection::operator=(connection&& other) noexcept
{
    if (this != &other)
    {
        if (e_)
            e_->close_by_owner();
        e_ = std::move(other.e_);
    }
    return *this;
}

PGCORO_DECL connection::~connection()
{
    if (e_)
        e_->close_by_owner();
}

PGCORO_DECL boost::asio::awaitable<expected<void>> connection::connect(const connect_config& cfg)
{
    return detail::pq_engine::connect(e_, cfg);
}

PGCORO_DECL boost::asio::awaitable<expected<notification>>
connection::next_notification(std::chrono::milliseconds timeout)
{
    return detail::next_notification(e_, timeout);
}

PGCORO_DECL boost::asio::awaitable<expected<prepared_statement>>
connection::prepare(std::string_view sql)
{
    if (!e_)
        co_return fail(errc::connection_lost, "connection was moved from");
    detail::pq_engine& e = *e_;
    if (e.pgbouncer())
        co_return fail(errc::invalid_argument,
                       "prepare() is refused in pgbouncer mode: transaction pooling does not "
                       "keep a session's prepared statements");
    if (sql.find('\0') != sql.npos)
        co_return fail(errc::invalid_argument, "SQL text contains an embedded NUL byte");
    const auto deadline = direct_deadline();
    if (auto ok = co_await detail::begin_direct(e, deadline); !ok)
        co_return tl::unexpected(std::move(ok.error()));
    prepared_statement st;
    st.owner_ = e_;
    st.generation_ = e.generation();
    st.name_ = e.take_prepared_name();
    st.sql_.assign(sql);
    PGconn* c = e.session().native();
    expected<result> r = co_await send_direct(
        PQsendPrepare(c, st.name_.c_str(), st.sql_.c_str(), 0, nullptr), deadline);
    if (r)
        r = co_await send_direct(PQsendDescribePrepared(c, st.name_.c_str()), deadline);
    e.release();
    if (!r)
        co_return tl::unexpected(std::move(r.error()));
    const PGresult* d = r->native_handle();
    for (int i = 0; i < PQnparams(d); ++i)
        st.params_.push_back(PQparamtype(d, i));
    for (int i = 0; i < PQnfields(d); ++i)
    {
        st.column_names_.emplace_back(PQfname(d, i));
        st.column_types_.push_back(PQftype(d, i));
    }
    co_return st;
}

PGCORO_DECL boost::asio::awaitable<expected<copy_writer>> connection::copy_in(std::string_view sql)
{
    auto e = co_await detail::start_copy(e_, sql, PGRES_COPY_IN);
    if (!e)
        co_return tl::unexpected(std::move(e.error()));
    co_return copy_writer(std::move(*e));
}

PGCORO_DECL boost::asio::awaitable<expected<copy_reader>> connection::copy_out(std::string_view sql)
{
    auto e = co_await detail::start_copy(e_, sql, PGRES_COPY_OUT);
    if (!e)
        co_return tl::unexpected(std::move(e.error()));
    co_return copy_reader(std::move(*e));
}

PGCORO_DECL void connection::close() noexcept
{
    if (e_)
        e_->close_by_owner();
}

PGCORO_DECL bool connection::settled() const noexcept
{
    return !e_ || e_->settled();
}

PGCORO_DECL std::size_t connection::largest_statement_bytes() const noexcept
{
    return e_ ? e_->largest_statement_bytes() : 0;
}

PGCORO_DECL bool connection::saw_read_only_error() const noexcept
{
    return e_ && e_->session().saw_read_only();
}

PGCORO_DECL boost::asio::awaitable<expected<void>>
connection::settle(std::chrono::milliseconds budget)
{
    return detail::pq_engine::settle_within(e_, budget);
}

PGCORO_DECL bool connection::is_open() const noexcept
{
    return e_ && e_->is_open();
}

PGCORO_DECL PGTransactionStatusType connection::transaction_status() const noexcept
{
    return e_ ? e_->transaction_status() : PQTRANS_UNKNOWN;
}

PGCORO_DECL std::size_t connection::prepared_statements() const noexcept
{
    return e_ ? e_->prepared_statements() : 0;
}

PGCORO_DECL int connection::backend_pid() const noexcept
{
    return e_ ? e_->backend_pid() : 0;
}

PGCORO_DECL void connection::set_notice_handler(std::function<void(const notice&)> h)
{
    if (e_)
        e_->set_notice_handler(std::move(h));
}

PGCORO_DECL void connection::set_observer(observer* o,
                                          std::chrono::milliseconds slow_threshold) noexcept
{
    if (e_)
        e_->set_observer(o, slow_threshold);
}

PGCORO_DECL connection::executor_type connection::get_executor() const noexcept
{
    return e_ ? e_->get_executor() : executor_type();
}

PGCORO_DECL PGconn* connection::native_handle() const noexcept
{
    return e_ ? e_->native_handle() : nullptr;
}

PGCORO_DECL boost::asio::awaitable<expected<result>>
connection::send_direct(int sent, std::chrono::steady_clock::time_point deadline)
{
    detail::pq_engine& e = *e_;
    if (!sent)
        co_return e.close_lost(detail::conn_message(e.session().native()));
    if (auto f = co_await detail::flush_direct(e, deadline); !f)
        co_return tl::unexpected(std::move(f.error()));
    co_return co_await detail::finish_direct(e, deadline);
}

PGCORO_DECL std::chrono::steady_clock::time_point connection::direct_deadline() const noexcept
{
    const auto t = e_->query_timeout();
    return t.count() > 0 ? detail::direct_clock::now() + t : detail::pq_io::no_deadline;
}

#ifdef PGCORO_SEPARATE_COMPILATION
PGCORO_DECL boost::asio::awaitable<expected<result>>
connection::query_list(std::chrono::milliseconds timeout, std::string_view sql, pgcoro::params list)
{
    return detail::pq_engine::query(e_, timeout, sql, std::move(list));
}

PGCORO_DECL boost::asio::awaitable<expected<row_stream>>
connection::stream_list(std::size_t max_batch, std::string_view sql, pgcoro::params list)
{
    auto e = co_await detail::start_stream(e_, sql, list);
    if (!e)
        co_return tl::unexpected(std::move(e.error()));
    co_return row_stream(std::move(*e), max_batch);
}

PGCORO_DECL boost::asio::awaitable<expected<result>>
connection::execute_list(const prepared_statement& st, pgcoro::params list)
{
    if (!e_)
        co_return fail(errc::connection_lost, "connection was moved from");
    detail::pq_engine& e = *e_;
    if (st.owner_.lock() != e_ || st.generation_ != e.generation())
        co_return fail(errc::invalid_argument,
                       "the statement was prepared on another connection, or before this "
                       "one reconnected: prepare it again");
    if (list.encoding_error())
        co_return tl::unexpected(*list.encoding_error());
    const int n = static_cast<int>(list.size());
    if (auto ok = detail::check_prepared_params(st, list.types(), n); !ok)
        co_return tl::unexpected(std::move(ok.error()));
    const auto deadline = direct_deadline();
    if (auto ok = co_await detail::begin_direct(e, deadline); !ok)
        co_return tl::unexpected(std::move(ok.error()));
    PGconn* c = e.session().native();
    const int sent = PQsendQueryPrepared(c, st.name().c_str(), n, list.values(), list.lengths(),
                                         list.formats(), 0);
    auto r = co_await send_direct(sent, deadline);
    e.release();
    co_return r;
}
#endif

PGCORO_DECL boost::asio::awaitable<expected<connection>>
open_connection(boost::asio::any_io_executor ex, const connect_config& cfg)
{
    connection c(std::move(ex));
    auto r = co_await c.connect(cfg);
    if (!r)
        co_return tl::unexpected(std::move(r.error()));
    co_return std::move(c);
}

} // namespace pgcoro

#endif // PGCORO_IMPL_CONNECTION_IPP
