// A KEDA ScaledJob manifest, read into the fields the local loop acts on (KEDA's defaults filled
// in). Plain data; parsing uses yaml-cpp and never throws.
//
//   absl::StatusOr<local::ScaledJob> sj = local::ParseScaledJob(yaml_text);
//   sj->polling_interval;                    // absl::Seconds(30) when the manifest omits it
//   sj->triggers[0].metadata["topic"];       // "ListedStockPrice"
//   sj->job.container.env[0].name;           // "KLAG_BOOTSTRAP_SERVERS"
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/keda_manifest.h"

namespace klag::local {

using StringMap = std::map<std::string, std::string, std::less<>>;

// A reference to one key of a Secret or ConfigMap (env valueFrom).
struct KeyRef {
  std::string name;
  std::string key;
  bool optional = false;
};

// One entry of a container's `env`: a literal `value`, or a reference.
struct EnvVar {
  std::string name;
  std::optional<std::string> value;
  std::optional<KeyRef> secret_key_ref;
  std::optional<KeyRef> config_map_key_ref;
};

struct Container {
  std::string name;
  std::string image;
  std::vector<std::string> command;  // empty: the image's ENTRYPOINT
  std::vector<std::string> args;
  std::vector<EnvVar> env;
};

// jobTargetRef: the Job each scale-up creates, with Kubernetes' Job defaults.
struct JobTemplate {
  int64_t parallelism = 1;
  int64_t completions = 1;
  std::optional<absl::Duration> active_deadline;  // activeDeadlineSeconds
  int64_t backoff_limit = 6;
  absl::Duration termination_grace = absl::Seconds(30);  // terminationGracePeriodSeconds
  std::string restart_policy = "OnFailure";  // what KEDA sets when the template has none
  // The container whose env KEDA resolves `...FromEnv` keys from (envSourceContainerName, or
  // the first one). The local loop runs this container only.
  Container container;
  size_t container_count = 0;
};

// One entry of spec.triggers, read as `klag-scaler check` reads it (common/keda_manifest.h).
using Trigger = manifest::Trigger;

enum class Strategy { kDefault, kCustom, kAccurate, kEager };
enum class MultipleScalersCalculation { kMax, kMin, kAvg, kSum };

struct ScalingStrategy {
  Strategy strategy = Strategy::kDefault;
  std::optional<int64_t> custom_queue_length_deduction;
  // Kept as text: KEDA parses it at each poll and silently falls back to `default` when it is
  // missing or not a number.
  std::optional<std::string> custom_running_job_percentage;
  std::vector<std::string> pending_pod_conditions;
  MultipleScalersCalculation multiple_scalers_calculation = MultipleScalersCalculation::kMax;
};

struct ScaledJob {
  std::string name;
  std::string namespace_ = "default";
  JobTemplate job;
  absl::Duration polling_interval = absl::Seconds(30);
  int64_t successful_jobs_history_limit = 100;
  int64_t failed_jobs_history_limit = 100;
  int64_t min_replica_count = 0;
  std::optional<int64_t> max_replica_count;  // unset: KEDA's 100
  std::string rollout_strategy = "default";
  ScalingStrategy scaling_strategy;
  std::vector<Trigger> triggers;
};

// Parses the first document of `yaml` whose kind is ScaledJob (other documents, such as Secrets,
// are skipped). Errors: kInvalidArgument naming the field for malformed YAML, a missing
// jobTargetRef/template/container or triggers, a trigger without type or metadata, a metadata
// value that is not a string, a bad enum value, or negative counts; kNotFound when no document
// is a ScaledJob.
absl::StatusOr<ScaledJob> ParseScaledJob(absl::string_view yaml);

// Reads and parses a file. Errors: as ParseScaledJob, plus kNotFound when it cannot be read.
absl::StatusOr<ScaledJob> LoadScaledJob(const std::string& path);

absl::string_view StrategyName(Strategy s);
absl::string_view CalculationName(MultipleScalersCalculation c);

}  // namespace klag::local
