// SPDX-License-Identifier: BSL-1.0
// pgcoro/src.hpp - separate compilation: include this in exactly one .cpp of a program built with
// PGCORO_SEPARATE_COMPILATION defined in every TU (CMake: -DPGCORO_SEPARATE_COMPILATION=ON does
// both).
#ifndef PGCORO_SRC_HPP
#define PGCORO_SRC_HPP

#ifdef PGCORO_SEPARATE_COMPILATION
#include <pgcoro/impl/connection.ipp>
#include <pgcoro/impl/copy.ipp>
#include <pgcoro/impl/lease.ipp>
#include <pgcoro/impl/pool.ipp>
#include <pgcoro/impl/stream.ipp>
#else
// Header-only (the default): the headers define everything; there is nothing to compile here.
#include <pgcoro/pool.hpp>
#endif

#endif // PGCORO_SRC_HPP
