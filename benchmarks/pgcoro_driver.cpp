// pgcoro_driver: a closed-loop throughput driver for a pgcoro pool (issue #9).
//
// Workloads (--workload):
//   W1  SELECT 1
//   W2  point read SELECT v FROM kv WHERE id = $1 (uniform random id; the kv table with
//       --rows rows is created and filled if missing)
//   W3  acquire + release without a query: acquire, hold the lease for one scheduler turn
//       (a post), release. The turn is what makes other coroutines queue; without it one
//       coroutine would take and return an idle connection forever without suspending.
//   W1P SELECT 1 through pgcoro::pipeline_group (libpq pipeline mode): --pool pipelined
//       connections used round-robin, so concurrent coroutines share each connection's
//       pipeline (one io thread only).
// N coroutines (--concurrency) loop over the workload against one pool (--pool connections,
// all opened before timing), on --threads io_context threads; with --shards each thread runs
// its own io_context, the pool has one shard per io_context (W1P: one pipeline_group per
// io_context, --pool split over them) and the coroutines are spread over them. A warm-up (--warmup
// seconds) is run and discarded, then the measurement runs for --duration seconds or for exactly
// --ops operations. The connection comes from the environment through pgcoro::settings_from_env
// (DATABASE_URL, PGCORO_*; scripts/with-test-env.sh sets DATABASE_URL).
//
// Prints ops/s, latency p50/p99/max (pgcoro::latency_histogram: percentiles within 6.25 %
// above the true value, max exact), client CPU per op (getrusage(RUSAGE_SELF) user+sys over
// the measurement window / ops), peak RSS (ru_maxrss), errors, and for acquire waits a FIFO
// check: each acquire() call takes a ticket; a grant whose ticket is not the lowest one still
// pending is counted as out of order. Exact with one io thread; with more, a ticket is taken
// and a grant observed on different threads than the pool's strand, so reorderings between
// threads count too (an upper bound). With --shards each io_context's acquires are checked
// on their own (FIFO holds within a shard). The last line is machine-readable:
//   RESULT workload=W1 concurrency=10 ... qps=... p99_us=...
//
// Built twice: pgcoro_driver, and pgcoro_driver_allocs (PGCORO_DRIVER_COUNT_ALLOCS) which
// replaces the global operator new/delete with counting versions and adds allocs_per_op
// (operator new calls per op in the window; libpq allocates with malloc, not counted here).
//
//   scripts/with-test-env.sh STATE_DIR build-perf/benchmarks/pgcoro_driver --workload=W2 -c 100
#include <pgcoro/histogram.hpp>
#include <pgcoro/pipeline.hpp>
#include <pgcoro/pool.hpp>
#include <pgcoro/settings.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <sys/resource.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <iostream>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#ifdef PGCORO_DRIVER_COUNT_ALLOCS
// Two counters. g_news: calls of the global operator new (C++ allocations made through it).
// g_mallocs: every heap allocation of the process through glibc's malloc family, replaced
// here by counting wrappers around glibc's __libc_* entry points (glibc supports replacing
// malloc in the executable; libpq's calls bind to these too). operator new goes through
// malloc, so g_mallocs includes g_news; it also sees libpq's PGresult and buffer allocations
// and Asio's handler/coroutine-frame memory, which Asio takes with std::aligned_alloc directly
// (BOOST_ASIO_HAS_STD_ALIGNED_ALLOC), not with operator new.
extern "C"
{
    void* __libc_malloc(std::size_t);
    void* __libc_calloc(std::size_t, std::size_t);
    void* __libc_realloc(void*, std::size_t);
    void* __libc_memalign(std::size_t, std::size_t);
    void __libc_free(void*);
}
namespace
{
std::atomic<std::uint64_t> g_news{0}, g_mallocs{0};
inline void count_malloc()
{
    g_mallocs.fetch_add(1, std::memory_order_relaxed);
}
} // namespace
extern "C"
{
    void* malloc(std::size_t n) noexcept
    {
        count_malloc();
        return __libc_malloc(n);
    }
    void* calloc(std::size_t n, std::size_t size) noexcept
    {
        count_malloc();
        return __libc_calloc(n, size);
    }
    void* realloc(void* p, std::size_t n) noexcept
    {
        count_malloc();
        return __libc_realloc(p, n);
    }
    void free(void* p) noexcept
    {
        __libc_free(p);
    }
    void* aligned_alloc(std::size_t al, std::size_t n) noexcept
    {
        count_malloc();
        return __libc_memalign(al, n);
    }
    void* memalign(std::size_t al, std::size_t n) noexcept
    {
        count_malloc();
        return __libc_memalign(al, n);
    }
    int posix_memalign(void** out, std::size_t al, std::size_t n) noexcept
    {
        count_malloc();
        void* p = __libc_memalign(al, n);
        if (!p)
            return ENOMEM;
        *out = p;
        return 0;
    }
}
namespace
{
void* counted_alloc(std::size_t n)
{
    g_news.fetch_add(1, std::memory_order_relaxed);
    if (void* p = std::malloc(n ? n : 1))
        return p;
    throw std::bad_alloc();
}
void* counted_aligned_alloc(std::size_t n, std::align_val_t a)
{
    g_news.fetch_add(1, std::memory_order_relaxed);
    const auto al = static_cast<std::size_t>(a);
    if (void* p = std::aligned_alloc(al, (n + al - 1) / al * al))
        return p;
    throw std::bad_alloc();
}
} // namespace
void* operator new(std::size_t n)
{
    return counted_alloc(n);
}
void* operator new[](std::size_t n)
{
    return counted_alloc(n);
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept
{
    g_news.fetch_add(1, std::memory_order_relaxed);
    return std::malloc(n ? n : 1);
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept
{
    g_news.fetch_add(1, std::memory_order_relaxed);
    return std::malloc(n ? n : 1);
}
void* operator new(std::size_t n, std::align_val_t a)
{
    return counted_aligned_alloc(n, a);
}
void* operator new[](std::size_t n, std::align_val_t a)
{
    return counted_aligned_alloc(n, a);
}
void operator delete(void* p) noexcept
{
    std::free(p);
}
void operator delete[](void* p) noexcept
{
    std::free(p);
}
void operator delete(void* p, std::size_t) noexcept
{
    std::free(p);
}
void operator delete[](void* p, std::size_t) noexcept
{
    std::free(p);
}
void operator delete(void* p, std::align_val_t) noexcept
{
    std::free(p);
}
void operator delete[](void* p, std::align_val_t) noexcept
{
    std::free(p);
}
void operator delete(void* p, std::size_t, std::align_val_t) noexcept
{
    std::free(p);
}
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept
{
    std::free(p);
}
#endif

namespace asio = boost::asio;
using clock_type = std::chrono::steady_clock;

namespace
{

// ---- options ------------------------------------------------------------------------------

enum class workload
{
    w1,  // SELECT 1
    w2,  // point read
    w3,  // acquire + release
    w1p, // pipelined SELECT 1 (pipeline_group)
};

struct workload_name
{
    std::string_view name;
    workload w;
};
// One row per workload.
constexpr workload_name workloads[] = {
    {"W1", workload::w1}, {"W2", workload::w2}, {"W3", workload::w3}, {"W1P", workload::w1p}};

struct options
{
    workload w = workload::w1;
    std::string wname = "W1";
    int concurrency = 10;
    int pool = 10;
    double duration = 5.0; // seconds; ignored when ops > 0
    double warmup = 1.0;   // seconds
    std::uint64_t ops = 0; // measure exactly this many ops instead of a duration
    int threads = 1;
    int rows = 10000;
    int statement_cache = -1; // -1: as the environment says (PGCORO_STATEMENT_CACHE_SIZE)
    double max_time = 120.0;  // hard limit of the whole run, seconds
    bool quiet = false;       // RESULT line only
    bool shards = false;      // one io_context (and pool shard) per thread
};

void usage(std::FILE* f)
{
    std::fprintf(
        f, "usage: pgcoro_driver [options]   (connection: DATABASE_URL / PGCORO_* env)\n"
           "  --workload=W1|W2|W3|W1P  W1 SELECT 1, W2 point read on kv, W3 acquire+release,"
           " W1P pipelined SELECT 1 (default W1)\n"
           "  -c, --concurrency=N      coroutines (default 10)\n"
           "  -p, --pool=N             pool size (W1P: pipelined connections), all opened before"
           " timing (default 10)\n"
           "  -d, --duration=S         measurement seconds (default 5)\n"
           "  -n, --ops=N              measure exactly N ops instead of a duration\n"
           "  -w, --warmup=S           warm-up seconds, discarded (default 1)\n"
           "  -t, --threads=N          io_context threads (default 1)\n"
           "  --shards                 one io_context per thread, a pool shard on each\n"
           "  --rows=N                 kv rows for W2 (default 10000)\n"
           "  --statement-cache=N      prepared statements kept per connection (0 = unnamed"
           " statements; default: PGCORO_STATEMENT_CACHE_SIZE, else 0)\n"
           "  --max-time=S             hard limit of the whole run (default 120)\n"
           "  --format=text|result     human summary + RESULT line, or RESULT only\n");
}

template <class T>
bool parse_number(std::string_view s, T& out)
{
    if constexpr (std::is_floating_point_v<T>)
    {
        char* end = nullptr;
        std::string tmp(s);
        double v = std::strtod(tmp.c_str(), &end);
        if (tmp.empty() || *end != '\0')
            return false;
        out = static_cast<T>(v);
        return true;
    }
    else
    {
        auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
        return ec == std::errc() && p == s.data() + s.size();
    }
}

std::optional<options> parse_args(int argc, char** argv)
{
    options o;
    for (int i = 1; i < argc; ++i)
    {
        std::string_view a = argv[i];
        std::string_view key = a, value;
        bool has_value = false;
        if (auto eq = a.find('='); eq != std::string_view::npos && a.starts_with("--"))
        {
            key = a.substr(0, eq);
            value = a.substr(eq + 1);
            has_value = true;
        }
        if (key == "-h" || key == "--help")
        {
            usage(stdout);
            std::exit(0);
        }
        if (key == "--format")
        {
            if (!has_value || (value != "text" && value != "result"))
                return std::nullopt;
            o.quiet = value == "result";
            continue;
        }
        if (key == "--shards" && !has_value)
        {
            o.shards = true;
            continue;
        }
        if (!has_value)
        {
            if (i + 1 >= argc)
                return std::nullopt;
            value = argv[++i];
        }
        bool ok = true;
        if (key == "--workload" || key == "-W")
        {
            ok = false;
            for (const auto& wn : workloads)
                if (value == wn.name)
                {
                    o.w = wn.w;
                    o.wname = wn.name;
                    ok = true;
                }
        }
        else if (key == "-c" || key == "--concurrency")
            ok =
                parse_number(value, o.concurrency) && o.concurrency >= 1 && o.concurrency <= 100000;
        else if (key == "-p" || key == "--pool")
            ok = parse_number(value, o.pool) && o.pool >= 1 && o.pool <= 10000;
        else if (key == "-d" || key == "--duration")
            ok = parse_number(value, o.duration) && o.duration > 0 && o.duration <= 3600;
        else if (key == "-n" || key == "--ops")
            ok = parse_number(value, o.ops) && o.ops >= 1;
        else if (key == "-w" || key == "--warmup")
            ok = parse_number(value, o.warmup) && o.warmup >= 0 && o.warmup <= 600;
        else if (key == "-t" || key == "--threads")
            ok = parse_number(value, o.threads) && o.threads >= 1 && o.threads <= 64;
        else if (key == "--rows")
            ok = parse_number(value, o.rows) && o.rows >= 1;
        else if (key == "--statement-cache")
            ok = parse_number(value, o.statement_cache) && o.statement_cache >= 0 &&
                 o.statement_cache <= 10000;
        else if (key == "--max-time")
            ok = parse_number(value, o.max_time) && o.max_time > 0;
        else
            ok = false;
        if (!ok)
        {
            std::fprintf(stderr, "pgcoro_driver: bad option %.*s %.*s\n",
                         static_cast<int>(key.size()), key.data(), static_cast<int>(value.size()),
                         value.data());
            return std::nullopt;
        }
    }
    return o;
}

// ---- measurement state --------------------------------------------------------------------

double cpu_seconds()
{
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    auto s = [](const timeval& tv)
    {
        return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
    };
    return s(ru.ru_utime) + s(ru.ru_stime);
}

long peak_rss_kb()
{
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

std::uint64_t news_now()
{
#ifdef PGCORO_DRIVER_COUNT_ALLOCS
    return g_news.load(std::memory_order_relaxed);
#else
    return 0;
#endif
}
std::uint64_t mallocs_now()
{
#ifdef PGCORO_DRIVER_COUNT_ALLOCS
    return g_mallocs.load(std::memory_order_relaxed);
#else
    return 0;
#endif
}

struct snapshot
{
    clock_type::time_point at{};
    double cpu = 0;
    std::uint64_t news = 0, mallocs = 0;
    static snapshot take()
    {
        snapshot s;
        s.news = news_now();
        s.mallocs = mallocs_now();
        s.cpu = cpu_seconds();
        s.at = clock_type::now();
        return s;
    }
};

enum phase : int
{
    warming = 0,
    starting = 1, // one thread is taking the start snapshot: the others wait for `measuring`
    measuring = 2,
    done = 3
};

// FIFO check of acquire grants. Every acquire() call takes the next ticket; a grant (or a
// failure) settles it. A grant whose ticket is not the lowest unsettled one overtook an older
// caller. Tickets live in a ring; if the unsettled span outgrows it the check gives up.
class fifo_check
{
public:
    explicit fifo_check(bool locked) : locked_(locked), settled_(ring_size, 0) {}

    std::uint64_t take()
    {
        auto lk = lock();
        if (next_ - base_ >= ring_size)
            overflow_ = true;
        return next_++;
    }
    // `count` = true in the measurement window for a successful grant.
    void settle(std::uint64_t t, bool count)
    {
        auto lk = lock();
        if (overflow_)
            return;
        if (count)
        {
            ++checked_;
            if (t != base_)
                ++out_of_order_;
        }
        settled_[t % ring_size] = 1;
        while (base_ < next_ && settled_[base_ % ring_size])
            settled_[base_++ % ring_size] = 0;
    }
    std::uint64_t checked() const { return checked_; }
    std::uint64_t out_of_order() const { return out_of_order_; }
    bool overflow() const { return overflow_; }

private:
    static constexpr std::uint64_t ring_size = 1u << 20;
    std::unique_lock<std::mutex> lock()
    {
        return locked_ ? std::unique_lock<std::mutex>(mu_) : std::unique_lock<std::mutex>();
    }
    bool locked_;
    std::mutex mu_;
    std::vector<std::uint8_t> settled_;
    std::uint64_t next_ = 0, base_ = 0, checked_ = 0, out_of_order_ = 0;
    bool overflow_ = false;
};

struct run_state
{
    explicit run_state(const options& o) : opt(o)
    {
        for (int i = 0; i < (o.shards ? o.threads : 1); ++i)
            fifos.push_back(std::make_unique<fifo_check>(o.threads > 1 && !o.shards));
    }

    const options& opt;
    std::atomic<int> ph{warming};
    clock_type::time_point warm_end{}, measure_end{};
    snapshot begin{}, end{};
    std::atomic<std::uint64_t> ops{0}, errors{0}, total_ops{0};
    pgcoro::latency_histogram latency;              // W1/W2: acquire + query; W3: acquire wait
    std::vector<std::unique_ptr<fifo_check>> fifos; // one per io_context with --shards
    std::mutex err_mu;
    std::string first_error;
    bool hit_max_time = false;

    void begin_measure(clock_type::time_point now)
    {
        // Publish `measuring` only once measure_end is set: another io thread that saw it
        // earlier compared with a zero measure_end and ended the window at once.
        int expected = warming;
        if (!ph.compare_exchange_strong(expected, starting))
            return;
        begin = snapshot::take();
        measure_end = now + std::chrono::duration_cast<clock_type::duration>(
                                std::chrono::duration<double>(opt.duration));
        expected = starting;
        ph.compare_exchange_strong(expected, measuring, std::memory_order_acq_rel);
    }
    void end_measure()
    {
        int expected = measuring;
        if (ph.compare_exchange_strong(expected, done))
            end = snapshot::take();
        else
            ph.store(done); // ended during warm-up (max-time): nothing measured
    }
    // Called when an operation that began at `t0` completed at `t1`.
    void completed(clock_type::time_point t0, clock_type::time_point t1, bool ok)
    {
        total_ops.fetch_add(1, std::memory_order_relaxed);
        int p = ph.load(std::memory_order_acquire);
        if (p == warming)
        {
            if (t1 >= warm_end)
                begin_measure(t1);
            return;
        }
        if (p != measuring)
            return;
        if (opt.ops == 0 && t1 >= measure_end)
        {
            end_measure();
            return;
        }
        if (!ok)
        {
            errors.fetch_add(1, std::memory_order_relaxed);
            return;
        }
        latency.record(t1 - t0);
        if (ops.fetch_add(1, std::memory_order_relaxed) + 1 == opt.ops)
            end_measure();
    }
    void error(const pgcoro::error& e)
    {
        std::lock_guard lk(err_mu);
        if (first_error.empty())
            first_error = e.to_string();
    }
    bool measuring_now() const { return ph.load(std::memory_order_relaxed) == measuring; }
    // The FIFO checks' totals: {checked, out of order}; nullopt when one gave up.
    std::optional<std::pair<std::uint64_t, std::uint64_t>> fifo_totals() const
    {
        std::pair<std::uint64_t, std::uint64_t> t{0, 0};
        for (const auto& f : fifos)
        {
            if (f->overflow())
                return std::nullopt;
            t.first += f->checked();
            t.second += f->out_of_order();
        }
        return t;
    }
    bool finished() const { return ph.load(std::memory_order_relaxed) == done; }
};

// ---- the workloads ------------------------------------------------------------------------

asio::awaitable<void> worker(pgcoro::pool& pool, run_state& st, int index, int& running,
                             std::mutex& running_mu, const std::function<void()>& stop_all)
{
    const auto ex = co_await asio::this_coro::executor;
    std::minstd_rand rng(static_cast<std::uint32_t>(index) * 7919u + 1u);
    const auto rows = static_cast<std::uint32_t>(st.opt.rows);
    auto& fifo = *st.fifos[static_cast<std::size_t>(index) % st.fifos.size()]; // its io_context's
    while (!st.finished())
    {
        const auto t0 = clock_type::now();
        const auto ticket = fifo.take();
        auto l = co_await pool.acquire();
        if (!l)
        {
            fifo.settle(ticket, false);
            st.error(l.error());
            st.completed(t0, clock_type::now(), false);
            continue;
        }
        fifo.settle(ticket, st.measuring_now());
        bool ok = true;
        switch (st.opt.w)
        {
        case workload::w1:
        {
            auto r = co_await (*l)->query("SELECT 1");
            ok = r && r->size() == 1;
            if (!r)
                st.error(r.error());
            break;
        }
        case workload::w2:
        {
            const int id = static_cast<int>(1 + rng() % rows);
            auto r = co_await (*l)->query("SELECT v FROM kv WHERE id = $1", id);
            ok = r && r->size() == 1;
            if (!r)
                st.error(r.error());
            break;
        }
        case workload::w3:
        {
            const auto t1 = clock_type::now();            // the acquire wait is what W3 measures
            co_await asio::post(ex, asio::use_awaitable); // hold the lease for one turn
            l->release();
            st.completed(t0, t1, true);
            continue;
        }
        case workload::w1p:
            ok = false; // run by pipelined_worker()
            break;
        }
        l->release();
        st.completed(t0, clock_type::now(), ok);
    }
    std::lock_guard lk(running_mu);
    if (--running == 0)
        stop_all();
}

// W1P: SELECT 1 through the pipeline group; the latency is the statement's round trip.
asio::awaitable<void> pipelined_worker(pgcoro::pipeline_group& group, run_state& st, int& running,
                                       std::mutex& running_mu,
                                       const std::function<void()>& stop_all)
{
    while (!st.finished())
    {
        const auto t0 = clock_type::now();
        auto r = co_await group.query("SELECT 1");
        if (!r)
            st.error(r.error());
        st.completed(t0, clock_type::now(), r && r->size() == 1);
    }
    std::lock_guard lk(running_mu);
    if (--running == 0)
        stop_all();
}

// Creates and fills the kv table for W2 when it is missing or short.
asio::awaitable<pgcoro::expected<void>> prepare_kv(pgcoro::pool& pool, int rows)
{
    auto l = co_await pool.acquire();
    if (!l)
        co_return tl::unexpected(l.error());
    auto& c = **l;
    auto r =
        co_await c.query("CREATE TABLE IF NOT EXISTS kv (id int PRIMARY KEY, v text NOT NULL)");
    if (!r)
        co_return tl::unexpected(r.error());
    auto n = co_await c.query("SELECT count(*) FROM kv WHERE id BETWEEN 1 AND $1", rows);
    if (!n)
        co_return tl::unexpected(n.error());
    auto have = n->get<std::int64_t>(0, 0);
    if (have && *have == rows)
        co_return pgcoro::expected<void>{};
    auto ins =
        co_await c.query("INSERT INTO kv SELECT g, md5(g::text) FROM generate_series(1, $1) g "
                         "ON CONFLICT (id) DO NOTHING",
                         rows);
    if (!ins)
        co_return tl::unexpected(ins.error());
    auto an = co_await c.query("ANALYZE kv");
    if (!an)
        co_return tl::unexpected(an.error());
    co_return pgcoro::expected<void>{};
}

double us(std::chrono::nanoseconds d)
{
    return static_cast<double>(d.count()) / 1e3;
}

} // namespace

int main(int argc, char** argv)
{
    auto parsed = parse_args(argc, argv);
    if (!parsed)
    {
        usage(stderr);
        return 2;
    }
    const options opt = *parsed;
    const bool pipelined = opt.w == workload::w1p;
    if (pipelined && opt.threads != 1 && !opt.shards)
    {
        std::fprintf(stderr, "pgcoro_driver: W1P runs on one io thread (--threads=1), or one "
                             "per --shards io_context\n");
        return 2;
    }

    pgcoro::settings_overrides code;
    code.max_size = static_cast<std::size_t>(opt.pool);
    code.min_size = pipelined ? 0 : static_cast<std::size_t>(opt.pool); // W1P: no pool
    code.application_name = "pgcoro_driver";
    if (opt.statement_cache >= 0)
        code.statement_cache_size = static_cast<std::size_t>(opt.statement_cache);
    auto settings = pgcoro::settings_from_env(code);
    if (!settings)
    {
        std::cerr << settings.error() << "\n";
        return 2;
    }

    // --shards: one io_context per thread; else one io_context run by --threads threads.
    const int contexts = opt.shards ? opt.threads : 1;
    std::vector<std::unique_ptr<asio::io_context>> ios;
    std::vector<asio::any_io_executor> exs;
    for (int i = 0; i < contexts; ++i)
    {
        ios.push_back(std::make_unique<asio::io_context>(opt.shards ? 1 : opt.threads));
        exs.push_back(ios.back()->get_executor());
    }
    asio::io_context& io = *ios.front();
    const std::function<void()> stop_all = [&ios]
    {
        for (auto& c : ios)
            c->stop();
    };
    pgcoro::pool pool(exs, settings->connect, settings->pool);
    // W1P: one pipeline group per io_context, the connections split over them.
    std::vector<std::unique_ptr<pgcoro::pipeline_group>> groups;
    for (int i = 0; i < contexts; ++i)
    {
        pgcoro::pipeline_group_config gcfg;
        gcfg.connections = static_cast<std::size_t>(
            std::max(1, opt.pool / contexts + (i < opt.pool % contexts ? 1 : 0)));
        groups.push_back(std::make_unique<pgcoro::pipeline_group>(exs[i], settings->connect, gcfg));
    }
    run_state st(opt);
    int running = opt.concurrency;
    std::mutex running_mu;
    std::optional<pgcoro::error> setup_error;

    // Watchdog: the measurement ends after --max-time whatever happens, and the loop is
    // stopped 5 s later if a worker is still stuck in an operation.
    asio::steady_timer watchdog(io, std::chrono::duration_cast<clock_type::duration>(
                                        std::chrono::duration<double>(opt.max_time)));
    watchdog.async_wait(
        [&](boost::system::error_code ec)
        {
            if (ec)
                return;
            st.hit_max_time = true;
            st.end_measure();
            watchdog.expires_after(std::chrono::seconds(5));
            watchdog.async_wait(
                [&](boost::system::error_code ec2)
                {
                    if (!ec2)
                        stop_all();
                });
        });

    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void>
        {
            // Not `pipelined ? co_await a : co_await b`: GCC 12 destroys the temporaries of a
            // co_await inside ?: twice (a double free on the error path).
            pgcoro::expected<void> w;
            if (pipelined)
                for (auto& g : groups)
                {
                    if (w)
                        w = co_await g->connect();
                }
            else
                w = co_await pool.warmup();
            if (w && opt.w == workload::w2)
                w = co_await prepare_kv(pool, opt.rows);
            if (!w)
            {
                setup_error = w.error();
                watchdog.cancel();
                stop_all();
                co_return;
            }
            const auto now = clock_type::now();
            st.warm_end = now + std::chrono::duration_cast<clock_type::duration>(
                                    std::chrono::duration<double>(opt.warmup));
            if (opt.warmup == 0)
                st.begin_measure(now);
            for (int i = 0; i < opt.concurrency; ++i)
            {
                auto& ctx = *ios[static_cast<std::size_t>(i % contexts)];
                if (pipelined)
                    asio::co_spawn(ctx,
                                   pipelined_worker(*groups[static_cast<std::size_t>(i % contexts)],
                                                    st, running, running_mu, stop_all),
                                   asio::detached);
                else if (opt.threads > 1 && !opt.shards)
                    asio::co_spawn(asio::make_strand(io),
                                   worker(pool, st, i, running, running_mu, stop_all),
                                   asio::detached);
                else
                    asio::co_spawn(ctx, worker(pool, st, i, running, running_mu, stop_all),
                                   asio::detached);
            }
        },
        asio::detached);

    // Runs the io_context(s) on --threads threads (this one included) until stop_all().
    const auto run_all = [&]
    {
        // Work guards: an io_context whose workers are not spawned yet must not return.
        std::vector<asio::executor_work_guard<asio::io_context::executor_type>> busy;
        for (auto& c : ios)
            busy.emplace_back(c->get_executor());
        std::vector<std::thread> extra;
        for (int i = 1; i < opt.threads; ++i)
            extra.emplace_back([c = ios[static_cast<std::size_t>(opt.shards ? i : 0)].get()]
                               { c->run(); });
        io.run();
        for (auto& t : extra)
            t.join();
    };
    run_all();
    watchdog.cancel();

    if (setup_error)
    {
        std::cerr << "pgcoro_driver: setup failed: " << *setup_error << "\n";
        return 1;
    }

    // Close the pool (a short extra run of the loop, bounded by the grace period).
    for (auto& c : ios)
        c->restart();
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void>
        {
            for (auto& g : groups)
                g->close();
            co_await pool.close(std::chrono::seconds(2));
            stop_all();
        },
        asio::detached);
    run_all();

    const std::uint64_t ops = st.ops.load();
    const std::uint64_t errors = st.errors.load();
    const double secs = std::chrono::duration<double>(st.end.at - st.begin.at).count();
    const double cpu = st.end.cpu - st.begin.cpu;
    const auto h = st.latency.snapshot();
    const double qps = secs > 0 ? static_cast<double>(ops) / secs : 0;
    const double cpu_us_per_op = ops ? cpu * 1e6 / static_cast<double>(ops) : 0;
    auto per_op = [ops](std::uint64_t n)
    {
        return ops ? static_cast<double>(n) / static_cast<double>(ops) : 0.0;
    };
    const std::uint64_t news = st.end.news - st.begin.news;
    const std::uint64_t mallocs = st.end.mallocs - st.begin.mallocs;
    const long rss = peak_rss_kb();
    const bool w3 = opt.w == workload::w3;
    const auto fifo = st.fifo_totals();
    (void)news; // printed by the counting build only
    (void)mallocs;
    (void)per_op;

    if (!opt.quiet)
    {
        std::printf("pgcoro_driver %s: %d coroutines, pool %d, %d io thread(s), %.2f s measured "
                    "after %.1f s warm-up\n",
                    opt.wname.c_str(), opt.concurrency, opt.pool, opt.threads, secs, opt.warmup);
        std::printf("  throughput   %.0f ops/s (%llu ops, %llu errors)\n", qps,
                    static_cast<unsigned long long>(ops), static_cast<unsigned long long>(errors));
        std::printf("  %s  p50 %.1f us  p99 %.1f us  max %.1f us  mean %.1f us\n",
                    w3 ? "acquire wait" : "latency     ", us(h.percentile(0.5)),
                    us(h.percentile(0.99)), static_cast<double>(h.max_ns) / 1e3, h.mean_ns() / 1e3);
        std::printf("  client CPU   %.2f us/op (user+sys %.3f s), peak RSS %ld KiB\n",
                    cpu_us_per_op, cpu, rss);
#ifdef PGCORO_DRIVER_COUNT_ALLOCS
        std::printf("  allocations  %.3f operator new calls/op (%llu in the window)\n",
                    per_op(news), static_cast<unsigned long long>(news));
        std::printf("               %.3f malloc-family calls/op (%llu: operator new's, libpq's, "
                    "Asio's aligned_alloc)\n",
                    per_op(mallocs), static_cast<unsigned long long>(mallocs));
#endif
        if (!fifo)
            std::printf("  FIFO check   gave up (a caller waited through > 1M later grants)\n");
        else
            std::printf("  FIFO check   %llu out-of-order grants of %llu measured acquires%s\n",
                        static_cast<unsigned long long>(fifo->second),
                        static_cast<unsigned long long>(fifo->first),
                        opt.shards        ? " (each shard's own acquires)"
                        : opt.threads > 1 ? " (upper bound: several threads)"
                                          : "");
        if (!st.first_error.empty())
            std::printf("  first error  %s\n", st.first_error.c_str());
        if (st.hit_max_time)
            std::printf("  stopped by --max-time\n");
    }
    std::printf(
        "RESULT workload=%s concurrency=%d pool=%d threads=%d shards=%d seconds=%.3f ops=%llu "
        "total_ops=%llu errors=%llu qps=%.1f p50_us=%.1f p99_us=%.1f max_us=%.1f "
        "mean_us=%.1f cpu_us_per_op=%.3f cpu_s=%.3f peak_rss_kb=%ld fifo_checked=%llu "
        "fifo_out_of_order=%lld",
        opt.wname.c_str(), opt.concurrency, opt.pool, opt.threads, opt.shards ? 1 : 0, secs,
        static_cast<unsigned long long>(ops), static_cast<unsigned long long>(st.total_ops.load()),
        static_cast<unsigned long long>(errors), qps, us(h.percentile(0.5)), us(h.percentile(0.99)),
        static_cast<double>(h.max_ns) / 1e3, h.mean_ns() / 1e3, cpu_us_per_op, cpu, rss,
        static_cast<unsigned long long>(fifo ? fifo->first : 0),
        fifo ? static_cast<long long>(fifo->second) : -1LL);
#ifdef PGCORO_DRIVER_COUNT_ALLOCS
    std::printf(" news_per_op=%.3f mallocs_per_op=%.3f", per_op(news), per_op(mallocs));
#endif
    std::printf("%s\n", st.hit_max_time ? " stopped=max_time" : "");
    std::fflush(stdout);
    return errors > 0 || st.hit_max_time || ops == 0 ? 1 : 0;
}
