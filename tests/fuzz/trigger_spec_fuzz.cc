// libFuzzer harness: trigger metadata (what any namespace can put in a ScaledJob) through
// ParseTriggerSpec and, when it parses, the librdkafka properties klag would build from it.
//
// Invariants beyond "no crash, no sanitizer report":
//   - an error never echoes a secret's value (password, key, keyPassword, and their FromEnv
//     forms, whose values are the resolved secrets): when a message holds the secret, the same
//     metadata with that secret's letters and digits changed must give a message that still
//     holds the original text (so it came from the message's own words, e.g. a key name the
//     fuzzer copied into the secret), not the changed secret;
//   - GSSAPI values that reach librdkafka's kinit command line (/bin/sh) hold no byte outside
//     the Kerberos name set, so no metadata can become a shell command.
#include <cstddef>
#include <cstdint>

#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "kafka/connection_config.h"
#include "scaler/lag/trigger_spec.h"
#include "tests/fuzz/fuzz_input.h"

namespace {

// Secrets long enough that they cannot be in a message by coincidence (a key name, a rule).
constexpr size_t kMinCheckedSecret = 12;

bool IsSecretKey(absl::string_view key) {
  for (absl::string_view secret : {"password", "key", "keyPassword"}) {
    if (key == secret || key == std::string(secret) + "FromEnv") return true;
  }
  return false;
}

// `value` with every letter and digit replaced by another of its class (same length, same
// punctuation), so a parser sees the same shape of value.
std::string Changed(absl::string_view value) {
  std::string out(value);
  for (char& c : out) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>('a' + (c - 'a' + 13) % 26);
    if (c >= 'A' && c <= 'Z') c = static_cast<char>('A' + (c - 'A' + 13) % 26);
    if (c >= '0' && c <= '9') c = static_cast<char>('0' + (c - '0' + 5) % 10);
  }
  return out;
}

bool ShellSafe(absl::string_view value) {
  for (char c : value) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-' || c == '/' || c == '@';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const klag::fuzz::Input input(data, size);
  const klag::scaler::Metadata metadata = input.Map();
  const klag::kafka::ConnectionPolicy policy{.kerberos_keytab_dir = "/etc/klag/keytabs"};

  absl::StatusOr<klag::scaler::TriggerSpec> spec = klag::scaler::ParseTriggerSpec(metadata, policy);
  if (!spec.ok()) {
    for (const auto& [key, value] : metadata) {
      if (!IsSecretKey(key) || value.size() < kMinCheckedSecret ||
          !absl::StrContains(spec.status().message(), value)) {
        continue;
      }
      const std::string changed = Changed(value);
      if (changed == value) continue;  // no letter or digit: nothing to tell apart
      klag::scaler::Metadata other = metadata;
      other[key] = changed;
      absl::StatusOr<klag::scaler::TriggerSpec> again =
          klag::scaler::ParseTriggerSpec(other, policy);
      const bool echoed = !again.ok() && !absl::StrContains(again.status().message(), value) &&
                          absl::StrContains(again.status().message(), changed);
      klag::fuzz::Check(!echoed, "ParseTriggerSpec's error echoes a secret");
    }
    return 0;
  }
  (void)klag::scaler::MetricName(*spec);
  absl::StatusOr<klag::kafka::RdkafkaProperties> properties =
      klag::kafka::ToRdkafkaProperties(spec->connection);
  if (!properties.ok()) return 0;
  for (const auto& [name, value] : *properties) {
    if (name == "sasl.kerberos.principal" || name == "sasl.kerberos.keytab" ||
        name == "sasl.kerberos.service.name") {
      klag::fuzz::Check(ShellSafe(value),
                        "a GSSAPI value for kinit's command line is not shell-safe");
    }
  }
  return 0;
}
