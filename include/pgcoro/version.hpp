// SPDX-License-Identifier: BSL-1.0
// pgcoro/version.hpp - the library version as macros, for #if checks and log lines.
//
// Kept by hand, equal to `project(pgcoro VERSION ...)` in CMakeLists.txt; the tests
// unit.Version_* and packaging.agreement fail when they drift apart.
#ifndef PGCORO_VERSION_HPP
#define PGCORO_VERSION_HPP

/// Major version: incremented on incompatible API changes (from 1.0 on).
#define PGCORO_VERSION_MAJOR 0
/// Minor version: new features; while the major version is 0 it may also break the API.
#define PGCORO_VERSION_MINOR 1
/// Patch version: fixes only.
#define PGCORO_VERSION_PATCH 0

/// The version as one number, major * 10000 + minor * 100 + patch (0.1.0 is 100), so that
/// `#if PGCORO_VERSION >= 200` reads "0.2.0 or newer".
#define PGCORO_VERSION                                                                             \
    (PGCORO_VERSION_MAJOR * 100 * 100 + PGCORO_VERSION_MINOR * 100 + PGCORO_VERSION_PATCH)

/// The version as text, "major.minor.patch".
#define PGCORO_VERSION_STRING "0.1.0"

#endif // PGCORO_VERSION_HPP
