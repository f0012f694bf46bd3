// SPDX-License-Identifier: BSL-1.0
// pgcoro/detail/pq_socket.hpp - readiness waits on our dup of libpq's socket, plus the one wait
// Asio's stream_descriptor lacks: "wait for the response to a request just sent" without the
// epoll_ctl() system call every stream_descriptor::async_wait() makes.
#ifndef PGCORO_DETAIL_PQ_SOCKET_HPP
#define PGCORO_DETAIL_PQ_SOCKET_HPP

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/execution/context.hpp>
#include <boost/asio/posix/descriptor_base.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/query.hpp>
#include <boost/system/error_code.hpp>
#include <boost/version.hpp>

#include <unistd.h>
#include <utility>

// The reactor-level path is written against Boost 1.81's epoll_reactor interface (its public
// start_op/cancel_ops/register_descriptor members and its per-descriptor "try speculative"
// flag); other versions and reactors use the stream_descriptor path, which is correct everywhere
// and costs one epoll_ctl() per wait. Which one a socket takes is decided at run time
// (edge_wait_enabled(): the environment variable PGCORO_NO_EDGE_WAIT=1 forces the portable
// path), never by a macro, so every translation unit sees the same class.
#if defined(BOOST_ASIO_HAS_EPOLL) && !defined(BOOST_ASIO_HAS_IO_URING_AS_DEFAULT) &&               \
    BOOST_VERSION >= 108100 && BOOST_VERSION < 108200
#define PGCORO_DETAIL_EDGE_WAIT 1
#include <boost/asio/detail/bind_handler.hpp>
#include <boost/asio/detail/fenced_block.hpp>
#include <boost/asio/detail/handler_alloc_helpers.hpp>
#include <boost/asio/detail/handler_cont_helpers.hpp>
#include <boost/asio/detail/handler_work.hpp>
#include <boost/asio/detail/memory.hpp>
#include <boost/asio/detail/reactor.hpp>
#include <boost/asio/detail/reactor_op.hpp>
#else
#define PGCORO_DETAIL_EDGE_WAIT 0
#endif

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace pgcoro::detail
{

namespace asio = boost::asio;

// Whether sockets created from now on use the edge-triggered response wait (where this Boost
// has it). On unless the environment says PGCORO_NO_EDGE_WAIT=1 (read once); tests switch it.
inline std::atomic<bool>& edge_wait_enabled() noexcept
{
    static std::atomic<bool> on = []
    {
        const char* v = std::getenv("PGCORO_NO_EDGE_WAIT");
        return !(v && std::strcmp(v, "1") == 0);
    }();
    return on;
}

#if PGCORO_DETAIL_EDGE_WAIT

// A readiness wait, queued on the reactor like stream_descriptor's. `edge`: it reports the
// socket as drained when it completes (see pq_socket::async_wait_response).
template <class Handler, class IoExecutor>
class pq_wait_op : public asio::detail::reactor_op
{
public:
    BOOST_ASIO_DEFINE_HANDLER_PTR(pq_wait_op);

    pq_wait_op(bool edge, Handler& h, const IoExecutor& io_ex)
        : reactor_op(boost::system::error_code(), edge ? &perform_edge : &perform_level,
                     &pq_wait_op::do_complete),
          handler_(std::move(h)), work_(handler_, io_ex)
    {
    }

    static status perform_level(reactor_op*) { return done; }
    static status perform_edge(reactor_op*) { return done_and_exhausted; }

    static void do_complete(void* owner, asio::detail::operation* base,
                            const boost::system::error_code&, std::size_t)
    {
        // As Asio's reactive_wait_op: free the op before the upcall, through a local copy.
        auto* o = static_cast<pq_wait_op*>(base);
        ptr p = {asio::detail::addressof(o->handler_), o, o};
        asio::detail::handler_work<Handler, IoExecutor> w(std::move(o->work_));
        asio::detail::binder1<Handler, boost::system::error_code> handler(o->handler_, o->ec_);
        p.h = asio::detail::addressof(handler.handler_);
        p.reset();
        if (owner)
        {
            asio::detail::fenced_block b(asio::detail::fenced_block::half);
            w.complete(handler, handler.handler_);
        }
    }

private:
    Handler handler_;
    asio::detail::handler_work<Handler, IoExecutor> work_;
};

#endif

// Waits for readiness of one descriptor we own (a dup of PQsocket(): closing it never touches an
// fd number libpq closed and the process reused). Same rules as stream_descriptor: one object
// per socket, operations from any thread that the caller serialises.
class pq_socket
{
public:
    using executor_type = asio::any_io_executor;
    using wait_type = asio::posix::descriptor_base::wait_type;
    static constexpr wait_type wait_read = asio::posix::descriptor_base::wait_read;
    static constexpr wait_type wait_write = asio::posix::descriptor_base::wait_write;

    explicit pq_socket(const executor_type& ex) : ex_(ex), sd_(ex)
    {
#if PGCORO_DETAIL_EDGE_WAIT
        if (edge_wait_enabled().load(std::memory_order_relaxed))
        {
            reactor_ = &asio::use_service<asio::detail::reactor>(
                asio::query(ex, asio::execution::context));
            reactor_->init_task(); // as Asio's reactive services do: the scheduler runs it
        }
#endif
    }
    pq_socket(const pq_socket&) = delete;
    pq_socket& operator=(const pq_socket&) = delete;
    ~pq_socket()
    {
        boost::system::error_code ignored;
        close(ignored);
    }

    /// Whether this socket uses the edge-triggered response wait.
    bool edge() const noexcept
    {
#if PGCORO_DETAIL_EDGE_WAIT
        return reactor_ != nullptr;
#else
        return false;
#endif
    }

    const executor_type& get_executor() const noexcept
    {
        return ex_;
    }

    /// Takes ownership of `fd` (closed by close() and the destructor).
    void assign(int fd, boost::system::error_code& ec)
    {
#if PGCORO_DETAIL_EDGE_WAIT
        if (reactor_)
        {
            if (fd_ >= 0)
            {
                ec = asio::error::already_open;
                return;
            }
            if (int err = reactor_->register_descriptor(fd, data_))
            {
                ec.assign(err, boost::system::system_category());
                return;
            }
            fd_ = fd;
            ec = {};
            return;
        }
#endif
        sd_.assign(fd, ec);
    }

    bool is_open() const noexcept
    {
#if PGCORO_DETAIL_EDGE_WAIT
        if (reactor_)
            return fd_ >= 0;
#endif
        return sd_.is_open();
    }

    /// Ends the pending waits with operation_aborted and closes the descriptor.
    void close(boost::system::error_code& ec) noexcept
    {
        ec = {};
#if PGCORO_DETAIL_EDGE_WAIT
        if (reactor_)
        {
            if (fd_ < 0)
                return;
            // closing = false: the fd is a dup, so close() would not take the file out of the
            // epoll set while libpq's own fd keeps it open; the reactor must remove it itself.
            reactor_->deregister_descriptor(fd_, data_, false);
            if (::close(fd_) != 0)
                ec.assign(errno, boost::system::system_category());
            fd_ = -1;
            reactor_->cleanup_descriptor_data(data_);
            return;
        }
#endif
        sd_.close(ec);
    }

    /// Ends the pending waits with operation_aborted.
    void cancel() noexcept
    {
#if PGCORO_DETAIL_EDGE_WAIT
        if (reactor_)
        {
            if (fd_ >= 0)
                reactor_->cancel_ops(fd_, data_);
            return;
        }
#endif
        boost::system::error_code ignored;
        sd_.cancel(ignored);
    }

    /// Waits until the socket is readable (wait_read) or writable (wait_write), like
    /// stream_descriptor::async_wait: it completes at once when it already is. Signature
    /// void(error_code); per-operation cancellation (terminal, partial, total) is supported.
    template <class Token>
    auto async_wait(wait_type w, Token&& token)
    {
        return asio::async_initiate<Token, void(boost::system::error_code)>(initiate{this}, token,
                                                                            wait_type(w), false);
    }

    /// Waits for the response to a request sent just before: until data arrives, without the
    /// epoll_ctl() of async_wait when the previous response wait found the socket drained. It
    /// may also complete at once (the socket had an event since then), so the caller reads
    /// and, if the response is still incomplete, goes on with async_wait(wait_read) - which is
    /// also the only correct way to wait for data that may already be there. Why it is safe:
    /// the descriptor is registered edge-triggered, a response arriving after the request was
    /// sent is an edge, and any edge since the last response wait makes this complete at once.
    template <class Token>
    auto async_wait_response(Token&& token)
    {
        return asio::async_initiate<Token, void(boost::system::error_code)>(
            initiate{this}, token, wait_type::wait_read, true);
    }

private:
#if PGCORO_DETAIL_EDGE_WAIT
    using reactor = asio::detail::reactor;

    // Per-operation cancellation, as Asio's reactor_op_cancellation.
    struct cancellation
    {
        cancellation(reactor* re, reactor::per_descriptor_data* d, int f, int t) noexcept
            : r(re), data(d), fd(f), op_type(t)
        {
        }
        reactor* r;
        reactor::per_descriptor_data* data;
        int fd;
        int op_type;
        void operator()(asio::cancellation_type_t type)
        {
            if (!!(type & (asio::cancellation_type::terminal | asio::cancellation_type::partial |
                           asio::cancellation_type::total)))
                r->cancel_ops_by_key(fd, *data, op_type, this);
        }
    };
#endif

    struct initiate
    {
        pq_socket* self;
        using executor_type = pq_socket::executor_type;
        const executor_type& get_executor() const noexcept { return self->ex_; }

        template <class Handler>
        void operator()(Handler&& handler, wait_type w, bool edge) const
        {
#if PGCORO_DETAIL_EDGE_WAIT
            if (!self->reactor_)
            {
                self->sd_.async_wait(w, std::forward<Handler>(handler));
                return;
            }
            using h_type = std::decay_t<Handler>;
            using op = pq_wait_op<h_type, executor_type>;
            h_type& h = handler;
            const bool is_continuation = boost_asio_handler_cont_helpers::is_continuation(h);
            auto slot = asio::get_associated_cancellation_slot(h);
            typename op::ptr p = {asio::detail::addressof(h), op::ptr::allocate(h), nullptr};
            p.p = new (p.v) op(edge, h, self->ex_);
            const int op_type = w == wait_type::wait_write   ? reactor::write_op
                                : w == wait_type::wait_error ? reactor::except_op
                                                             : reactor::read_op;
            if (slot.is_connected())
                p.p->cancellation_key_ = &slot.template emplace<cancellation>(
                    self->reactor_, &self->data_, self->fd_, op_type);
            // A closed socket: the reactor completes the op with bad_descriptor (data_ null).
            self->reactor_->start_op(op_type, self->fd_, self->data_, p.p, is_continuation, edge);
            p.v = p.p = nullptr;
#else
            (void)edge;
            self->sd_.async_wait(w, std::forward<Handler>(handler));
#endif
        }
    };

    executor_type ex_;
    asio::posix::stream_descriptor sd_; // the portable path
#if PGCORO_DETAIL_EDGE_WAIT
    reactor* reactor_ = nullptr; // the edge path, when enabled at construction
    int fd_ = -1;
    reactor::per_descriptor_data data_ = nullptr;
#endif
};

} // namespace pgcoro::detail

#endif // PGCORO_DETAIL_PQ_SOCKET_HPP
