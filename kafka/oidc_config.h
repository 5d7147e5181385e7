// The settings of an OAuth 2.0 client-credentials grant (OIDC) for SASL/OAUTHBEARER, and their
// text form inside librdkafka's `sasl.oauthbearer.config` property. Plain data; no librdkafka,
// no HTTP.
//
// klag fetches tokens itself (kafka/oidc_token_source.h, which says why not with librdkafka's
// own `sasl.oauthbearer.method=oidc`) from librdkafka's token refresh callback
// (kafka/rdkafka_oauth.h).
// The callback receives the value of `sasl.oauthbearer.config`, a property every build accepts,
// so ToRdkafkaProperties puts these settings there and every client made by
// rdkafka::NewHandle gets its tokens without any other plumbing:
//
//   OidcClientConfig c{.token_endpoint = "https://idp/token", .client_id = "klag",
//                      .client_secret = "s3cret", .scopes = {"kafka"}};
//   std::string text = FormatOauthbearerConfig(c);
//   // "klag-oidc-client-credentials token_endpoint=https%3A%2F%2Fidp%2Ftoken client_id=klag ..."
//   absl::StatusOr<OidcClientConfig> back = ParseOauthbearerConfig(text);  // == c
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace klag::kafka {

struct OidcClientConfig {
  std::string token_endpoint;  // http:// or https:// URL
  std::string client_id;
  std::string client_secret;
  std::vector<std::string> scopes;  // sent space-separated (RFC 6749 section 3.3)
  // SASL extensions sent to the broker with the token (RFC 7628), not to the token endpoint.
  std::vector<std::pair<std::string, std::string>> extensions;

  friend bool operator==(const OidcClientConfig&, const OidcClientConfig&) = default;
};

// The first word of a `sasl.oauthbearer.config` value made by FormatOauthbearerConfig.
inline constexpr absl::string_view kOidcConfigMarker = "klag-oidc-client-credentials";

// `sasl.oauthbearer.config` text for `config`: the marker, then space-separated key=value words
// (token_endpoint, client_id, client_secret, scope, extension_<name>) whose values are
// percent-encoded. Holds the client secret: treat it as a secret.
std::string FormatOauthbearerConfig(const OidcClientConfig& config);

// Whether `text` was made by FormatOauthbearerConfig (starts with the marker word).
bool IsKlagOauthbearerConfig(absl::string_view text);

// The inverse of FormatOauthbearerConfig. Errors: kInvalidArgument naming the bad word's key
// (never a value: the text holds the secret) for a missing marker, unknown key, bad
// percent-encoding, or a missing token_endpoint, client_id or client_secret.
absl::StatusOr<OidcClientConfig> ParseOauthbearerConfig(absl::string_view text);

}  // namespace klag::kafka
