#include "tools/local/scaled_job.h"

#include <yaml-cpp/yaml.h>

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/keda_manifest.h"
#include "common/status_macros.h"

namespace klag::local {
namespace {

absl::Status Invalid(absl::string_view field, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("ScaledJob ", field, ": ", why));
}

// yaml-cpp reports type mismatches with exceptions; these helpers turn them into Status.
absl::StatusOr<std::string> Scalar(const YAML::Node& node, absl::string_view field) {
  if (!node.IsScalar()) return Invalid(field, "must be a string");
  return node.Scalar();
}

absl::StatusOr<int64_t> Int(const YAML::Node& node, absl::string_view field) {
  int64_t out = 0;
  if (!node.IsScalar() || !YAML::convert<int64_t>::decode(node, out)) {
    return Invalid(field, absl::StrCat("must be an integer, got \"",
                                       node.IsScalar() ? node.Scalar() : "(not a scalar)", "\""));
  }
  return out;
}

absl::Status OptionalInt(const YAML::Node& parent, const char* key, absl::string_view field,
                         int64_t min, std::optional<int64_t>* out) {
  const YAML::Node node = parent[key];
  if (!node || node.IsNull()) return absl::OkStatus();
  ASSIGN_OR_RETURN(int64_t value, Int(node, field));
  if (value < min) return Invalid(field, absl::StrCat("must be >= ", min, ", got ", value));
  *out = value;
  return absl::OkStatus();
}

absl::Status IntInto(const YAML::Node& parent, const char* key, absl::string_view field,
                     int64_t min, int64_t* out) {
  std::optional<int64_t> value;
  RETURN_IF_ERROR(OptionalInt(parent, key, field, min, &value));
  if (value.has_value()) *out = *value;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> StringList(const YAML::Node& node,
                                                    absl::string_view field) {
  std::vector<std::string> out;
  if (!node || node.IsNull()) return out;
  if (!node.IsSequence()) return Invalid(field, "must be a list");
  for (size_t i = 0; i < node.size(); ++i) {
    ASSIGN_OR_RETURN(std::string s, Scalar(node[i], absl::StrCat(field, "[", i, "]")));
    out.push_back(std::move(s));
  }
  return out;
}

absl::StatusOr<KeyRef> ParseKeyRef(const YAML::Node& node, absl::string_view field) {
  KeyRef ref;
  if (!node.IsMap()) return Invalid(field, "must be a map");
  ASSIGN_OR_RETURN(ref.name, Scalar(node["name"], absl::StrCat(field, ".name")));
  ASSIGN_OR_RETURN(ref.key, Scalar(node["key"], absl::StrCat(field, ".key")));
  if (node["optional"]) {
    bool optional = false;
    if (!YAML::convert<bool>::decode(node["optional"], optional)) {
      return Invalid(absl::StrCat(field, ".optional"), "must be true or false");
    }
    ref.optional = optional;
  }
  return ref;
}

absl::StatusOr<Container> ParseContainer(const YAML::Node& node, absl::string_view field) {
  Container c;
  if (!node.IsMap()) return Invalid(field, "must be a map");
  ASSIGN_OR_RETURN(c.name, Scalar(node["name"], absl::StrCat(field, ".name")));
  if (node["image"]) {
    ASSIGN_OR_RETURN(c.image, Scalar(node["image"], absl::StrCat(field, ".image")));
  }
  ASSIGN_OR_RETURN(c.command, StringList(node["command"], absl::StrCat(field, ".command")));
  ASSIGN_OR_RETURN(c.args, StringList(node["args"], absl::StrCat(field, ".args")));
  const YAML::Node env = node["env"];
  if (env && !env.IsNull()) {
    if (!env.IsSequence()) return Invalid(absl::StrCat(field, ".env"), "must be a list");
    for (size_t i = 0; i < env.size(); ++i) {
      const std::string where = absl::StrCat(field, ".env[", i, "]");
      EnvVar var;
      ASSIGN_OR_RETURN(var.name, Scalar(env[i]["name"], absl::StrCat(where, ".name")));
      if (env[i]["value"]) {
        ASSIGN_OR_RETURN(var.value, Scalar(env[i]["value"], absl::StrCat(where, ".value")));
      } else if (const YAML::Node from = env[i]["valueFrom"]; from) {
        if (from["secretKeyRef"]) {
          ASSIGN_OR_RETURN(var.secret_key_ref,
                           ParseKeyRef(from["secretKeyRef"], absl::StrCat(where, ".secretKeyRef")));
        } else if (from["configMapKeyRef"]) {
          ASSIGN_OR_RETURN(
              var.config_map_key_ref,
              ParseKeyRef(from["configMapKeyRef"], absl::StrCat(where, ".configMapKeyRef")));
        } else {
          return Invalid(where, "valueFrom supports secretKeyRef and configMapKeyRef only");
        }
      } else {
        var.value = "";  // Kubernetes: an env entry without value is the empty string
      }
      c.env.push_back(std::move(var));
    }
  }
  return c;
}

template <typename Enum, size_t N>
absl::StatusOr<Enum> ParseEnum(const YAML::Node& node, absl::string_view field,
                               const std::pair<const char*, Enum> (&choices)[N], Enum fallback) {
  if (!node || node.IsNull()) return fallback;
  ASSIGN_OR_RETURN(std::string text, Scalar(node, field));
  if (text.empty()) return fallback;
  for (const auto& [name, value] : choices) {
    if (text == name) return value;
  }
  return Invalid(field, absl::StrCat("unknown value \"", text, "\""));
}

absl::Status ParseJobTarget(const YAML::Node& ref, JobTemplate* job) {
  if (!ref || !ref.IsMap()) return Invalid("spec.jobTargetRef", "is required");
  RETURN_IF_ERROR(
      IntInto(ref, "parallelism", "spec.jobTargetRef.parallelism", 1, &job->parallelism));
  RETURN_IF_ERROR(
      IntInto(ref, "completions", "spec.jobTargetRef.completions", 1, &job->completions));
  RETURN_IF_ERROR(
      IntInto(ref, "backoffLimit", "spec.jobTargetRef.backoffLimit", 0, &job->backoff_limit));
  std::optional<int64_t> deadline;
  RETURN_IF_ERROR(OptionalInt(ref, "activeDeadlineSeconds",
                              "spec.jobTargetRef.activeDeadlineSeconds", 1, &deadline));
  if (deadline.has_value()) job->active_deadline = absl::Seconds(*deadline);

  const YAML::Node pod = ref["template"]["spec"];
  if (!pod || !pod.IsMap()) return Invalid("spec.jobTargetRef.template.spec", "is required");
  std::optional<int64_t> grace;
  RETURN_IF_ERROR(OptionalInt(pod, "terminationGracePeriodSeconds",
                              "spec.jobTargetRef.template.spec.terminationGracePeriodSeconds", 0,
                              &grace));
  if (grace.has_value()) job->termination_grace = absl::Seconds(*grace);
  if (pod["restartPolicy"]) {
    ASSIGN_OR_RETURN(job->restart_policy,
                     Scalar(pod["restartPolicy"], "spec.jobTargetRef.template.spec.restartPolicy"));
  }
  const YAML::Node containers = pod["containers"];
  if (!containers || !containers.IsSequence() || containers.size() == 0) {
    return Invalid("spec.jobTargetRef.template.spec.containers", "needs one container");
  }
  job->container_count = containers.size();
  return absl::OkStatus();
}

absl::StatusOr<ScaledJob> ParseDocument(const YAML::Node& doc) {
  ScaledJob sj;
  const YAML::Node metadata = doc["metadata"];
  if (!metadata || !metadata["name"]) return Invalid("metadata.name", "is required");
  ASSIGN_OR_RETURN(sj.name, Scalar(metadata["name"], "metadata.name"));
  if (metadata["namespace"]) {
    ASSIGN_OR_RETURN(sj.namespace_, Scalar(metadata["namespace"], "metadata.namespace"));
  }
  const YAML::Node spec = doc["spec"];
  if (!spec || !spec.IsMap()) return Invalid("spec", "is required");

  RETURN_IF_ERROR(ParseJobTarget(spec["jobTargetRef"], &sj.job));
  // The container KEDA resolves ...FromEnv keys from: envSourceContainerName, else the first.
  const YAML::Node containers = spec["jobTargetRef"]["template"]["spec"]["containers"];
  std::string source;
  if (spec["envSourceContainerName"]) {
    ASSIGN_OR_RETURN(source, Scalar(spec["envSourceContainerName"], "spec.envSourceContainerName"));
  }
  bool found = false;
  for (size_t i = 0; i < containers.size() && !found; ++i) {
    const std::string field = absl::StrCat("spec.jobTargetRef.template.spec.containers[", i, "]");
    ASSIGN_OR_RETURN(Container c, ParseContainer(containers[i], field));
    if (source.empty() || c.name == source) {
      sj.job.container = std::move(c);
      found = true;
    }
  }
  if (!found) {
    return Invalid("spec.envSourceContainerName", absl::StrCat("no container named ", source));
  }

  int64_t polling_seconds = 30;
  RETURN_IF_ERROR(IntInto(spec, "pollingInterval", "spec.pollingInterval", 1, &polling_seconds));
  sj.polling_interval = absl::Seconds(polling_seconds);
  RETURN_IF_ERROR(IntInto(spec, "successfulJobsHistoryLimit", "spec.successfulJobsHistoryLimit", 0,
                          &sj.successful_jobs_history_limit));
  RETURN_IF_ERROR(IntInto(spec, "failedJobsHistoryLimit", "spec.failedJobsHistoryLimit", 0,
                          &sj.failed_jobs_history_limit));
  RETURN_IF_ERROR(
      IntInto(spec, "minReplicaCount", "spec.minReplicaCount", 0, &sj.min_replica_count));
  RETURN_IF_ERROR(
      OptionalInt(spec, "maxReplicaCount", "spec.maxReplicaCount", 0, &sj.max_replica_count));
  if (spec["rollout"] && spec["rollout"]["strategy"]) {
    ASSIGN_OR_RETURN(sj.rollout_strategy,
                     Scalar(spec["rollout"]["strategy"], "spec.rollout.strategy"));
  }

  if (const YAML::Node s = spec["scalingStrategy"]; s && s.IsMap()) {
    ScalingStrategy& out = sj.scaling_strategy;
    static constexpr std::pair<const char*, Strategy> kStrategies[] = {
        {"default", Strategy::kDefault},
        {"custom", Strategy::kCustom},
        {"accurate", Strategy::kAccurate},
        {"eager", Strategy::kEager}};
    ASSIGN_OR_RETURN(out.strategy, ParseEnum(s["strategy"], "spec.scalingStrategy.strategy",
                                             kStrategies, Strategy::kDefault));
    RETURN_IF_ERROR(OptionalInt(s, "customScalingQueueLengthDeduction",
                                "spec.scalingStrategy.customScalingQueueLengthDeduction", INT32_MIN,
                                &out.custom_queue_length_deduction));
    if (s["customScalingRunningJobPercentage"]) {
      ASSIGN_OR_RETURN(out.custom_running_job_percentage,
                       Scalar(s["customScalingRunningJobPercentage"],
                              "spec.scalingStrategy.customScalingRunningJobPercentage"));
    }
    ASSIGN_OR_RETURN(
        out.pending_pod_conditions,
        StringList(s["pendingPodConditions"], "spec.scalingStrategy.pendingPodConditions"));
    static constexpr std::pair<const char*, MultipleScalersCalculation> kCalculations[] = {
        {"max", MultipleScalersCalculation::kMax},
        {"min", MultipleScalersCalculation::kMin},
        {"avg", MultipleScalersCalculation::kAvg},
        {"sum", MultipleScalersCalculation::kSum}};
    ASSIGN_OR_RETURN(out.multiple_scalers_calculation,
                     ParseEnum(s["multipleScalersCalculation"],
                               "spec.scalingStrategy.multipleScalersCalculation", kCalculations,
                               MultipleScalersCalculation::kMax));
  }

  const YAML::Node triggers = spec["triggers"];
  if (!triggers || !triggers.IsSequence() || triggers.size() == 0) {
    return Invalid("spec.triggers", "needs at least one trigger");
  }
  for (size_t i = 0; i < triggers.size(); ++i) {
    absl::StatusOr<manifest::Trigger> t =
        manifest::ParseTrigger(triggers[i], absl::StrCat("spec.triggers[", i, "]"));
    if (!t.ok()) {
      return absl::Status(t.status().code(), absl::StrCat("ScaledJob ", t.status().message()));
    }
    sj.triggers.push_back(*std::move(t));
  }
  return sj;
}

}  // namespace

absl::StatusOr<ScaledJob> ParseScaledJob(absl::string_view yaml) {
  ASSIGN_OR_RETURN(const std::vector<YAML::Node> docs, manifest::ParseDocuments(yaml));
  for (const YAML::Node& doc : docs) {
    if (manifest::ScalarAt(doc, "kind") != "ScaledJob") continue;
    try {
      return ParseDocument(doc);
    } catch (const YAML::Exception& e) {
      return absl::InvalidArgumentError(absl::StrCat("ScaledJob: ", e.what()));
    }
  }
  return absl::NotFoundError("no document of kind ScaledJob");
}

absl::StatusOr<ScaledJob> LoadScaledJob(const std::string& path) {
  ASSIGN_OR_RETURN(const std::string text, manifest::ReadFile(path));
  absl::StatusOr<ScaledJob> sj = ParseScaledJob(text);
  if (!sj.ok()) {
    return absl::Status(sj.status().code(), absl::StrCat(path, ": ", sj.status().message()));
  }
  return sj;
}

absl::string_view StrategyName(Strategy s) {
  switch (s) {
    case Strategy::kDefault:
      return "default";
    case Strategy::kCustom:
      return "custom";
    case Strategy::kAccurate:
      return "accurate";
    case Strategy::kEager:
      return "eager";
  }
  return "?";
}

absl::string_view CalculationName(MultipleScalersCalculation c) {
  switch (c) {
    case MultipleScalersCalculation::kMax:
      return "max";
    case MultipleScalersCalculation::kMin:
      return "min";
    case MultipleScalersCalculation::kAvg:
      return "avg";
    case MultipleScalersCalculation::kSum:
      return "sum";
  }
  return "?";
}

}  // namespace klag::local
