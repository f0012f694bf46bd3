// SPDX-License-Identifier: BSL-1.0
// pgcoro/config_error.hpp - every configuration problem found at start-up, printable, no secrets.
#ifndef PGCORO_CONFIG_ERROR_HPP
#define PGCORO_CONFIG_ERROR_HPP

#include <pgcoro/error.hpp>

#include <ostream>
#include <string>
#include <utility>
#include <vector>

namespace pgcoro
{

/// One configuration problem: where the value came from, the value itself (never a password
/// nor text that may hold part of one: producers write "****" or "(not shown)", or leave it
/// empty), what is wrong and what would be allowed.
struct config_error
{
    std::string source;  ///< "env DATABASE_CONNECTION_LIMIT", "DATABASE_URL parameter pool_timeout"
    std::string field;   ///< the setting ("pool.max_size"); empty when the value maps to none
    std::string value;   ///< the offending value as given, "(not shown)" when it may be secret
    std::string problem; ///< what is wrong ("not a number")
    std::string allowed; ///< what is accepted ("an integer in 1..10000")

    /// `env DATABASE_CONNECTION_LIMIT = "abc": not a number; allowed: an integer in 1..10000`
    std::string to_string() const
    {
        std::string out = source;
        if (!field.empty() && source.find(field) == std::string::npos)
            out += " (" + field + ")";
        out += " = \"" + value + "\": " + problem;
        if (!allowed.empty())
            out += "; allowed: " + allowed;
        return out;
    }
    friend std::ostream& operator<<(std::ostream& os, const config_error& e)
    {
        return os << e.to_string();
    }
};

/// All problems of one configuration attempt, in the order found. Printable, one per line.
struct config_errors
{
    std::vector<config_error> items; ///< never empty when returned as an error

    /// True when no problem was recorded.
    bool empty() const noexcept { return items.empty(); }
    /// How many problems were recorded.
    std::size_t size() const noexcept { return items.size(); }
    /// Records a problem.
    void add(config_error e) { items.push_back(std::move(e)); }
    /// Appends all of `other`.
    void append(const config_errors& other)
    {
        items.insert(items.end(), other.items.begin(), other.items.end());
    }
    /// "invalid configuration (2 problems):\n  - ...\n  - ...\n"
    std::string to_string() const
    {
        std::string out = "invalid configuration (" + std::to_string(items.size()) +
                          (items.size() == 1 ? " problem):\n" : " problems):\n");
        for (const auto& e : items)
            out += "  - " + e.to_string() + "\n";
        return out;
    }
    /// The same text as one pgcoro::error with code config_invalid.
    pgcoro::error to_error() const { return pgcoro::error(errc::config_invalid, to_string()); }
    friend std::ostream& operator<<(std::ostream& os, const config_errors& e)
    {
        return os << e.to_string();
    }
};

} // namespace pgcoro

#endif // PGCORO_CONFIG_ERROR_HPP
