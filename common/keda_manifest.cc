#include "common/keda_manifest.h"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace klag::manifest {
namespace {

absl::Status Invalid(absl::string_view field, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", why));
}

// Whether yaml.v2 (what Kubernetes decodes manifests with: sigs.k8s.io/yaml's goyaml.v2,
// resolve.go) resolves a plain scalar to an int or a float: underscores dropped, then a Go integer
// literal (sign; 0x, 0o, 0b or a leading 0 for octal) or its float syntax
// ([-+]?(.D+|D+(.D*)?)([eE][-+]?D+)?). Timestamps (2001-12-14) become strings in the JSON the API
// server validates, so they count as strings here.
bool IsYamlNumber(absl::string_view text) {
  // yaml.v2 tries numbers only for text that starts with a digit, a sign or a dot, and keeps the
  // underscores of text that starts with a dot (Go's ParseFloat refuses them).
  if (text.empty() || absl::string_view("+-.0123456789").find(text[0]) == absl::string_view::npos ||
      (text[0] == '.' && absl::StrContains(text, '_'))) {
    return false;
  }
  std::string plain(text);
  plain.erase(std::remove(plain.begin(), plain.end(), '_'), plain.end());
  absl::string_view p = plain;
  if (!p.empty() && (p[0] == '+' || p[0] == '-')) p.remove_prefix(1);
  auto all_of = [](absl::string_view digits, absl::string_view allowed) {
    return !digits.empty() && digits.find_first_not_of(allowed) == absl::string_view::npos;
  };
  constexpr absl::string_view kDecimal = "0123456789";
  if (p.size() > 2 && p[0] == '0') {
    const char base = absl::ascii_tolower(p[1]);
    if (base == 'x') return all_of(p.substr(2), "0123456789abcdefABCDEF");
    if (base == 'o') return all_of(p.substr(2), "01234567");
    if (base == 'b') return all_of(p.substr(2), "01");
  }
  if (all_of(p, kDecimal)) return true;  // decimal, or octal with a leading 0 (else a float)
  // The float syntax: mantissa .D+ or D+(.D*)?, then an optional exponent.
  const size_t int_digits = p.find_first_not_of(kDecimal);
  size_t i = int_digits == absl::string_view::npos ? p.size() : int_digits;
  if (i < p.size() && p[i] == '.') {
    const size_t frac_end = p.find_first_not_of(kDecimal, i + 1);
    const size_t end = frac_end == absl::string_view::npos ? p.size() : frac_end;
    if (int_digits == 0 && end == i + 1) return false;  // "." alone, or ".e5"
    i = end;
  } else if (i == 0) {
    return false;
  }
  if (i == p.size()) return true;
  if (p[i] != 'e' && p[i] != 'E') return false;
  absl::string_view exponent = p.substr(i + 1);
  if (!exponent.empty() && (exponent[0] == '+' || exponent[0] == '-')) exponent.remove_prefix(1);
  return all_of(exponent, kDecimal);
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
  const std::string& text = node.Scalar();
  // Exact spellings, as goyaml.v2's resolve table lists them: "tRue" stays a string.
  static constexpr absl::string_view kNotStrings[] = {
      "",      "~",    "null", "Null",  "NULL",  "y",     "Y",     "yes",   "Yes",   "YES",
      "n",     "N",    "no",   "No",    "NO",    "true",  "True",  "TRUE",  "false", "False",
      "FALSE", "on",   "On",   "ON",    "off",   "Off",   "OFF",   ".nan",  ".NaN",  ".NAN",
      ".inf",  ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF", "<<"};
  for (absl::string_view word : kNotStrings) {
    if (text == word) return false;
  }
  return !IsYamlNumber(text);
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
