// SPDX-License-Identifier: BSL-1.0
// pgcoro/detail/param_pack.hpp - a parameter pack encoded for PQsendQueryParams.
#ifndef PGCORO_DETAIL_PARAM_PACK_HPP
#define PGCORO_DETAIL_PARAM_PACK_HPP

#include <pgcoro/bytea.hpp>
#include <pgcoro/detail/sql_scan.hpp>
#include <pgcoro/detail/text_codec.hpp>
#include <pgcoro/error.hpp>
#include <pgcoro/params.hpp>

#include <libpq-fe.h>

#include <array>
#include <cstddef>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace pgcoro::detail
{

// The arrays PQsendQueryParams takes for N parameters (one spare element so N = 0 still gives
// valid pointers). `values` point into the buffer encode_params() filled or into the caller's
// own strings: valid until either changes. `bytes`: the parameters' total size. `lengths` and
// `formats` matter only when `binary` (some value is in binary format).
template <std::size_t N>
struct encoded_params
{
    std::array<Oid, N + 1> types{};
    std::array<const char*, N + 1> values{};
    std::array<int, N + 1> lengths{};
    std::array<int, N + 1> formats{};
    std::size_t bytes = 0;
    bool binary = false;
    static constexpr int count() noexcept { return static_cast<int>(N); }
};

// True when a statement's parameters are one run-time list (pgcoro::params).
template <class... Params>
inline constexpr bool is_runtime_list = sizeof...(Params) == 1 &&
                                        (std::same_as<std::remove_cvref_t<Params>, params> && ...);

// The number of parameters a statement is sent with.
template <class... Params>
std::size_t param_count(const Params&... p) noexcept
{
    if constexpr (is_runtime_list<Params...>)
        return (p.size(), ...);
    else
        return sizeof...(Params);
}

// A text parameter libpq can read where it is: a std::string (NUL-terminated by the standard)
// or a C string, so a large value is not copied before libpq copies it into its output buffer.
// nullptr for every other type (encoded into the buffer).
template <class T>
const char* in_place_text(const T& v, std::size_t& size) noexcept
{
    if constexpr (std::same_as<T, std::string>)
    {
        size = v.size();
        return v.c_str();
    }
    else if constexpr (c_string<T>)
    {
        size = v ? std::char_traits<char>::length(v) : 0;
        return v;
    }
    else
    {
        (void)v;
        (void)size;
        return nullptr;
    }
}

// Bytes libpq can read where they are (bytea in binary format).
template <class T>
concept byte_range = std::same_as<T, std::vector<std::byte>> ||
    std::same_as<T, std::span<const std::byte>> || std::same_as<T, std::span<std::byte>>;

// Encodes `params` for PQsendQueryParams: std::string and C-string parameters are passed where
// they are (no copy), as are bytes (bytea, binary format); the others are encoded into `buf`
// (cleared first; one reusable buffer, so no allocation once it has grown). A null `const char*` is
// sent as NULL. Errors: invalid_argument (embedded NUL in text, unsigned value past bigint, ...).
template <class... Params>
expected<encoded_params<sizeof...(Params)>> encode_params(std::string& buf, const Params&... params)
{
    constexpr std::size_t n = sizeof...(Params);
    encoded_params<n> out;
    std::array<std::size_t, n + 1> offsets{};
    std::array<bool, n + 1> nulls{};
    std::array<const char*, n + 1> in_place{};
    buf.clear();
    std::optional<error> bad;
    [[maybe_unused]] std::size_t i = 0;
    (
        [&](const auto& p)
        {
            if (bad)
                return;
            std::size_t size = 0;
            if constexpr (std::is_pointer_v<std::decay_t<decltype(p)>>)
                if (!p) // a null C string: SQL NULL, never dereferenced
                {
                    nulls[i++] = true;
                    return;
                }
            if constexpr (byte_range<std::decay_t<decltype(p)>>)
            {
                // A non-null pointer even for no bytes: null would mean SQL NULL.
                in_place[i] = p.empty() ? "" : reinterpret_cast<const char*>(p.data());
                out.types[i] = oid_bytea;
                out.lengths[i] = static_cast<int>(p.size());
                out.formats[i] = 1;
                out.binary = true;
                out.bytes += p.size();
                ++i;
                return;
            }
            if (const char* s = in_place_text(p, size))
            {
                if (std::memchr(s, '\0', size) != nullptr)
                    bad = error(errc::invalid_argument,
                                "text parameter contains an embedded NUL byte (send bytes as "
                                "std::vector<std::byte> or std::span<const std::byte>: bytea)");
                in_place[i] = s;
                out.bytes += size;
                ++i;
                return;
            }
            offsets[i] = buf.size();
            auto e = encode_param(p, buf);
            if (!e)
                bad = std::move(e.error());
            else
            {
                out.types[i] = e->type;
                nulls[i] = e->is_null;
                if (e->binary)
                {
                    out.binary = true;
                    out.formats[i] = 1;
                    out.lengths[i] = static_cast<int>(buf.size() - offsets[i]);
                }
            }
            ++i;
        }(params),
        ...);
    if (bad)
        return tl::unexpected(std::move(*bad));
    out.bytes += buf.size();
    // Pointers only now: `buf` may have moved while it grew.
    for (std::size_t k = 0; k < n; ++k)
        out.values[k] = nulls[k] ? nullptr : in_place[k] ? in_place[k] : buf.data() + offsets[k];
    return out;
}

// Checks a statement before it is sent with `nparams` parameters. SQL text goes to libpq as a
// C string, so an embedded NUL would silently cut it. More parameters than the highest $n are
// refused: they are sent with their types, so the server would accept an unused extra one
// without a word (a "$1, $1" typo). Too few the server refuses itself (08P01, "bind message
// supplies 1 parameters"). Errors: invalid_argument.
inline expected<void> check_statement(std::string_view sql, std::size_t nparams)
{
    if (sql.find('\0') != std::string_view::npos)
        return fail(errc::invalid_argument, "SQL text contains an embedded NUL byte");
    if (is_client_copy(sql))
        return fail(errc::invalid_argument,
                    "COPY ... FROM STDIN / TO STDOUT is not a query: use connection::copy_in() "
                    "or copy_out()");
    if (nparams == 0)
        return {};
    const auto highest = highest_placeholder(sql);
    if (highest && nparams > *highest)
        return fail(errc::invalid_argument,
                    std::to_string(nparams) + (nparams == 1 ? " parameter" : " parameters") +
                        " given, but the statement's highest placeholder is $" +
                        std::to_string(*highest));
    return {};
}

} // namespace pgcoro::detail

#endif // PGCORO_DETAIL_PARAM_PACK_HPP
