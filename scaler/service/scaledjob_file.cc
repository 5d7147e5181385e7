#include "scaler/service/scaledjob_file.h"

#include <yaml-cpp/yaml.h>

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/keda_manifest.h"
#include "common/status_macros.h"

namespace klag::scaler {
namespace {

constexpr absl::string_view kEvaluableTypes[] = {"external", "external-push", "kafka"};

bool Evaluable(absl::string_view type) {
  for (absl::string_view t : kEvaluableTypes) {
    if (type == t) return true;
  }
  return false;
}

using manifest::At;
using manifest::Present;
using manifest::ScalarAt;

std::string Describe(const YAML::Node& doc) {
  const std::string kind = ScalarAt(doc, "kind").value_or("(no kind)");
  const std::string name = ScalarAt(At(doc, "metadata"), "name").value_or("(no name)");
  return absl::StrCat(kind, " ", name);
}

std::string TriggerList(const YAML::Node& triggers) {
  std::vector<std::string> out;
  for (size_t i = 0; i < triggers.size(); ++i) {
    std::string line = absl::StrCat(i, ": type ", ScalarAt(triggers[i], "type").value_or("(none)"));
    if (std::optional<std::string> name = ScalarAt(triggers[i], "name"); name.has_value()) {
      absl::StrAppend(&line, ", name ", *name);
    }
    out.push_back(std::move(line));
  }
  return absl::StrJoin(out, "; ");
}

// The containers of the pod template that holds the env, and how to name it in notes.
struct PodTemplate {
  YAML::Node containers;
  std::string what;  // "the Job template", "Deployment web"
};

// Picks the env source container from `pod` and fills trigger->env and env_source. Errors:
// kInvalidArgument when `source_name` names no container.
// Note: YAML::Node's operator= writes through to the node it refers to, so nodes are only ever
// constructed here (optional::emplace), never assigned.
absl::Status ReadEnv(const PodTemplate& pod, const std::string& source_name,
                     const std::string& source_field, ManifestTrigger* trigger,
                     std::optional<YAML::Node>* container_out) {
  if (!pod.containers.IsSequence() || pod.containers.size() == 0) {
    trigger->notes.push_back(absl::StrCat(pod.what,
                                          " has no containers: ...FromEnv keys are taken "
                                          "from this environment"));
    return absl::OkStatus();
  }
  std::optional<YAML::Node> found;
  if (source_name.empty()) {
    found.emplace(pod.containers[0]);
  } else {
    for (size_t i = 0; i < pod.containers.size() && !found.has_value(); ++i) {
      if (ScalarAt(pod.containers[i], "name") == source_name) found.emplace(pod.containers[i]);
    }
    if (!found.has_value()) {
      return absl::InvalidArgumentError(absl::StrCat(source_field, " names container ", source_name,
                                                     ", which ", pod.what,
                                                     " does not have (KEDA fails the same way)"));
    }
  }
  const YAML::Node& container = *found;
  trigger->env_source = absl::StrCat(
      "container ", ScalarAt(container, "name").value_or("(no name)"), " of ", pod.what);
  const YAML::Node env = At(container, "env");
  for (size_t i = 0; env.IsSequence() && i < env.size(); ++i) {
    std::optional<std::string> name = ScalarAt(env[i], "name");
    if (!name.has_value()) continue;
    if (std::optional<std::string> value = ScalarAt(env[i], "value"); value.has_value()) {
      trigger->env[*name] = *std::move(value);
    } else {
      trigger->env.erase(*name);  // a later valueFrom entry replaces an earlier literal
    }
  }
  container_out->emplace(container);
  return absl::OkStatus();
}

// Where a variable that is not a literal would come from in the cluster, for a note.
std::string Origin(const YAML::Node& container, const std::string& variable) {
  const YAML::Node env = At(container, "env");
  std::string origin;
  for (size_t i = 0; env.IsSequence() && i < env.size(); ++i) {
    if (ScalarAt(env[i], "name") != variable) continue;
    const YAML::Node from = At(env[i], "valueFrom");
    for (const char* ref : {"secretKeyRef", "configMapKeyRef", "fieldRef", "resourceFieldRef"}) {
      const YAML::Node r = At(from, ref);
      if (!Present(r)) continue;
      origin = absl::StrCat("comes from ", ref);
      if (std::optional<std::string> name = ScalarAt(r, "name"); name.has_value()) {
        absl::StrAppend(&origin, " ", *name, "/", ScalarAt(r, "key").value_or(""));
      }
      origin += " in the cluster";
    }
  }
  if (!origin.empty()) return origin;
  return Present(At(container, "envFrom"))
             ? "is not a literal in the container's env (envFrom cannot be read offline)"
             : "is not in the container's env (KEDA would leave the key out)";
}

absl::StatusOr<ManifestTrigger> ParseUnchecked(absl::string_view yaml,
                                               const ManifestSelection& selection) {
  ASSIGN_OR_RETURN(const std::vector<YAML::Node> docs, manifest::ParseDocuments(yaml));

  const YAML::Node* object = nullptr;
  std::vector<std::string> found;
  for (const YAML::Node& doc : docs) {
    if (doc.IsNull()) continue;  // an empty document between `---` separators
    found.push_back(Describe(doc));
    const std::optional<std::string> kind = ScalarAt(doc, "kind");
    if (object != nullptr || (kind != "ScaledJob" && kind != "ScaledObject")) continue;
    if (!selection.name.empty() && ScalarAt(At(doc, "metadata"), "name") != selection.name) {
      continue;
    }
    object = &doc;
  }
  if (object == nullptr) {
    return absl::NotFoundError(absl::StrCat(
        "no ScaledJob or ScaledObject",
        selection.name.empty() ? "" : absl::StrCat(" named ", selection.name),
        " (found: ", found.empty() ? "no YAML objects" : absl::StrJoin(found, ", "), ")"));
  }
  const YAML::Node& doc = *object;
  ManifestTrigger t;
  t.kind = *ScalarAt(doc, "kind");
  t.name = ScalarAt(At(doc, "metadata"), "name").value_or("");
  t.namespace_ = ScalarAt(At(doc, "metadata"), "namespace").value_or("");
  const std::string what = absl::StrCat(t.kind, " ", t.name.empty() ? "(no name)" : t.name);
  const YAML::Node spec = At(doc, "spec");
  const YAML::Node triggers = At(spec, "triggers");
  if (!triggers.IsSequence() || triggers.size() == 0) {
    return absl::InvalidArgumentError(absl::StrCat(what, " has no spec.triggers"));
  }

  if (selection.trigger_index.has_value()) {
    if (*selection.trigger_index >= triggers.size()) {
      return absl::InvalidArgumentError(absl::StrCat("--trigger ", *selection.trigger_index, ": ",
                                                     what, " has ", triggers.size(),
                                                     " trigger(s) (", TriggerList(triggers), ")"));
    }
    t.index = *selection.trigger_index;
  } else {
    std::vector<size_t> candidates;
    for (size_t i = 0; i < triggers.size(); ++i) {
      if (Evaluable(ScalarAt(triggers[i], "type").value_or(""))) candidates.push_back(i);
    }
    if (candidates.size() != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, candidates.empty() ? " has no" : " has more than one",
                       " external, external-push or kafka trigger",
                       candidates.empty() ? "" : "; choose one with --trigger N", " (",
                       TriggerList(triggers), ")"));
    }
    t.index = candidates[0];
  }
  const std::string field = absl::StrCat("spec.triggers[", t.index, "]");
  t.type = ScalarAt(triggers[t.index], "type").value_or("");
  if (!Evaluable(t.type)) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " ", field, " is of type ", t.type.empty() ? "(none)" : t.type,
                     "; check evaluates external, external-push and kafka triggers"));
  }
  absl::StatusOr<manifest::Trigger> trigger = manifest::ParseTrigger(triggers[t.index], field);
  if (!trigger.ok()) {
    return absl::Status(trigger.status().code(),
                        absl::StrCat(what, " ", trigger.status().message()));
  }
  t.trigger_name = std::move(trigger->name);
  t.metadata = std::move(trigger->metadata);
  if (trigger->authentication_ref.has_value()) {
    t.authentication_ref = trigger->authentication_ref;
    t.notes.push_back(absl::StrCat(
        field, " has authenticationRef ", *t.authentication_ref,
        ": its TriggerAuthentication parameters are not applied (check cannot read the "
        "cluster); give them as KEY=VALUE arguments"));
  }

  // The pod template KEDA takes the env from.
  std::optional<PodTemplate> pod;
  std::string source_name;
  std::string source_field;
  if (t.kind == "ScaledJob") {
    pod.emplace(At(At(At(At(spec, "jobTargetRef"), "template"), "spec"), "containers"),
                "the Job template");
    source_name = ScalarAt(spec, "envSourceContainerName").value_or("");
    source_field = "spec.envSourceContainerName";
  } else {
    const YAML::Node target = At(spec, "scaleTargetRef");
    const std::string target_kind = ScalarAt(target, "kind").value_or("Deployment");
    const std::string target_name = ScalarAt(target, "name").value_or("");
    source_name = ScalarAt(target, "envSourceContainerName").value_or("");
    source_field = "spec.scaleTargetRef.envSourceContainerName";
    for (const YAML::Node& d : docs) {
      if (!target_name.empty() && ScalarAt(d, "kind") == target_kind &&
          ScalarAt(At(d, "metadata"), "name") == target_name) {
        pod.emplace(At(At(At(At(d, "spec"), "template"), "spec"), "containers"),
                    absl::StrCat(target_kind, " ", target_name));
        break;
      }
    }
    if (!pod.has_value()) {
      t.notes.push_back(absl::StrCat("the scale target ", target_kind, " ", target_name,
                                     " is not in the file: ...FromEnv keys are taken from this "
                                     "environment"));
    }
  }
  std::optional<YAML::Node> container;
  if (pod.has_value()) RETURN_IF_ERROR(ReadEnv(*pod, source_name, source_field, &t, &container));
  if (container.has_value()) {
    for (const auto& [key, variable] : t.metadata) {
      if (!absl::EndsWith(key, "FromEnv") || key.size() == 7 || t.env.contains(variable)) continue;
      t.notes.push_back(absl::StrCat(key, ": ", variable, " ", Origin(*container, variable),
                                     "; taken from this environment"));
    }
  }
  return t;
}

}  // namespace

absl::StatusOr<ManifestTrigger> ParseManifestTrigger(absl::string_view yaml,
                                                     const ManifestSelection& selection) {
  // The helpers above check node types before subscripting; this catch is the backstop for any
  // yaml-cpp conversion that still throws.
  try {
    return ParseUnchecked(yaml, selection);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("unexpected YAML structure: ", e.what()));
  }
}

absl::StatusOr<ManifestTrigger> LoadManifestTrigger(const std::string& path,
                                                    const ManifestSelection& selection) {
  ASSIGN_OR_RETURN(const std::string text, manifest::ReadFile(path));
  absl::StatusOr<ManifestTrigger> trigger = ParseManifestTrigger(text, selection);
  if (!trigger.ok()) {
    return absl::Status(trigger.status().code(),
                        absl::StrCat(path, ": ", trigger.status().message()));
  }
  return trigger;
}

EnvLookup ManifestEnv(const ManifestTrigger& trigger, EnvLookup fallback) {
  return [env = trigger.env,
          fallback = std::move(fallback)](absl::string_view name) -> std::optional<std::string> {
    if (auto it = env.find(name); it != env.end()) return it->second;
    return fallback(name);
  };
}

}  // namespace klag::scaler
