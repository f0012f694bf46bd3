// SPDX-License-Identifier: BSL-1.0
// pgcoro/copy.hpp - COPY FROM STDIN (copy_writer) and COPY TO STDOUT (copy_reader).
#ifndef PGCORO_COPY_HPP
#define PGCORO_COPY_HPP

#include <pgcoro/detail/config.hpp>
#include <pgcoro/detail/hex.hpp>
#ifndef PGCORO_SEPARATE_COMPILATION
#include <pgcoro/detail/pq_direct.hpp>
#endif
#include <pgcoro/detail/text_codec.hpp>
#include <pgcoro/error.hpp>

#include <boost/asio/awaitable.hpp>

#include <libpq-fe.h>

#include <algorithm>
#include <charconv>
#include <climits>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace pgcoro
{

namespace detail
{

class pq_engine;

// Appends `v` as one field of COPY's text format: \N for NULL, backslash escapes otherwise.
template <class T>
expected<void> append_copy_field(const T& v, std::string& out, std::string& tmp)
{
    if constexpr (std::same_as<T, std::nullopt_t>)
    {
        out += "\\N";
        return {};
    }
    else if constexpr (is_optional<T>::value)
    {
        if (!v)
        {
            out += "\\N";
            return {};
        }
        return append_copy_field(*v, out, tmp);
    }
    else
    {
        tmp.clear();
        auto e = encode_param(v, tmp);
        if (!e)
            return tl::unexpected(std::move(e.error()));
        if (e->is_null)
        {
            out += "\\N";
            return {};
        }
        if (!e->binary)
            tmp.pop_back(); // the NUL encode_param() ends text with
        else
        { // bytea: its text form, \x and hex digits
            std::string hex = "\\x";
            append_hex(tmp, hex);
            tmp.swap(hex);
        }
        for (char c : tmp)
        {
            switch (c)
            {
            case '\\':
                out += "\\\\";
                break;
            case '\t':
                out += "\\t";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            default:
                out += c;
            }
        }
        return {};
    }
}

} // namespace detail

/// Writes the rows of a COPY ... FROM STDIN (from connection::copy_in()). Rows are buffered and
/// sent in 64 KiB chunks, each sent before the next is taken (back-pressure: a slow server
/// slows write_row() down). finish() ends the COPY and returns the server's row count. The
/// connection is busy until finish() or abort(); a writer destroyed before either closes the
/// connection (the server then rolls the COPY back), so a half-written COPY is never reused.
class copy_writer
{
public:
    copy_writer(copy_writer&& o) noexcept
        : e_(std::move(o.e_)), buf_(std::move(o.buf_)), tmp_(std::move(o.tmp_))
    {
    }
    copy_writer& operator=(copy_writer&&) = delete;
    ~copy_writer();

    /// Appends one row in COPY text format (values as for query(); NULL via std::optional or
    /// std::nullopt), sending when 64 KiB are buffered. Errors: invalid_argument (a value that
    /// cannot be encoded: nothing of the row is kept), query_failed (the server refused the
    /// data; the COPY is over and the connection usable), connection_lost, cancelled.
    template <class... Ts>
    boost::asio::awaitable<expected<void>> write_row(const Ts&... values)
    {
        if (!e_)
            co_return fail(errc::invalid_argument, "COPY already finished");
        const std::size_t start = buf_.size();
        expected<void> ok;
        std::size_t i = 0;
        auto field = [&](const auto& v)
        {
            if (!ok)
                return;
            if (i++)
                buf_ += '\t';
            if constexpr (std::is_array_v<std::remove_cvref_t<decltype(v)>>)
                ok = detail::append_copy_field(static_cast<const char*>(v), buf_, tmp_);
            else
                ok = detail::append_copy_field(v, buf_, tmp_);
        };
        (field(values), ...);
        if (!ok)
        {
            buf_.resize(start);
            co_return ok;
        }
        buf_ += '\n';
        if (buf_.size() >= chunk)
            co_return co_await send();
        co_return expected<void>{};
    }

    /// Appends raw COPY data (whole lines in the statement's format), sending as write_row().
    boost::asio::awaitable<expected<void>> write_raw(std::string_view data);

    /// Sends what is buffered and ends the COPY: the number of rows the server copied. Errors:
    /// query_failed with the server's SQLSTATE (a bad row: 22P02, a constraint: 23505, ...;
    /// nothing was copied and the connection is usable), connection_lost, cancelled.
    boost::asio::awaitable<expected<std::uint64_t>> finish();

    /// Ends the COPY with an error (the server copies nothing, 57014); the connection stays
    /// usable.
    boost::asio::awaitable<expected<void>> abort(std::string reason = "aborted by the client");

private:
    friend class connection;
    static constexpr std::size_t chunk = 64 * 1024;
    explicit copy_writer(std::shared_ptr<detail::pq_engine> e) : e_(std::move(e)) {}

    // Hands the buffer to libpq and sends it; on a server error ends the COPY.
    boost::asio::awaitable<expected<void>> send();
    // PQputCopyEnd(`reason`) after the buffer, then the server's verdict.
    boost::asio::awaitable<expected<std::uint64_t>> end(const char* reason);
    // The server ended the COPY with an error (PQputCopyData -1): its result.
    boost::asio::awaitable<expected<void>> server_error();
    // Ends the writer after a failure that closed the connection.
    tl::unexpected<error> fail_over(error why);
    void release() noexcept;

    std::shared_ptr<detail::pq_engine> e_; // null once finished
    std::string buf_;
    std::string tmp_;
};

/// Reads the rows of a COPY ... TO STDOUT (from connection::copy_out()), one CopyData message
/// (one row, with its newline, in text format) per next(), as the server sends them. The
/// connection is busy until next() returns the end; a reader destroyed before the end closes
/// the connection (the server then stops the COPY).
class copy_reader
{
public:
    copy_reader(copy_reader&& o) noexcept
        : e_(std::move(o.e_)), data_(std::move(o.data_)), rows_(o.rows_)
    {
    }
    copy_reader& operator=(copy_reader&&) = delete;
    ~copy_reader();

    /// The next row's data, valid until the next call; nullopt at the end (rows() then holds
    /// the server's count). Errors: query_failed (the statement failed mid-way; the
    /// connection is usable), connection_lost, cancelled (the connection is closed).
    boost::asio::awaitable<expected<std::optional<std::string_view>>> next();

    /// Rows the server copied (once next() returned the end).
    std::uint64_t rows() const noexcept { return rows_; }

private:
    friend class connection;
    explicit copy_reader(std::shared_ptr<detail::pq_engine> e) : e_(std::move(e)) {}
    tl::unexpected<error> fail_over(error why);

    struct pq_free
    {
        void operator()(char* p) const noexcept { PQfreemem(p); }
    };

    std::shared_ptr<detail::pq_engine> e_; // null at the end
    std::unique_ptr<char, pq_free> data_;
    std::uint64_t rows_ = 0;
};

} // namespace pgcoro

#ifndef PGCORO_SEPARATE_COMPILATION
#include <pgcoro/impl/copy.ipp>
#endif

#endif // PGCORO_COPY_HPP
