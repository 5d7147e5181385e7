#include "kafka/connection_config.h"

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "kafka/oidc_config.h"

namespace klag::kafka {
namespace {

constexpr absl::string_view kFromEnv = "FromEnv";
// Shown instead of a secret's value in error messages.
constexpr absl::string_view kRedacted = "<redacted>";

absl::Status Invalid(absl::string_view message) { return absl::InvalidArgumentError(message); }

// ---------------------------------------------------------------------------------------------
// GSSAPI values reach /bin/sh (librdkafka pastes the principal and the keytab path into
// sasl.kerberos.kinit.cmd and runs it with system()), so each is held to a strict character
// set. A refused value is never echoed: the message names the key and the first bad byte.

bool IsKerberosNameChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
}

bool IsRealmChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-';
}

// One byte of a refused value, for a message: 'x', or its C escape ('\n', '\x01').
std::string ShowByte(char c) {
  return absl::StrCat("'", absl::CHexEscape(absl::string_view(&c, 1)), "'");
}

// Checks `value` as components separated by `separator` (none when '\0'), each non-empty, made
// of bytes `allowed` accepts and (when `no_leading_dash`) not starting with '-' (kinit would
// take it for an option). Errors: kInvalidArgument "<key> must be <rule>; ..." with the position
// (plus `offset`, when `value` is a part of the setting).
absl::Status CheckStrictValue(absl::string_view key, absl::string_view value,
                              absl::string_view rule, bool (*allowed)(char), char separator,
                              bool no_leading_dash, size_t offset = 0) {
  auto bad = [&](size_t pos, absl::string_view what) {
    return Invalid(absl::StrCat(key, " must be ", rule, "; ", what, " at byte ", offset + pos,
                                " (the value is not shown)"));
  };
  size_t component_start = 0;
  for (size_t i = 0; i <= value.size(); ++i) {
    const bool end_of_component = i == value.size() || (separator != '\0' && value[i] == separator);
    if (end_of_component) {
      if (i == component_start) return bad(i, "an empty component");
      component_start = i + 1;
      continue;
    }
    if (!allowed(value[i])) return bad(i, absl::StrCat(ShowByte(value[i]), " is not allowed"));
    if (no_leading_dash && i == component_start && value[i] == '-') {
      return bad(i, "a leading '-' is not allowed");
    }
  }
  return absl::OkStatus();
}

constexpr absl::string_view kPrincipalRule =
    "a Kerberos principal name without realm: components of letters, digits, '.', '_' and '-' "
    "joined by '/'";
constexpr absl::string_view kRealmRule = "a Kerberos realm: letters, digits, '.' and '-'";
constexpr absl::string_view kServiceRule =
    "a Kerberos service name: letters, digits, '.', '_' and '-'";
constexpr absl::string_view kPathRule =
    "an absolute, normalised path of letters, digits, '.', '_', '-' and '/' (no empty, \".\" or "
    "\"..\" component, no trailing '/')";

absl::Status CheckPrincipalName(absl::string_view key, absl::string_view value) {
  if (const size_t at = value.find('@'); at != absl::string_view::npos) {
    return Invalid(
        absl::StrCat(key, " must not contain '@' (byte ", at, "): the realm goes in realm"));
  }
  return CheckStrictValue(key, value, kPrincipalRule, IsKerberosNameChar, '/', true);
}

absl::Status CheckRealm(absl::string_view key, absl::string_view value) {
  return CheckStrictValue(key, value, kRealmRule, IsRealmChar, '\0', true);
}

absl::Status CheckServiceName(absl::string_view key, absl::string_view value) {
  return CheckStrictValue(key, value, kServiceRule, IsKerberosNameChar, '\0', true);
}

// An absolute, normalised path of [A-Za-z0-9._/-]; "/" alone passes.
absl::Status CheckAbsolutePath(absl::string_view key, absl::string_view path) {
  if (path.empty() || path[0] != '/') {
    return Invalid(absl::StrCat(key, " must be ", kPathRule, "; it does not start with '/'"));
  }
  if (path == "/") return absl::OkStatus();
  RETURN_IF_ERROR(
      CheckStrictValue(key, path.substr(1), kPathRule, IsKerberosNameChar, '/', false, 1));
  size_t start = 1;
  for (absl::string_view component : absl::StrSplit(path.substr(1), '/')) {
    if (component == "." || component == "..") {
      return Invalid(absl::StrCat(key, " must be ", kPathRule, "; a \"", component,
                                  "\" component at byte ", start));
    }
    start += component.size() + 1;
  }
  return absl::OkStatus();
}

// True when `path` lies lexically below `dir` (both checked by CheckAbsolutePath).
bool IsUnder(absl::string_view path, absl::string_view dir) {
  if (dir == "/") return path.size() > 1;
  return path.size() > dir.size() + 1 && absl::StartsWith(path, dir) && path[dir.size()] == '/';
}

// ---------------------------------------------------------------------------------------------
// SHA-256 for Key() (a collision-resistant digest of the secret fields): OpenSSL's, through EVP.

std::string Sha256HexOf(std::initializer_list<absl::string_view> parts) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest;
  unsigned int length = 0;
  bool ok = ctx != nullptr && EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) == 1;
  for (absl::string_view part : parts) {
    ok = ok && EVP_DigestUpdate(ctx.get(), part.data(), part.size()) == 1;
  }
  ok = ok && EVP_DigestFinal_ex(ctx.get(), digest.data(), &length) == 1;
  if (!ok) {
    // Only an OpenSSL that cannot allocate or has no SHA-256 gets here: nothing to answer with.
    std::fprintf(stderr, "klag: OpenSSL SHA-256 failed\n");
    std::abort();
  }
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest.data()), length));
}

// Random per process: a key logged by one process cannot be matched against guessed passwords.
const std::string& ProcessSalt() {
  static const std::string* const salt = [] {
    std::random_device device;
    auto* s = new std::string();
    for (int i = 0; i < 4; ++i) {
      const uint32_t word = device();
      s->append(reinterpret_cast<const char*>(&word), sizeof(word));
    }
    return s;
  }();
  return *salt;
}

// Length-prefixed, so that no two different field sequences serialise alike.
void AppendField(std::string* out, absl::string_view field) {
  absl::StrAppend(out, field.size(), ":", field, ";");
}

// ---------------------------------------------------------------------------------------------
// Parsing helpers.

absl::StatusOr<std::string> ParseBootstrapEntry(const Setting& setting, absl::string_view entry) {
  auto bad = [&](absl::string_view why) {
    return Invalid(
        absl::StrCat(setting.key, " entry ", QuoteValue(entry), " is not host:port (", why, ")"));
  };
  absl::string_view host;
  absl::string_view port;
  if (absl::StartsWith(entry, "[")) {  // [IPv6]:port
    const size_t close = entry.find(']');
    if (close == absl::string_view::npos || close == 1) return bad("bad [address]");
    if (close + 1 >= entry.size() || entry[close + 1] != ':') return bad("no port");
    host = entry.substr(0, close + 1);
    port = entry.substr(close + 2);
  } else {
    const size_t colon = entry.rfind(':');
    if (colon == absl::string_view::npos) return bad("no port");
    host = entry.substr(0, colon);
    port = entry.substr(colon + 1);
    if (host.empty()) return bad("no host");
    for (char c : host) {
      if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '_') {
        return bad("host may hold letters, digits, '.', '-' and '_'; IPv6 goes in brackets");
      }
    }
  }
  uint32_t port_number = 0;
  const bool digits_only =
      !port.empty() && port.size() <= 5 && std::all_of(port.begin(), port.end(), [](char c) {
        return absl::ascii_isdigit(static_cast<unsigned char>(c));
      });
  if (!digits_only || !absl::SimpleAtoi(port, &port_number) || port_number == 0 ||
      port_number > 65535) {
    return bad("port must be 1-65535");
  }
  return std::string(entry);
}

absl::StatusOr<std::string> ParseBootstrapServers(const Setting& setting) {
  std::vector<std::string> entries;
  for (absl::string_view raw : absl::StrSplit(setting.value, ',')) {
    absl::string_view entry = absl::StripAsciiWhitespace(raw);
    if (entry.empty()) {
      return Invalid(
          absl::StrCat(setting.key, " ", QuoteValue(setting.value), " has an empty entry"));
    }
    ASSIGN_OR_RETURN(std::string parsed, ParseBootstrapEntry(setting, entry));
    entries.push_back(std::move(parsed));
  }
  return absl::StrJoin(entries, ",");
}

absl::Status RequirePem(const Setting& setting) {
  if (absl::StrContains(setting.value, "-----BEGIN ")) return absl::OkStatus();
  return Invalid(
      absl::StrCat(setting.key, " must be PEM text (\"-----BEGIN ...\"), got \"", kRedacted, "\""));
}

// A comma-separated list whose entries are trimmed; an empty entry is an error.
absl::StatusOr<std::vector<std::string>> ParseList(const Setting& setting) {
  std::vector<std::string> out;
  for (absl::string_view raw : absl::StrSplit(setting.value, ',')) {
    absl::string_view entry = absl::StripAsciiWhitespace(raw);
    if (entry.empty()) {
      return Invalid(
          absl::StrCat(setting.key, " ", QuoteValue(setting.value), " has an empty entry"));
    }
    out.emplace_back(entry);
  }
  return out;
}

absl::StatusOr<std::vector<std::pair<std::string, std::string>>> ParseExtensions(
    const Setting& setting) {
  std::vector<std::pair<std::string, std::string>> out;
  std::set<std::string> seen;
  ASSIGN_OR_RETURN(std::vector<std::string> entries, ParseList(setting));
  for (const std::string& entry : entries) {
    std::vector<absl::string_view> parts = absl::StrSplit(entry, '=');
    if (parts.size() != 2 || absl::StripAsciiWhitespace(parts[0]).empty()) {
      return Invalid(absl::StrCat(setting.key, " entry ", QuoteValue(entry), " is not key=value"));
    }
    std::string key(absl::StripAsciiWhitespace(parts[0]));
    if (!seen.insert(key).second) {
      return Invalid(absl::StrCat(setting.key, " sets ", QuoteValue(key), " twice"));
    }
    out.emplace_back(std::move(key), std::string(absl::StripAsciiWhitespace(parts[1])));
  }
  return out;
}

// Looks up a setting the chosen mode requires.
absl::StatusOr<Setting> Require(const SettingMap& settings, absl::string_view key,
                                absl::string_view needed_by) {
  ASSIGN_OR_RETURN(std::optional<Setting> setting, LookupSetting(settings, key));
  if (!setting.has_value()) {
    return Invalid(absl::StrCat(needed_by, " needs ", key, " (or ", key, kFromEnv, ")"));
  }
  return *std::move(setting);
}

absl::Status ParseTls(const SettingMap& settings, TlsConfig* tls) {
  ASSIGN_OR_RETURN(std::optional<Setting> mode, LookupSetting(settings, "tls"));
  if (mode.has_value()) {
    ASSIGN_OR_RETURN(size_t index, ParseEnum(*mode, {"enable", "disable"}));
    tls->enabled = index == 0;
  }
  // Validated whatever tls says (a typo is an error), used only with TLS, as in KEDA.
  ASSIGN_OR_RETURN(std::optional<Setting> unsafe, LookupSetting(settings, "unsafeSsl"));
  bool insecure = false;
  if (unsafe.has_value()) {
    ASSIGN_OR_RETURN(insecure, ParseKedaBool(*unsafe));
  }
  ASSIGN_OR_RETURN(std::optional<Setting> ca, LookupSetting(settings, "ca"));
  ASSIGN_OR_RETURN(std::optional<Setting> cert, LookupSetting(settings, "cert"));
  ASSIGN_OR_RETURN(std::optional<Setting> key, LookupSetting(settings, "key"));
  ASSIGN_OR_RETURN(std::optional<Setting> key_password, LookupSetting(settings, "keyPassword"));
  if (!tls->enabled) return absl::OkStatus();

  if (cert.has_value() && !key.has_value()) {
    return Invalid(absl::StrCat(cert->key, " is given without key (or keyFromEnv)"));
  }
  if (key.has_value() && !cert.has_value()) {
    return Invalid(absl::StrCat(key->key, " is given without cert (or certFromEnv)"));
  }
  if (ca.has_value()) {
    RETURN_IF_ERROR(RequirePem(*ca));
    tls->ca_pem = ca->value;
  }
  if (cert.has_value()) {
    RETURN_IF_ERROR(RequirePem(*cert));
    RETURN_IF_ERROR(RequirePem(*key));
    tls->cert_pem = cert->value;
    tls->key_pem = key->value;
    if (key_password.has_value()) tls->key_password = key_password->value;
  }
  tls->insecure_skip_verify = insecure;
  return absl::OkStatus();
}

absl::Status ParseOAuthBearer(const SettingMap& settings, SaslConfig* sasl) {
  constexpr absl::string_view kNeededBy = "sasl oauthbearer";
  ASSIGN_OR_RETURN(Setting client_id, Require(settings, "username", kNeededBy));
  ASSIGN_OR_RETURN(Setting client_secret, Require(settings, "password", kNeededBy));
  ASSIGN_OR_RETURN(Setting endpoint, Require(settings, "oauthTokenEndpointUri", kNeededBy));
  if (!absl::StartsWith(endpoint.value, "https://") &&
      !absl::StartsWith(endpoint.value, "http://")) {
    return Invalid(absl::StrCat(endpoint.key, " must be an http:// or https:// URL, got ",
                                QuoteValue(endpoint.value)));
  }
  sasl->username = client_id.value;
  sasl->password = client_secret.value;
  sasl->oauth_token_endpoint_uri = endpoint.value;
  ASSIGN_OR_RETURN(std::optional<Setting> scopes, LookupSetting(settings, "scopes"));
  if (scopes.has_value()) {
    ASSIGN_OR_RETURN(sasl->scopes, ParseList(*scopes));
  }
  ASSIGN_OR_RETURN(std::optional<Setting> extensions, LookupSetting(settings, "oauthExtensions"));
  if (extensions.has_value()) {
    ASSIGN_OR_RETURN(sasl->oauth_extensions, ParseExtensions(*extensions));
  }
  return absl::OkStatus();
}

absl::Status ParseGssapi(const SettingMap& settings, const ConnectionPolicy& policy,
                         SaslConfig* sasl) {
  constexpr absl::string_view kNeededBy = "sasl gssapi";
  ASSIGN_OR_RETURN(Setting username, Require(settings, "username", kNeededBy));
  ASSIGN_OR_RETURN(Setting realm, Require(settings, "realm", kNeededBy));
  ASSIGN_OR_RETURN(std::optional<Setting> password, LookupSetting(settings, "password"));
  ASSIGN_OR_RETURN(std::optional<Setting> keytab, LookupSetting(settings, "keytab"));
  ASSIGN_OR_RETURN(std::optional<Setting> service, LookupSetting(settings, "kerberosServiceName"));
  if (password.has_value() && keytab.has_value()) {
    return Invalid(absl::StrCat("sasl gssapi takes exactly one of ", password->key, " and ",
                                keytab->key, ", not both"));
  }
  if (password.has_value()) {
    return Invalid(absl::StrCat("sasl gssapi with ", password->key,
                                " is not supported: librdkafka logs in to Kerberos with a keytab "
                                "only; give keytab (a file path) instead"));
  }
  if (!keytab.has_value()) {
    return Invalid("sasl gssapi needs keytab (or keytabFromEnv): a keytab file path");
  }
  // The principal and the keytab path go through /bin/sh (kKinitCommand); the service name
  // does not, but is held to the same kind of set so no Kerberos value needs another audit.
  RETURN_IF_ERROR(CheckPrincipalName(username.key, username.value));
  RETURN_IF_ERROR(CheckRealm(realm.key, realm.value));
  if (service.has_value()) RETURN_IF_ERROR(CheckServiceName(service->key, service->value));
  // KEDA takes the keytab's contents and writes them to a file; klag takes the file's path, so
  // contents pasted here are refused (and never echoed: they are a secret).
  const bool is_path = absl::StartsWith(keytab->value, "/") &&
                       std::none_of(keytab->value.begin(), keytab->value.end(), [](char c) {
                         return absl::ascii_iscntrl(static_cast<unsigned char>(c));
                       });
  if (!is_path) {
    return Invalid(absl::StrCat(keytab->key, " must be an absolute file path, got \"", kRedacted,
                                "\" (klag reads the keytab from a file; KEDA took its contents)"));
  }
  RETURN_IF_ERROR(CheckAbsolutePath(keytab->key, keytab->value));
  if (policy.kerberos_keytab_dir.empty()) {
    return Invalid(absl::StrCat(
        "sasl gssapi with ", keytab->key,
        " is refused: no keytab directory is configured (the operator allows keytabs under a "
        "directory with ",
        kKerberosKeytabDirFlag, ")"));
  }
  RETURN_IF_ERROR(ValidateKerberosKeytabDir(policy.kerberos_keytab_dir));
  if (!IsUnder(keytab->value, policy.kerberos_keytab_dir)) {
    return Invalid(absl::StrCat(keytab->key, " ", QuoteValue(keytab->value),
                                " is not under the keytab directory ", policy.kerberos_keytab_dir,
                                " (", kKerberosKeytabDirFlag, ")"));
  }
  sasl->username = username.value;
  sasl->realm = realm.value;
  sasl->keytab_path = keytab->value;
  if (service.has_value()) sasl->kerberos_service_name = service->value;
  return absl::OkStatus();
}

absl::Status ParseSasl(const SettingMap& settings, const ConnectionPolicy& policy,
                       SaslConfig* sasl) {
  ASSIGN_OR_RETURN(std::optional<Setting> provider, LookupSetting(settings, "saslTokenProvider"));
  bool msk_iam = false;
  if (provider.has_value()) {
    ASSIGN_OR_RETURN(size_t index, ParseEnum(*provider, {"bearer", "aws_msk_iam"}));
    msk_iam = index == 1;
  }
  ASSIGN_OR_RETURN(std::optional<Setting> mode, LookupSetting(settings, "sasl"));
  if (!mode.has_value()) return absl::OkStatus();
  // KEDA compares the value as given (after trimming): no lower-casing.
  ASSIGN_OR_RETURN(size_t index, ParseEnum(*mode, {"none", "plaintext", "scram_sha256",
                                                   "scram_sha512", "oauthbearer", "gssapi"}));
  static constexpr std::array<SaslMechanism, 6> kMechanisms = {
      SaslMechanism::kNone,        SaslMechanism::kPlain,       SaslMechanism::kScramSha256,
      SaslMechanism::kScramSha512, SaslMechanism::kOAuthBearer, SaslMechanism::kGssapi};
  sasl->mechanism = kMechanisms[index];
  switch (sasl->mechanism) {
    case SaslMechanism::kNone:
      return absl::OkStatus();
    case SaslMechanism::kPlain:
    case SaslMechanism::kScramSha256:
    case SaslMechanism::kScramSha512: {
      const std::string needed_by = absl::StrCat("sasl ", mode->value);
      ASSIGN_OR_RETURN(Setting username, Require(settings, "username", needed_by));
      ASSIGN_OR_RETURN(Setting password, Require(settings, "password", needed_by));
      sasl->username = username.value;
      sasl->password = password.value;
      return absl::OkStatus();
    }
    case SaslMechanism::kOAuthBearer:
      if (msk_iam) {
        return Invalid(
            "saslTokenProvider \"aws_msk_iam\" is not implemented in klag (an AWS SigV4-signed "
            "OAUTHBEARER token would be possible through librdkafka's token refresh callback); "
            "use sasl scram_sha512, or oauthbearer with saslTokenProvider bearer");
      }
      return ParseOAuthBearer(settings, sasl);
    case SaslMechanism::kGssapi:
      return ParseGssapi(settings, policy, sasl);
  }
  return absl::InternalError("unhandled SASL mechanism");
}

absl::string_view MechanismName(SaslMechanism mechanism) {
  switch (mechanism) {
    case SaslMechanism::kNone:
      return "none";
    case SaslMechanism::kPlain:
      return "PLAIN";
    case SaslMechanism::kScramSha256:
      return "SCRAM-SHA-256";
    case SaslMechanism::kScramSha512:
      return "SCRAM-SHA-512";
    case SaslMechanism::kOAuthBearer:
      return "OAUTHBEARER";
    case SaslMechanism::kGssapi:
      return "GSSAPI";
  }
  return "unknown";
}

}  // namespace

// -----------------------------------------------------------------------------------------------

absl::StatusOr<std::optional<Setting>> LookupSetting(const SettingMap& settings,
                                                     absl::string_view key) {
  std::optional<Setting> found;
  const std::string env_key = absl::StrCat(key, kFromEnv);
  for (absl::string_view candidate : {key, absl::string_view(env_key)}) {
    auto it = settings.find(candidate);
    if (it == settings.end()) continue;
    absl::string_view value = absl::StripAsciiWhitespace(it->second);
    if (value.empty()) continue;  // KEDA treats an empty value as absent
    if (found.has_value()) {
      return Invalid(absl::StrCat("both ", key, " and ", env_key,
                                  " are given; use one (they stand for the same setting)"));
    }
    found = Setting{std::string(candidate), std::string(value)};
  }
  return found;
}

absl::StatusOr<size_t> ParseEnum(const Setting& setting,
                                 const std::vector<absl::string_view>& choices) {
  for (size_t i = 0; i < choices.size(); ++i) {
    if (setting.value == choices[i]) return i;
  }
  return Invalid(absl::StrCat(setting.key, " must be one of ", absl::StrJoin(choices, ", "),
                              "; got ", QuoteValue(setting.value)));
}

absl::StatusOr<int64_t> ParseKedaInteger(const Setting& setting) {
  absl::string_view digits = setting.value;
  if (!digits.empty() && (digits[0] == '-' || digits[0] == '+')) digits.remove_prefix(1);
  int64_t value = 0;
  const bool all_digits = !digits.empty() && std::all_of(digits.begin(), digits.end(), [](char c) {
    return absl::ascii_isdigit(static_cast<unsigned char>(c));
  });
  if (!all_digits || !absl::SimpleAtoi(setting.value, &value)) {
    return Invalid(
        absl::StrCat(setting.key, " must be an integer, got ", QuoteValue(setting.value)));
  }
  return value;
}

absl::StatusOr<bool> ParseKedaBool(const Setting& setting) {
  // The accepted spellings of Go's strconv.ParseBool.
  static constexpr std::array<absl::string_view, 6> kTrue = {"1", "t", "T", "TRUE", "true", "True"};
  static constexpr std::array<absl::string_view, 6> kFalse = {"0",     "f",     "F",
                                                              "FALSE", "false", "False"};
  for (absl::string_view t : kTrue) {
    if (setting.value == t) return true;
  }
  for (absl::string_view f : kFalse) {
    if (setting.value == f) return false;
  }
  return Invalid(
      absl::StrCat(setting.key, " must be true or false, got ", QuoteValue(setting.value)));
}

const std::vector<std::string>& ConnectionSettingKeys() {
  static const std::vector<std::string>* const keys =
      new std::vector<std::string>{"bootstrapServers",
                                   "tls",
                                   "ca",
                                   "cert",
                                   "key",
                                   "keyPassword",
                                   "unsafeSsl",
                                   "sasl",
                                   "username",
                                   "password",
                                   "saslTokenProvider",
                                   "oauthTokenEndpointUri",
                                   "scopes",
                                   "oauthExtensions",
                                   "kerberosServiceName",
                                   "keytab",
                                   "realm"};
  return *keys;
}

std::string QuoteValue(absl::string_view value) {
  if (value.size() <= kQuotedValueLimit) {
    return absl::StrCat("\"", absl::Utf8SafeCHexEscape(value), "\"");
  }
  size_t cut = kQuotedValueLimit;
  // Do not split a UTF-8 sequence: back up over continuation bytes (10xxxxxx).
  while (cut > 0 && (static_cast<unsigned char>(value[cut]) & 0xC0) == 0x80) --cut;
  return absl::StrCat("\"", absl::Utf8SafeCHexEscape(value.substr(0, cut)), "\"... (", value.size(),
                      " bytes)");
}

absl::Status ValidateKerberosKeytabDir(absl::string_view dir) {
  if (dir.empty()) return absl::OkStatus();
  return CheckAbsolutePath(kKerberosKeytabDirFlag, dir);
}

absl::StatusOr<ConnectionConfig> ParseConnectionConfig(const SettingMap& settings,
                                                       const ConnectionPolicy& policy) {
  ConnectionConfig config;
  ASSIGN_OR_RETURN(std::optional<Setting> bootstrap, LookupSetting(settings, "bootstrapServers"));
  if (!bootstrap.has_value()) {
    return Invalid("bootstrapServers (or bootstrapServersFromEnv) is required");
  }
  ASSIGN_OR_RETURN(config.bootstrap_servers, ParseBootstrapServers(*bootstrap));
  RETURN_IF_ERROR(ParseTls(settings, &config.tls));
  RETURN_IF_ERROR(ParseSasl(settings, policy, &config.sasl));
  return config;
}

std::string ConnectionConfig::Key() const {
  std::string secret_fields;
  AppendField(&secret_fields, tls.enabled ? "1" : "0");
  AppendField(&secret_fields, tls.ca_pem);
  AppendField(&secret_fields, tls.cert_pem);
  AppendField(&secret_fields, tls.key_pem);
  AppendField(&secret_fields, tls.key_password);
  AppendField(&secret_fields, tls.insecure_skip_verify ? "1" : "0");
  AppendField(&secret_fields, sasl.password);
  AppendField(&secret_fields, sasl.oauth_token_endpoint_uri);
  AppendField(&secret_fields, absl::StrCat(sasl.scopes.size()));
  for (const std::string& scope : sasl.scopes) AppendField(&secret_fields, scope);
  AppendField(&secret_fields, absl::StrCat(sasl.oauth_extensions.size()));
  for (const auto& [name, value] : sasl.oauth_extensions) {
    AppendField(&secret_fields, name);
    AppendField(&secret_fields, value);
  }
  AppendField(&secret_fields, sasl.kerberos_service_name);
  AppendField(&secret_fields, sasl.keytab_path);
  AppendField(&secret_fields, sasl.realm);

  // '|' cannot occur in a parsed bootstrap list or mechanism name; a username holding one only
  // shifts the split, and the digest still separates the configs.
  return absl::StrCat(bootstrap_servers, "|", MechanismName(sasl.mechanism), "|", sasl.username,
                      "|", Sha256HexOf({ProcessSalt(), secret_fields}));
}

// Audit of every librdkafka property built here (from trigger metadata, a credentials profile or
// klag-job's flags), for whether a value can reach a shell, a file path or a command line.
// librdkafka 2.8.0 runs a program in one place: sasl.kerberos.kinit.cmd, rendered by
// rd_string_render (each %{property} replaced by the property's value, no escaping) and run with
// system(), i.e. `/bin/sh -c`, at client creation and every sasl.kerberos.min.time.before.relogin
// (src/rdkafka_sasl_cyrus.c, rd_kafka_sasl_cyrus_kinit_refresh). It opens files for the
// *.location, *.keystore, plugin.library.paths and similar properties; klag sets none of those.
//   bootstrap.servers             host:port list checked by ParseBootstrapServers; only resolved
//                                 and connected to (which cluster may be reached is the
//                                 service's concern, not a shell or file one).
//   security.protocol             one of four constants.
//   ssl.ca.pem, ssl.certificate.pem, ssl.key.pem, ssl.key.password
//                                 PEM text and its password, parsed in memory by OpenSSL; klag
//                                 never sets ssl.*.location, so no metadata names a file.
//   enable.ssl.certificate.verification, ssl.endpoint.identification.algorithm
//                                 constants ("false"/"none" or "https").
//   sasl.mechanisms               one of five constants.
//   sasl.username, sasl.password  sent to the broker inside SASL PLAIN/SCRAM; no shell, no file.
//   sasl.oauthbearer.config       klag's own percent-encoded settings, read only by klag's token
//                                 refresh callback (kafka/rdkafka_oauth.h); librdkafka's own OIDC
//                                 (sasl.oauthbearer.method=oidc) is not enabled, so it neither
//                                 parses it nor fetches anything itself.
//   sasl.kerberos.service.name    [A-Za-z0-9._-] (CheckServiceName); handed to Cyrus SASL as the
//                                 service; not referenced by kKinitCommand.
//   sasl.kerberos.principal       username@realm, [A-Za-z0-9._/-] and [A-Za-z0-9.-], no leading
//                                 '-' (CheckPrincipalName, CheckRealm): reaches /bin/sh through
//                                 kKinitCommand, single-quoted, and cannot hold a quote, a
//                                 metacharacter, a space or an option.
//   sasl.kerberos.keytab          absolute normalised path of [A-Za-z0-9._/-] (CheckAbsolutePath)
//                                 under the operator's --kerberos-keytab-dir (checked by the
//                                 parser): reaches /bin/sh single-quoted; kinit reads that file.
//   sasl.kerberos.kinit.cmd       the constant kKinitCommand; no metadata can set it.
// No value contains "%{", so rd_string_render cannot be made to paste in another property
// (such as sasl.password) either. Both checks above run again here, so a ConnectionConfig built
// without ParseConnectionConfig cannot reach the shell.
absl::StatusOr<RdkafkaProperties> ToRdkafkaProperties(const ConnectionConfig& config) {
  if (config.bootstrap_servers.empty()) return Invalid("bootstrap servers are empty");
  const bool use_sasl = config.sasl.mechanism != SaslMechanism::kNone;
  RdkafkaProperties props;
  props.emplace_back("bootstrap.servers", config.bootstrap_servers);
  props.emplace_back("security.protocol", config.tls.enabled
                                              ? (use_sasl ? "SASL_SSL" : "SSL")
                                              : (use_sasl ? "SASL_PLAINTEXT" : "PLAINTEXT"));
  if (config.tls.enabled) {
    const TlsConfig& tls = config.tls;
    if (tls.cert_pem.empty() != tls.key_pem.empty()) {
      return Invalid("TLS client certificate and key must be given together");
    }
    if (!tls.ca_pem.empty()) props.emplace_back("ssl.ca.pem", tls.ca_pem);
    if (!tls.cert_pem.empty()) {
      props.emplace_back("ssl.certificate.pem", tls.cert_pem);
      props.emplace_back("ssl.key.pem", tls.key_pem);
      // librdkafka decrypts ssl.key.pem with ssl.key.password (its PEM password callback).
      if (!tls.key_password.empty()) props.emplace_back("ssl.key.password", tls.key_password);
    }
    if (tls.insecure_skip_verify) {
      // KEDA's unsafeSsl is Go's InsecureSkipVerify: neither the chain nor the host name.
      props.emplace_back("enable.ssl.certificate.verification", "false");
      props.emplace_back("ssl.endpoint.identification.algorithm", "none");
    } else {
      props.emplace_back("ssl.endpoint.identification.algorithm", "https");
    }
  }
  const SaslConfig& sasl = config.sasl;
  switch (sasl.mechanism) {
    case SaslMechanism::kNone:
      break;
    case SaslMechanism::kPlain:
    case SaslMechanism::kScramSha256:
    case SaslMechanism::kScramSha512:
      if (sasl.username.empty() || sasl.password.empty()) {
        return Invalid(absl::StrCat("SASL ", MechanismName(sasl.mechanism),
                                    " needs a username and a password"));
      }
      props.emplace_back("sasl.mechanisms", std::string(MechanismName(sasl.mechanism)));
      props.emplace_back("sasl.username", sasl.username);
      props.emplace_back("sasl.password", sasl.password);
      break;
    case SaslMechanism::kOAuthBearer:
      if (sasl.username.empty() || sasl.password.empty() || sasl.oauth_token_endpoint_uri.empty()) {
        return Invalid("SASL OAUTHBEARER needs a client id, a client secret and a token endpoint");
      }
      for (const auto& [name, value] : sasl.oauth_extensions) {
        // RFC 7628 section 3.1: key = 1*(ALPHA), "auth" is reserved; librdkafka refuses others
        // only when a token is set, so say it here.
        if (name.empty() || name == "auth" || !std::all_of(name.begin(), name.end(), [](char c) {
              return absl::ascii_isalpha(static_cast<unsigned char>(c));
            })) {
          return Invalid(absl::StrCat("oauthExtensions key ", QuoteValue(name),
                                      " must be letters only and not \"auth\" (RFC 7628)"));
        }
      }
      // klag fetches the tokens itself, not librdkafka's `sasl.oauthbearer.method=oidc` (it
      // differs from KEDA's OAuth client: kafka/oidc_token_source.h says how): the settings
      // travel in sasl.oauthbearer.config, which every build accepts and hands to the token
      // refresh callback that rdkafka::NewHandle installs (kafka/rdkafka_oauth.h).
      props.emplace_back("sasl.mechanisms", "OAUTHBEARER");
      props.emplace_back("sasl.oauthbearer.config",
                         FormatOauthbearerConfig({.token_endpoint = sasl.oauth_token_endpoint_uri,
                                                  .client_id = sasl.username,
                                                  .client_secret = sasl.password,
                                                  .scopes = sasl.scopes,
                                                  .extensions = sasl.oauth_extensions}));
      break;
    case SaslMechanism::kGssapi:
      if (!sasl.password.empty()) {
        return Invalid(
            "SASL GSSAPI with a password is not supported: librdkafka logs in with a keytab only");
      }
      if (sasl.username.empty() || sasl.keytab_path.empty()) {
        return Invalid("SASL GSSAPI needs a principal and a keytab file");
      }
      RETURN_IF_ERROR(CheckPrincipalName("username", sasl.username));
      if (!sasl.realm.empty()) RETURN_IF_ERROR(CheckRealm("realm", sasl.realm));
      RETURN_IF_ERROR(CheckServiceName("kerberosServiceName", sasl.kerberos_service_name));
      RETURN_IF_ERROR(CheckAbsolutePath("keytab", sasl.keytab_path));
      props.emplace_back("sasl.mechanisms", "GSSAPI");
      props.emplace_back("sasl.kerberos.service.name", sasl.kerberos_service_name);
      props.emplace_back(
          "sasl.kerberos.principal",
          sasl.realm.empty() ? sasl.username : absl::StrCat(sasl.username, "@", sasl.realm));
      props.emplace_back("sasl.kerberos.keytab", sasl.keytab_path);
      // Set although it is librdkafka's default in spirit: klag owns the command, quotes both
      // values, and no other setting can change it.
      props.emplace_back("sasl.kerberos.kinit.cmd", std::string(kKinitCommand));
      break;
  }
  return props;
}

namespace internal {
std::string Sha256Hex(absl::string_view data) { return Sha256HexOf({data}); }
}  // namespace internal

}  // namespace klag::kafka
