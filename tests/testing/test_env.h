// Helpers for tests that need the real broker started by scripts/kafka.sh.
//
//   TEST(RealBrokerTest, Something) {
//     KLAG_REQUIRE_BROKER(bootstrap);  // std::string bootstrap = "127.0.0.1:PORT"
//     ...
//   }
#pragma once

#include <gtest/gtest.h>

#include <string>

namespace klag::testing {

// The broker's bootstrap address from KLAG_TEST_BOOTSTRAP, or "" when unset.
std::string BrokerBootstrap();

// True when CI=true: suites must run, never skip.
bool InCi();

// A name unique to this process and call ("<prefix>-<pid>-<counter>-<random>"), for topics and
// groups, so tests never see each other's data on a shared broker.
std::string UniqueName(const std::string& prefix);

}  // namespace klag::testing

// Declares `std::string var` holding the broker address. Without KLAG_TEST_BOOTSTRAP the test is
// skipped with a message saying how to start the broker; when CI=true it fails instead, so CI
// never skips a real-broker suite silently. Use inside a TEST body (it may return).
#define KLAG_REQUIRE_BROKER(var)                                                              \
  const std::string var = ::klag::testing::BrokerBootstrap();                                 \
  if (var.empty()) {                                                                          \
    if (::klag::testing::InCi()) {                                                            \
      FAIL() << "KLAG_TEST_BOOTSTRAP is unset but CI=true: the real-broker suite must run";   \
    }                                                                                         \
    GTEST_SKIP() << "KLAG_TEST_BOOTSTRAP is unset; run scripts/test.sh, or scripts/kafka.sh " \
                    "start and export KLAG_TEST_BOOTSTRAP";                                   \
  }
