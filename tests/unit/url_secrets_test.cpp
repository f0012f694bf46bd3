// Issue 19, "Secrets": no error message or redacted text carries a password, the value of an
// unknown (maybe misspelled) key, or a fragment of a value split at '&', '=' or a space; and
// user-info is split as libpq splits it, checked against PQconninfoParse on this machine.
#include <pgcoro/database_url.hpp>

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <map>
#include <memory>
#include <random>
#include <string>

namespace
{
std::string parse_err(const std::string& url)
{
    auto r = pgcoro::parse_database_url(url);
    return r ? std::string("(parsed)") : r.error().to_string();
}

bool contains(const std::string& text, const std::string& part)
{
    return text.find(part) != std::string::npos;
}

// What libpq itself reads from `conninfo`: keyword -> value, or nullopt when it refuses it.
std::optional<std::map<std::string, std::string>> libpq_parse(const std::string& conninfo)
{
    char* err = nullptr;
    std::unique_ptr<PQconninfoOption, decltype(&PQconninfoFree)> opts(
        PQconninfoParse(conninfo.c_str(), &err), &PQconninfoFree);
    if (err)
        PQfreemem(err);
    if (!opts)
        return std::nullopt;
    std::map<std::string, std::string> out;
    for (const PQconninfoOption* o = opts.get(); o->keyword; ++o)
        if (o->val)
            out[o->keyword] = o->val;
    return out;
}
} // namespace

TEST(UrlSecrets_UnknownKey, NamesOnlyTheKey)
{
    // A misspelled password key is named, as libpq names it; its value never shows.
    for (const char* key : {"pasword", "passwd", "Password", "sslpasword", "%70asword"})
    {
        std::string msg = parse_err(std::string("postgres://u@h/db?") + key + "=SECRETVALUE");
        EXPECT_FALSE(contains(msg, "SECRETVALUE")) << msg;
        EXPECT_TRUE(contains(msg, "unknown parameter")) << msg;
    }
    EXPECT_TRUE(contains(parse_err("postgres://h/db?pasword=SECRETVALUE"),
                         "parameter pasword = \"(not shown)\": unknown parameter"));
    std::string msg = parse_err("host=h pasword=SECRETVALUE");
    EXPECT_FALSE(contains(msg, "SECRETVALUE")) << msg;
    EXPECT_TRUE(contains(msg, "parameter pasword")) << msg;
}

TEST(UrlSecrets_PercentEncodedKey, DecodesAsLibpqDoes)
{
    // libpq decodes keys: pass%77ord is the password, and it is treated as one.
    auto r = pgcoro::parse_database_url("postgres://u@h/db?pass%77ord=SECRETVALUE");
    ASSERT_TRUE(r) << r.error();
    EXPECT_EQ(r->connect.password.reveal(), "SECRETVALUE");
    EXPECT_EQ(libpq_parse("postgres://u@h/db?pass%77ord=SECRETVALUE")->at("password"),
              "SECRETVALUE");
    EXPECT_FALSE(
        contains(pgcoro::redact_url("postgres://u@h/db?pass%77ord=SECRETVALUE"), "SECRETVALUE"));
    // Any percent-encoded key's value is hidden, whatever the key decodes to.
    std::string enc = parse_err("postgres://h/db?connection%5Flimit=SECRETVALUE");
    EXPECT_FALSE(contains(enc, "SECRETVALUE")) << enc;
    EXPECT_TRUE(contains(enc, "parameter connection_limit")) << enc;
    EXPECT_EQ(pgcoro::redact_url("postgres://h/db?connection%5Flimit=SECRETVALUE"),
              "postgres://h/db?connection%5Flimit=****");
    // An undecodable key is not named, and its value not shown.
    std::string msg = parse_err("postgres://h/db?pass%7word=SECRETVALUE");
    EXPECT_FALSE(contains(msg, "SECRETVALUE")) << msg;
    EXPECT_FALSE(contains(msg, "pass%7word")) << msg;
}

TEST(UrlSecrets_SplitValues, NoFragmentAfterAmpersandEqualsOrSpace)
{
    // Passwords that were not percent-encoded or quoted: "ab&TAILSECRET=1", "ab=TAILSECRET",
    // "ab TAILSECRET". What follows the cut is the password's tail, so it is not printed.
    for (const char* url : {
             "postgres://h/db?password=ab&TAILSECRET=1",
             "postgres://h/db?password=ab&TAILSECRET",
             "postgres://h/db?sslpassword=ab=TAILSECRET",
             "postgres://h/db?pass%77ord=ab=TAILSECRET",
             "postgres://h/db?password=ab&connection_limit=TAILSECRET",
             "postgres://h/db?password=ab&pool_timeout=10TAILSECRET",
             "postgres://h/db?pasword=ab&TAILSECRET=2",
             "postgres://h:TAILSECRET/db?password=ab",
             "host=h password=ab TAILSECRET",
             "host=h password=ab TAILSECRET=x",
             "host=h password=ab TAILSECRET='x",
             "host=h sslpassword=ab TAILSECRET=x",
         })
    {
        std::string msg = parse_err(url);
        EXPECT_FALSE(contains(msg, "TAILSECRET")) << url << "\n" << msg;
        EXPECT_FALSE(contains(pgcoro::redact_url(url), "TAILSECRET")) << url;
    }
    // Without a secret before it, a typed value is still echoed (it helps to fix it).
    EXPECT_TRUE(contains(parse_err("postgres://h/db?connection_limit=abc"), "\"abc\""));
}

TEST(UrlSecrets_UserInfo, SplitAsLibpqDoes)
{
    // Unencoded '?', '#', ':' and spaces in the password: libpq takes user-info up to the
    // first '@' before any '/', and so does pgcoro.
    for (const char* pw : {"ab?cd", "ab#cd", "ab:cd", "a?b#c:d", "ab cd", "ab?x=1&y", "?", "#"})
    {
        std::string url = std::string("postgres://u:") + pw + "@host:5433/db?sslmode=require";
        auto ours = pgcoro::parse_database_url(url);
        auto theirs = libpq_parse(url);
        ASSERT_TRUE(theirs) << url;
        ASSERT_TRUE(ours) << url << "\n" << ours.error();
        EXPECT_EQ(ours->connect.password.reveal(), theirs->at("password")) << url;
        EXPECT_EQ(ours->connect.user, theirs->at("user")) << url;
        EXPECT_EQ(ours->connect.hosts.at(0).host, theirs->at("host")) << url;
        EXPECT_EQ(ours->connect.hosts.at(0).port, 5433) << url;
        EXPECT_EQ(ours->connect.dbname, theirs->at("dbname")) << url;
        EXPECT_EQ(ours->connect_config_with_settings().sslmode, pgcoro::ssl_mode::require);
        EXPECT_EQ(pgcoro::redact_url(url), "postgres://u:****@host:5433/db?sslmode=require");
    }
}

TEST(UrlSecrets_UserInfo, SlashInPasswordPrintsNoPartOfIt)
{
    // libpq: "u:PWHEAD/PWTAIL@h/db" has no user-info (the '/' comes first): host u, port
    // PWHEAD, dbname "PWTAIL@h/db". pgcoro refuses it and prints neither half.
    for (const char* url : {"postgres://u:PWHEAD/PWTAIL@h/db", "postgres://u:PWHEAD?x/PWTAIL@h/db",
                            "postgres://u:PWHEAD@x/PWTAIL@h/db", "postgres://u:PWHEAD/PWTAIL@h",
                            "postgres://u:PWHEAD?PWTAIL"})
    {
        std::string msg = parse_err(url);
        EXPECT_FALSE(contains(msg, "PWHEAD")) << url << "\n" << msg;
        EXPECT_FALSE(contains(msg, "PWTAIL")) << url << "\n" << msg;
        std::string red = pgcoro::redact_url(url);
        EXPECT_FALSE(contains(red, "PWTAIL")) << url << "\n" << red;
    }
    // The message says what to do.
    EXPECT_TRUE(contains(parse_err("postgres://u:ab/cd@h/db"), "percent-encode"));
}

TEST(UrlSecrets_Redact, PasswordWithQuestionMarkAndSslpassword)
{
    EXPECT_EQ(pgcoro::redact_url("postgres://u:ab?cdSECRET@h/db"), "postgres://u:****@h/db");
    EXPECT_EQ(pgcoro::redact_url("postgres://u:ab?c=d&e@h/db?sslmode=require"),
              "postgres://u:****@h/db?sslmode=require");
    EXPECT_EQ(pgcoro::redact_url("postgres://u@h/db?sslpassword=SECRETVALUE&sslmode=require"),
              "postgres://u@h/db?sslpassword=****&sslmode=require");
    EXPECT_EQ(pgcoro::redact_url("postgres://u@h/db?ssl%70assword=SECRETVALUE"),
              "postgres://u@h/db?ssl%70assword=****");
    EXPECT_EQ(pgcoro::redact_url("postgres://u@h/db?pasword=SECRETVALUE&sslmode=require"),
              "postgres://u@h/db?pasword=****");
    EXPECT_EQ(pgcoro::redact_url("host=h pasword=SECRETVALUE"), "host='h' pasword='****'");
    // After a secret, an unknown key may be half of an unquoted password: not even named.
    EXPECT_EQ(pgcoro::redact_url("host=h sslpassword=SECRETVALUE pasword=SECRETVALUE"),
              "host='h' sslpassword='****' ****");
    // A quoted "://" in a key=value password is a value, not a scheme.
    EXPECT_EQ(pgcoro::redact_url("host=h password='a://SECRETVALUE'"), "host='h' password='****'");
    EXPECT_TRUE(pgcoro::parse_database_url("host=h password='a://SECRETVALUE'"));
}

TEST(UrlSecrets_ToUrl, SecretExtrasAreRedacted)
{
    // sslpassword passes through to libpq in extra; the settings' text form hides it.
    auto r = pgcoro::parse_database_url("postgres://u@h/db?sslpassword=SECRETVALUE&sslcert=/c");
    ASSERT_TRUE(r) << r.error();
    std::string url = pgcoro::to_url(r->connect);
    EXPECT_FALSE(contains(url, "SECRETVALUE")) << url;
    EXPECT_TRUE(contains(url, "sslpassword=****")) << url;
    // The secret keys are libpq's own list (dispchar '*'), not only the two known names.
    EXPECT_TRUE(pgcoro::detail::is_secret_key("password"));
    EXPECT_TRUE(pgcoro::detail::is_secret_key("sslpassword"));
    EXPECT_FALSE(pgcoro::detail::is_secret_key("sslcert"));
}

TEST(UrlSecrets_UserInfo, DifferentialAgainstLibpq)
{
    // Setup: 2000 user-info passwords of random printable ASCII, unencoded. Wherever both
    // libpq and pgcoro accept the URL, they read the same user, password, host and dbname;
    // where only libpq accepts it, libpq's reading is one pgcoro refuses on purpose (an
    // unencoded '@' left in the host or database name: the tail of the password).
    std::mt19937_64 r(1919);
    int compared = 0;
    for (int i = 0; i < 2000; ++i)
    {
        std::string pw;
        for (std::size_t n = 1 + r() % 12; n > 0; --n)
            pw += r() % 2 ? "?#/@:& %=[]"[r() % 11] : static_cast<char>(0x20 + r() % 95);
        const std::string url = "postgres://u:" + pw + "@host:5433/db";
        // pgcoro's one extension: more '@' in the host part libpq would read (up to '/' or
        // '?') extend user-info to the last of them. There libpq reads a host or port with
        // an '@' in it, or refuses a '[' it cannot close; pgcoro reads the password whole.
        const std::string_view rest = std::string_view(url).substr(11);
        const auto first = rest.find_first_of("@/");
        if (first != std::string_view::npos && rest[first] == '@' &&
            rest.substr(first + 1, rest.find_first_of("/?", first + 1) - first - 1).find('@') !=
                std::string_view::npos)
            continue;
        auto theirs = libpq_parse(url);
        auto ours = pgcoro::parse_database_url(url);
        if (!theirs)
        {
            EXPECT_FALSE(ours) << "libpq refuses, pgcoro accepts: " << url;
            continue;
        }
        auto get = [&](const char* k)
        {
            return theirs->count(k) ? theirs->at(k) : std::string();
        };
        if (!ours)
        {
            // libpq's reading puts part of the password in the database name or the port.
            const bool stray = get("dbname").find('@') != std::string::npos ||
                               get("port").find_first_not_of("0123456789") != std::string::npos;
            EXPECT_TRUE(stray) << url << "\n" << ours.error();
            continue;
        }
        ++compared;
        EXPECT_EQ(ours->connect.password.reveal(), get("password")) << url;
        EXPECT_EQ(ours->connect.user, get("user")) << url;
        EXPECT_EQ(ours->connect.dbname, get("dbname")) << url;
        EXPECT_EQ(ours->connect.hosts.at(0).host, get("host").empty() ? "localhost" : get("host"))
            << url;
        if (!get("port").empty())
        {
            EXPECT_EQ(std::to_string(ours->connect.hosts.at(0).port), get("port")) << url;
        }
    }
    EXPECT_GT(compared, 500);
}

TEST(UrlSecrets_Ssl, OnlyTrueAsLibpqAccepts)
{
    // libpq turns ssl=true into sslmode=require and refuses ssl with any other value.
    auto r = pgcoro::parse_database_url("postgres://h/db?ssl=true");
    ASSERT_TRUE(r) << r.error();
    EXPECT_EQ(r->connect_config_with_settings().sslmode, pgcoro::ssl_mode::require);
    EXPECT_FALSE(libpq_parse("postgres://h/db?ssl=false"));
    std::string msg = parse_err("postgres://h/db?ssl=false");
    EXPECT_TRUE(contains(msg, "parameter ssl = \"false\": unsupported value")) << msg;
}
