// One trigger of a KEDA ScaledJob (or ScaledObject) manifest, for `klag-scaler check --scaledjob
// FILE`: the trigger's metadata as written, and the environment KEDA would resolve its
// `...FromEnv` keys from, as far as the file can tell without a cluster.
//
//   absl::StatusOr<ManifestTrigger> t =
//       LoadManifestTrigger("deploy/jobs/scaledjob.yaml", ManifestSelection{});
//   Metadata metadata = t->metadata;                    // saslFromEnv: KLAG_SASL, ...
//   RETURN_IF_ERROR(ResolveFromEnv(ManifestEnv(*t, ProcessEnv()), &metadata));
//   for (const std::string& note : t->notes) std::cerr << "note: " << note << "\n";
//
// KEDA resolves `<key>FromEnv: VAR` from the environment of one container of the scale target's
// pod template: the one named by `envSourceContainerName` (ScaledJob: spec.envSourceContainerName;
// ScaledObject: spec.scaleTargetRef.envSourceContainerName), else the first (KEDA's
// pkg/scaling/resolver: "couldn't find container with name ... on Target object" when the name
// matches none). A ScaledJob carries its pod template (spec.jobTargetRef.template); a
// ScaledObject's target is a separate object, used when the same file holds it. Only literal
// `value:` entries can be read offline; `valueFrom` (Secret, ConfigMap) and variables the file
// does not define are left to the fallback environment, each with a note.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/flags.h"
#include "scaler/lag/trigger_spec.h"

namespace klag::scaler {

// Which object and trigger of the file to use.
struct ManifestSelection {
  // The ScaledJob/ScaledObject with this metadata.name; empty: the file's first one.
  std::string name;
  // Index into spec.triggers; none: the only trigger check can evaluate (type external,
  // external-push or kafka).
  std::optional<size_t> trigger_index;
};

struct ManifestTrigger {
  std::string kind;          // "ScaledJob" or "ScaledObject"
  std::string name;          // metadata.name
  std::string namespace_;    // metadata.namespace; empty when the manifest sets none
  size_t index = 0;          // the trigger's index in spec.triggers
  std::string type;          // "external", "external-push" or "kafka"
  std::string trigger_name;  // the trigger's `name:`; empty when none
  Metadata metadata;         // as written: FromEnv keys still name variables
  std::optional<std::string> authentication_ref;  // authenticationRef.name
  // Where the environment below comes from, e.g. "container klag-job of the Job template";
  // empty when the file holds no pod template for the trigger (a ScaledObject without its
  // target).
  std::string env_source;
  // The env source container's literal `value:` entries (a later entry of the same name wins, as
  // in Kubernetes). Values may be secrets: never print them.
  std::map<std::string, std::string, std::less<>> env;
  // Things the operator should know about this evaluation (names only, never values): the
  // authenticationRef that is not applied, FromEnv variables taken from the fallback environment.
  std::vector<std::string> notes;
};

// Parses the manifest text (one or more YAML documents) and picks the object and trigger.
// Errors, all kInvalidArgument (kNotFound when no object matches), with messages that name the
// field: text that is not YAML; no ScaledJob/ScaledObject document (or none named
// `selection.name`; the message lists the objects found); no or empty spec.triggers; a trigger
// index out of range; no evaluable trigger, or several without `trigger_index` (the message
// lists every trigger by index, type and name); a trigger of another type; a trigger the API
// server would refuse (common/keda_manifest.h: no metadata map, a metadata value that is not a
// string, such as an unquoted 5 or true); an envSourceContainerName that names no container.
absl::StatusOr<ManifestTrigger> ParseManifestTrigger(absl::string_view yaml,
                                                     const ManifestSelection& selection);

// Reads `path` and parses it; every message starts with the path. Errors: as
// ParseManifestTrigger, plus kNotFound when the file cannot be read.
absl::StatusOr<ManifestTrigger> LoadManifestTrigger(const std::string& path,
                                                    const ManifestSelection& selection);

// The environment for ResolveFromEnv: the manifest's literal value of a variable, else
// `fallback`'s (check's own environment).
EnvLookup ManifestEnv(const ManifestTrigger& trigger, EnvLookup fallback);

}  // namespace klag::scaler
