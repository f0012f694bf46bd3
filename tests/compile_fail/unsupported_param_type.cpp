// A parameter of a type pgcoro cannot send must not compile, and the message must list the
// supported types and point at the extension trait.
#include <pgcoro/detail/param_pack.hpp>

struct point
{
    double x, y;
};

int main()
{
    std::string buf;
    return pgcoro::detail::encode_params(buf, point{1, 2}).has_value() ? 0 : 1;
}
