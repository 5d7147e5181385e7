// libFuzzer harness: the `sasl.oauthbearer.config` text klag writes and reads back
// (kafka/oidc_config.h). Invariants: parsing never crashes; whatever parses formats and parses
// back to the same configuration (the round trip the token refresh callback relies on).
#include <cstddef>
#include <cstdint>

#include "kafka/oidc_config.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const klag::fuzz::Input input(data, size);
  absl::StatusOr<klag::kafka::OidcClientConfig> config =
      klag::kafka::ParseOauthbearerConfig(input.Text());
  if (!config.ok()) return 0;
  const std::string text = klag::kafka::FormatOauthbearerConfig(*config);
  klag::fuzz::Check(klag::kafka::IsKlagOauthbearerConfig(text), "formatted text lacks the marker");
  absl::StatusOr<klag::kafka::OidcClientConfig> again = klag::kafka::ParseOauthbearerConfig(text);
  klag::fuzz::Check(again.ok(), "formatted text does not parse");
  klag::fuzz::Check(*again == *config, "parse(format(c)) != c");
  return 0;
}
