// libFuzzer harness: ProfileStore::Merge (scaler/service/profile_store.h), the step that gives a
// trigger an operator's credentials. Profiles (made once, in a temporary directory):
//   kafka  - allowedNamespaces "team-a,team-b"; bootstrapServers, sasl, username, password
//   open   - allowedNamespaces "*"; no credential
//   broken - allowedNamespaces "*"; a credential without bootstrapServers
// Input: a namespace, then metadata pairs (NUL-separated). Invariants: no message holds the
// kafka profile's password (unless the request itself does); a merge that used `kafka` happened for
// team-a or team-b only and left the profile's bootstrapServers and password in place (a trigger
// cannot redirect them); `broken` never merges.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "scaler/service/profile_store.h"
#include "tests/fuzz/fuzz_input.h"

namespace {

constexpr char kPassword[] = "profile-password-Zq8vX2mK";
constexpr char kServers[] = "kafka-a.example:9093";

void Write(const std::filesystem::path& path, const std::string& text) {
  std::ofstream(path) << text;
}

klag::scaler::ProfileStore* Store() {
  static klag::scaler::ProfileStore* store = [] {
    char tmpl[] = "/tmp/klag-profile-fuzz-XXXXXX";
    const std::filesystem::path dir = mkdtemp(tmpl);
    std::filesystem::create_directories(dir / "kafka");
    Write(dir / "kafka" / "allowedNamespaces", "team-a,team-b");
    Write(dir / "kafka" / "bootstrapServers", kServers);
    Write(dir / "kafka" / "sasl", "scram_sha512");
    Write(dir / "kafka" / "username", "svc");
    Write(dir / "kafka" / "password", kPassword);
    std::filesystem::create_directories(dir / "open");
    Write(dir / "open" / "allowedNamespaces", "*");
    Write(dir / "open" / "tls", "enable");
    std::filesystem::create_directories(dir / "broken");
    Write(dir / "broken" / "allowedNamespaces", "*");
    Write(dir / "broken" / "password", kPassword);
    // Profiles never change here: no reload during the run.
    return new klag::scaler::ProfileStore(dir.string(), absl::Hours(24));
  }();
  return store;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using klag::fuzz::Check;
  const klag::fuzz::Input input(data, size);
  const absl::string_view text = input.Text();
  const size_t split = text.find('\0');
  const std::string namespace_(text.substr(0, split));
  const std::string rest(split == absl::string_view::npos ? "" : text.substr(split + 1));
  const klag::fuzz::Input pairs(reinterpret_cast<const uint8_t*>(rest.data()), rest.size());
  const klag::scaler::Metadata metadata = pairs.Map();

  absl::StatusOr<klag::scaler::Metadata> merged = Store()->Merge(namespace_, metadata);
  if (!merged.ok()) {
    // Echoing the request's own words is fine (the fuzzer learns the password from this very
    // comparison and puts it into names); the profile's password from its file is not.
    if (!absl::StrContains(text, kPassword)) {
      Check(!absl::StrContains(merged.status().message(), kPassword), "a message holds a secret");
    }
    return 0;
  }
  auto profile = metadata.find("authProfile");
  if (profile == metadata.end()) {
    Check(*merged == metadata, "metadata without authProfile changed");
    return 0;
  }
  Check(profile->second != "broken", "an incomplete profile merged");
  if (profile->second == "kafka") {
    Check(namespace_ == "team-a" || namespace_ == "team-b", "a namespace not allowed merged");
    Check(merged->at("bootstrapServers") == kServers, "the trigger redirected the profile");
    Check(merged->at("password") == kPassword, "the trigger replaced the profile's password");
  }
  return 0;
}
