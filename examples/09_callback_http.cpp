// SPDX-License-Identifier: BSL-1.0
// 09_callback_http: pgcoro in a Boost.Beast HTTP server written with callbacks, no coroutine
// in the user's code.
//
// Shows: pool::async_acquire() and connection::async_query() with completion handlers (any
// Asio completion token works the same way), a lease kept alive by the handler chain, and
// pool::async_close(). The program serves GET /count on 127.0.0.1 (a free port), sends itself
// three requests with a callback-style Beast client, prints the answers and exits.
// Reads the server address from libpq's PGHOST / PGPORT / PGUSER / PGDATABASE.
#include <pgcoro.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <cstdlib>
#include <functional>
#include <iostream>
#include <memory>
#include <string>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

static std::string env_or(const char* name, const char* fallback)
{
    const char* v = std::getenv(name);
    return v && *v ? v : fallback;
}

// One HTTP exchange on the server side: read a request, acquire a connection, run a query,
// answer, close.
class session : public std::enable_shared_from_this<session>
{
public:
    session(tcp::socket s, pgcoro::pool& pool) : socket_(std::move(s)), pool_(pool) {}

    void start()
    {
        http::async_read(socket_, buffer_, request_,
                         [self = shared_from_this()](beast::error_code ec, std::size_t)
                         {
                             if (!ec)
                                 self->on_request();
                         });
    }

private:
    void on_request()
    {
        pool_.async_acquire(
            [self = shared_from_this()](pgcoro::expected<pgcoro::lease> conn)
            {
                if (!conn)
                    return self->reply(http::status::service_unavailable, conn.error().to_string());
                // The handler chain owns the lease; it goes back to the pool when released.
                auto held = std::make_shared<pgcoro::lease>(std::move(*conn));
                (*held)->async_query(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()",
                    [self, held](pgcoro::expected<pgcoro::result> rows)
                    {
                        held->release();
                        if (!rows)
                            return self->reply(http::status::internal_server_error,
                                               rows.error().to_string());
                        self->reply(http::status::ok,
                                    "sessions: " +
                                        std::to_string(rows->get<std::int64_t>(0, 0).value_or(-1)));
                    });
            });
    }

    void reply(http::status status, std::string body)
    {
        response_.result(status);
        response_.version(request_.version());
        response_.set(http::field::content_type, "text/plain");
        response_.body() = std::move(body);
        response_.prepare_payload();
        http::async_write(socket_, response_,
                          [self = shared_from_this()](beast::error_code, std::size_t)
                          {
                              beast::error_code ignored;
                              self->socket_.shutdown(tcp::socket::shutdown_send, ignored);
                          });
    }

    tcp::socket socket_;
    pgcoro::pool& pool_;
    beast::flat_buffer buffer_;
    http::request<http::string_body> request_;
    http::response<http::string_body> response_;
};

// The client side: GET /count, print the answer, then `next()`.
class client : public std::enable_shared_from_this<client>
{
public:
    client(asio::io_context& io, tcp::endpoint to, std::function<void(bool)> next)
        : socket_(io), to_(to), next_(std::move(next))
    {
    }

    void start()
    {
        request_ = {http::verb::get, "/count", 11};
        request_.set(http::field::host, "127.0.0.1");
        socket_.async_connect(to_,
                              [self = shared_from_this()](beast::error_code ec)
                              {
                                  if (ec)
                                      return self->next_(false);
                                  http::async_write(self->socket_, self->request_,
                                                    [self](beast::error_code ec2, std::size_t)
                                                    {
                                                        if (ec2)
                                                            return self->next_(false);
                                                        self->read();
                                                    });
                              });
    }

private:
    void read()
    {
        http::async_read(socket_, buffer_, response_,
                         [self = shared_from_this()](beast::error_code ec, std::size_t)
                         {
                             if (!ec)
                                 std::cout << self->response_.result_int() << " "
                                           << self->response_.body() << "\n";
                             self->next_(!ec && self->response_.result() == http::status::ok);
                         });
    }

    tcp::socket socket_;
    tcp::endpoint to_;
    std::function<void(bool)> next_;
    beast::flat_buffer buffer_;
    http::request<http::empty_body> request_;
    http::response<http::string_body> response_;
};

int main()
{
    pgcoro::connect_config cfg;
    cfg.hosts = {{env_or("PGHOST", "127.0.0.1"),
                  static_cast<std::uint16_t>(std::stoi(env_or("PGPORT", "5432")))}};
    cfg.user = env_or("PGUSER", "postgres");
    cfg.dbname = env_or("PGDATABASE", "postgres");
    cfg.application_name = "pgcoro_example_09";

    asio::io_context io;
    pgcoro::pool_config pcfg;
    pcfg.max_size = 2;
    pgcoro::pool pool(io.get_executor(), cfg, pcfg);

    tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
    std::function<void()> accept = [&]
    {
        acceptor.async_accept(
            [&](beast::error_code ec, tcp::socket s)
            {
                if (ec)
                    return;
                std::make_shared<session>(std::move(s), pool)->start();
                accept();
            });
    };
    accept();

    int left = 3;
    int failures = 0;
    std::function<void(bool)> next = [&](bool ok)
    {
        failures += ok ? 0 : 1;
        if (left-- > 0)
            return std::make_shared<client>(io, acceptor.local_endpoint(), next)->start();
        acceptor.close();
        pool.async_close(std::chrono::seconds(5), [] { std::cout << "pool closed\n"; });
    };
    next(true);
    io.run();
    return failures == 0 ? 0 : 1;
}
