// Reading 100 000 rows of (int, text) into C++ types (issue 20): the per-field getters against
// result::as<T>() for an aggregate (Boost.PFR), a tuple and a described struct (Boost.Describe).
// The result is built with libpq's PQsetvalue, so the figures are pgcoro's decoding only.
//   ./build/benchmarks/row_mapping_bench --benchmark_repetitions=3
#include <pgcoro/result.hpp>

#include <boost/describe/class.hpp>

#include <benchmark/benchmark.h>

#include <string>
#include <tuple>
#include <vector>

namespace
{

struct item
{
    int id;
    std::string name;
};

struct described_item
{
    int id;
    std::string name;
};
BOOST_DESCRIBE_STRUCT(described_item, (), (id, name))

constexpr int rows = 100'000;

const pgcoro::result& sample()
{
    static const pgcoro::result r = []
    {
        PGresult* res = PQmakeEmptyPGresult(nullptr, PGRES_TUPLES_OK);
        PGresAttDesc attrs[2] = {{const_cast<char*>("id"), 0, 0, 0, 23, 4, -1},
                                 {const_cast<char*>("name"), 0, 0, 0, 25, -1, -1}};
        PQsetResultAttrs(res, 2, attrs);
        for (int i = 0; i < rows; ++i)
        {
            std::string id = std::to_string(i * 7919);
            std::string name = "customer-" + std::to_string(i);
            PQsetvalue(res, i, 0, id.data(), static_cast<int>(id.size()));
            PQsetvalue(res, i, 1, name.data(), static_cast<int>(name.size()));
        }
        return pgcoro::result(pgcoro::detail::pgresult_ptr(res));
    }();
    return r;
}

void per_field_getters(benchmark::State& state)
{
    const auto& r = sample();
    for (auto _ : state)
    {
        std::vector<item> out;
        out.reserve(r.size());
        for (auto row : r)
            out.push_back(item{row[0].get<int>().value(), row[1].get<std::string>().value()});
        benchmark::DoNotOptimize(out.data());
    }
    state.SetItemsProcessed(state.iterations() * rows);
}
BENCHMARK(per_field_getters)->Unit(benchmark::kMillisecond);

template <class T>
void mapped(benchmark::State& state)
{
    const auto& r = sample();
    for (auto _ : state)
    {
        auto out = r.as<T>().value();
        benchmark::DoNotOptimize(out.data());
    }
    state.SetItemsProcessed(state.iterations() * rows);
}
BENCHMARK(mapped<item>)->Name("as<aggregate>")->Unit(benchmark::kMillisecond);
BENCHMARK(mapped<std::tuple<int, std::string>>)->Name("as<tuple>")->Unit(benchmark::kMillisecond);
BENCHMARK(mapped<described_item>)->Name("as<described>")->Unit(benchmark::kMillisecond);

} // namespace

BENCHMARK_MAIN();
