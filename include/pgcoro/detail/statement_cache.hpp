// SPDX-License-Identifier: BSL-1.0
// pgcoro/detail/statement_cache.hpp - one connection's named prepared statements, LRU.
#ifndef PGCORO_DETAIL_STATEMENT_CACHE_HPP
#define PGCORO_DETAIL_STATEMENT_CACHE_HPP

#include <libpq-fe.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iterator>
#include <list>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace pgcoro::detail
{

// Which server-side prepared statement serves a statement text with given parameter types.
// A statement is keyed by its text and its parameter type OIDs (the same text with an int and
// with a string parameter are two statements). Names are "pgcoro_<n>", unique in the session.
// Lookups on a hit allocate nothing: the key is built in a reused buffer and the map is
// searched by view. Evicted and invalidated names are kept in `stale()` until the connection
// deallocates them on the server. Not thread-safe (one per connection).
class statement_cache
{
public:
    struct entry
    {
        std::string key;
        std::string name; // NUL-terminated for libpq
        std::uint64_t id; // unique in the session, for drop()
    };

    explicit statement_cache(std::size_t capacity = 0) : capacity_(capacity) {}

    std::size_t capacity() const noexcept { return capacity_; }
    bool enabled() const noexcept { return capacity_ > 0; }
    std::size_t size() const noexcept { return lru_.size(); }
    bool full() const noexcept { return lru_.size() >= capacity_; }

    // Sets the capacity and forgets every statement (called for a new session).
    void reset(std::size_t capacity)
    {
        capacity_ = capacity;
        forget_all();
    }

    // Forgets every statement without deallocating (the session that held them is gone, or
    // DISCARD ALL / DEALLOCATE ALL removed them).
    void forget_all() noexcept
    {
        index_.clear();
        lru_.clear();
        stale_.clear();
    }

    // Builds the key of `sql` with parameter types `types[0..n)` into the lookup buffer.
    std::string_view make_key(std::string_view sql, const Oid* types, int n)
    {
        key_.assign(sql);
        key_.push_back('\0');
        if (n > 0) // types may be null without parameters
            key_.append(reinterpret_cast<const char*>(types),
                        static_cast<std::size_t>(n) * sizeof(Oid));
        return key_;
    }

    // The statement for the last make_key(), marked most recently used; nullptr on a miss.
    const entry* find()
    {
        auto it = index_.find(std::string_view(key_));
        if (it == index_.end())
            return nullptr;
        lru_.splice(lru_.begin(), lru_, it->second);
        return &*it->second;
    }

    // A name never used before in this session. Taken before PREPARE is sent, so a PREPARE
    // that times out (and may have run) never leaves a name that a later one would reuse.
    std::string take_name() { return "pgcoro_" + std::to_string(next_id_++); }

    // When the cache is full, the least recently used statement leaves it; its name joins
    // stale() (the server still holds it). Call before preparing a new statement.
    void make_room()
    {
        while (!lru_.empty() && lru_.size() >= capacity_)
        {
            auto last = std::prev(lru_.end());
            stale_.push_back(std::move(last->name));
            index_.erase(std::string_view(last->key));
            lru_.erase(last);
        }
    }

    // Records that `name` now holds the statement of the last make_key().
    const entry* insert(std::string name)
    {
        lru_.push_front(entry{key_, std::move(name), next_entry_++});
        index_.emplace(std::string_view(lru_.front().key), lru_.begin());
        return &lru_.front();
    }

    // The statement of the last make_key() is no longer valid on the server ("cached plan
    // must not change result type"): forget it and deallocate it later.
    void invalidate()
    {
        auto it = index_.find(std::string_view(key_));
        if (it == index_.end())
            return;
        auto node = it->second;
        stale_.push_back(std::move(node->name));
        index_.erase(it); // first: the map's key is a view into the node's key
        lru_.erase(node);
    }

    // Forgets the statement inserted as `id`, if still cached. `on_server`: its PREPARE ran, so
    // its name joins stale(); else (the PREPARE failed or was skipped) the name is unused.
    // Linear: only for the rare failures of a pipelined connection's statements.
    void drop(std::uint64_t id, bool on_server)
    {
        for (auto it = lru_.begin(); it != lru_.end(); ++it)
            if (it->id == id)
            {
                index_.erase(std::string_view(it->key)); // first: the key is a view into the node
                if (on_server)
                    stale_.push_back(std::move(it->name));
                lru_.erase(it);
                return;
            }
    }

    // forget_all() but for the statements inserted as one of `keep` (their PREPARE was sent
    // after whatever removed the others).
    void forget_all_but(const std::vector<std::uint64_t>& keep)
    {
        for (auto it = lru_.begin(); it != lru_.end();)
        {
            if (std::find(keep.begin(), keep.end(), it->id) != keep.end())
            {
                ++it;
                continue;
            }
            index_.erase(std::string_view(it->key));
            it = lru_.erase(it);
        }
        stale_.clear();
    }

    // Whether the statement inserted as `id` is still cached (linear, as drop()).
    bool holds(std::uint64_t id) const noexcept
    {
        for (const auto& e : lru_)
            if (e.id == id)
                return true;
        return false;
    }

    // Names to DEALLOCATE on the server.
    const std::vector<std::string>& stale() const noexcept { return stale_; }
    void clear_stale() noexcept { stale_.clear(); }

private:
    struct view_hash
    {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const noexcept
        {
            return std::hash<std::string_view>{}(s);
        }
    };

    std::size_t capacity_;
    std::uint64_t next_id_ = 1;
    std::uint64_t next_entry_ = 1;
    std::list<entry> lru_; // most recently used first
    std::unordered_map<std::string_view, std::list<entry>::iterator, view_hash, std::equal_to<>>
        index_; // views into the entries' keys
    std::vector<std::string> stale_;
    std::string key_; // lookup buffer, reused
};

} // namespace pgcoro::detail

#endif // PGCORO_DETAIL_STATEMENT_CACHE_HPP
