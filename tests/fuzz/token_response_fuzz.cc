// libFuzzer harness: the OAuth token endpoint's answer (kafka/oidc_token_source.h,
// internal::ParseTokenResponse), which comes from a server a trigger names. Invariants: no crash;
// an accepted token is non-empty and expires after the time it was received; no message holds
// the client secret.
#include <cstddef>
#include <cstdint>

#include "absl/strings/match.h"
#include "absl/time/time.h"
#include "kafka/oidc_config.h"
#include "kafka/oidc_token_source.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using klag::fuzz::Check;
  if (size == 0) return 0;
  const klag::fuzz::Input input(data + 1, size - 1);
  static const klag::kafka::OidcClientConfig config = [] {
    klag::kafka::OidcClientConfig c;
    c.token_endpoint = "https://idp.example/token";
    c.client_id = "klag";
    c.client_secret = "client-secret-Hq3wP9tY";
    return c;
  }();
  const long status = data[0] < 200 ? 200 : 100 + data[0];  // mostly 200, some errors
  const absl::Time now = absl::FromUnixSeconds(1700000000);
  absl::StatusOr<klag::kafka::OidcToken> token =
      klag::kafka::internal::ParseTokenResponse(config, status, input.Text(), now);
  if (!token.ok()) {
    // The endpoint's own words may be quoted; the secret klag sent must not come from klag.
    if (!absl::StrContains(input.Text(), config.client_secret)) {
      Check(!absl::StrContains(token.status().message(), config.client_secret),
            "a message holds the client secret");
    }
    return 0;
  }
  Check(!token->value.empty(), "an empty token was accepted");
  Check(token->expires_at > now, "an accepted token is already expired");
  return 0;
}
