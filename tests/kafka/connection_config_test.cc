// Table tests for kafka/connection_config: every connection key's default, valid and invalid
// forms (KEDA's `kafka` trigger names), the FromEnv forms, the librdkafka mapping (checked
// against librdkafka's own property table), Key() and its SHA-256.
#include "kafka/connection_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <functional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace klag::kafka {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// Secret values used in the tables: every one contains "SECRET", and no error message may.
constexpr char kCaPem[] = "-----BEGIN CERTIFICATE-----\nCA-SECRET\n-----END CERTIFICATE-----";
constexpr char kCertPem[] = "-----BEGIN CERTIFICATE-----\nCERT-SECRET\n-----END CERTIFICATE-----";
constexpr char kKeyPem[] = "-----BEGIN PRIVATE KEY-----\nKEY-SECRET\n-----END PRIVATE KEY-----";

SettingMap With(SettingMap base, const SettingMap& extra) {
  for (const auto& [k, v] : extra) base[k] = v;
  return base;
}

const SettingMap kBase = {{"bootstrapServers", "kafka-0:9092"}};

// The operator's policy in these tables: GSSAPI keytabs under /etc/klag.
const ConnectionPolicy kPolicy = {.kerberos_keytab_dir = "/etc/klag"};

// ---------------------------------------------------------------------------------------------
// Invalid settings: one row per rule. Every message must name the key (and the value when it is
// not a secret) and must not contain any secret.

struct ErrorRow {
  std::string name;
  SettingMap settings;
  std::vector<std::string> fragments;  // each must appear in the message
};

void PrintTo(const ErrorRow& row, std::ostream* os) { *os << row.name; }

std::vector<ErrorRow> ErrorRows() {
  return {
      // bootstrapServers
      {"BootstrapMissing", {}, {"bootstrapServers (or bootstrapServersFromEnv) is required"}},
      {"BootstrapWhitespaceOnlyIsMissing",
       {{"bootstrapServers", "   "}},
       {"bootstrapServers (or bootstrapServersFromEnv) is required"}},
      {"BootstrapEmptyEntry",
       {{"bootstrapServers", "a:1,,b:2"}},
       {"bootstrapServers \"a:1,,b:2\" has an empty entry"}},
      {"BootstrapTrailingComma",
       {{"bootstrapServers", "a:1,"}},
       {"bootstrapServers \"a:1,\" has an empty entry"}},
      {"BootstrapNoPort",
       {{"bootstrapServers", "a:1, kafka"}},
       {"bootstrapServers entry \"kafka\" is not host:port (no port)"}},
      {"BootstrapPortZero",
       {{"bootstrapServers", "kafka:0"}},
       {"bootstrapServers entry \"kafka:0\"", "port must be 1-65535"}},
      {"BootstrapPortTooLarge",
       {{"bootstrapServers", "kafka:65536"}},
       {"bootstrapServers entry \"kafka:65536\"", "port must be 1-65535"}},
      {"BootstrapPortNotNumber",
       {{"bootstrapServers", "kafka:http"}},
       {"bootstrapServers entry \"kafka:http\"", "port must be 1-65535"}},
      {"BootstrapPortSigned",
       {{"bootstrapServers", "kafka:+92"}},
       {"bootstrapServers entry \"kafka:+92\"", "port must be 1-65535"}},
      {"BootstrapNoHost",
       {{"bootstrapServers", ":9092"}},
       {"bootstrapServers entry \":9092\"", "no host"}},
      {"BootstrapUnbracketedIpv6",
       {{"bootstrapServers", "::1:9092"}},
       {"bootstrapServers entry \"::1:9092\"", "IPv6 goes in brackets"}},
      {"BootstrapSchemePrefix",
       {{"bootstrapServers", "PLAINTEXT://kafka:9092"}},
       {"bootstrapServers entry \"PLAINTEXT://kafka:9092\""}},
      {"BootstrapBracketWithoutPort",
       {{"bootstrapServers", "[::1]"}},
       {"bootstrapServers entry \"[::1]\"", "no port"}},
      {"BootstrapFromEnvNamesTheEnvKey",
       {{"bootstrapServersFromEnv", "kafka"}},
       {"bootstrapServersFromEnv entry \"kafka\" is not host:port"}},
      {"BootstrapBothForms",
       {{"bootstrapServers", "a:1"}, {"bootstrapServersFromEnv", "b:2"}},
       {"both bootstrapServers and bootstrapServersFromEnv are given"}},
      // tls and its keys
      {"TlsBadValue",
       With(kBase, {{"tls", "yes"}}),
       {"tls must be one of enable, disable; got \"yes\""}},
      {"TlsIsCaseSensitiveAsInKeda",
       With(kBase, {{"tls", "Enable"}}),
       {"tls must be one of enable, disable; got \"Enable\""}},
      {"UnsafeSslNotBool",
       With(kBase, {{"tls", "enable"}, {"unsafeSsl", "yes"}}),
       {"unsafeSsl must be true or false, got \"yes\""}},
      {"UnsafeSslValidatedEvenWithoutTls",
       With(kBase, {{"unsafeSsl", "on"}}),
       {"unsafeSsl must be true or false, got \"on\""}},
      {"CertWithoutKey",
       With(kBase, {{"tls", "enable"}, {"cert", kCertPem}}),
       {"cert is given without key"}},
      {"KeyWithoutCert",
       With(kBase, {{"tls", "enable"}, {"key", kKeyPem}}),
       {"key is given without cert"}},
      {"CertFromEnvWithoutKey",
       With(kBase, {{"tls", "enable"}, {"certFromEnv", kCertPem}}),
       {"certFromEnv is given without key"}},
      {"CaNotPem",
       With(kBase, {{"tls", "enable"}, {"ca", "CA-SECRET-not-pem"}}),
       {"ca must be PEM text", "<redacted>"}},
      {"CertNotPem",
       With(kBase, {{"tls", "enable"}, {"cert", "CERT-SECRET"}, {"key", kKeyPem}}),
       {"cert must be PEM text", "<redacted>"}},
      {"KeyNotPem",
       With(kBase, {{"tls", "enable"}, {"cert", kCertPem}, {"key", "KEY-SECRET"}}),
       {"key must be PEM text", "<redacted>"}},
      {"KeyBothForms",
       With(kBase, {{"tls", "enable"}, {"key", kKeyPem}, {"keyFromEnv", "KEY-SECRET-2"}}),
       {"both key and keyFromEnv are given"}},
      // sasl
      {"SaslUnknown",
       With(kBase, {{"sasl", "PLAIN"}}),
       {"sasl must be one of none, plaintext, scram_sha256, scram_sha512, oauthbearer, gssapi; "
        "got \"PLAIN\""}},
      {"SaslIsCaseSensitiveAsInKeda",
       With(kBase, {{"sasl", "Plaintext"}}),
       {"sasl must be one of", "got \"Plaintext\""}},
      {"PlaintextNeedsUsername",
       With(kBase, {{"sasl", "plaintext"}, {"password", "pw-SECRET"}}),
       {"sasl plaintext needs username (or usernameFromEnv)"}},
      {"PlaintextNeedsPassword",
       With(kBase, {{"sasl", "plaintext"}, {"username", "admin"}}),
       {"sasl plaintext needs password (or passwordFromEnv)"}},
      {"ScramSha256NeedsPassword",
       With(kBase, {{"sasl", "scram_sha256"}, {"username", "admin"}}),
       {"sasl scram_sha256 needs password"}},
      {"ScramSha512NeedsUsername",
       With(kBase, {{"sasl", "scram_sha512"}, {"passwordFromEnv", "pw-SECRET"}}),
       {"sasl scram_sha512 needs username"}},
      {"PasswordBothForms",
       With(kBase, {{"sasl", "plaintext"},
                    {"username", "admin"},
                    {"password", "pw-SECRET"},
                    {"passwordFromEnv", "pw-SECRET-2"}}),
       {"both password and passwordFromEnv are given"}},
      // oauthbearer
      {"OAuthNeedsClientId",
       With(kBase, {{"sasl", "oauthbearer"},
                    {"password", "pw-SECRET"},
                    {"oauthTokenEndpointUri", "https://idp/token"}}),
       {"sasl oauthbearer needs username"}},
      {"OAuthNeedsClientSecret",
       With(kBase, {{"sasl", "oauthbearer"},
                    {"username", "client"},
                    {"oauthTokenEndpointUri", "https://idp/token"}}),
       {"sasl oauthbearer needs password"}},
      {"OAuthNeedsEndpoint",
       With(kBase, {{"sasl", "oauthbearer"}, {"username", "client"}, {"password", "pw-SECRET"}}),
       {"sasl oauthbearer needs oauthTokenEndpointUri (or oauthTokenEndpointUriFromEnv)"}},
      {"OAuthEndpointNotHttp",
       With(kBase, {{"sasl", "oauthbearer"},
                    {"username", "client"},
                    {"password", "pw-SECRET"},
                    {"oauthTokenEndpointUri", "ftp://idp/token"}}),
       {"oauthTokenEndpointUri must be an http:// or https:// URL, got \"ftp://idp/token\""}},
      {"OAuthScopesEmptyEntry",
       With(kBase, {{"sasl", "oauthbearer"},
                    {"username", "client"},
                    {"password", "pw-SECRET"},
                    {"oauthTokenEndpointUri", "https://idp/token"},
                    {"scopes", "a,,b"}}),
       {"scopes \"a,,b\" has an empty entry"}},
      {"OAuthExtensionWithoutValue",
       With(kBase, {{"sasl", "oauthbearer"},
                    {"username", "client"},
                    {"password", "pw-SECRET"},
                    {"oauthTokenEndpointUri", "https://idp/token"},
                    {"oauthExtensions", "a=b,c"}}),
       {"oauthExtensions entry \"c\" is not key=value"}},
      {"OAuthExtensionTwoEquals",
       With(kBase, {{"sasl", "oauthbearer"},
                    {"username", "client"},
                    {"password", "pw-SECRET"},
                    {"oauthTokenEndpointUri", "https://idp/token"},
                    {"oauthExtensions", "a=b=c"}}),
       {"oauthExtensions entry \"a=b=c\" is not key=value"}},
      {"OAuthExtensionEmptyKey",
       With(kBase, {{"sasl", "oauthbearer"},
                    {"username", "client"},
                    {"password", "pw-SECRET"},
                    {"oauthTokenEndpointUri", "https://idp/token"},
                    {"oauthExtensions", "=v"}}),
       {"oauthExtensions entry \"=v\" is not key=value"}},
      {"OAuthExtensionDuplicate",
       With(kBase, {{"sasl", "oauthbearer"},
                    {"username", "client"},
                    {"password", "pw-SECRET"},
                    {"oauthTokenEndpointUri", "https://idp/token"},
                    {"oauthExtensions", "a=1, a=2"}}),
       {"oauthExtensions sets \"a\" twice"}},
      {"TokenProviderUnknown",
       With(kBase, {{"saslTokenProvider", "oidc"}}),
       {"saslTokenProvider must be one of bearer, aws_msk_iam; got \"oidc\""}},
      {"TokenProviderAwsMskIamRefused",
       With(kBase, {{"sasl", "oauthbearer"}, {"saslTokenProvider", "aws_msk_iam"}}),
       {"saslTokenProvider \"aws_msk_iam\" is not implemented", "token refresh callback"}},
      // gssapi
      {"GssapiNeedsUsername",
       With(kBase, {{"sasl", "gssapi"}, {"realm", "EXAMPLE.COM"}, {"keytab", "/k/krb5.keytab"}}),
       {"sasl gssapi needs username"}},
      {"GssapiNeedsRealm",
       With(kBase, {{"sasl", "gssapi"}, {"username", "svc"}, {"keytab", "/k/krb5.keytab"}}),
       {"sasl gssapi needs realm"}},
      {"GssapiPasswordAndKeytab",
       With(kBase, {{"sasl", "gssapi"},
                    {"username", "svc"},
                    {"realm", "EXAMPLE.COM"},
                    {"password", "pw-SECRET"},
                    {"keytab", "/k/krb5.keytab"}}),
       {"sasl gssapi takes exactly one of password and keytab"}},
      {"GssapiPasswordUnsupportedByLibrdkafka",
       With(kBase, {{"sasl", "gssapi"},
                    {"username", "svc"},
                    {"realm", "EXAMPLE.COM"},
                    {"passwordFromEnv", "pw-SECRET"}}),
       {"sasl gssapi with passwordFromEnv is not supported", "keytab"}},
      {"GssapiNeedsKeytab",
       With(kBase, {{"sasl", "gssapi"}, {"username", "svc"}, {"realm", "EXAMPLE.COM"}}),
       {"sasl gssapi needs keytab (or keytabFromEnv)"}},
      {"GssapiKeytabRelativePath",
       With(kBase, {{"sasl", "gssapi"},
                    {"username", "svc"},
                    {"realm", "EXAMPLE.COM"},
                    {"keytab", "SECRET.keytab"}}),
       {"keytab must be an absolute file path", "<redacted>"}},
      {"GssapiKeytabContentsRefused",
       With(kBase, {{"sasl", "gssapi"},
                    {"username", "svc"},
                    {"realm", "EXAMPLE.COM"},
                    {"keytabFromEnv", "/\x05\x02SECRET\nbinary"}}),
       {"keytabFromEnv must be an absolute file path", "<redacted>"}},
      {"GssapiUsernameWithRealm",
       With(kBase, {{"sasl", "gssapi"},
                    {"username", "svc@EXAMPLE.COM"},
                    {"realm", "EXAMPLE.COM"},
                    {"keytab", "/k/krb5.keytab"}}),
       {"username must not contain '@' (byte 3): the realm goes in realm"}},
      {"GssapiKeytabOutsideTheDirectory",
       With(kBase, {{"sasl", "gssapi"},
                    {"username", "svc"},
                    {"realm", "EXAMPLE.COM"},
                    {"keytab", "/etc/klagx/krb5.keytab"}}),
       {"keytab \"/etc/klagx/krb5.keytab\" is not under the keytab directory /etc/klag "
        "(--kerberos-keytab-dir (KLAG_KERBEROS_KEYTAB_DIR))"}},
      {"GssapiKeytabIsTheDirectoryItself",
       With(kBase, {{"sasl", "gssapi"},
                    {"username", "svc"},
                    {"realm", "EXAMPLE.COM"},
                    {"keytab", "/etc/klag"}}),
       {"is not under the keytab directory /etc/klag"}},
      {"GssapiKeytabDotDotEscape",
       With(kBase, {{"sasl", "gssapi"},
                    {"username", "svc"},
                    {"realm", "EXAMPLE.COM"},
                    {"keytab", "/etc/klag/../shadow"}}),
       {"keytab must be an absolute, normalised path", "a \"..\" component at byte 10"}},
      {"GssapiKeytabDotComponent",
       With(kBase, {{"sasl", "gssapi"},
                    {"username", "svc"},
                    {"realm", "EXAMPLE.COM"},
                    {"keytab", "/etc/klag/./k"}}),
       {"keytab must be an absolute, normalised path", "a \".\" component at byte 10"}},
      {"GssapiKeytabDoubleSlash",
       With(kBase, {{"sasl", "gssapi"},
                    {"username", "svc"},
                    {"realm", "EXAMPLE.COM"},
                    {"keytab", "/etc/klag//k"}}),
       {"keytab must be an absolute, normalised path", "an empty component at byte 10"}},
      {"GssapiKeytabTrailingSlash",
       With(kBase, {{"sasl", "gssapi"},
                    {"username", "svc"},
                    {"realm", "EXAMPLE.COM"},
                    {"keytab", "/etc/klag/k/"}}),
       {"keytab must be an absolute, normalised path", "an empty component at byte 12"}},
      {"GssapiUsernameEmptyComponent",
       With(kBase, {{"sasl", "gssapi"},
                    {"username", "svc//host"},
                    {"realm", "EXAMPLE.COM"},
                    {"keytab", "/etc/klag/k"}}),
       {"username must be a Kerberos principal name", "an empty component at byte 4"}},
      {"GssapiUsernameLeadingDashIsAnOption",
       With(kBase, {{"sasl", "gssapi"},
                    {"username", "svc/-V"},
                    {"realm", "EXAMPLE.COM"},
                    {"keytab", "/etc/klag/k"}}),
       {"username must be a Kerberos principal name", "a leading '-' is not allowed at byte 4"}},
      {"GssapiRealmWithUnderscore",
       With(kBase, {{"sasl", "gssapi"},
                    {"username", "svc"},
                    {"realm", "EXAMPLE_COM"},
                    {"keytab", "/etc/klag/k"}}),
       {"realm must be a Kerberos realm", "'_' is not allowed at byte 7"}},
      {"GssapiServiceNameWithSlash",
       With(kBase, {{"sasl", "gssapi"},
                    {"username", "svc"},
                    {"realm", "EXAMPLE.COM"},
                    {"keytab", "/etc/klag/k"},
                    {"kerberosServiceName", "kafka/x"}}),
       {"kerberosServiceName must be a Kerberos service name", "'/' is not allowed at byte 5"}},
  };
}

class ParseConnectionConfigErrorTest : public ::testing::TestWithParam<ErrorRow> {};

TEST_P(ParseConnectionConfigErrorTest, FailsNamingTheKeyWithoutSecrets) {
  const ErrorRow& row = GetParam();
  absl::StatusOr<ConnectionConfig> config = ParseConnectionConfig(row.settings, kPolicy);
  ASSERT_FALSE(config.ok()) << "expected an error";
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  for (const std::string& fragment : row.fragments) {
    EXPECT_THAT(std::string(config.status().message()), HasSubstr(fragment));
  }
  EXPECT_THAT(std::string(config.status().message()), Not(HasSubstr("SECRET")));
}

INSTANTIATE_TEST_SUITE_P(Rules, ParseConnectionConfigErrorTest, ::testing::ValuesIn(ErrorRows()),
                         [](const auto& info) { return info.param.name; });

// ---------------------------------------------------------------------------------------------
// Valid settings: the exact ConnectionConfig.

struct OkRow {
  std::string name;
  SettingMap settings;
  std::function<void(ConnectionConfig&)> expect;  // edits a default config into the expected one
};

void PrintTo(const OkRow& row, std::ostream* os) { *os << row.name; }

std::vector<OkRow> OkRows() {
  return {
      {"Defaults", kBase, [](ConnectionConfig& c) { c.bootstrap_servers = "kafka-0:9092"; }},
      {"BootstrapListTrimmed",
       {{"bootstrapServers", "  kafka-0:9092 , kafka-1.kafka.svc:19092,10.0.0.7:9093 "}},
       [](ConnectionConfig& c) {
         c.bootstrap_servers = "kafka-0:9092,kafka-1.kafka.svc:19092,10.0.0.7:9093";
       }},
      {"BootstrapIpv6InBrackets",
       {{"bootstrapServers", "[::1]:9092,[fd00::7]:9093"}},
       [](ConnectionConfig& c) { c.bootstrap_servers = "[::1]:9092,[fd00::7]:9093"; }},
      {"BootstrapFromEnv",
       {{"bootstrapServersFromEnv", "kafka-2:9092"}},
       [](ConnectionConfig& c) { c.bootstrap_servers = "kafka-2:9092"; }},
      {"EmptyPlainFormDefersToFromEnv",
       {{"bootstrapServers", ""}, {"bootstrapServersFromEnv", "kafka-2:9092"}},
       [](ConnectionConfig& c) { c.bootstrap_servers = "kafka-2:9092"; }},
      {"TlsDisableExplicit", With(kBase, {{"tls", "disable"}}),
       [](ConnectionConfig& c) { c.bootstrap_servers = "kafka-0:9092"; }},
      {"TlsEmptyIsDefault", With(kBase, {{"tls", ""}}),
       [](ConnectionConfig& c) { c.bootstrap_servers = "kafka-0:9092"; }},
      {"TlsEnableSystemTrust", With(kBase, {{"tls", " enable "}}),
       [](ConnectionConfig& c) {
         c.bootstrap_servers = "kafka-0:9092";
         c.tls.enabled = true;
       }},
      {"TlsCaOnly", With(kBase, {{"tls", "enable"}, {"ca", kCaPem}}),
       [](ConnectionConfig& c) {
         c.bootstrap_servers = "kafka-0:9092";
         c.tls.enabled = true;
         c.tls.ca_pem = kCaPem;
       }},
      {"TlsMutualWithKeyPasswordAndUnsafeSsl",
       With(kBase, {{"tls", "enable"},
                    {"caFromEnv", kCaPem},
                    {"certFromEnv", kCertPem},
                    {"keyFromEnv", kKeyPem},
                    {"keyPasswordFromEnv", "kp-SECRET"},
                    {"unsafeSsl", "True"}}),
       [](ConnectionConfig& c) {
         c.bootstrap_servers = "kafka-0:9092";
         c.tls = {.enabled = true,
                  .ca_pem = kCaPem,
                  .cert_pem = kCertPem,
                  .key_pem = kKeyPem,
                  .key_password = "kp-SECRET",
                  .insecure_skip_verify = true};
       }},
      // KEDA reads cert/key/ca/unsafeSsl only when tls is enable; so does klag (not stored).
      {"TlsKeysIgnoredWhenDisabled",
       With(kBase, {{"tls", "disable"}, {"cert", "not pem"}, {"ca", "x"}, {"unsafeSsl", "1"}}),
       [](ConnectionConfig& c) { c.bootstrap_servers = "kafka-0:9092"; }},
      {"SaslNoneExplicit", With(kBase, {{"sasl", "none"}, {"username", "ignored"}}),
       [](ConnectionConfig& c) { c.bootstrap_servers = "kafka-0:9092"; }},
      {"SaslPlaintextTrimmed",
       With(kBase, {{"sasl", "plaintext\n"}, {"username", " admin "}, {"password", "pw-SECRET "}}),
       [](ConnectionConfig& c) {
         c.bootstrap_servers = "kafka-0:9092";
         c.sasl.mechanism = SaslMechanism::kPlain;
         c.sasl.username = "admin";
         c.sasl.password = "pw-SECRET";
       }},
      {"SaslScramSha256FromEnv",
       With(kBase, {{"saslFromEnv", "scram_sha256"},
                    {"usernameFromEnv", "admin"},
                    {"passwordFromEnv", "pw-SECRET"}}),
       [](ConnectionConfig& c) {
         c.bootstrap_servers = "kafka-0:9092";
         c.sasl.mechanism = SaslMechanism::kScramSha256;
         c.sasl.username = "admin";
         c.sasl.password = "pw-SECRET";
       }},
      {"SaslScramSha512WithTls",
       With(kBase, {{"sasl", "scram_sha512"},
                    {"username", "admin"},
                    {"password", "pw-SECRET"},
                    {"tls", "enable"},
                    // OAuth keys mean nothing to SCRAM: ignored, not stored.
                    {"oauthTokenEndpointUri", "https://idp/token"}}),
       [](ConnectionConfig& c) {
         c.bootstrap_servers = "kafka-0:9092";
         c.tls.enabled = true;
         c.sasl.mechanism = SaslMechanism::kScramSha512;
         c.sasl.username = "admin";
         c.sasl.password = "pw-SECRET";
       }},
      // KEDA ignores saslTokenProvider unless sasl is oauthbearer.
      {"AwsMskIamIgnoredWithoutOAuthBearer",
       With(kBase, {{"sasl", "plaintext"},
                    {"username", "admin"},
                    {"password", "pw-SECRET"},
                    {"saslTokenProvider", "aws_msk_iam"}}),
       [](ConnectionConfig& c) {
         c.bootstrap_servers = "kafka-0:9092";
         c.sasl.mechanism = SaslMechanism::kPlain;
         c.sasl.username = "admin";
         c.sasl.password = "pw-SECRET";
       }},
      {"OAuthBearerMinimal",
       With(kBase, {{"sasl", "oauthbearer"},
                    {"username", "client"},
                    {"password", "pw-SECRET"},
                    {"oauthTokenEndpointUri", "https://idp.example.com/token"}}),
       [](ConnectionConfig& c) {
         c.bootstrap_servers = "kafka-0:9092";
         c.sasl.mechanism = SaslMechanism::kOAuthBearer;
         c.sasl.username = "client";
         c.sasl.password = "pw-SECRET";
         c.sasl.oauth_token_endpoint_uri = "https://idp.example.com/token";
       }},
      {"OAuthBearerScopesAndExtensions",
       With(kBase, {{"sasl", "oauthbearer"},
                    {"saslTokenProvider", "bearer"},
                    {"username", "client"},
                    {"password", "pw-SECRET"},
                    {"oauthTokenEndpointUri", "http://idp:8080/token"},
                    {"scopes", "kafka , offsets"},
                    {"oauthExtensionsFromEnv", "logicalCluster=lkc-1, identityPoolId = pool-2"}}),
       [](ConnectionConfig& c) {
         c.bootstrap_servers = "kafka-0:9092";
         c.sasl.mechanism = SaslMechanism::kOAuthBearer;
         c.sasl.username = "client";
         c.sasl.password = "pw-SECRET";
         c.sasl.oauth_token_endpoint_uri = "http://idp:8080/token";
         c.sasl.scopes = {"kafka", "offsets"};
         c.sasl.oauth_extensions = {{"logicalCluster", "lkc-1"}, {"identityPoolId", "pool-2"}};
       }},
      {"GssapiKeytabDefaultServiceName",
       With(kBase, {{"sasl", "gssapi"},
                    {"username", "svc"},
                    {"realm", "EXAMPLE.COM"},
                    {"keytab", "/etc/klag/krb5.keytab"}}),
       [](ConnectionConfig& c) {
         c.bootstrap_servers = "kafka-0:9092";
         c.sasl.mechanism = SaslMechanism::kGssapi;
         c.sasl.username = "svc";
         c.sasl.realm = "EXAMPLE.COM";
         c.sasl.keytab_path = "/etc/klag/krb5.keytab";
         c.sasl.kerberos_service_name = "kafka";
       }},
      {"GssapiServiceName",
       With(kBase, {{"sasl", "gssapi"},
                    {"username", "svc"},
                    {"realm", "EXAMPLE.COM"},
                    {"keytabFromEnv", "/etc/klag/krb5.keytab"},
                    {"kerberosServiceName", "srckafka"}}),
       [](ConnectionConfig& c) {
         c.bootstrap_servers = "kafka-0:9092";
         c.sasl.mechanism = SaslMechanism::kGssapi;
         c.sasl.username = "svc";
         c.sasl.realm = "EXAMPLE.COM";
         c.sasl.keytab_path = "/etc/klag/krb5.keytab";
         c.sasl.kerberos_service_name = "srckafka";
       }},
      {"UnrelatedKeysIgnored", With(kBase, {{"consumerGroup", "g"}, {"lagThreshold", "x"}}),
       [](ConnectionConfig& c) { c.bootstrap_servers = "kafka-0:9092"; }},
  };
}

class ParseConnectionConfigOkTest : public ::testing::TestWithParam<OkRow> {};

TEST_P(ParseConnectionConfigOkTest, BuildsTheExactConfig) {
  const OkRow& row = GetParam();
  absl::StatusOr<ConnectionConfig> config = ParseConnectionConfig(row.settings, kPolicy);
  ASSERT_TRUE(config.ok()) << config.status();
  ConnectionConfig expected;
  row.expect(expected);
  EXPECT_EQ(*config, expected);
}

INSTANTIATE_TEST_SUITE_P(Rules, ParseConnectionConfigOkTest, ::testing::ValuesIn(OkRows()),
                         [](const auto& info) { return info.param.name; });

// ---------------------------------------------------------------------------------------------
// Booleans: Go's strconv.ParseBool spellings, nothing else.

struct BoolRow {
  std::string text;
  std::optional<bool> expected;  // nullopt: error
};

void PrintTo(const BoolRow& row, std::ostream* os) { *os << row.text; }

class ParseKedaBoolTest : public ::testing::TestWithParam<BoolRow> {};

TEST_P(ParseKedaBoolTest, AcceptsExactlyGoSpellings) {
  const BoolRow& row = GetParam();
  absl::StatusOr<bool> parsed = ParseKedaBool(Setting{"allowIdleConsumers", row.text});
  if (row.expected.has_value()) {
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(*parsed, *row.expected);
  } else {
    ASSERT_FALSE(parsed.ok());
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(parsed.status().message()),
                HasSubstr("allowIdleConsumers must be true or false, got \"" + row.text + "\""));
  }
}

INSTANTIATE_TEST_SUITE_P(
    Spellings, ParseKedaBoolTest,
    ::testing::Values(BoolRow{"1", true}, BoolRow{"t", true}, BoolRow{"T", true},
                      BoolRow{"TRUE", true}, BoolRow{"true", true}, BoolRow{"True", true},
                      BoolRow{"0", false}, BoolRow{"f", false}, BoolRow{"F", false},
                      BoolRow{"FALSE", false}, BoolRow{"false", false}, BoolRow{"False", false},
                      BoolRow{"yes", std::nullopt}, BoolRow{"no", std::nullopt},
                      BoolRow{"on", std::nullopt}, BoolRow{"tRUE", std::nullopt},
                      BoolRow{"2", std::nullopt}, BoolRow{"truee", std::nullopt}));

TEST(LookupSettingTest, TrimsAndReportsWhichFormItCameFrom) {
  const SettingMap settings = {{"topic", "  "}, {"topicFromEnv", " orders \n"}};
  absl::StatusOr<std::optional<Setting>> found = LookupSetting(settings, "topic");
  ASSERT_TRUE(found.ok()) << found.status();
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->key, "topicFromEnv");
  EXPECT_EQ((*found)->value, "orders");

  absl::StatusOr<std::optional<Setting>> absent = LookupSetting(settings, "consumerGroup");
  ASSERT_TRUE(absent.ok());
  EXPECT_FALSE(absent->has_value());
}

TEST(ConnectionSettingKeysTest, ListsEveryKeyTheParserReads) {
  EXPECT_THAT(ConnectionSettingKeys(),
              ::testing::UnorderedElementsAre(
                  "bootstrapServers", "tls", "ca", "cert", "key", "keyPassword", "unsafeSsl",
                  "sasl", "username", "password", "saslTokenProvider", "oauthTokenEndpointUri",
                  "scopes", "oauthExtensions", "kerberosServiceName", "keytab", "realm"));
}

// ---------------------------------------------------------------------------------------------
// librdkafka properties: exact lists, and every name/value accepted by the installed librdkafka.

struct PropsRow {
  std::string name;
  SettingMap settings;
  RdkafkaProperties expected;
};

void PrintTo(const PropsRow& row, std::ostream* os) { *os << row.name; }

std::vector<PropsRow> PropsRows() {
  return {
      {"Plaintext",
       kBase,
       {{"bootstrap.servers", "kafka-0:9092"}, {"security.protocol", "PLAINTEXT"}}},
      {"TlsCa",
       With(kBase, {{"tls", "enable"}, {"ca", kCaPem}}),
       {{"bootstrap.servers", "kafka-0:9092"},
        {"security.protocol", "SSL"},
        {"ssl.ca.pem", kCaPem},
        {"ssl.endpoint.identification.algorithm", "https"}}},
      {"TlsMutualUnsafe",
       With(kBase, {{"tls", "enable"},
                    {"cert", kCertPem},
                    {"key", kKeyPem},
                    {"keyPassword", "kp-SECRET"},
                    {"unsafeSsl", "true"}}),
       {{"bootstrap.servers", "kafka-0:9092"},
        {"security.protocol", "SSL"},
        {"ssl.certificate.pem", kCertPem},
        {"ssl.key.pem", kKeyPem},
        {"ssl.key.password", "kp-SECRET"},
        {"enable.ssl.certificate.verification", "false"},
        {"ssl.endpoint.identification.algorithm", "none"}}},
      {"SaslPlain",
       With(kBase, {{"sasl", "plaintext"}, {"username", "u"}, {"password", "p"}}),
       {{"bootstrap.servers", "kafka-0:9092"},
        {"security.protocol", "SASL_PLAINTEXT"},
        {"sasl.mechanisms", "PLAIN"},
        {"sasl.username", "u"},
        {"sasl.password", "p"}}},
      {"SaslScram256Tls",
       With(kBase,
            {{"sasl", "scram_sha256"}, {"username", "u"}, {"password", "p"}, {"tls", "enable"}}),
       {{"bootstrap.servers", "kafka-0:9092"},
        {"security.protocol", "SASL_SSL"},
        {"ssl.endpoint.identification.algorithm", "https"},
        {"sasl.mechanisms", "SCRAM-SHA-256"},
        {"sasl.username", "u"},
        {"sasl.password", "p"}}},
      {"SaslScram512",
       With(kBase, {{"sasl", "scram_sha512"}, {"username", "u"}, {"password", "p"}}),
       {{"bootstrap.servers", "kafka-0:9092"},
        {"security.protocol", "SASL_PLAINTEXT"},
        {"sasl.mechanisms", "SCRAM-SHA-512"},
        {"sasl.username", "u"},
        {"sasl.password", "p"}}},
      {"OAuthBearerOidc",
       With(kBase, {{"sasl", "oauthbearer"},
                    {"tls", "enable"},
                    {"username", "client"},
                    {"password", "secret"},
                    {"oauthTokenEndpointUri", "https://idp/token"},
                    {"scopes", "kafka,offsets"},
                    {"oauthExtensions", "logicalCluster=lkc-1,identityPoolId=pool-2"}}),
       {{"bootstrap.servers", "kafka-0:9092"},
        {"security.protocol", "SASL_SSL"},
        {"ssl.endpoint.identification.algorithm", "https"},
        {"sasl.mechanisms", "OAUTHBEARER"},
        // klag fetches the tokens (kafka/rdkafka_oauth.h): the settings ride in
        // sasl.oauthbearer.config, values percent-encoded.
        {"sasl.oauthbearer.config",
         "klag-oidc-client-credentials token_endpoint=https%3A%2F%2Fidp%2Ftoken client_id=client "
         "client_secret=secret scope=kafka%20offsets extension_logicalCluster=lkc-1 "
         "extension_identityPoolId=pool-2"}}},
      {"Gssapi",
       With(kBase, {{"sasl", "gssapi"},
                    {"username", "svc"},
                    {"realm", "EXAMPLE.COM"},
                    {"keytab", "/etc/klag/krb5.keytab"}}),
       {{"bootstrap.servers", "kafka-0:9092"},
        {"security.protocol", "SASL_PLAINTEXT"},
        {"sasl.mechanisms", "GSSAPI"},
        {"sasl.kerberos.service.name", "kafka"},
        {"sasl.kerberos.principal", "svc@EXAMPLE.COM"},
        {"sasl.kerberos.keytab", "/etc/klag/krb5.keytab"},
        {"sasl.kerberos.kinit.cmd",
         "kinit -R -t '%{sasl.kerberos.keytab}' -k '%{sasl.kerberos.principal}' || "
         "kinit -t '%{sasl.kerberos.keytab}' -k '%{sasl.kerberos.principal}'"}}},
  };
}

class ToRdkafkaPropertiesTest : public ::testing::TestWithParam<PropsRow> {};

TEST_P(ToRdkafkaPropertiesTest, MapsToTheExactPropertiesLibrdkafkaAccepts) {
  const PropsRow& row = GetParam();
  absl::StatusOr<ConnectionConfig> config = ParseConnectionConfig(row.settings, kPolicy);
  ASSERT_TRUE(config.ok()) << config.status();
  absl::StatusOr<RdkafkaProperties> props = ToRdkafkaProperties(*config);
  ASSERT_TRUE(props.ok()) << props.status();
  EXPECT_EQ(*props, row.expected);

  // The installed librdkafka knows every name and accepts every value, in any build: no
  // property needs librdkafka's own OIDC (klag fetches OAUTHBEARER tokens itself).
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char errstr[512];
  for (const auto& [name, value] : *props) {
    errstr[0] = '\0';
    EXPECT_EQ(rd_kafka_conf_set(conf, name.c_str(), value.c_str(), errstr, sizeof(errstr)),
              RD_KAFKA_CONF_OK)
        << name << ": " << errstr;
  }
  rd_kafka_conf_destroy(conf);
}

INSTANTIATE_TEST_SUITE_P(Mappings, ToRdkafkaPropertiesTest, ::testing::ValuesIn(PropsRows()),
                         [](const auto& info) { return info.param.name; });

TEST(ToRdkafkaPropertiesTest, RefusesWhatLibrdkafkaCannotDo) {
  ConnectionConfig gssapi_password;
  gssapi_password.bootstrap_servers = "kafka-0:9092";
  gssapi_password.sasl.mechanism = SaslMechanism::kGssapi;
  gssapi_password.sasl.username = "svc";
  gssapi_password.sasl.password = "pw-SECRET";
  absl::StatusOr<RdkafkaProperties> props = ToRdkafkaProperties(gssapi_password);
  ASSERT_FALSE(props.ok());
  EXPECT_EQ(props.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(props.status().message()), HasSubstr("GSSAPI with a password"));
  EXPECT_THAT(std::string(props.status().message()), Not(HasSubstr("SECRET")));

  ConnectionConfig no_bootstrap;
  EXPECT_EQ(ToRdkafkaProperties(no_bootstrap).status().code(), absl::StatusCode::kInvalidArgument);

  ConnectionConfig cert_without_key;
  cert_without_key.bootstrap_servers = "kafka-0:9092";
  cert_without_key.tls.enabled = true;
  cert_without_key.tls.cert_pem = kCertPem;
  EXPECT_EQ(ToRdkafkaProperties(cert_without_key).status().code(),
            absl::StatusCode::kInvalidArgument);

  // SASL extension keys are letters only, and "auth" is reserved (RFC 7628 section 3.1).
  for (const std::string key : {"logical-cluster", "auth", "pool2"}) {
    ConnectionConfig bad_extension;
    bad_extension.bootstrap_servers = "kafka-0:9092";
    bad_extension.sasl.mechanism = SaslMechanism::kOAuthBearer;
    bad_extension.sasl.username = "client";
    bad_extension.sasl.password = "pw-SECRET";
    bad_extension.sasl.oauth_token_endpoint_uri = "https://idp/token";
    bad_extension.sasl.oauth_extensions = {{key, "v"}};
    absl::StatusOr<RdkafkaProperties> refused = ToRdkafkaProperties(bad_extension);
    ASSERT_FALSE(refused.ok()) << key;
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(refused.status().message()),
                HasSubstr("oauthExtensions key \"" + key + "\" must be letters only"));
    EXPECT_THAT(std::string(refused.status().message()), Not(HasSubstr("SECRET")));
  }

  ConnectionConfig plain_without_password;
  plain_without_password.bootstrap_servers = "kafka-0:9092";
  plain_without_password.sasl.mechanism = SaslMechanism::kPlain;
  plain_without_password.sasl.username = "u";
  EXPECT_EQ(ToRdkafkaProperties(plain_without_password).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// ---------------------------------------------------------------------------------------------
// Key(): equal configs share, any difference separates, no secret in clear.

ConnectionConfig FullConfig() {
  ConnectionConfig c;
  c.bootstrap_servers = "kafka-0:9092,kafka-1:9092";
  c.tls = {.enabled = true,
           .ca_pem = kCaPem,
           .cert_pem = kCertPem,
           .key_pem = kKeyPem,
           .key_password = "kp-SECRET",
           .insecure_skip_verify = false};
  c.sasl.mechanism = SaslMechanism::kOAuthBearer;
  c.sasl.username = "client";
  c.sasl.password = "pw-SECRET";
  c.sasl.oauth_token_endpoint_uri = "https://idp/token";
  c.sasl.scopes = {"a", "b"};
  c.sasl.oauth_extensions = {{"k", "v"}};
  c.sasl.keytab_path = "/k";
  c.sasl.realm = "R";
  return c;
}

TEST(ConnectionConfigKeyTest, EqualConfigsGiveEqualKeysWithoutSecretsInClear) {
  const std::string key = FullConfig().Key();
  EXPECT_EQ(key, FullConfig().Key());
  EXPECT_TRUE(absl::StartsWith(key, "kafka-0:9092,kafka-1:9092|OAUTHBEARER|client|")) << key;
  const std::string digest = key.substr(key.rfind('|') + 1);
  EXPECT_EQ(digest.size(), 64u) << key;
  EXPECT_EQ(digest.find_first_not_of("0123456789abcdef"), std::string::npos) << key;
  EXPECT_THAT(key, Not(HasSubstr("SECRET")));
  EXPECT_THAT(key, Not(HasSubstr("BEGIN")));
}

struct KeyMutation {
  std::string name;
  std::function<void(ConnectionConfig&)> mutate;
};

void PrintTo(const KeyMutation& row, std::ostream* os) { *os << row.name; }

class ConnectionConfigKeyMutationTest : public ::testing::TestWithParam<KeyMutation> {};

TEST_P(ConnectionConfigKeyMutationTest, AnyFieldChangeGivesAnotherKey) {
  ConnectionConfig changed = FullConfig();
  GetParam().mutate(changed);
  ASSERT_NE(changed, FullConfig()) << "the mutation must change the config";
  EXPECT_NE(changed.Key(), FullConfig().Key());
}

INSTANTIATE_TEST_SUITE_P(
    Fields, ConnectionConfigKeyMutationTest,
    ::testing::Values(
        KeyMutation{"Bootstrap", [](auto& c) { c.bootstrap_servers = "kafka-0:9092"; }},
        KeyMutation{"TlsEnabled", [](auto& c) { c.tls.enabled = false; }},
        KeyMutation{"Ca", [](auto& c) { c.tls.ca_pem += "x"; }},
        KeyMutation{"Cert", [](auto& c) { c.tls.cert_pem += "x"; }},
        KeyMutation{"KeyPem", [](auto& c) { c.tls.key_pem += "x"; }},
        KeyMutation{"KeyPassword", [](auto& c) { c.tls.key_password += "x"; }},
        KeyMutation{"Insecure", [](auto& c) { c.tls.insecure_skip_verify = true; }},
        KeyMutation{"Mechanism", [](auto& c) { c.sasl.mechanism = SaslMechanism::kPlain; }},
        KeyMutation{"Username", [](auto& c) { c.sasl.username = "other"; }},
        KeyMutation{"Password", [](auto& c) { c.sasl.password += "x"; }},
        KeyMutation{"Endpoint", [](auto& c) { c.sasl.oauth_token_endpoint_uri += "x"; }},
        KeyMutation{"ScopeSplit", [](auto& c) { c.sasl.scopes = {"ab"}; }},
        KeyMutation{"ScopeOrder",
                    [](auto& c) {
                      c.sasl.scopes = {"b", "a"};
                    }},
        KeyMutation{"Extension",
                    [](auto& c) {
                      c.sasl.oauth_extensions = {{"k", "w"}};
                    }},
        KeyMutation{"ServiceName", [](auto& c) { c.sasl.kerberos_service_name = "x"; }},
        KeyMutation{"Keytab", [](auto& c) { c.sasl.keytab_path = "/j"; }},
        KeyMutation{"Realm", [](auto& c) { c.sasl.realm = "S"; }},
        // Field boundaries matter: moving a character from one field to the next is a change.
        KeyMutation{"ShiftedBoundary",
                    [](auto& c) {
                      c.sasl.keytab_path = "/kR";
                      c.sasl.realm = "";
                    }}),
    [](const auto& info) { return info.param.name; });

struct ShaRow {
  std::string input;
  std::string hex;
};

void PrintTo(const ShaRow& row, std::ostream* os) { *os << row.input.size() << " bytes"; }

class Sha256Test : public ::testing::TestWithParam<ShaRow> {};

TEST_P(Sha256Test, MatchesReferenceDigests) {
  EXPECT_EQ(internal::Sha256Hex(GetParam().input), GetParam().hex);
}

// FIPS 180-2 examples plus the padding boundaries (55, 56 and 64 bytes), from Python's hashlib.
INSTANTIATE_TEST_SUITE_P(
    Vectors, Sha256Test,
    ::testing::Values(
        ShaRow{"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        ShaRow{"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        ShaRow{"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
               "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
        ShaRow{std::string(55, 'a'),
               "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"},
        ShaRow{std::string(56, 'a'),
               "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"},
        ShaRow{std::string(64, 'a'),
               "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"},
        ShaRow{std::string(1000000, 'a'),
               "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"}));

// ---------------------------------------------------------------------------------------------
// GSSAPI: no metadata value may act on the shell that librdkafka runs kinit in
// (sasl.kerberos.kinit.cmd is rendered verbatim and run with system()).

struct ShellRow {
  std::string field;    // the metadata key that carries the payload
  std::string payload;  // inserted in the middle of an otherwise valid value
};

void PrintTo(const ShellRow& row, std::ostream* os) { *os << row.field << " " << row.payload; }

std::vector<ShellRow> ShellRows() {
  // Each payload would run `touch PWNED` (or read a secret) if it reached /bin/sh unquoted or
  // inside librdkafka's double quotes.
  const std::vector<std::string> payloads = {
      ";touch PWNED;#",   "|touch PWNED",
      "&touch PWNED&",    "&&touch PWNED",
      "$(touch PWNED)",   "`touch PWNED`",
      "'$(touch PWNED)'", "\"$(touch PWNED)\"",
      "\ntouch PWNED\n",  " PWNED ",
      "\ttouch PWNED",    ">PWNED",
      "<PWNED",           "%{sasl.password}PWNED",
      "\\PWNED",          "*PWNED?",
      "~PWNED",           "${IFS}PWNED",
      "!PWNED",           "#PWNED",
  };
  std::vector<ShellRow> rows;
  for (const char* field :
       {"username", "usernameFromEnv", "realm", "kerberosServiceName", "keytab", "keytabFromEnv"}) {
    for (const std::string& payload : payloads) rows.push_back({field, payload});
  }
  return rows;
}

SettingMap ValidGssapi() {
  return With(kBase, {{"sasl", "gssapi"},
                      {"username", "svc/host.example.com"},
                      {"realm", "EXAMPLE.COM"},
                      {"keytab", "/etc/klag/svc.keytab"},
                      {"kerberosServiceName", "kafka"}});
}

class GssapiShellTest : public ::testing::TestWithParam<ShellRow> {};

TEST_P(GssapiShellTest, ShellMetacharactersAreRefusedNamingTheKeyNotTheValue) {
  const ShellRow& row = GetParam();
  SettingMap settings = ValidGssapi();
  const std::string base_key = row.field.substr(0, row.field.find("FromEnv"));
  const std::string valid = settings[base_key];
  settings.erase(base_key);
  settings[row.field] = valid + row.payload + "x";
  absl::StatusOr<ConnectionConfig> config = ParseConnectionConfig(settings, kPolicy);
  ASSERT_FALSE(config.ok()) << "accepted " << settings[row.field];
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string message(config.status().message());
  EXPECT_TRUE(absl::StartsWith(message, row.field)) << message;
  EXPECT_THAT(message, Not(HasSubstr("PWNED")));
}

INSTANTIATE_TEST_SUITE_P(Payloads, GssapiShellTest, ::testing::ValuesIn(ShellRows()));

TEST(GssapiShellTest, TheValidValuesPassAndMapToKlagsOwnKinitCommand) {
  absl::StatusOr<ConnectionConfig> config = ParseConnectionConfig(ValidGssapi(), kPolicy);
  ASSERT_TRUE(config.ok()) << config.status();
  absl::StatusOr<RdkafkaProperties> props = ToRdkafkaProperties(*config);
  ASSERT_TRUE(props.ok()) << props.status();
  EXPECT_THAT(*props, ::testing::Contains(
                          ::testing::Pair("sasl.kerberos.kinit.cmd", std::string(kKinitCommand))));
  EXPECT_THAT(*props, ::testing::Contains(::testing::Pair("sasl.kerberos.principal",
                                                          "svc/host.example.com@EXAMPLE.COM")));
  // The command names no property but the two checked ones.
  std::string rest(kKinitCommand);
  for (const char* allowed : {"%{sasl.kerberos.keytab}", "%{sasl.kerberos.principal}"}) {
    for (size_t at; (at = rest.find(allowed)) != std::string::npos;) {
      rest.erase(at, std::string(allowed).size());
    }
  }
  EXPECT_THAT(rest, Not(HasSubstr("%{")));
}

TEST(GssapiShellTest, ToRdkafkaPropertiesChecksAConfigBuiltWithoutTheParser) {
  for (const auto& mutate : std::vector<std::function<void(SaslConfig&)>>{
           [](SaslConfig& s) { s.username = "a;touch PWNED;#"; },
           [](SaslConfig& s) { s.realm = "R$(touch PWNED)"; },
           [](SaslConfig& s) { s.kerberos_service_name = "kafka`touch PWNED`"; },
           [](SaslConfig& s) { s.keytab_path = "/k\"; touch PWNED; \""; },
           [](SaslConfig& s) { s.keytab_path = "/etc/klag/../../k"; },
       }) {
    ConnectionConfig config;
    config.bootstrap_servers = "kafka-0:9092";
    config.sasl.mechanism = SaslMechanism::kGssapi;
    config.sasl.username = "svc";
    config.sasl.realm = "EXAMPLE.COM";
    config.sasl.keytab_path = "/etc/klag/k";
    ASSERT_TRUE(ToRdkafkaProperties(config).ok());
    mutate(config.sasl);
    absl::StatusOr<RdkafkaProperties> props = ToRdkafkaProperties(config);
    ASSERT_FALSE(props.ok());
    EXPECT_EQ(props.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(props.status().message()), Not(HasSubstr("PWNED")));
  }
}

TEST(GssapiKeytabDirTest, NoDirectoryConfiguredRefusesKeytabsNamingTheFlag) {
  absl::StatusOr<ConnectionConfig> config = ParseConnectionConfig(ValidGssapi());
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(config.status().message()),
              HasSubstr("sasl gssapi with keytab is refused: no keytab directory is configured"));
  EXPECT_THAT(std::string(config.status().message()),
              HasSubstr("--kerberos-keytab-dir (KLAG_KERBEROS_KEYTAB_DIR)"));
}

TEST(GssapiKeytabDirTest, DirectoryMayHaveAnyDepthAndRootAllowsEveryPath) {
  SettingMap settings = ValidGssapi();
  settings["keytab"] = "/var/run/secrets/klag/keytabs/team-a/svc.keytab";
  EXPECT_TRUE(
      ParseConnectionConfig(settings, {.kerberos_keytab_dir = "/var/run/secrets/klag"}).ok());
  EXPECT_TRUE(ParseConnectionConfig(settings, {.kerberos_keytab_dir = "/"}).ok());
  EXPECT_FALSE(
      ParseConnectionConfig(settings, {.kerberos_keytab_dir = "/var/run/secrets/kla"}).ok());
}

TEST(GssapiKeytabDirTest, ValidatesTheOperatorsDirectory) {
  for (const char* good : {"", "/", "/etc/klag", "/var/run/secrets/klag-keytabs_1.d"}) {
    EXPECT_TRUE(ValidateKerberosKeytabDir(good).ok()) << good;
  }
  for (const char* bad : {"etc/klag", "/etc/klag/", "/etc//klag", "/etc/../klag", "/etc/./klag",
                          "/etc/kl ag", "/etc/klag;x"}) {
    absl::Status status = ValidateKerberosKeytabDir(bad);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(std::string(status.message()), HasSubstr("--kerberos-keytab-dir")) << bad;
  }
  // A bad directory in the policy fails the parse rather than matching anything.
  SettingMap settings = ValidGssapi();
  settings["keytab"] = "/etc/../etc/klag/k";
  EXPECT_FALSE(ParseConnectionConfig(settings, {.kerberos_keytab_dir = "/etc/../etc/klag"}).ok());
}

// ---------------------------------------------------------------------------------------------
// unsafeSsl turns off Kafka's certificate checks only together with tls: enable. KEDA reads the
// same key for its own gRPC connection to klag-scaler (with enableTLS), which must not weaken
// Kafka's TLS.

struct UnsafeSslRow {
  std::string name;
  SettingMap settings;
  bool kafka_tls;
  bool kafka_verification_off;
};

void PrintTo(const UnsafeSslRow& row, std::ostream* os) { *os << row.name; }

class UnsafeSslTest : public ::testing::TestWithParam<UnsafeSslRow> {};

TEST_P(UnsafeSslTest, TakesEffectOnlyWithKafkaTls) {
  const UnsafeSslRow& row = GetParam();
  absl::StatusOr<ConnectionConfig> config = ParseConnectionConfig(row.settings, kPolicy);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->tls.enabled, row.kafka_tls);
  EXPECT_EQ(config->tls.insecure_skip_verify, row.kafka_verification_off);
  absl::StatusOr<RdkafkaProperties> props = ToRdkafkaProperties(*config);
  ASSERT_TRUE(props.ok()) << props.status();
  const bool verification_off =
      std::find(props->begin(), props->end(),
                std::pair<std::string, std::string>("enable.ssl.certificate.verification",
                                                    "false")) != props->end();
  EXPECT_EQ(verification_off, row.kafka_verification_off);
  if (!row.kafka_tls) {
    for (const auto& [name, value] : *props) {
      EXPECT_FALSE(absl::StartsWith(name, "ssl.") || absl::StartsWith(name, "enable.ssl"))
          << name << "=" << value;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Rows, UnsafeSslTest,
    ::testing::Values(
        UnsafeSslRow{"ForKedaGrpcOnlyNoKafkaTls",
                     With(kBase, {{"enableTLS", "true"}, {"unsafeSsl", "true"}}), false, false},
        UnsafeSslRow{"FromEnvNoKafkaTls", With(kBase, {{"unsafeSslFromEnv", "true"}}), false,
                     false},
        UnsafeSslRow{"KafkaTlsDisabled",
                     With(kBase, {{"tls", "disable"}, {"enableTLS", "true"}, {"unsafeSsl", "1"}}),
                     false, false},
        UnsafeSslRow{"KafkaTlsEmptyIsDisabled", With(kBase, {{"tls", " "}, {"unsafeSsl", "True"}}),
                     false, false},
        UnsafeSslRow{"KafkaTlsOnUnsafeFalse",
                     With(kBase, {{"tls", "enable"}, {"unsafeSsl", "false"}}), true, false},
        UnsafeSslRow{"KafkaTlsOnUnsafeAbsent", With(kBase, {{"tls", "enable"}}), true, false},
        UnsafeSslRow{"KafkaTlsOnUnsafeTrue",
                     With(kBase, {{"tls", "enable"}, {"unsafeSsl", "true"}}), true, true}),
    [](const auto& info) { return info.param.name; });

// ---------------------------------------------------------------------------------------------
// Values echoed in errors are cut: a 1 MB value gives a short message.

TEST(QuoteValueTest, ShortValuesAreQuotedWhole) {
  EXPECT_EQ(QuoteValue("yes"), "\"yes\"");
  EXPECT_EQ(QuoteValue(""), "\"\"");
  EXPECT_EQ(QuoteValue("a\nb\"c"), "\"a\\nb\\\"c\"");
  EXPECT_EQ(QuoteValue(std::string(64, 'x')), "\"" + std::string(64, 'x') + "\"");
}

TEST(QuoteValueTest, LongValuesAreCutWithTheirSize) {
  const std::string big(1 << 20, 'x');
  EXPECT_EQ(QuoteValue(big), "\"" + std::string(64, 'x') + "\"... (1048576 bytes)");
  EXPECT_EQ(QuoteValue(std::string(65, 'y')), "\"" + std::string(64, 'y') + "\"... (65 bytes)");
  // A cut never splits a UTF-8 sequence: "é" is two bytes, the 64th byte would be its first.
  const std::string utf8 = std::string(63, 'a') + "\xc3\xa9" + "zz";
  EXPECT_EQ(QuoteValue(utf8), "\"" + std::string(63, 'a') + "\"... (67 bytes)");
}

TEST(QuoteValueTest, ErrorsAboutMegabyteValuesStayShort) {
  const std::string big(1 << 20, 'v');
  for (const SettingMap& settings : std::vector<SettingMap>{
           {{"bootstrapServers", big}},
           {{"bootstrapServers", "a:1," + big}},
           With(kBase, {{"tls", big}}),
           With(kBase, {{"sasl", big}}),
           With(kBase, {{"unsafeSsl", big}}),
           With(kBase, {{"saslTokenProvider", big}}),
           With(kBase, {{"sasl", "oauthbearer"},
                        {"username", "c"},
                        {"password", "p"},
                        {"oauthTokenEndpointUri", big}}),
           With(kBase, {{"sasl", "oauthbearer"},
                        {"username", "c"},
                        {"password", "p"},
                        {"oauthTokenEndpointUri", "https://idp/token"},
                        {"oauthExtensions", big}}),
           With(kBase, {{"sasl", "gssapi"},
                        {"username", big + ";"},
                        {"realm", "R"},
                        {"keytab", "/etc/klag/k"}}),
           With(kBase, {{"sasl", "gssapi"},
                        {"username", "svc"},
                        {"realm", "R"},
                        {"keytab", "/tmp/" + big}}),
       }) {
    absl::StatusOr<ConnectionConfig> config = ParseConnectionConfig(settings, kPolicy);
    ASSERT_FALSE(config.ok());
    EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_LT(config.status().message().size(), 600u) << config.status().message().substr(0, 200);
  }
}

}  // namespace
}  // namespace klag::kafka
