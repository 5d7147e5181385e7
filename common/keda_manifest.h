// Reading KEDA manifests (a ScaledJob or ScaledObject and the objects beside it in one file) with
// yaml-cpp, without exceptions escaping: the pieces `klag-scaler check --scaledjob` and
// `klag-local` both need, so that a manifest one of them accepts the other reads the same way.
//
//   ASSIGN_OR_RETURN(std::string text, manifest::ReadFile(path));
//   ASSIGN_OR_RETURN(std::vector<YAML::Node> docs, manifest::ParseDocuments(text));
//   const YAML::Node triggers = manifest::At(manifest::At(docs[0], "spec"), "triggers");
//   ASSIGN_OR_RETURN(manifest::Trigger t, manifest::ParseTrigger(triggers[0], "spec.triggers[0]"));
//   t.metadata.at("lagThreshold");  // "5": KEDA's CRD types metadata as map<string, string>
//
// What each caller does with the rest of the object (the Job template, the env source container)
// stays with it: check reads literal env values and explains the others, klag-local needs every
// field it runs the Job with.
#pragma once

#include <yaml-cpp/yaml.h>

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace klag::manifest {

// The whole file. Errors: kNotFound "PATH: cannot read the file".
absl::StatusOr<std::string> ReadFile(const std::string& path);

// Every YAML document of `text` (empty documents between `---` separators are null nodes).
// Errors: kInvalidArgument "not YAML: " and yaml-cpp's line, column and reason (never the text).
absl::StatusOr<std::vector<YAML::Node>> ParseDocuments(absl::string_view text);

// `parent[key]` when `parent` is a map holding `key`; a null node otherwise (yaml-cpp throws on
// subscripting a scalar, and its node for a missing key throws on every question but
// IsDefined()).
YAML::Node At(const YAML::Node& parent, const char* key);

// The text of `parent[key]` when that is a scalar; nothing otherwise.
std::optional<std::string> ScalarAt(const YAML::Node& parent, const char* key);

// Whether the manifest sets the field (a missing key and an explicit null are alike).
bool Present(const YAML::Node& node);

// Whether Kubernetes' YAML decoder (yaml.v2: YAML 1.1 booleans) reads this scalar as a string:
// quoted, or plain text that is not a number (5, -2.5, 1e3, 0x1F, 1_000, .inf), a boolean (true,
// True, yes, on, y, ... in yaml.v2's exact spellings) or null (~, null, empty).
bool IsYamlString(const YAML::Node& node);

// One entry of spec.triggers.
struct Trigger {
  std::string type;
  std::string name;  // the trigger's `name:`; empty when none
  std::map<std::string, std::string, std::less<>> metadata;
  std::optional<std::string> authentication_ref;  // authenticationRef.name
};

// Reads spec.triggers[i]; `field` names it in errors ("spec.triggers[0]"). Errors, all
// kInvalidArgument, each message starting with the field at fault: not a map; `type` missing or
// not a string; `name` not a string; `metadata` missing or not a map; a metadata value the API
// server would refuse (KEDA's CRD types metadata as map<string, string>: an unquoted 5 or true,
// a list or a map); an authenticationRef without a string `name`.
absl::StatusOr<Trigger> ParseTrigger(const YAML::Node& trigger, absl::string_view field);

}  // namespace klag::manifest
