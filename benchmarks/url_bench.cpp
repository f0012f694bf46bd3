// url_bench: parsing configuration, no server needed. parse_database_url() on a plain URL, on
// a URL with several hosts, percent-encoding and pgcoro/libpq parameters, and on a libpq
// key=value string; redact_url(); and the whole settings_from_env() (profile, URL, env vars,
// validation) over an injected environment. Start-up costs, reported for scale: none of this
// is on the query path.
//
//   ./build-perf/benchmarks/url_bench
#include <pgcoro/database_url.hpp>
#include <pgcoro/settings.hpp>

#include <benchmark/benchmark.h>

#include <string>

namespace
{

const std::string plain_url = "postgresql://app:s3cret@127.0.0.1:5432/appdb";
const std::string rich_url =
    "postgres://app%40corp:p%40ss%2Fw0rd@db1.internal:5432,db2.internal:5433,[::1]:5434/app%20db"
    "?sslmode=disable&connect_timeout=5&application_name=api&connection_limit=20"
    "&pool_timeout=3&target_session_attrs=read-write&keepalives=1";
const std::string conninfo = "host=/run/postgresql port=5432 dbname=appdb user=app "
                             "password='s3 cret' sslmode=disable connect_timeout=5";

void parse(benchmark::State& state, const std::string& text)
{
    std::size_t errors = 0;
    for (auto _ : state)
    {
        auto r = pgcoro::parse_database_url(text);
        errors += !r;
        benchmark::DoNotOptimize(r);
    }
    state.SetItemsProcessed(state.iterations());
    state.counters["errors"] = static_cast<double>(errors); // expected 0
}

void BM_ParseUrlPlain(benchmark::State& state)
{
    parse(state, plain_url);
}
void BM_ParseUrlRich(benchmark::State& state)
{
    parse(state, rich_url);
}
void BM_ParseConninfo(benchmark::State& state)
{
    parse(state, conninfo);
}

void BM_RedactUrl(benchmark::State& state)
{
    for (auto _ : state)
        benchmark::DoNotOptimize(pgcoro::redact_url(rich_url));
    state.SetItemsProcessed(state.iterations());
}

void BM_SettingsFromEnv(benchmark::State& state)
{
    auto env = pgcoro::env_from_map({{"DATABASE_URL", rich_url},
                                     {"PGCORO_ENV", "staging"},
                                     {"DATABASE_CONNECTION_LIMIT", "30"},
                                     {"PGCORO_IDLE_TIMEOUT", "5min"}});
    std::size_t errors = 0;
    for (auto _ : state)
    {
        auto s = pgcoro::settings_from_env(env);
        errors += !s;
        benchmark::DoNotOptimize(s);
    }
    state.SetItemsProcessed(state.iterations());
    state.counters["errors"] = static_cast<double>(errors); // expected 0
}

} // namespace

BENCHMARK(BM_ParseUrlPlain);
BENCHMARK(BM_ParseUrlRich);
BENCHMARK(BM_ParseConninfo);
BENCHMARK(BM_RedactUrl);
BENCHMARK(BM_SettingsFromEnv)->Unit(benchmark::kMicrosecond);

BENCHMARK_MAIN();
