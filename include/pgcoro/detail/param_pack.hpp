// SPDX-License-Identifier: BSL-1.0
// pgcoro/detail/param_pack.hpp - a parameter pack encoded for PQsendQueryParams.
#ifndef PGCORO_DETAIL_PARAM_PACK_HPP
#define PGCORO_DETAIL_PARAM_PACK_HPP

#include <pgcoro/detail/sql_scan.hpp>
#include <pgcoro/detail/text_codec.hpp>
#include <pgcoro/error.hpp>

#include <libpq-fe.h>

#include <array>
#include <cstddef>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

namespace pgcoro::detail
{

// The arrays PQsendQueryParams takes for N parameters (one spare element so N = 0 still gives
// valid pointers). `values` point into the buffer encode_params() filled or into the caller's
// own strings: valid until either changes. `bytes`: the parameters' total size.
template <std::size_t N>
struct encoded_params
{
    std::array<Oid, N + 1> types{};
    std::array<const char*, N + 1> values{};
    std::size_t bytes = 0;
    static constexpr int count() noexcept { return static_cast<int>(N); }
};

// A text parameter libpq can read where it is: a std::string (NUL-terminated by the standard)
// or a C string, so a large value is not copied before libpq copies it into its output buffer.
// nullptr for every other type (encoded into the buffer). A null `const char*` is SQL NULL.
template <class T>
const char* in_place_text(const T& v, std::size_t& size) noexcept
{
    if constexpr (std::same_as<T, std::string>)
    {
        size = v.size();
        return v.c_str();
    }
    else if constexpr (std::same_as<std::decay_t<T>, const char*> ||
                       std::same_as<std::decay_t<T>, char*>)
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

// Encodes `params` for PQsendQueryParams: std::string and C-string parameters are passed where
// they are (no copy); the others are encoded as text into `buf` (cleared first; one reusable
// buffer, so no allocation once it has grown). A null `const char*` is sent as NULL.
// Errors: invalid_argument (embedded NUL, unsigned value past bigint).
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
            if (const char* s = in_place_text(p, size))
            {
                if (std::memchr(s, '\0', size) != nullptr)
                    bad = error(errc::invalid_argument,
                                "text parameter contains an embedded NUL byte");
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
