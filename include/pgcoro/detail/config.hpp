// SPDX-License-Identifier: BSL-1.0
// pgcoro/detail/config.hpp - header-only (default) or separate compilation
// (PGCORO_SEPARATE_COMPILATION: the implementation is compiled once, from <pgcoro/src.hpp>).
#ifndef PGCORO_DETAIL_CONFIG_HPP
#define PGCORO_DETAIL_CONFIG_HPP

// PGCORO_DECL marks a function defined in an implementation file (include/pgcoro/impl/*.ipp):
// `inline` when those files are included by the headers (header-only), nothing when they are
// compiled once in the TU that includes <pgcoro/src.hpp>.
#ifdef PGCORO_SEPARATE_COMPILATION
#define PGCORO_DECL
#else
#define PGCORO_DECL inline
#endif

#endif // PGCORO_DETAIL_CONFIG_HPP
