// KEDA's lag computation for one evaluation of one trigger, with klag's fixes. Pure.
//
//   RETURN_IF_ERROR(scaler::CheckPartitionLimitation(spec, offsets));
//   scaler::LagReport r = scaler::ComputeLag(spec, offsets, previous);
//   // r.metric_value -> GetMetrics, spec.lag_threshold -> GetMetricSpec, r.active -> IsActive
//   previous = r.snapshot;  // for excludePersistentLag on the next poll
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "kafka/offsets.h"
#include "scaler/lag/trigger_spec.h"

namespace klag::scaler {

// Committed offsets seen at one evaluation, for excludePersistentLag on the next one.
struct LagSnapshot {
  absl::flat_hash_map<kafka::TopicPartition, std::optional<int64_t>> committed;
};

struct PartitionLag {
  std::string topic;
  int32_t partition = 0;
  std::optional<int64_t> committed;
  int64_t log_start = 0;
  int64_t end = 0;
  // Lag counted for activity: never negative; measured from max(committed, log_start).
  int64_t lag = 0;
  // True when excludePersistentLag dropped this partition's lag from the metric (its commit did
  // not move since the previous evaluation).
  bool persistent = false;
  // Age of the oldest unconsumed record when the committed offsets were read
  // (committed_read_at - unconsumed_since, >= 0): 0 without lag; nullopt when the reader could
  // not estimate it (no end-offset history covers the record yet).
  std::optional<double> lag_seconds;
};

struct LagReport {
  // The partitions that count (after partitionLimitation), sorted by (topic, partition).
  std::vector<PartitionLag> partitions;
  int64_t total_lag = 0;                  // sum of metric lag, before any cap
  int64_t total_lag_with_persistent = 0;  // sum of every partition's lag (activity)
  int64_t partitions_with_lag = 0;
  int64_t metric_value = 0;  // what GetMetrics returns (>= 0, capped)
  // The largest lag_seconds of the counted partitions with lag (persistent lag included): 0
  // when none has lag; nullopt when some have lag but none has an estimate (with estimates for
  // only some, a lower bound).
  std::optional<double> max_lag_seconds;
  // total_lag_with_persistent > activation_lag_threshold, or (with activationLagSeconds)
  // max_lag_seconds > activation_lag_seconds.
  bool active = false;
  LagSnapshot snapshot;  // pass as `previous` to the next evaluation of this trigger
};

// KEDA fails a trigger whose partitionLimitation selects none of the named topics' partitions;
// so does klag, instead of answering 0 and inactive (which would hold a broken trigger at zero
// for ever). Call with the offsets before ComputeLag. OK without a limitation (or without
// topics, where KEDA ignores it) or when at least one partition of `offsets` passes it. Errors:
// kInvalidArgument naming partitionLimitation, its ranges and the existing partitions per topic,
// e.g. "partitionLimitation 5-7 selects no existing partition (t: 0-2)".
absl::Status CheckPartitionLimitation(const TriggerSpec& spec, const kafka::GroupOffsets& offsets);

// Computes the report for `offsets` under `spec`. `previous` is the snapshot of the previous
// poll of the same trigger (nullptr on the first), used only with excludePersistentLag.
LagReport ComputeLag(const TriggerSpec& spec, const kafka::GroupOffsets& offsets,
                     const LagSnapshot* previous);

}  // namespace klag::scaler
