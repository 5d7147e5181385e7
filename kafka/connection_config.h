// How to reach a Kafka cluster: bootstrap servers, TLS and SASL. Shared by the scaler (built from
// trigger metadata) and the job (built from flags). Plain data plus a pure mapping to librdkafka
// configuration properties; nothing here includes librdkafka.
//
//   absl::StatusOr<kafka::ConnectionConfig> c = kafka::ParseConnectionConfig(keys);
//   absl::StatusOr<kafka::RdkafkaProperties> props = kafka::ToRdkafkaProperties(*c);
//   // props: {{"bootstrap.servers", "..."}, {"security.protocol", "SASL_SSL"}, ...}
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

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
  std::string keytab_path;  // a file the process can read
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
  std::string Key() const;
};

// Key/value view of settings named as in KEDA's `kafka` trigger: bootstrapServers, tls, ca, cert,
// key, keyPassword, unsafeSsl, sasl, username, password, saslTokenProvider,
// oauthTokenEndpointUri, scopes, oauthExtensions, kerberosServiceName, keytab, realm. Each key
// may also arrive as `<key>FromEnv` holding the resolved value (as KEDA forwards it).
using SettingMap = std::map<std::string, std::string, std::less<>>;

// Builds a ConnectionConfig from KEDA-named settings, with KEDA's validation. Errors:
// kInvalidArgument whose message names the key and the bad value (never a secret's value).
absl::StatusOr<ConnectionConfig> ParseConnectionConfig(const SettingMap& settings);

// The keys ParseConnectionConfig reads (without the FromEnv forms), so callers can tell which
// metadata keys are known.
const std::vector<std::string>& ConnectionSettingKeys();

using RdkafkaProperties = std::vector<std::pair<std::string, std::string>>;

// librdkafka properties for `config`: bootstrap.servers, security.protocol, ssl.*, sasl.*.
// Errors: kInvalidArgument for a combination librdkafka cannot do.
absl::StatusOr<RdkafkaProperties> ToRdkafkaProperties(const ConnectionConfig& config);

}  // namespace klag::kafka
