// SPDX-License-Identifier: BSL-1.0
// pgcoro/detail/pq_error.hpp - turning libpq's error reports into pgcoro::error.
#ifndef PGCORO_DETAIL_PQ_ERROR_HPP
#define PGCORO_DETAIL_PQ_ERROR_HPP

#include <pgcoro/error.hpp>

#include <libpq-fe.h>

#include <cstddef>
#include <string>
#include <string_view>

namespace pgcoro::detail
{

// libpq messages end in newlines and, in VERBOSE mode, carry "LOCATION:" lines; keep the
// first line, which is what users need in a log.
inline std::string first_line(std::string_view s)
{
    while (!s.empty() && (s.back() == '\n' || s.back() == ' '))
        s.remove_suffix(1);
    if (auto nl = s.find('\n'); nl != std::string_view::npos)
        s = s.substr(0, nl);
    return std::string(s);
}

// A connect failure has no PGresult, so its SQLSTATE is only in the text. The connection is
// put in VERBOSE mode during connect, which formats server errors as "FATAL:  28P01: ...".
inline sqlstate sqlstate_from_verbose_text(std::string_view msg)
{
    for (std::string_view sev : {"FATAL:  ", "ERROR:  ", "PANIC:  "})
    {
        auto p = msg.find(sev);
        if (p == std::string_view::npos)
            continue;
        auto code = msg.substr(p + sev.size(), 6);
        if (code.size() == 6 && code[5] == ':')
            return sqlstate(code.substr(0, 5));
    }
    return {};
}

// Whether a connect failure's text is TLS refusing to go on: a server certificate that does
// not verify (unknown CA, expired), a host name it does not carry, a missing or unreadable
// root certificate or client key, a server without TLS although sslmode requires it, or the
// server's alert rejecting our certificate. These do not heal by themselves (errc::tls_failed).
// TLS I/O errors ("SSL SYSCALL error", an EOF mid-handshake) are network failures, not these.
inline bool is_tls_rejection(std::string_view msg) noexcept
{
    for (std::string_view needle :
         {"certificate verify failed", "does not match host name", "root certificate file",
          "server does not support SSL", "from server certificate", "certificate file",
          "private key file", "alert unknown ca", "alert bad certificate", "alert certificate",
          "alert handshake failure", "alert protocol version", "unsupported protocol",
          "no protocols available"})
        if (msg.find(needle) != std::string_view::npos)
            return true;
    return false;
}

// Server texts can quote a whole parameter ("invalid input syntax for type integer: "xxx..."):
// an error message keeps at most this many bytes of any one field, so it stays fit for a log.
inline constexpr std::size_t max_error_field_bytes = 4096;

// `s`, cut to `max_error_field_bytes` on a UTF-8 character boundary, saying how much was cut.
inline std::string bounded_field(std::string_view s)
{
    if (s.size() <= max_error_field_bytes)
        return std::string(s);
    std::size_t keep = max_error_field_bytes;
    while (keep > 0 && (static_cast<unsigned char>(s[keep]) & 0xC0) == 0x80)
        --keep; // do not split a multi-byte character
    std::string out(s.substr(0, keep));
    out += "... (" + std::to_string(s.size() - keep) + " more bytes)";
    return out;
}

// The connection-level error message (PQerrorMessage), as one line.
inline std::string conn_message(const PGconn* c)
{
    return c ? bounded_field(first_line(PQerrorMessage(c))) : std::string("no connection");
}

// A failed statement's error: SQLSTATE, severity and primary message (plus detail and hint
// after newlines). The code is connection_lost when the connection is gone or the error is
// FATAL/PANIC (the server ends the session after sending it, e.g. 57P01), else query_failed.
inline error result_error(const PGresult* r, const PGconn* c)
{
    bool lost = c == nullptr || PQstatus(c) != CONNECTION_OK;
    if (!r)
        return error(lost ? errc::connection_lost : errc::query_failed, conn_message(c));
    if (const char* sev = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED))
        lost = lost || std::string_view(sev) == "FATAL" || std::string_view(sev) == "PANIC";
    const char* state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    const char* primary = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    std::string msg = bounded_field(primary ? primary : first_line(PQresultErrorMessage(r)));
    if (const char* severity = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED))
        msg = std::string(severity) + ": " + msg;
    if (const char* detail = PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL))
        msg.append("\nDETAIL: ").append(bounded_field(detail));
    if (const char* hint = PQresultErrorField(r, PG_DIAG_MESSAGE_HINT))
        msg.append("\nHINT: ").append(bounded_field(hint));
    return error(lost ? errc::connection_lost : errc::query_failed, std::move(msg),
                 state ? sqlstate(state) : sqlstate());
}

} // namespace pgcoro::detail

#endif // PGCORO_DETAIL_PQ_ERROR_HPP
