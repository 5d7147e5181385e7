#include "tests/testing/test_env.h"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <random>

#include "absl/strings/str_cat.h"

namespace klag::testing {

std::string BrokerBootstrap() {
  const char* bootstrap = std::getenv("KLAG_TEST_BOOTSTRAP");
  return bootstrap == nullptr ? "" : bootstrap;
}

bool InCi() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && std::string(ci) == "true";
}

std::string UniqueName(const std::string& prefix) {
  static std::atomic<int> counter{0};
  static const unsigned seed = std::random_device{}();
  return absl::StrCat(prefix, "-", getpid(), "-", counter.fetch_add(1), "-", seed % 100000);
}

}  // namespace klag::testing
