// Must NOT compile: min_size above max_size, caught by static_assert(pgcoro::validate(...)).
// Expected diagnostic: "pgcoro: pool_config invalid: min_size must not exceed max_size".
#include <pgcoro/validate.hpp>

constexpr pgcoro::pool_config cfg{.min_size = 20, .max_size = 10};
static_assert(pgcoro::validate(cfg),
              "pgcoro: pool_config invalid: min_size must not exceed max_size");

int main()
{
    return 0;
}
