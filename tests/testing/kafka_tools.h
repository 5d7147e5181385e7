// Kafka's own Java tools for tests that need what only Kafka's Java client does (a consumer on the
// KIP-848 consumer protocol, a share consumer): scripts/kafka.sh run-class CLASS, against the
// broker of the state dir in KLAG_KAFKA_STATE, plus the group type as the broker lists it. Tests
// that need Kafka >= 4.0 carry the ctest label kafka4 and open with KLAG_REQUIRE_KAFKA4.
//
//   KLAG_REQUIRE_KAFKA4(bootstrap, state);
//   testing::KafkaTools tools(KLAG_SOURCE_DIR "/scripts/kafka.sh", state);
//   absl::StatusOr<testing::ConsumedOffsets> consumed =
//       tools.ConsumeWithConsumerProtocol(bootstrap, topic, group, 25);
//   EXPECT_EQ(*testing::GroupType(bootstrap, group), "consumer");
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tests/testing/test_env.h"

namespace klag::testing {

// KLAG_KAFKA_STATE (the state dir of scripts/kafka.sh's broker), or "" when unset.
std::string KafkaStateDir();

// The Kafka version that state dir runs (<state>/version, written by scripts/kafka.sh), or ""
// when it cannot be read.
std::string KafkaVersion(const std::string& state);

// True for "4.0.0" and newer.
bool IsKafka4OrNewer(const std::string& version);

struct ToolResult {
  int exit_code = -1;  // -1: killed (timeout) or not started
  std::string stdout_text;
  std::string stderr_text;
};

// Offsets a consumer received, per partition, in the order it printed them.
using ConsumedOffsets = std::map<int32_t, std::vector<int64_t>>;

class KafkaTools {
 public:
  // `kafka_sh`: path of scripts/kafka.sh; `state`: its state dir.
  KafkaTools(std::string kafka_sh, std::string state);

  // Runs `kafka.sh --state STATE run-class CLASS ARGS...` (killed after `timeout`). Errors:
  // kInternal when the process cannot be started; a non-zero exit is in the result.
  absl::StatusOr<ToolResult> RunClass(const std::string& java_class,
                                      const std::vector<std::string>& args,
                                      absl::Duration timeout = absl::Seconds(120)) const;

  // Kafka's console consumer (org.apache.kafka.tools.consumer.ConsoleConsumer) in `group` with
  // group.protocol=consumer, from the earliest offset, one record per poll, until it has
  // `max_messages` records; it commits what it received when it closes (auto-commit), so the
  // group's committed offset of each partition is the last received offset + 1. Returns the
  // received offsets. With `idle_exit`, it also stops after that long without a record (and
  // the result may hold fewer records). Errors: kInternal with the tool's stderr when it fails,
  // or (without `idle_exit`) prints fewer records.
  absl::StatusOr<ConsumedOffsets> ConsumeWithConsumerProtocol(
      const std::string& bootstrap, const std::string& topic, const std::string& group,
      int max_messages, absl::Duration timeout = absl::Seconds(120),
      std::optional<absl::Duration> idle_exit = std::nullopt) const;

 private:
  std::string kafka_sh_;
  std::string state_;
};

// The type of `group` as the broker lists it (admin ListConsumerGroups): "consumer" (KIP-848),
// "classic", or "unknown". Errors: kNotFound when the broker does not list the group, or the
// mapped librdkafka error.
absl::StatusOr<std::string> GroupType(const std::string& bootstrap, const std::string& group,
                                      absl::Duration timeout = absl::Seconds(30));

// The state of `group` as the broker lists it (admin ListConsumerGroups): "Stable", "Empty",
// "PreparingRebalance", ... Errors: as GroupType.
absl::StatusOr<std::string> GroupState(const std::string& bootstrap, const std::string& group,
                                       absl::Duration timeout = absl::Seconds(30));

}  // namespace klag::testing

// For tests labelled kafka4: declares `std::string bootstrap_var` (KLAG_TEST_BOOTSTRAP) and
// `std::string state_var` (KLAG_KAFKA_STATE) of a Kafka >= 4.0 broker. Without them, or with an
// older broker, the test is skipped with a message; when CI=true it fails instead, so CI never
// skips the Kafka 4 suite silently. Use inside a TEST body (it may return).
#define KLAG_REQUIRE_KAFKA4(bootstrap_var, state_var)                                             \
  KLAG_REQUIRE_BROKER(bootstrap_var);                                                             \
  const std::string state_var = ::klag::testing::KafkaStateDir();                                 \
  {                                                                                               \
    const std::string kafka4_version_ =                                                           \
        state_var.empty() ? "" : ::klag::testing::KafkaVersion(state_var);                        \
    if (!::klag::testing::IsKafka4OrNewer(kafka4_version_)) {                                     \
      const std::string kafka4_why_ = state_var.empty()                                           \
                                          ? "KLAG_KAFKA_STATE is unset"                           \
                                          : "the broker of KLAG_KAFKA_STATE=" + state_var +       \
                                                " runs Kafka \"" + kafka4_version_ + "\"";        \
      if (::klag::testing::InCi()) {                                                              \
        FAIL() << kafka4_why_ << " but CI=true: the kafka4 suite needs a Kafka >= 4.0 broker";    \
      }                                                                                           \
      GTEST_SKIP() << kafka4_why_ << "; needs a Kafka >= 4.0 broker: scripts/kafka.sh --version " \
                   << "4.4.0 --state DIR start, export KLAG_TEST_BOOTSTRAP and KLAG_KAFKA_STATE"; \
    }                                                                                             \
  }
