// SPDX-License-Identifier: BSL-1.0
// pgcoro/value_traits.hpp - the extension point that lets a C++ type be sent and read.
#ifndef PGCORO_VALUE_TRAITS_HPP
#define PGCORO_VALUE_TRAITS_HPP

#include <pgcoro/error.hpp>

#include <libpq-fe.h>

#include <concepts>
#include <string>
#include <string_view>

namespace pgcoro
{

/// Specialise `value_traits<T>` to send T as a parameter and read it from a field. Members:
///   static constexpr std::string_view name;           // T's name in error messages
///   static constexpr Oid oid;                          // parameter type; 0: the server infers
///   static expected<void> encode(const T&, std::string& out);  // appends T's text form
///   static bool accepts(Oid column_type);              // which column types decode() reads
///   static expected<T> decode(std::string_view text, Oid column_type);  // a non-NULL field
/// Only encode/oid are needed to send, only accepts/decode to read. Text is PostgreSQL's text
/// format; a type with `static constexpr bool binary = true` sends the bytes encode() appends
/// in binary format instead. NULL is std::optional<T> (or std::nullopt), handled by pgcoro.
/// See docs/api.md "Adding a type" for a complete example.
template <class T>
struct value_traits;

/// T can be sent as a parameter (value_traits<T> has oid and encode()).
template <class T>
concept sendable = requires(const T& v, std::string& out)
{
    {
        value_traits<T>::encode(v, out)
        } -> std::same_as<expected<void>>;
    {
        value_traits<T>::oid
        } -> std::convertible_to<Oid>;
};

/// T can be read from a field (value_traits<T> has accepts() and decode()).
template <class T>
concept readable = requires(std::string_view text, Oid type)
{
    {
        value_traits<T>::decode(text, type)
        } -> std::same_as<expected<T>>;
    {
        value_traits<T>::accepts(type)
        } -> std::convertible_to<bool>;
};

} // namespace pgcoro

#endif // PGCORO_VALUE_TRAITS_HPP
