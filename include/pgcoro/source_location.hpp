// SPDX-License-Identifier: BSL-1.0
// pgcoro/source_location.hpp - where a call was made (for leak reports and pool timeouts).
#ifndef PGCORO_SOURCE_LOCATION_HPP
#define PGCORO_SOURCE_LOCATION_HPP

#include <cstdint>
#include <version>
#if defined(__cpp_lib_source_location)
#include <source_location>
#endif

namespace pgcoro
{

#if defined(__cpp_lib_source_location)
/// std::source_location where the standard library provides it.
using source_location = std::source_location;
#else
/// The same interface for compilers whose library lacks std::source_location (clang++ 14
/// with libstdc++ 12 has no __builtin_source_location); built from __builtin_FILE/LINE.
class source_location
{
public:
    /// The location of the call site (as a default argument: the caller's).
    static constexpr source_location current(const char* file = __builtin_FILE(),
                                             std::uint_least32_t line = __builtin_LINE(),
                                             const char* function = __builtin_FUNCTION()) noexcept
    {
        source_location s;
        s.file_ = file;
        s.line_ = line;
        s.function_ = function;
        return s;
    }
    constexpr source_location() noexcept = default;
    /// The source file's name.
    constexpr const char* file_name() const noexcept { return file_; }
    /// The line number.
    constexpr std::uint_least32_t line() const noexcept { return line_; }
    /// Always 0 (not available from the builtins clang 14 has).
    constexpr std::uint_least32_t column() const noexcept { return 0; }
    /// The enclosing function's name.
    constexpr const char* function_name() const noexcept { return function_; }

private:
    const char* file_ = "";
    std::uint_least32_t line_ = 0;
    const char* function_ = "";
};
#endif

} // namespace pgcoro

#endif // PGCORO_SOURCE_LOCATION_HPP
