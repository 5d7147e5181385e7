// How to reach a Kafka cluster: bootstrap servers, TLS and SASL. Shared by the scaler (built from
// trigger metadata) and the job (built from flags). Plain data plus a pure mapping to librdkafka
// configuration properties; nothing here includes librdkafka.
//
//   absl::StatusOr<kafka::ConnectionConfig> c =
//       kafka::ParseConnectionConfig(keys, {.kerberos_keytab_dir = "/etc/klag/keytabs"});
//   absl::StatusOr<kafka::RdkafkaProperties> props = kafka::ToRdkafkaProperties(*c);
//   // props: {{"bootstrap.servers", "..."}, {"security.protocol", "SASL_SSL"}, ...}
#pragma once

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace klag::kafka {

enum class SaslMechanism { kNone, kPlain, kScramSha256, kScramSha512, kOAuthBearer, kGssapi };

struct TlsConfig {
  bool enabled = false;
  std::string ca_pem;    // PEM text; empty: system trust store
  std::string cert_pem;  // client certificate (mutual TLS); needs key_pem
  std::string key_pem;
  std::string key_password;
  bool insecure_skip_verify = false;  // KEDA's unsafeSsl

  friend bool operator==(const TlsConfig&, const TlsConfig&) = default;
};

struct SaslConfig {
  SaslMechanism mechanism = SaslMechanism::kNone;
  std::string username;  // plaintext/scram user; oauthbearer client id; gssapi principal
  std::string password;  // plaintext/scram password; oauthbearer client secret; gssapi password
  // oauthbearer (OIDC client credentials)
  std::string oauth_token_endpoint_uri;
  std::vector<std::string> scopes;
  std::vector<std::pair<std::string, std::string>> oauth_extensions;
  // gssapi (Kerberos)
  std::string kerberos_service_name = "kafka";
  std::string keytab_path;  // a file the process can read, under ConnectionPolicy's directory
  std::string realm;

  friend bool operator==(const SaslConfig&, const SaslConfig&) = default;
};

struct ConnectionConfig {
  std::string bootstrap_servers;  // "host:port,host:port"
  TlsConfig tls;
  SaslConfig sasl;

  friend bool operator==(const ConnectionConfig&, const ConnectionConfig&) = default;

  // A stable identity for sharing one client: equal configs give equal keys, and the key holds
  // no secret in clear (secrets enter it hashed).
  // Format: "<bootstrap_servers>|<mechanism>|<username>|<hex>", where <hex> is a salted
  // SHA-256 of every other field. The salt is random per process, so keys are stable within one
  // process only and a logged key does not allow guessing a weak password offline. Different
  // configs give different keys except with negligible (SHA-256 collision) probability.
  std::string Key() const;
};

// Key/value view of settings named as in KEDA's `kafka` trigger: bootstrapServers, tls, ca, cert,
// key, keyPassword, unsafeSsl, sasl, username, password, saslTokenProvider,
// oauthTokenEndpointUri, scopes, oauthExtensions, kerberosServiceName, keytab, realm. Each key
// may also arrive as `<key>FromEnv` holding the resolved value (as KEDA forwards it).
using SettingMap = std::map<std::string, std::string, std::less<>>;

// One setting as found in a SettingMap.
struct Setting {
  std::string key;    // where it came from: "<key>" or "<key>FromEnv"
  std::string value;  // surrounding whitespace removed; never empty
};

// Looks up `key` as KEDA does: the value of `key` or of `<key>FromEnv`, with surrounding
// whitespace removed; an empty value counts as absent. Returns nullopt when neither form has a
// value. Errors: kInvalidArgument when both forms have one (KEDA silently prefers `key`; klag
// refuses the ambiguity). The message names both keys, never the values.
absl::StatusOr<std::optional<Setting>> LookupSetting(const SettingMap& settings,
                                                     absl::string_view key);

// Parses a boolean as KEDA does (v2.20.2's typed config uses Go's strconv.ParseBool): 1, t, T,
// TRUE, true, True, 0, f, F, FALSE, false, False. Errors: kInvalidArgument naming `setting.key`
// and the value.
absl::StatusOr<bool> ParseKedaBool(const Setting& setting);

// The index of `setting.value` in `choices` (exact, case-sensitive match, as KEDA's typed config
// compares). Errors: kInvalidArgument naming `setting.key`, the choices and the (quoted) value.
absl::StatusOr<size_t> ParseEnum(const Setting& setting,
                                 const std::vector<absl::string_view>& choices);

// A decimal integer as Go's strconv.ParseInt(s, 10, 64) accepts it: optional sign, digits,
// within int64. Errors: kInvalidArgument naming `setting.key` and the (quoted) value.
absl::StatusOr<int64_t> ParseKedaInteger(const Setting& setting);

// What the process's operator allows connection settings to name. Filled from process flags
// (never from the settings themselves), passed to ParseConnectionConfig.
struct ConnectionPolicy {
  // Absolute, normalised directory that every GSSAPI `keytab` path must lie under (lexically):
  // klag-scaler's and klag-job's --kerberos-keytab-dir (KLAG_KERBEROS_KEYTAB_DIR). Empty: no
  // directory is configured and sasl gssapi with a keytab is refused.
  std::string kerberos_keytab_dir;
};

// The flag that sets ConnectionPolicy::kerberos_keytab_dir, for messages.
inline constexpr absl::string_view kKerberosKeytabDirFlag =
    "--kerberos-keytab-dir (KLAG_KERBEROS_KEYTAB_DIR)";

// Checks an operator-given keytab directory: absolute, normalised (no empty, "." or ".."
// component, no trailing '/'), characters [A-Za-z0-9._/-]. Empty is valid (none configured).
// Errors: kInvalidArgument naming kKerberosKeytabDirFlag.
absl::Status ValidateKerberosKeytabDir(absl::string_view dir);

// sasl.kerberos.kinit.cmd as klag sets it. librdkafka runs it with system(), i.e. through
// /bin/sh, after pasting in the principal and the keytab path verbatim; both are checked
// against strict character sets (no quote, no shell metacharacter, no leading '-') before they
// get here, and the command single-quotes them as well.
inline constexpr absl::string_view kKinitCommand =
    "kinit -R -t '%{sasl.kerberos.keytab}' -k '%{sasl.kerberos.principal}' || "
    "kinit -t '%{sasl.kerberos.keytab}' -k '%{sasl.kerberos.principal}'";

// A metadata value quoted for an error message: at most kQuotedValueLimit bytes of it (cut at a
// UTF-8 boundary), control characters, quotes and backslashes C-escaped, then, when cut,
// `... (N bytes)`. For example QuoteValue("ab") is "\"ab\"", and a 1 MB value gives
// "\"aaaa...a\"... (1048576 bytes)". Every message that echoes a metadata value uses it, so a
// request cannot make an error (and the log line that carries it) megabytes long or multi-line.
inline constexpr size_t kQuotedValueLimit = 64;
std::string QuoteValue(absl::string_view value);

// Builds a ConnectionConfig from KEDA-named settings, with KEDA's validation. Errors:
// kInvalidArgument whose message names the key and the bad value (never a secret's value; values
// quoted with QuoteValue). sasl gssapi values are held to strict character sets so that none
// can act on the shell that librdkafka runs kinit in: `username` is a Kerberos name without realm
// (components of [A-Za-z0-9._-] joined by '/'), `realm` [A-Za-z0-9.-], `kerberosServiceName`
// [A-Za-z0-9._-] (none starting with '-'), and `keytab` an absolute, normalised path of
// [A-Za-z0-9._/-] under `policy.kerberos_keytab_dir`; a bad one is refused naming the key and
// the first bad character's position, never echoing the value.
// klag's differences (scaler/lag/README.md has the full table): bootstrapServers entries must
// be host:port; ca, cert and key must be PEM text; keytab is a file path (KEDA: the keytab's
// contents); sasl gssapi needs keytab (librdkafka cannot log in with a Kerberos password);
// saslTokenProvider aws_msk_iam is refused (librdkafka has no MSK IAM signer). Settings that
// the chosen tls/sasl mode does not use are ignored, as KEDA does, and are not stored, so equal
// connections compare equal.
absl::StatusOr<ConnectionConfig> ParseConnectionConfig(const SettingMap& settings,
                                                       const ConnectionPolicy& policy = {});

// The keys ParseConnectionConfig reads (without the FromEnv forms), so callers can tell which
// metadata keys are known.
const std::vector<std::string>& ConnectionSettingKeys();

using RdkafkaProperties = std::vector<std::pair<std::string, std::string>>;

// librdkafka properties for `config`: bootstrap.servers, security.protocol, ssl.*, sasl.*;
// for GSSAPI also sasl.kerberos.kinit.cmd = kKinitCommand. Errors: kInvalidArgument for a
// combination librdkafka cannot do, or GSSAPI values outside the character sets above (checked
// again here, so a config built without the parser cannot reach the shell either).
absl::StatusOr<RdkafkaProperties> ToRdkafkaProperties(const ConnectionConfig& config);

namespace internal {
// Lower-case hex SHA-256 of `data`; exposed for tests of Key()'s hash.
std::string Sha256Hex(absl::string_view data);
}  // namespace internal

}  // namespace klag::kafka
