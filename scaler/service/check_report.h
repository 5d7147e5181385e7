// What `klag-scaler check` prints: one row per partition (committed, log start, end, lag) and
// what KEDA would receive (metric name, value, target, active), as text or as one JSON document;
// and how it reads `...FromEnv` keys.
//
//   RETURN_IF_ERROR(ResolveFromEnv(ProcessEnv(), &metadata));
//   std::cout << FormatCheckReport(**evaluation);       // or FormatCheckReportJson
#pragma once

#include <string>

#include "absl/status/status.h"
#include "common/flags.h"
#include "scaler/service/evaluator.h"

namespace klag::scaler {

std::string FormatCheckReport(const Evaluation& evaluation);

// The same facts as one JSON object (and a newline): consumer_group, topics, partitions
// [{topic, partition, committed (null without a commit), log_start, end, lag, persistent}],
// total_lag, metric_lag, partitions_with_lag, and keda {metric_name, metric_value, target,
// active, activation_lag_threshold}.
std::string FormatCheckReportJson(const Evaluation& evaluation);

// KEDA resolves a `<key>FromEnv: VAR` trigger key from the Job template's environment and sends
// the value; `check` runs outside KEDA, so it resolves them from its own environment the same
// way: each such key's value becomes the value of the variable it names. Errors:
// kInvalidArgument naming the key and the variable (never a value) when the variable is unset.
absl::Status ResolveFromEnv(const EnvLookup& env, Metadata* metadata);

}  // namespace klag::scaler
