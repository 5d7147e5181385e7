#include "kafka/oidc_config.h"

#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace klag::kafka {
namespace {

constexpr absl::string_view kExtensionPrefix = "extension_";

// RFC 3986 percent-encoding of everything but the unreserved characters, so a value never holds
// a space (the word separator) or '='.
std::string PercentEncode(absl::string_view value) {
  std::string out;
  for (char c : value) {
    const auto u = static_cast<unsigned char>(c);
    if (absl::ascii_isalnum(u) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(c);
    } else {
      // Upper-case hex digits, as RFC 3986 section 2.1 recommends.
      absl::StrAppend(&out, "%",
                      absl::AsciiStrToUpper(absl::StrCat(absl::Hex(u, absl::kZeroPad2))));
    }
  }
  return out;
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool PercentDecode(absl::string_view value, std::string* out) {
  out->clear();
  for (size_t i = 0; i < value.size(); ++i) {
    if (value[i] != '%') {
      out->push_back(value[i]);
      continue;
    }
    if (i + 2 >= value.size()) return false;  // needs two hex digits after '%'
    const int hi = HexDigit(value[i + 1]);
    const int lo = HexDigit(value[i + 2]);
    if (hi < 0 || lo < 0) return false;
    out->push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return true;
}

absl::Status Invalid(absl::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat("sasl.oauthbearer.config: ", message));
}

}  // namespace

std::string FormatOauthbearerConfig(const OidcClientConfig& config) {
  std::vector<std::string> words = {std::string(kOidcConfigMarker)};
  words.push_back(absl::StrCat("token_endpoint=", PercentEncode(config.token_endpoint)));
  words.push_back(absl::StrCat("client_id=", PercentEncode(config.client_id)));
  words.push_back(absl::StrCat("client_secret=", PercentEncode(config.client_secret)));
  if (!config.scopes.empty()) {
    words.push_back(absl::StrCat("scope=", PercentEncode(absl::StrJoin(config.scopes, " "))));
  }
  for (const auto& [name, value] : config.extensions) {
    words.push_back(absl::StrCat(kExtensionPrefix, PercentEncode(name), "=", PercentEncode(value)));
  }
  return absl::StrJoin(words, " ");
}

bool IsKlagOauthbearerConfig(absl::string_view text) {
  std::vector<absl::string_view> words = absl::StrSplit(text, ' ', absl::SkipEmpty());
  return !words.empty() && words.front() == kOidcConfigMarker;
}

absl::StatusOr<OidcClientConfig> ParseOauthbearerConfig(absl::string_view text) {
  std::vector<absl::string_view> words = absl::StrSplit(text, ' ', absl::SkipEmpty());
  if (words.empty() || words.front() != kOidcConfigMarker) {
    return Invalid(absl::StrCat("does not start with \"", kOidcConfigMarker, "\""));
  }
  OidcClientConfig config;
  std::set<std::string> seen;
  for (size_t i = 1; i < words.size(); ++i) {
    const size_t eq = words[i].find('=');
    if (eq == absl::string_view::npos) return Invalid("a word is not key=value");
    std::string key;
    if (!PercentDecode(words[i].substr(0, eq), &key)) return Invalid("bad percent-encoding");
    std::string value;
    if (!PercentDecode(words[i].substr(eq + 1), &value)) {
      return Invalid(absl::StrCat("bad percent-encoding in ", key));
    }
    if (!seen.insert(key).second) return Invalid(absl::StrCat(key, " is given twice"));
    if (key == "token_endpoint") {
      config.token_endpoint = std::move(value);
    } else if (key == "client_id") {
      config.client_id = std::move(value);
    } else if (key == "client_secret") {
      config.client_secret = std::move(value);
    } else if (key == "scope") {
      config.scopes = absl::StrSplit(value, ' ', absl::SkipEmpty());
    } else if (absl::StartsWith(key, kExtensionPrefix) && key.size() > kExtensionPrefix.size()) {
      config.extensions.emplace_back(key.substr(kExtensionPrefix.size()), std::move(value));
    } else {
      return Invalid(absl::StrCat("unknown key \"", key, "\""));
    }
  }
  for (const auto& [key, value] :
       {std::pair<absl::string_view, const std::string*>{"token_endpoint", &config.token_endpoint},
        {"client_id", &config.client_id},
        {"client_secret", &config.client_secret}}) {
    if (value->empty()) return Invalid(absl::StrCat(key, " is missing"));
  }
  return config;
}

}  // namespace klag::kafka
