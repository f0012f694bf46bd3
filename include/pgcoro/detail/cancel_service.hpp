// pgcoro/detail/cancel_service.hpp - PQcancel off the event loop.
#ifndef PGCORO_DETAIL_CANCEL_SERVICE_HPP
#define PGCORO_DETAIL_CANCEL_SERVICE_HPP

#include <pgcoro/detail/pq_handles.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>

#include <libpq-fe.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

namespace pgcoro::detail
{

// PG 15's PQcancel blocks: it opens a new connection to the server, sends CancelRequest and
// waits for the server to close it (that wait is what keeps a late cancel from hitting the
// *next* statement). The public API offers nothing non-blocking before PG 17, and the secret
// key needed to send CancelRequest ourselves is only reachable through libpq-int.h (ABI-fragile).
// So the blocking call runs on one helper thread owned by this service, one per io_context.
//
// Completion is signalled through a steady_timer that the waiter owns jointly with the job:
// the timer expires at the cancel deadline; the job cancel()s it when PQcancel returns. The
// waiter checks `done` before waiting, so a job that finished first is never missed (the flag
// is written on the waiter's executor, which a connection requires to be serialised).
struct cancel_signal
{
    explicit cancel_signal(const boost::asio::any_io_executor& ex) : timer(ex) {}
    boost::asio::steady_timer timer;
    std::atomic<bool> done{false};
    bool dispatched = false; // PQcancel's return value
    std::string message;     // PQcancel's error text when not dispatched
};

class cancel_service : public boost::asio::execution_context::service
{
public:
    using key_type = cancel_service;
    inline static boost::asio::execution_context::id id;

    explicit cancel_service(boost::asio::execution_context& ctx)
        : boost::asio::execution_context::service(ctx)
    {
    }

    // Runs PQcancel(c) on the helper thread; completion is reported through `sig` on `ex`.
    void start(pgcancel_ptr c, std::shared_ptr<cancel_signal> sig, boost::asio::any_io_executor ex)
    {
        boost::asio::post(threads_,
                          [c = std::move(c), sig = std::move(sig), ex]() mutable
                          {
                              char buf[256] = {};
                              bool ok = PQcancel(c.get(), buf, sizeof buf) == 1;
                              c.reset();
                              boost::asio::post(
                                  ex,
                                  [sig = std::move(sig), ok, msg = std::string(buf)]() mutable
                                  {
                                      sig->dispatched = ok;
                                      sig->message = std::move(msg);
                                      sig->done = true;
                                      sig->timer.cancel();
                                  });
                          });
    }

private:
    void shutdown() override
    {
        // Let a running PQcancel finish (bounded by the loopback/TCP connect) before the
        // io_context's own services go away, so no completion is posted into a dead context.
        threads_.join();
    }

    boost::asio::thread_pool threads_{1};
};

} // namespace pgcoro::detail

#endif // PGCORO_DETAIL_CANCEL_SERVICE_HPP
