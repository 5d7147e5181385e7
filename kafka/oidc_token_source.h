// OAuth 2.0 client-credentials tokens (RFC 6749 section 4.4) for SASL/OAUTHBEARER, fetched with
// libcurl. librdkafka's token refresh callback (kafka/rdkafka_oauth.h) uses it.
//
// Why klag keeps its own token source although librdkafka 2.8 has one
// (`sasl.oauthbearer.method=oidc`): read in librdkafka 2.8.0's
// src/rdkafka_sasl_oauthbearer_oidc.c, the built-in one (a) sends `Basic base64(id:secret)`
// without form-encoding id and secret, so a secret with ':', '%' or '+' authenticates
// differently than under KEDA's `type: kafka` trigger (golang.org/x/oauth2 encodes them, RFC
// 6749 2.3.1); (b) posts `scope=<value>` without encoding (KEDA's `scopes` list joined by spaces
// would be an invalid form body); (c) accepts only JWT access tokens that carry both `exp` and
// `sub` claims (opaque tokens, or JWTs without `sub`, fail where KEDA works; klag takes
// `expires_in` and falls back to the client id); (d) reports endpoint failures without the HTTP
// status or OAuth `error`. Same metadata, same behaviour as KEDA wins over less code here.
//
//   absl::StatusOr<std::unique_ptr<OidcTokenSource>> source = OidcTokenSource::Create(
//       {.token_endpoint = "https://idp.example.com/oauth2/token", .client_id = "klag",
//        .client_secret = secret, .scopes = {"kafka"}});
//   absl::StatusOr<OidcToken> token = (*source)->Fetch();
//   // token->value: the access token; token->expires_at; token->principal ("sub" or client id)
//
// The request: POST to the endpoint, `Authorization: Basic base64(urlencode(client_id) ":"
// urlencode(client_secret))` (RFC 6749 section 2.3.1, as golang.org/x/oauth2 and so KEDA send
// it), form body `grant_type=client_credentials&scope=<scopes joined by spaces>`. The answer:
// a JSON object with `access_token`, `token_type` (Bearer, when given) and `expires_in`
// (seconds; when absent, the token's JWT `exp` claim). https endpoints are verified against the
// system trust store; redirects are not followed.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "kafka/oidc_config.h"

namespace klag::kafka {

struct OidcToken {
  std::string value;  // the access token: a secret
  absl::Time expires_at;
  // The token's JWT "sub" claim when it is a JWT that has one, else the client id. librdkafka
  // needs a principal name for its own bookkeeping; the broker takes the principal from the
  // token itself.
  std::string principal;
};

struct OidcTokenSourceOptions {
  // Bound on one token request (connect + answer).
  absl::Duration timeout = absl::Seconds(10);
};

class OidcTokenSource {
 public:
  // Checks the configuration (http(s) endpoint, client id and secret given). Errors:
  // kInvalidArgument naming what is wrong (never the secret).
  static absl::StatusOr<std::unique_ptr<OidcTokenSource>> Create(
      OidcClientConfig config, OidcTokenSourceOptions options = {});

  // One token request; blocks for up to options.timeout. Thread-safe. Every error message names
  // the endpoint and never holds the client secret or the token. Errors:
  //   kUnauthenticated   HTTP 401, or 400 with invalid_client / unauthorized_client /
  //                      invalid_grant (the client credentials were refused)
  //   kPermissionDenied  HTTP 403
  //   kInvalidArgument   other HTTP 400 answers (invalid_scope, invalid_request, ...)
  //   kUnavailable       the endpoint cannot be reached (connection, DNS, TLS) or answered
  //                      408, 429 or 5xx
  //   kDeadlineExceeded  no answer within options.timeout
  //   kUnknown           any other status, or a 2xx answer that is not a usable token (not JSON,
  //                      no access_token, token_type not Bearer, no or bad expiry)
  absl::StatusOr<OidcToken> Fetch() const;

  const OidcClientConfig& config() const { return config_; }

 private:
  OidcTokenSource(OidcClientConfig config, OidcTokenSourceOptions options)
      : config_(std::move(config)), options_(options) {}

  OidcClientConfig config_;
  OidcTokenSourceOptions options_;
};

namespace internal {
// application/x-www-form-urlencoded encoding of one value (as Go's url.QueryEscape: unreserved
// characters kept, space as '+', everything else %XX). Exposed for tests.
std::string FormUrlEncode(absl::string_view value);

// Interprets the token endpoint's answer (`http_status`, `body`) received at `now`. Errors as
// OidcTokenSource::Fetch; messages start with "OAuth token endpoint <endpoint>". Exposed for
// tests.
absl::StatusOr<OidcToken> ParseTokenResponse(const OidcClientConfig& config, long http_status,
                                             absl::string_view body, absl::Time now);
}  // namespace internal

}  // namespace klag::kafka
