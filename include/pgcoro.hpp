// pgcoro.hpp - everything pgcoro offers, in one include.
#ifndef PGCORO_HPP
#define PGCORO_HPP

#include <pgcoro/connect_config.hpp>
#include <pgcoro/connection.hpp>
#include <pgcoro/error.hpp>
#include <pgcoro/result.hpp>
#include <pgcoro/secret.hpp>

#endif // PGCORO_HPP
