// libFuzzer target for the configuration parsers: DATABASE_URL / conninfo parsing, redaction,
// and settings_from_env over an injected environment. Built by tests/fuzz/run_fuzz.cmake with
// clang++ -fsanitize=fuzzer,address,undefined. Input: first byte picks the parser, the rest is
// a URL, or "NAME=VALUE" lines forming the environment (*_FILE variables are dropped: the
// fuzzer must not read files).
#include <pgcoro/database_url.hpp>
#include <pgcoro/settings.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>

namespace
{
void fuzz_url(std::string_view text)
{
    auto r = pgcoro::parse_database_url(text);
    std::string redacted = pgcoro::redact_url(text);
    if (r)
    {
        std::string url = pgcoro::to_url(r->connect_config_with_settings());
        // A parsed alphanumeric password of 12+ characters that appears nowhere else in the
        // config never survives printing (alphanumeric: percent-encoding leaves it as is).
        const std::string& pw = r->connect.password.reveal();
        auto alnum = [](char ch)
        {
            return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
        };
        bool elsewhere = url.find("postgresql://" + pw) == 0 ||
                         r->connect.user.find(pw) != std::string::npos ||
                         r->connect.dbname.find(pw) != std::string::npos ||
                         r->connect.application_name.find(pw) != std::string::npos;
        for (const auto& h : r->connect.hosts)
            elsewhere |= h.host.find(pw) != std::string::npos;
        for (const auto& kv : r->connect.extra)
            elsewhere |=
                kv.first.find(pw) != std::string::npos || kv.second.find(pw) != std::string::npos;
        // The password's text can also arise from the other fields' percent-encoding ("%B7"
        // followed by "880217..." contains "7880217..."): the URL without any password decides.
        {
            auto without = r->connect_config_with_settings();
            without.password = pgcoro::secret();
            elsewhere |= pgcoro::to_url(without).find(pw) != std::string::npos;
        }
        if (pw.size() >= 12 && std::all_of(pw.begin(), pw.end(), alnum) && !elsewhere &&
            url.find(pw) != std::string::npos)
            std::abort();
    }
    else
        (void)r.error().to_string();
}

void fuzz_env(std::string_view text)
{
    std::map<std::string, std::string, std::less<>> env;
    while (!text.empty())
    {
        auto nl = text.find('\n');
        std::string_view line = text.substr(0, nl);
        text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
        auto eq = line.find('=');
        if (eq == std::string_view::npos)
            continue;
        std::string name(line.substr(0, eq));
        if (name.size() >= 5 && name.compare(name.size() - 5, 5, "_FILE") == 0)
            continue;
        env[name] = std::string(line.substr(eq + 1));
    }
    auto s = pgcoro::settings_from_env(pgcoro::env_from_map(std::move(env)));
    if (s)
        (void)s->to_string();
    else
        (void)s.error().to_string();
}
} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    if (size == 0)
        return 0;
    std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
    if (data[0] % 2 == 0)
        fuzz_url(text);
    else
        fuzz_env(text);
    return 0;
}
