// Must NOT compile: validation_timeout not below acquire_timeout, caught by pgcoro::checked().
// Expected diagnostic names the rule:
// "pgcoro_config_error_validation_timeout_not_below_acquire_timeout".
#include <pgcoro/validate.hpp>

using namespace std::chrono_literals;
constexpr auto cfg =
    pgcoro::checked(pgcoro::pool_config{.acquire_timeout = 1s, .validation_timeout = 2s});

int main()
{
    return 0;
}
