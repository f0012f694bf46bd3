// The consumer's checks, one TU each (queries.cpp, streams.cpp); main.cpp runs them.
#pragma once

#include <pgcoro/pool.hpp>

#include <boost/asio/awaitable.hpp>

#ifndef PGCORO_SEPARATE_COMPILATION
#error "pgcoro::pgcoro must carry PGCORO_SEPARATE_COMPILATION"
#endif

// query, query with options, query_one, query_opt, runtime params, prepare + execute.
boost::asio::awaitable<bool> check_queries(pgcoro::pool& pool);
// stream (next, next_as), COPY in and out.
boost::asio::awaitable<bool> check_streams(pgcoro::pool& pool);
