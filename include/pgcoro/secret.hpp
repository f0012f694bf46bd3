// SPDX-License-Identifier: BSL-1.0
// pgcoro/secret.hpp - a string that never prints (passwords).
#ifndef PGCORO_SECRET_HPP
#define PGCORO_SECRET_HPP

#include <algorithm>
#include <ostream>
#include <string>
#include <string_view>

namespace pgcoro
{

/// Holds a password. Streams and to_string() print "****" (or "" when empty); only reveal()
/// gives the value, for the one place that hands it to libpq. The buffer is wiped on destruction.
class secret
{
public:
    secret() = default;
    /// Takes the value.
    explicit secret(std::string value) : value_(std::move(value)) {}
    secret(const secret&) = default;
    secret(secret&& other) noexcept : value_(std::move(other.value_)) { other.wipe(); }
    secret& operator=(const secret&) = default;
    secret& operator=(secret&& other) noexcept
    {
        wipe();
        value_ = std::move(other.value_);
        other.wipe();
        return *this;
    }
    ~secret() { wipe(); }

    /// The password itself. Never log what this returns.
    const std::string& reveal() const noexcept { return value_; }
    /// True when no password is set.
    bool empty() const noexcept { return value_.empty(); }
    /// "****" when set, "" when empty.
    std::string_view redacted() const noexcept { return value_.empty() ? "" : "****"; }

    friend bool operator==(const secret& a, const secret& b) noexcept
    {
        return a.value_ == b.value_;
    }
    friend std::ostream& operator<<(std::ostream& os, const secret& s)
    {
        return os << s.redacted();
    }

private:
    void wipe() noexcept
    {
        std::fill(value_.begin(), value_.end(), '\0');
        value_.clear();
    }
    std::string value_;
};

/// "****" when set, "" when empty.
inline std::string to_string(const secret& s)
{
    return std::string(s.redacted());
}

} // namespace pgcoro

#endif // PGCORO_SECRET_HPP
