// SPDX-License-Identifier: BSL-1.0
// pgcoro/detail/secret_file.hpp - reading a password from a file (*_PASSWORD_FILE: Docker and
// Kubernetes secrets) without hanging, and refusing what libpq would silently misuse.
#ifndef PGCORO_DETAIL_SECRET_FILE_HPP
#define PGCORO_DETAIL_SECRET_FILE_HPP

#include <tl/expected.hpp>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace pgcoro::detail
{

// The password a file holds, and what is worth a warning about the file.
struct secret_file_content
{
    std::string value;
    std::vector<std::string> warnings;
};

// "the file cannot be opened: No such file or directory". strerror() text is what an operator
// needs to fix a mount; strerror is not thread-safe in theory, strerror_r's two flavours make
// it awkward, and this runs once at start-up.
inline std::string os_failure(const char* what, int err)
{
    return std::string(what) + ": " + std::strerror(err);
}

// What kind of non-regular file `mode` is, for the error message.
inline const char* file_kind(mode_t mode) noexcept
{
    if (S_ISFIFO(mode))
        return "a FIFO";
    if (S_ISDIR(mode))
        return "a directory";
    if (S_ISCHR(mode) || S_ISBLK(mode))
        return "a device";
    if (S_ISSOCK(mode))
        return "a socket";
    return "not a regular file";
}

// Reads a secret from `path`: at most 64 KiB, one trailing newline (LF or CRLF) removed.
// - The open is non-blocking and only regular files are read, so a FIFO (or a device) with no
//   writer cannot hang start-up: it is refused after fstat().
// - A NUL byte is refused (libpq would silently use the part before it; /proc/self/environ
//   is a regular file full of them), and so is a second line (a file that is not a password).
// - A file that group or others may read or write is accepted with a warning, as libpq warns
//   about such a .pgpass (libpq then ignores it; a Kubernetes secret is 0644 by default).
// Errors say what is wrong with the OS reason; they never contain the file's content.
inline tl::expected<secret_file_content, std::string> read_secret_file(const std::string& path)
{
    struct fd_guard
    {
        int fd;
        ~fd_guard()
        {
            if (fd >= 0)
                ::close(fd);
        }
    } f{::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)};
    if (f.fd < 0)
        return tl::unexpected(os_failure("cannot be opened", errno));
    struct stat st
    {
    };
    if (::fstat(f.fd, &st) != 0)
        return tl::unexpected(os_failure("cannot be examined", errno));
    if (!S_ISREG(st.st_mode))
        return tl::unexpected(std::string("is ") + file_kind(st.st_mode) +
                              ", not a regular file holding the password");
    constexpr std::size_t limit = 64 * 1024;
    std::string data;
    char buf[4096];
    while (data.size() <= limit)
    {
        ssize_t n = ::read(f.fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return tl::unexpected(os_failure("cannot be read", errno));
        if (n == 0)
            break;
        data.append(buf, static_cast<std::size_t>(n));
    }
    if (data.size() > limit)
        return tl::unexpected(std::string("is larger than 64 KiB"));
    if (data.find('\0') != std::string::npos)
        return tl::unexpected(std::string("contains a NUL byte (libpq would use only the part "
                                          "before it): not a password file"));
    if (!data.empty() && data.back() == '\n')
        data.pop_back();
    if (!data.empty() && data.back() == '\r')
        data.pop_back();
    if (data.find_first_of("\r\n") != std::string::npos)
        return tl::unexpected(std::string("holds more than one line (only one trailing newline "
                                          "is allowed)"));
    if (data.empty())
        return tl::unexpected(std::string("is empty"));
    secret_file_content out{std::move(data), {}};
    if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0)
    {
        char mode[8];
        std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
        out.warnings.push_back(std::string("is accessible by group or others (mode ") + mode +
                               "); permissions should be u=rw (0600) or less, as libpq asks "
                               "of .pgpass");
    }
    return out;
}

} // namespace pgcoro::detail

#endif // PGCORO_DETAIL_SECRET_FILE_HPP
