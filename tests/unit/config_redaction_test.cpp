// Scans every error message and every printed config produced from inputs that carry the test
// password, in every place a password can hide, and fails if the password appears anywhere.
#include <pgcoro/database_url.hpp>
#include <pgcoro/settings.hpp>

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace
{
constexpr const char* password = "S3cr3t-Pa55w0rd";
constexpr const char* encoded = "S3cr3t%2DPa55w0rd"; // the same, percent-encoded

void expect_clean(const std::string& text, const std::string& context)
{
    EXPECT_EQ(text.find(password), std::string::npos) << context << "\n---\n" << text;
    EXPECT_EQ(text.find(encoded), std::string::npos) << context << "\n---\n" << text;
}

// URLs and conninfo strings with the password, each valid or broken in some other place.
std::vector<std::string> urls()
{
    std::string p = password, e = encoded;
    return {
        "postgres://u:" + p + "@h/db",
        "postgres://u:" + e + "@h/db",
        "postgres://u:" + p + "@h/db?connection_limit=abc",
        "postgres://u:" + p + "@h:notaport/db",
        "postgres://u:" + p + "@[::1/db",
        "postgres://u:" + p + "@h/db?bogus=1&password=" + p,
        "postgres://u:" + p + "@h/db?password=" + p + "=x",
        "postgres://u:" + p + "%zz@h/db",
        "postgres://u:" + p + "/with/slash@h/db",
        "postgres://u:" + p + "@h/db?password=" + e + "%",
        "mysql://u:" + p + "@h/db",
        "u:" + p + "@h/db",
        "host=h password=" + p + " bogus=1",
        "host=h password='" + p,
        "host=h password " + p,
        "host=h port=x password='" + p + "'",
    };
}
} // namespace

TEST(Redaction_Scan, UrlParserAndRedactor)
{
    for (const auto& url : urls())
    {
        expect_clean(pgcoro::redact_url(url), "redact_url " + url);
        auto r = pgcoro::parse_database_url(url);
        if (!r)
        {
            std::ostringstream os;
            os << r.error();
            expect_clean(os.str(), "parse error of " + url);
            expect_clean(r.error().to_error().to_string(), "as pgcoro::error " + url);
            for (const auto& e : r.error().items)
            {
                std::ostringstream one;
                one << e;
                expect_clean(one.str(), "config_error of " + url);
            }
        }
        else
        {
            expect_clean(pgcoro::to_url(r->connect), "to_url of " + url);
            std::ostringstream os;
            os << r->connect.password;
            expect_clean(os.str(), "secret streamed");
            expect_clean(pgcoro::to_string(r->connect.password), "secret to_string");
        }
    }
}

TEST(Redaction_Scan, SettingsFromEnv)
{
    std::string file = ::testing::TempDir() + "pgcoro_redaction_pw";
    std::ofstream(file) << password << "\n";
    for (const auto& url : urls())
        for (const char* var : {"DATABASE_URL", "DIRECT_DATABASE_URL"})
            for (bool with_file : {false, true})
            {
                std::map<std::string, std::string, std::less<>> env{
                    {var, url}, {"PGCORO_POOL_MIN_SIZE", "99"}, {"PGCORO_SSLMODE", "x"}};
                if (with_file)
                    env["PGCORO_PASSWORD_FILE"] = file;
                auto s = pgcoro::settings_from_env(pgcoro::env_from_map(env));
                ASSERT_FALSE(s); // min_size and sslmode are always wrong
                expect_clean(s.error().to_string(), std::string(var) + "=" + url);
                env.erase("PGCORO_POOL_MIN_SIZE");
                env.erase("PGCORO_SSLMODE");
                s = pgcoro::settings_from_env(pgcoro::env_from_map(env));
                if (s)
                {
                    std::ostringstream os;
                    os << *s;
                    expect_clean(os.str(), "printed settings from " + url);
                }
                else
                    expect_clean(s.error().to_string(), std::string(var) + "=" + url);
            }
    // A password set in code never shows either.
    pgcoro::settings_overrides code;
    code.password = pgcoro::secret(password);
    code.max_size = 0;
    auto s = pgcoro::settings_from_env(pgcoro::env_from_map({}), code);
    ASSERT_FALSE(s);
    expect_clean(s.error().to_string(), "code password");
    code.max_size = 3;
    s = pgcoro::settings_from_env(pgcoro::env_from_map({}), code);
    ASSERT_TRUE(s);
    expect_clean(s->to_string(), "code password, printed");
    std::remove(file.c_str());
}
