// Control for the compile-fail tests: a valid constexpr config compiles, so a failure of the
// invalid ones is caused by validation and not by the harness.
#include <pgcoro/validate.hpp>

constexpr pgcoro::pool_config cfg =
    pgcoro::checked(pgcoro::pool_config{.min_size = 2, .max_size = 8});
static_assert(pgcoro::validate(cfg), "pgcoro: pool_config invalid");
static_assert(pgcoro::validate(pgcoro::pool_preset(pgcoro::profile::production),
                               pgcoro::connect_preset_for(pgcoro::profile::production)));

int main()
{
    return 0;
}
