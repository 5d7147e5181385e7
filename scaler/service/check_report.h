// What `klag-scaler check` prints: one row per partition (committed, log start, end, lag), what
// KEDA would receive (metric name, value, target, active) and the consumer group's state and
// members, as text or as one JSON document; and how it reads `...FromEnv` keys.
//
//   RETURN_IF_ERROR(ResolveFromEnv(ProcessEnv(), &metadata));
//   CheckContext context{.group = kafka::DescribeGroup(spec.connection, spec.consumer_group, d)};
//   std::cout << FormatCheckReport(**evaluation, context);  // or FormatCheckReportJson
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/flags.h"
#include "kafka/group_description.h"
#include "kafka/rdkafka_record_time.h"
#include "scaler/service/evaluator.h"

namespace klag::scaler {

// What check knows beyond the evaluation.
struct CheckContext {
  // Where the metadata came from, e.g. "ScaledJob sj, trigger 0 (external) in sj.yaml"; empty:
  // the command line.
  std::string source;
  // Things the operator should know (scaler/service/scaledjob_file.h's notes). No secrets.
  std::vector<std::string> notes;
  // The group as its coordinator describes it; nullopt: not asked. An error (e.g. no DESCRIBE
  // permission on the group) is shown as such, it does not fail the check.
  std::optional<absl::StatusOr<kafka::GroupDescription>> group;
  // The record at each lagging partition's first unconsumed offset (kafka/rdkafka_record_time.h),
  // read at `records_read_at`: its timestamp gives the exact age of the oldest record the group
  // has not processed, where the scaler (and an evaluation check makes from one read) can only
  // estimate it. Partitions absent from the map have no readable record; an error is shown as
  // such. nullopt: not read.
  std::optional<absl::StatusOr<std::map<kafka::TopicPartition, kafka::RecordTimestamp>>>
      oldest_records;
  absl::Time records_read_at;
};

std::string FormatCheckReport(const Evaluation& evaluation, const CheckContext& context = {});

// The same facts as one JSON object (and a newline): consumer_group, topics, partitions
// [{topic, partition, committed (null without a commit), log_start, end, lag, lag_seconds (the
// scaler's estimate), persistent, and with a context's records: oldest_unconsumed {offset,
// timestamp (RFC 3339), timestamp_type, age_seconds} or null}],
// total_lag, metric_lag, partitions_with_lag, keda {metric_name, metric_value, target, active,
// activation_lag_threshold}; with a context, source and notes when set, and group {type
// ("classic", "consumer": KIP-848, "unknown": no such group), state, partition_assignor, simple,
// coordinator, members [{member_id, client_id, group_instance_id, host, partitions [{topic,
// partition}] (the trigger's topics), other_partitions (count)}] (null for a consumer-protocol
// group: not described, see kafka/rdkafka_group_describe.h)} or group {error};
// oldest_unconsumed_age_seconds (null when no record was read) or oldest_unconsumed_error.
std::string FormatCheckReportJson(const Evaluation& evaluation, const CheckContext& context = {});

// KEDA resolves a `<key>FromEnv: VAR` trigger key from the Job template's environment and sends
// the value; `check` runs outside KEDA, so it resolves them from its own environment the same
// way: each such key's value becomes the value of the variable it names. Errors:
// kInvalidArgument naming the key and the variable (never a value) when the variable is unset.
absl::Status ResolveFromEnv(const EnvLookup& env, Metadata* metadata);

}  // namespace klag::scaler
