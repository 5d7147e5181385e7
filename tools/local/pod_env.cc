#include "tools/local/pod_env.h"

#include <yaml-cpp/yaml.h>

#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace klag::local {
namespace {

absl::StatusOr<StringMap> StringMapOf(const YAML::Node& node, absl::string_view field) {
  StringMap out;
  if (!node || node.IsNull()) return out;
  if (!node.IsMap()) {
    return absl::InvalidArgumentError(absl::StrCat("local values: ", field, " must be a map"));
  }
  for (const auto& kv : node) {
    if (!kv.first.IsScalar() || !kv.second.IsScalar()) {
      return absl::InvalidArgumentError(
          absl::StrCat("local values: ", field, " must map strings to strings"));
    }
    out[kv.first.Scalar()] = kv.second.Scalar();
  }
  return out;
}

absl::StatusOr<std::map<std::string, StringMap, std::less<>>> ObjectsOf(const YAML::Node& node,
                                                                        absl::string_view field) {
  std::map<std::string, StringMap, std::less<>> out;
  if (!node || node.IsNull()) return out;
  if (!node.IsMap()) {
    return absl::InvalidArgumentError(absl::StrCat("local values: ", field, " must be a map"));
  }
  for (const auto& kv : node) {
    if (!kv.first.IsScalar()) {
      return absl::InvalidArgumentError(absl::StrCat("local values: ", field, " names"));
    }
    const std::string name = kv.first.Scalar();
    ASSIGN_OR_RETURN(out[name], StringMapOf(kv.second, absl::StrCat(field, ".", name)));
  }
  return out;
}

absl::StatusOr<std::string> Lookup(const std::map<std::string, StringMap, std::less<>>& objects,
                                   absl::string_view kind, const std::string& var,
                                   const KeyRef& ref, bool* found) {
  *found = false;
  auto object = objects.find(ref.name);
  if (object != objects.end()) {
    auto value = object->second.find(ref.key);
    if (value != object->second.end()) {
      *found = true;
      return value->second;
    }
  }
  if (ref.optional) return std::string();
  return absl::FailedPreconditionError(
      absl::StrCat("env ", var, ": ", kind, " ", ref.name, " has no key ", ref.key,
                   " (give it in the local values file under ",
                   kind == "Secret" ? "secrets" : "configMaps", ")"));
}

}  // namespace

absl::StatusOr<LocalValues> ParseLocalValues(absl::string_view yaml) {
  LocalValues values;
  try {
    const YAML::Node root = YAML::Load(std::string(yaml));
    if (root.IsNull()) return values;
    if (!root.IsMap()) return absl::InvalidArgumentError("local values: must be a map");
    for (const auto& kv : root) {
      const std::string key = kv.first.Scalar();
      if (key != "secrets" && key != "configMaps" && key != "env" && key != "metadata") {
        return absl::InvalidArgumentError(absl::StrCat("local values: unknown part \"", key,
                                                       "\" (secrets, configMaps, env, metadata)"));
      }
    }
    ASSIGN_OR_RETURN(values.secrets, ObjectsOf(root["secrets"], "secrets"));
    ASSIGN_OR_RETURN(values.config_maps, ObjectsOf(root["configMaps"], "configMaps"));
    ASSIGN_OR_RETURN(values.env, StringMapOf(root["env"], "env"));
    ASSIGN_OR_RETURN(values.metadata, StringMapOf(root["metadata"], "metadata"));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("local values: ", e.what()));
  }
  return values;
}

absl::StatusOr<LocalValues> LoadLocalValues(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::ostringstream text;
  text << in.rdbuf();
  absl::StatusOr<LocalValues> values = ParseLocalValues(text.str());
  if (!values.ok()) {
    return absl::Status(values.status().code(),
                        absl::StrCat(path, ": ", values.status().message()));
  }
  return values;
}

absl::StatusOr<StringMap> ResolveContainerEnv(const Container& container,
                                              const LocalValues& values) {
  StringMap env;
  for (const EnvVar& var : container.env) {
    bool found = true;
    std::string value;
    if (var.value.has_value()) {
      value = *var.value;
    } else if (var.secret_key_ref.has_value()) {
      ASSIGN_OR_RETURN(value,
                       Lookup(values.secrets, "Secret", var.name, *var.secret_key_ref, &found));
    } else if (var.config_map_key_ref.has_value()) {
      ASSIGN_OR_RETURN(value, Lookup(values.config_maps, "ConfigMap", var.name,
                                     *var.config_map_key_ref, &found));
    }
    if (found) {
      env[var.name] = value;
    } else {
      env.erase(var.name);
    }
  }
  for (const auto& [name, value] : values.env) env[name] = value;
  return env;
}

StringMap ResolveTriggerMetadata(const StringMap& metadata, const StringMap& env,
                                 const LocalValues& values) {
  StringMap out = metadata;
  for (const auto& [key, value] : values.metadata) out[key] = value;
  for (auto it = out.begin(); it != out.end();) {
    if (absl::EndsWith(it->first, "FromEnv")) {
      auto var = env.find(it->second);
      if (var == env.end()) {
        it = out.erase(it);
        continue;
      }
      it->second = var->second;
    }
    ++it;
  }
  return out;
}

}  // namespace klag::local
