// Trigger metadata (the `metadata` map of a KEDA `kafka` trigger, forwarded verbatim to an
// external scaler) parsed once into a typed, validated TriggerSpec. Pure: no I/O, no clocks.
//
//   scaler::Metadata md = {{"bootstrapServers", "kafka:9092"},
//                          {"consumerGroup", "python_data_load"},
//                          {"topic", "ListedStockPrice"}, {"lagThreshold", "1"}};
//   absl::StatusOr<scaler::TriggerSpec> spec = scaler::ParseTriggerSpec(md);
//   // spec->lag_threshold == 1, spec->offset_reset_policy == OffsetResetPolicy::kLatest
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kafka/connection_config.h"
#include "kafka/offsets.h"

namespace klag::scaler {

using Metadata = std::map<std::string, std::string, std::less<>>;

enum class OffsetResetPolicy { kLatest, kEarliest };

// KEDA's partitionLimitation: ids and inclusive ranges ("1,2,10-20").
struct PartitionRange {
  int32_t first = 0;
  int32_t last = 0;  // inclusive
  friend bool operator==(const PartitionRange&, const PartitionRange&) = default;
};

struct TriggerSpec {
  kafka::ConnectionConfig connection;
  std::string consumer_group;
  // Empty: every topic the group has committed offsets for (KEDA's behaviour without `topic`).
  std::vector<std::string> topics;
  // Empty: all partitions. Ignored without topics, as in KEDA.
  std::vector<PartitionRange> partition_limitation;
  int64_t lag_threshold = 10;
  int64_t activation_lag_threshold = 0;
  // klag extension `activationLagSeconds`: also active when the oldest unconsumed record of a
  // counted partition is older than this (lag in seconds, estimated from the end-offset history),
  // whatever the count. nullopt: count only (KEDA's rule).
  std::optional<double> activation_lag_seconds;
  OffsetResetPolicy offset_reset_policy = OffsetResetPolicy::kLatest;
  bool allow_idle_consumers = false;
  bool exclude_persistent_lag = false;
  bool scale_to_zero_on_invalid_offset = false;
  bool limit_to_partitions_with_lag = false;
  bool ensure_even_distribution_of_partitions = false;
  kafka::IsolationLevel isolation_level = kafka::IsolationLevel::kReadUncommitted;
  std::string version = "1.0.0";  // validated, otherwise unused (librdkafka negotiates)
  // Metadata keys neither KEDA's kafka trigger nor klag knows, sorted, for a one-time warning
  // (KEDA forwards its own keys such as scalerAddress; those are known and not listed). Bounded,
  // since it is logged: a key longer than kafka::kQuotedValueLimit is stored as
  // kafka::QuoteValue(key), and past kMaxUnknownKeys keys the last entry is "... (N keys)".
  static constexpr size_t kMaxUnknownKeys = 20;
  std::vector<std::string> unknown_keys;

  // True when partition `id` passes partition_limitation.
  bool PartitionAllowed(int32_t id) const;
};

// Parses and validates trigger metadata with KEDA's defaults and rules (see the README's
// configuration reference). `<key>FromEnv` forms carry the resolved value and stand for <key>;
// giving both forms of one key is an error. Errors: kInvalidArgument whose message names the key
// and the bad value (secrets are never echoed; values are quoted with kafka::QuoteValue, so cut
// to a bounded length). `policy` is the operator's (kafka::ConnectionPolicy: where GSSAPI
// keytabs may be); the default allows no keytab.
absl::StatusOr<TriggerSpec> ParseTriggerSpec(const Metadata& metadata,
                                             const kafka::ConnectionPolicy& policy = {});

// KEDA's metric name: "kafka-<topic>" (topics joined with "," when several) or
// "kafka-<group>-topics" without topic, with '/', '.', ':', '%', '(', ')' replaced by '-'.
std::string MetricName(const TriggerSpec& spec);

}  // namespace klag::scaler
