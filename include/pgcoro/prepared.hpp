// SPDX-License-Identifier: BSL-1.0
// pgcoro/prepared.hpp - an explicitly prepared statement and its described types.
#ifndef PGCORO_PREPARED_HPP
#define PGCORO_PREPARED_HPP

#include <pgcoro/detail/config.hpp>
#ifndef PGCORO_SEPARATE_COMPILATION
#include <pgcoro/detail/pq_direct.hpp>
#endif
#include <pgcoro/detail/type_oids.hpp>
#include <pgcoro/error.hpp>
#include <pgcoro/result.hpp>

#include <boost/asio/awaitable.hpp>

#include <libpq-fe.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace pgcoro
{

namespace detail
{
class pq_engine;
} // namespace detail

/// A statement prepared on one connection (connection::prepare()), with the parameter and
/// result column types the server described. Valid on that connection until it closes or
/// reconnects; using it elsewhere or later is a clear invalid_argument, never a 26000 from the
/// server. Copyable (a handle; the statement lives on the server session).
class prepared_statement
{
public:
    /// The server-side name ("pgcoro_x<n>": never one of the statement cache's names).
    const std::string& name() const noexcept { return name_; }
    /// The SQL text.
    const std::string& sql() const noexcept { return sql_; }
    /// The type OID of each parameter ($1 first), as the server inferred them.
    const std::vector<Oid>& parameter_types() const noexcept { return params_; }
    /// Result columns: names and type OIDs (empty for statements without rows).
    const std::vector<std::string>& column_names() const noexcept { return column_names_; }
    /// The type OID of each result column.
    const std::vector<Oid>& column_types() const noexcept { return column_types_; }

private:
    friend class connection;
    std::weak_ptr<detail::pq_engine> owner_;
    std::uint64_t generation_ = 0;
    std::string name_, sql_;
    std::vector<Oid> params_;
    std::vector<std::string> column_names_;
    std::vector<Oid> column_types_;
};

namespace detail
{

// Whether a value encoded with type `sent` (0: untyped text) fits a parameter of type
// `wanted`: the same type, untyped text, a user-defined parameter type (the server checks), an
// integer for a wider integer, numeric or float column, a float for float or numeric.
constexpr bool parameter_fits(Oid sent, Oid wanted) noexcept
{
    if (sent == wanted || sent == oid_unknown || is_user_oid(wanted))
        return true;
    const bool num_target = wanted == oid_numeric || wanted == oid_float4 || wanted == oid_float8;
    if (is_integer_oid(sent))
        return num_target || (is_integer_oid(wanted) && wanted != oid_oid &&
                              (wanted == oid_int8 || sent != oid_int8) &&
                              !(wanted == oid_int2 && sent != oid_int2));
    if (sent == oid_float4 || sent == oid_float8)
        return num_target;
    if (sent == oid_numeric)
        return wanted == oid_float4 || wanted == oid_float8;
    return false;
}

// Checks `types[0..n)` against the statement. Errors: invalid_argument naming the parameter.
inline expected<void> check_prepared_params(const prepared_statement& st, const Oid* types, int n)
{
    const auto& want = st.parameter_types();
    if (static_cast<std::size_t>(n) != want.size())
        return fail(errc::invalid_argument, "the prepared statement takes " +
                                                std::to_string(want.size()) + " parameters, " +
                                                std::to_string(n) + " given");
    for (int i = 0; i < n; ++i)
        if (!parameter_fits(types[i], want[static_cast<std::size_t>(i)]))
            return fail(errc::invalid_argument, "parameter $" + std::to_string(i + 1) +
                                                    " of the prepared statement is " +
                                                    type_name(want[static_cast<std::size_t>(i)]) +
                                                    ", the value given is " + type_name(types[i]));
    return {};
}

} // namespace detail

} // namespace pgcoro

#endif // PGCORO_PREPARED_HPP
