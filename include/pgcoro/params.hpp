// SPDX-License-Identifier: BSL-1.0
// pgcoro/params.hpp - a parameter list built at run time, for dynamic filters and ANY($1).
#ifndef PGCORO_PARAMS_HPP
#define PGCORO_PARAMS_HPP

#include <pgcoro/detail/text_codec.hpp>
#include <pgcoro/error.hpp>

#include <libpq-fe.h>

#include <cstddef>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace pgcoro
{

/// Parameters whose number is known only at run time: `params p; p.add(42).add("x");` then
/// `conn.query(sql, p)` (passed alone: it stands for $1..$n). Values are encoded as they are
/// added; the first that cannot be (an embedded NUL in text, an unsigned past bigint) is kept
/// and reported by the query as invalid_argument naming its position.
class params
{
public:
    params() = default;

    /// Appends one value (any sendable type, std::optional, std::nullopt, const char*).
    template <class T>
    params& add(const T& value)
    {
        using V = std::decay_t<const T&>;
        const std::size_t start = buf_.size();
        auto e = detail::encode_param<V>(value, buf_);
        if (!e)
        {
            if (!error_)
            {
                error_ = std::move(e.error());
                error_->message =
                    "parameter $" + std::to_string(types_.size() + 1) + ": " + error_->message;
            }
            types_.push_back(detail::oid_unknown);
            offsets_.push_back(start);
            lengths_.push_back(0);
            formats_.push_back(0);
            nulls_.push_back(1);
            return *this;
        }
        types_.push_back(e->type);
        offsets_.push_back(start);
        lengths_.push_back(static_cast<int>(buf_.size() - start));
        formats_.push_back(e->binary ? 1 : 0);
        nulls_.push_back(e->is_null ? 1 : 0);
        binary_ = binary_ || e->binary;
        return *this;
    }
    /// Appends SQL NULL (of type `type`; 0: the server infers it).
    params& add_null(Oid type = 0)
    {
        types_.push_back(type);
        offsets_.push_back(buf_.size());
        lengths_.push_back(0);
        formats_.push_back(0);
        nulls_.push_back(1);
        return *this;
    }
    /// Number of parameters.
    std::size_t size() const noexcept { return types_.size(); }
    /// True when no parameter was added.
    bool empty() const noexcept { return types_.empty(); }
    /// Removes every parameter (keeps the memory, for reuse).
    void clear() noexcept
    {
        buf_.clear();
        types_.clear();
        offsets_.clear();
        lengths_.clear();
        formats_.clear();
        nulls_.clear();
        values_.clear();
        error_.reset();
        binary_ = false;
    }
    /// The first encoding error, if any.
    const std::optional<error>& encoding_error() const noexcept { return error_; }

    // ---- for pgcoro's engine ----
    /// The parameters' type OIDs.
    const Oid* types() const noexcept { return types_.data(); }
    /// Value pointers (null for NULL), valid until the list changes.
    const char* const* values() const
    {
        values_.resize(types_.size());
        for (std::size_t i = 0; i < types_.size(); ++i)
            values_[i] = nulls_[i] ? nullptr : buf_.data() + offsets_[i];
        return values_.data();
    }
    /// Lengths (used for binary values).
    const int* lengths() const noexcept { return lengths_.data(); }
    /// Formats (0 text, 1 binary), or null when every value is text.
    const int* formats() const noexcept { return binary_ ? formats_.data() : nullptr; }
    /// Total encoded size in bytes.
    std::size_t bytes() const noexcept { return buf_.size(); }

private:
    std::string buf_;
    std::vector<Oid> types_;
    std::vector<std::size_t> offsets_;
    std::vector<int> lengths_;
    std::vector<int> formats_;
    std::vector<unsigned char> nulls_;
    mutable std::vector<const char*> values_;
    std::optional<error> error_;
    bool binary_ = false;
};

} // namespace pgcoro

#endif // PGCORO_PARAMS_HPP
