// Issue 19: *_PASSWORD_FILE secrets. A FIFO must not hang start-up, NUL bytes and second lines
// are refused, errors carry the OS reason and name the variable, and a file others may read
// is accepted with a warning (as libpq warns about .pgpass).
#include <pgcoro/detail/secret_file.hpp>
#include <pgcoro/settings.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <future>
#include <string>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

using namespace std::chrono_literals;

namespace
{
std::string temp_path(const char* name)
{
    std::string p = ::testing::TempDir() + "pgcoro_secret_file_" + name;
    std::remove(p.c_str());
    return p;
}

std::string write_file(const char* name, const std::string& content, mode_t mode = 0600)
{
    std::string p = temp_path(name);
    std::ofstream(p, std::ios::binary) << content;
    ::chmod(p.c_str(), mode);
    return p;
}

tl::expected<pgcoro::settings, pgcoro::config_errors> from_file(const std::string& path)
{
    return pgcoro::settings_from_env(pgcoro::env_from_map(
        {{"DATABASE_URL", "postgres://u@h/db"}, {"PGCORO_PASSWORD_FILE", path}}));
}

bool contains(const std::string& text, const std::string& part)
{
    return text.find(part) != std::string::npos;
}
} // namespace

TEST(SecretFile_Fifo, RefusedWithoutHanging)
{
    // Setup: a FIFO nobody writes to. A blocking open would wait for a writer forever.
    std::string fifo = temp_path("fifo");
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    // Act: read it on another thread, so a hang is a failure rather than a stuck test.
    auto result = std::async(std::launch::async, [&] { return from_file(fifo); });
    if (result.wait_for(10s) != std::future_status::ready)
    {
        // Unblock the reader (open for writing, then close: it reads EOF) and fail.
        int w = ::open(fifo.c_str(), O_WRONLY);
        ::close(w);
        result.wait();
        std::remove(fifo.c_str());
        FAIL() << "settings_from_env() hung on a FIFO";
    }
    auto s = result.get();
    // Check: an error naming the variable and the kind of file.
    ASSERT_FALSE(s);
    std::string msg = s.error().to_string();
    EXPECT_TRUE(contains(msg, "env PGCORO_PASSWORD_FILE")) << msg;
    EXPECT_TRUE(contains(msg, "is a FIFO, not a regular file")) << msg;
    std::remove(fifo.c_str());
}

TEST(SecretFile_Content, NulBytesAndSecondLinesRefused)
{
    std::string nul = write_file("nul", std::string("PWHEAD\0PWTAIL\n", 14));
    auto s = from_file(nul);
    ASSERT_FALSE(s);
    std::string msg = s.error().to_string();
    EXPECT_TRUE(contains(msg, "contains a NUL byte")) << msg;
    EXPECT_FALSE(contains(msg, "PWHEAD")) << msg;

    // /proc/self/environ is a regular file of NUL-separated variables: no password.
    s = from_file("/proc/self/environ");
    ASSERT_FALSE(s);
    EXPECT_TRUE(contains(s.error().to_string(), "NUL byte")) << s.error();

    for (const char* content : {"PWLINE1\nPWLINE2\n", "PWLINE1\n\n", "PWLINE1\rPWLINE2"})
    {
        std::string multi = write_file("multi", content);
        s = from_file(multi);
        ASSERT_FALSE(s) << content;
        msg = s.error().to_string();
        EXPECT_TRUE(contains(msg, "more than one line")) << msg;
        EXPECT_FALSE(contains(msg, "PWLINE")) << msg;
        std::remove(multi.c_str());
    }
    // One trailing newline, LF or CRLF, is fine.
    for (const char* content : {"pw-one\n", "pw-one\r\n", "pw-one"})
    {
        std::string one = write_file("one", content);
        s = from_file(one);
        ASSERT_TRUE(s) << s.error();
        EXPECT_EQ(s->connect.password.reveal(), "pw-one");
        EXPECT_TRUE(s->warnings.empty());
        std::remove(one.c_str());
    }
    std::remove(nul.c_str());
}

TEST(SecretFile_Errors, CarryTheOsReasonAndTheVariable)
{
    auto s = pgcoro::settings_from_env(
        pgcoro::env_from_map({{"DATABASE_PASSWORD_FILE", "/nonexistent/pgcoro/pw"}}));
    ASSERT_FALSE(s);
    EXPECT_TRUE(contains(s.error().to_string(),
                         "env DATABASE_PASSWORD_FILE (connect.password) = "
                         "\"/nonexistent/pgcoro/pw\": the file cannot be opened: No such file "
                         "or directory"))
        << s.error();
    s = from_file(::testing::TempDir());
    ASSERT_FALSE(s);
    EXPECT_TRUE(contains(s.error().to_string(), "is a directory")) << s.error();
}

TEST(SecretFile_Permissions, GroupOrWorldAccessIsAWarning)
{
    std::string open_file = write_file("open", "pw-open\n", 0644);
    auto s = from_file(open_file);
    ASSERT_TRUE(s) << s.error();
    EXPECT_EQ(s->connect.password.reveal(), "pw-open");
    ASSERT_EQ(s->warnings.size(), 1u);
    EXPECT_TRUE(contains(s->warnings[0], "env PGCORO_PASSWORD_FILE: the file " + open_file +
                                             " is accessible by group or others (mode 0644)"))
        << s->warnings[0];
    ::chmod(open_file.c_str(), 0600);
    s = from_file(open_file);
    ASSERT_TRUE(s) << s.error();
    EXPECT_TRUE(s->warnings.empty());
    std::remove(open_file.c_str());
}

TEST(SecretFile_Reader, LimitAndEmpty)
{
    std::string big = write_file("big", std::string(64 * 1024 + 1, 'x'));
    auto r = pgcoro::detail::read_secret_file(big);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), "is larger than 64 KiB");
    std::string empty = write_file("empty", "\n");
    r = pgcoro::detail::read_secret_file(empty);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), "is empty");
    std::remove(big.c_str());
    std::remove(empty.c_str());
}
