// SPDX-License-Identifier: BSL-1.0
// pgcoro/detail/pq_handles.hpp - owning handles for libpq's C objects.
#ifndef PGCORO_DETAIL_PQ_HANDLES_HPP
#define PGCORO_DETAIL_PQ_HANDLES_HPP

#include <libpq-fe.h>

#include <memory>

namespace pgcoro::detail
{

// Each libpq object is owned by exactly one of these; a raw pointer never outlives the line
// that obtained it.
struct pgconn_deleter
{
    void operator()(PGconn* c) const noexcept { PQfinish(c); }
};
struct pgresult_deleter
{
    void operator()(PGresult* r) const noexcept { PQclear(r); }
};
struct pgcancel_deleter
{
    void operator()(PGcancel* c) const noexcept { PQfreeCancel(c); }
};
struct pqconninfo_deleter
{
    void operator()(PQconninfoOption* o) const noexcept { PQconninfoFree(o); }
};

using pgconn_ptr = std::unique_ptr<PGconn, pgconn_deleter>;
using pgresult_ptr = std::unique_ptr<PGresult, pgresult_deleter>;
using pgcancel_ptr = std::unique_ptr<PGcancel, pgcancel_deleter>;
using pqconninfo_ptr = std::unique_ptr<PQconninfoOption, pqconninfo_deleter>;

} // namespace pgcoro::detail

#endif // PGCORO_DETAIL_PQ_HANDLES_HPP
