// Reading a field as a type without value_traits must not compile, with the supported list.
#include <pgcoro/result.hpp>

struct point
{
    double x, y;
};

int main()
{
    pgcoro::result r;
    return r[0][0].get<point>().has_value() ? 0 : 1;
}
