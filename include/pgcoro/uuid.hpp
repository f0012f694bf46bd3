// SPDX-License-Identifier: BSL-1.0
// pgcoro/uuid.hpp - uuid <-> boost::uuids::uuid.
#ifndef PGCORO_UUID_HPP
#define PGCORO_UUID_HPP

#include <pgcoro/detail/hex.hpp>
#include <pgcoro/detail/type_oids.hpp>
#include <pgcoro/error.hpp>
#include <pgcoro/value_traits.hpp>

#include <boost/uuid/uuid.hpp>

#include <string>
#include <string_view>

namespace pgcoro
{

/// boost::uuids::uuid <-> uuid (the canonical 8-4-4-4-12 text; braces and no-hyphen forms are
/// read too, as PostgreSQL accepts them).
template <>
struct value_traits<boost::uuids::uuid>
{
    static constexpr std::string_view name = "boost::uuids::uuid";
    static constexpr Oid oid = detail::oid_uuid;
    static expected<void> encode(const boost::uuids::uuid& v, std::string& out)
    {
        for (std::size_t i = 0; i < 16; ++i)
        {
            if (i == 4 || i == 6 || i == 8 || i == 10)
                out.push_back('-');
            out.push_back(detail::hex_digits[v.data[i] >> 4]);
            out.push_back(detail::hex_digits[v.data[i] & 15]);
        }
        return {};
    }
    static bool accepts(Oid t) noexcept { return t == detail::oid_uuid || detail::is_user_oid(t); }
    static expected<boost::uuids::uuid> decode(std::string_view text, Oid)
    {
        if (text.size() >= 2 && text.front() == '{' && text.back() == '}')
            text = text.substr(1, text.size() - 2);
        boost::uuids::uuid u{};
        std::size_t n = 0;
        for (std::size_t i = 0; i < text.size(); ++i)
        {
            if (text[i] == '-' && i > 0 && n < 32 && n % 4 == 0)
                continue;
            const int d = detail::hex_digit(text[i]);
            if (d < 0 || n == 32)
                return fail(errc::type_mismatch, "invalid uuid text");
            u.data[n / 2] = static_cast<std::uint8_t>(n % 2 ? (u.data[n / 2] | d) : d << 4);
            ++n;
        }
        if (n != 32)
            return fail(errc::type_mismatch, "invalid uuid text");
        return u;
    }
};

} // namespace pgcoro

#endif // PGCORO_UUID_HPP
