// SPDX-License-Identifier: BSL-1.0
// src/pgcoro_src.cpp - the static library of PGCORO_SEPARATE_COMPILATION=ON: pgcoro's
// implementation, compiled once.
#include <pgcoro/src.hpp>
