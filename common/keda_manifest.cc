#include "common/keda_manifest.h"

#include <fstream>
#include <sstream>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace klag::manifest {
namespace {

absl::Status Invalid(absl::string_view field, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", why));
}

absl::StatusOr<Trigger> ParseTriggerUnchecked(const YAML::Node& node, absl::string_view field) {
  if (!node.IsMap()) return Invalid(field, "must be a map");
  Trigger t;
  const YAML::Node type = At(node, "type");
  if (!type.IsScalar() || type.Scalar().empty()) {
    return Invalid(absl::StrCat(field, ".type"), "is required (a string)");
  }
  t.type = type.Scalar();
  if (const YAML::Node name = At(node, "name"); Present(name)) {
    if (!name.IsScalar()) return Invalid(absl::StrCat(field, ".name"), "must be a string");
    t.name = name.Scalar();
  }
  const YAML::Node metadata = At(node, "metadata");
  if (!metadata.IsMap()) {
    return Invalid(absl::StrCat(field, ".metadata"), "is required (a map of strings)");
  }
  for (const auto& entry : metadata) {
    if (!entry.first.IsScalar()) {
      return Invalid(absl::StrCat(field, ".metadata"), "keys must be strings");
    }
    const std::string& key = entry.first.Scalar();
    // KEDA's CRD types metadata as map<string, string>: the API server refuses an unquoted 1 or
    // true, a list or a map, so they are refused here too.
    if (!entry.second.IsScalar() || !IsYamlString(entry.second)) {
      return Invalid(absl::StrCat(field, ".metadata.", key),
                     "must be a string; quote numbers and booleans (KEDA's CRD refuses anything "
                     "but strings)");
    }
    t.metadata[key] = entry.second.Scalar();
  }
  if (const YAML::Node ref = At(node, "authenticationRef"); Present(ref)) {
    std::optional<std::string> name = ScalarAt(ref, "name");
    if (!name.has_value() || name->empty()) {
      return Invalid(absl::StrCat(field, ".authenticationRef.name"), "is required (a string)");
    }
    t.authentication_ref = *std::move(name);
  }
  return t;
}

}  // namespace

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot read the file"));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return absl::NotFoundError(absl::StrCat(path, ": cannot read the file"));
  return text.str();
}

absl::StatusOr<std::vector<YAML::Node>> ParseDocuments(absl::string_view text) {
  try {
    return YAML::LoadAll(std::string(text));
  } catch (const YAML::Exception& e) {
    // yaml-cpp's messages give the line and column and a fixed reason, no file content.
    return absl::InvalidArgumentError(absl::StrCat("not YAML: ", e.what()));
  }
}

YAML::Node At(const YAML::Node& parent, const char* key) {
  if (!parent.IsDefined() || !parent.IsMap()) return YAML::Node();
  YAML::Node node = parent[key];
  if (!node.IsDefined()) return YAML::Node();
  return node;
}

std::optional<std::string> ScalarAt(const YAML::Node& parent, const char* key) {
  const YAML::Node node = At(parent, key);
  if (!node.IsScalar()) return std::nullopt;
  return node.Scalar();
}

bool Present(const YAML::Node& node) { return node.IsDefined() && !node.IsNull(); }

bool IsYamlString(const YAML::Node& node) {
  if (!node.IsScalar()) return false;
  if (node.Tag() == "!") return true;  // quoted
  const std::string lower = absl::AsciiStrToLower(node.Scalar());
  static constexpr absl::string_view kNotStrings[] = {"",   "~",  "null", "true", "false", "yes",
                                                      "no", "on", "off",  "y",    "n"};
  for (absl::string_view word : kNotStrings) {
    if (lower == word) return false;
  }
  double number = 0;
  return !absl::SimpleAtod(lower, &number) ||
         lower.find_first_of("0123456789") == std::string::npos;
}

absl::StatusOr<Trigger> ParseTrigger(const YAML::Node& trigger, absl::string_view field) {
  // The helpers check node types before subscripting; this is the backstop for any yaml-cpp
  // conversion that still throws.
  try {
    return ParseTriggerUnchecked(trigger, field);
  } catch (const YAML::Exception& e) {
    return Invalid(field, absl::StrCat("unexpected YAML structure: ", e.what()));
  }
}

}  // namespace klag::manifest
