// pgcoro/detail/pq_error.hpp - turning libpq's error reports into pgcoro::error.
#ifndef PGCORO_DETAIL_PQ_ERROR_HPP
#define PGCORO_DETAIL_PQ_ERROR_HPP

#include <pgcoro/error.hpp>

#include <libpq-fe.h>

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

// The connection-level error message (PQerrorMessage), as one line.
inline std::string conn_message(const PGconn* c)
{
    return c ? first_line(PQerrorMessage(c)) : std::string("no connection");
}

// A failed statement's error: SQLSTATE, severity and primary message (plus detail and hint
// after newlines). `lost` says the connection is gone, which changes the code.
inline error result_error(const PGresult* r, const PGconn* c)
{
    bool lost = c == nullptr || PQstatus(c) != CONNECTION_OK;
    if (!r)
        return error(lost ? errc::connection_lost : errc::query_failed, conn_message(c));
    const char* state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    const char* primary = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    std::string msg = primary ? primary : first_line(PQresultErrorMessage(r));
    if (const char* severity = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED))
        msg = std::string(severity) + ": " + msg;
    if (const char* detail = PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL))
        msg.append("\nDETAIL: ").append(detail);
    if (const char* hint = PQresultErrorField(r, PG_DIAG_MESSAGE_HINT))
        msg.append("\nHINT: ").append(hint);
    return error(lost ? errc::connection_lost : errc::query_failed, std::move(msg),
                 state ? sqlstate(state) : sqlstate());
}

} // namespace pgcoro::detail

#endif // PGCORO_DETAIL_PQ_ERROR_HPP
