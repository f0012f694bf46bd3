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
#include <optional>
#include <string>
#include <string_view>

namespace pgcoro::detail
{

// The arrays PQsendQueryParams takes for N parameters (one spare element so N = 0 still gives
// valid pointers). `values` point into the buffer encode_params() filled: valid until that
// buffer changes.
template <std::size_t N>
struct encoded_params
{
    std::array<Oid, N + 1> types{};
    std::array<const char*, N + 1> values{};
    static constexpr int count() noexcept { return static_cast<int>(N); }
};

// Encodes `params` as text into `buf` (cleared first; one reusable buffer, so no allocation
// once it has grown) and returns the type and value arrays for PQsendQueryParams.
// Errors: invalid_argument (embedded NUL, unsigned value past bigint).
template <class... Params>
expected<encoded_params<sizeof...(Params)>> encode_params(std::string& buf, const Params&... params)
{
    constexpr std::size_t n = sizeof...(Params);
    encoded_params<n> out;
    std::array<std::size_t, n + 1> offsets{};
    std::array<bool, n + 1> nulls{};
    buf.clear();
    std::optional<error> bad;
    [[maybe_unused]] std::size_t i = 0;
    (
        [&](const auto& p)
        {
            if (bad)
                return;
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
    // Pointers only now: `buf` may have moved while it grew.
    for (std::size_t k = 0; k < n; ++k)
        out.values[k] = nulls[k] ? nullptr : buf.data() + offsets[k];
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
