// SPDX-License-Identifier: BSL-1.0
// pgcoro/detail/resilience_random.hpp - uniform samples for backoff jitter.
#ifndef PGCORO_DETAIL_RESILIENCE_RANDOM_HPP
#define PGCORO_DETAIL_RESILIENCE_RANDOM_HPP

#include <cmath>
#include <random>

namespace pgcoro::detail
{

// A double in [0, 1) from any uniform random bit generator. generate_canonical's algorithm is
// fixed by the standard, unlike uniform_real_distribution's, so one seed gives the same delays
// with libstdc++ and libc++. libstdc++ can round up to 1.0 (LWG 2524); clamp that away.
template <std::uniform_random_bit_generator Rng>
double uniform01(Rng& rng)
{
    double u = std::generate_canonical<double, 53>(rng);
    return u < 1.0 ? u : std::nextafter(1.0, 0.0);
}

// The default randomness: one generator per thread, seeded once from random_device, so shared
// policies need no lock.
inline double default_uniform01()
{
    thread_local std::mt19937_64 rng{std::random_device{}()};
    return uniform01(rng);
}

} // namespace pgcoro::detail

#endif // PGCORO_DETAIL_RESILIENCE_RANDOM_HPP
