#include "scaler/service/profile_store.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "kafka/connection_config.h"

namespace klag::scaler {
namespace {

constexpr char kAuthProfileKey[] = "authProfile";
constexpr absl::string_view kFromEnv = "FromEnv";
constexpr absl::string_view kBootstrapServers = "bootstrapServers";

bool ValidProfileName(const std::string& name) {
  if (name.empty() || name.size() > 253 || name[0] == '.') return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') {
      return false;
    }
  }
  return true;
}

// A request-supplied string as echoed in an error: at most 64 bytes, so an error cannot carry
// megabytes of a caller's choosing (the log formatter escapes control characters).
std::string Cut(absl::string_view text) {
  constexpr size_t kMax = 64;
  if (text.size() <= kMax) return std::string(text);
  return absl::StrCat(text.substr(0, kMax), "...(", text.size(), " bytes)");
}

// `key` without its `FromEnv` suffix.
absl::string_view BaseKey(absl::string_view key) {
  absl::ConsumeSuffix(&key, kFromEnv);
  return key;
}

bool IsConnectionKey(absl::string_view key) {
  const std::vector<std::string>& keys = kafka::ConnectionSettingKeys();
  return std::find(keys.begin(), keys.end(), BaseKey(key)) != keys.end();
}

bool IsCredentialKey(absl::string_view key) {
  const std::vector<std::string>& keys = ProfileStore::CredentialKeys();
  return std::find(keys.begin(), keys.end(), BaseKey(key)) != keys.end();
}

}  // namespace

const std::vector<std::string>& ProfileStore::CredentialKeys() {
  static const std::vector<std::string>* const keys =
      new std::vector<std::string>{"username",
                                   "password",
                                   "ca",
                                   "cert",
                                   "key",
                                   "keyPassword",
                                   "keytab",
                                   "realm",
                                   "kerberosServiceName",
                                   "oauthTokenEndpointUri",
                                   "scopes",
                                   "oauthExtensions"};
  return *keys;
}

ProfileStore::ProfileStore(std::string dir, absl::Duration reload_after)
    : dir_(std::move(dir)), reload_after_(reload_after) {}

absl::StatusOr<ProfileStore::Profile> ProfileStore::Load(const std::string& name) {
  namespace fs = std::filesystem;
  const fs::path path = fs::path(dir_) / name;
  std::error_code ec;
  if (!fs::is_directory(path, ec)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "authProfile \"", name, "\": no such profile (looked for directory ", path.string(), ")"));
  }
  Profile profile;
  bool has_allowed_namespaces = false;
  for (const fs::directory_entry& entry : fs::directory_iterator(path, ec)) {
    const std::string key = entry.path().filename().string();
    // Kubernetes mounts Secrets through "..data"-style symlinked folders; keys are plain files.
    if (key.empty() || key[0] == '.' || !entry.is_regular_file(ec)) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::stringstream buffer;
    buffer << in.rdbuf();
    if (!in.good() && !in.eof()) {
      return absl::InvalidArgumentError(
          absl::StrCat("authProfile \"", name, "\": cannot read key file ", key));
    }
    std::string value = buffer.str();
    absl::string_view trimmed = value;
    absl::ConsumeSuffix(&trimmed, "\n");
    absl::ConsumeSuffix(&trimmed, "\r");
    if (key == kAllowedNamespacesFile) {
      has_allowed_namespaces = true;
      for (absl::string_view ns : absl::StrSplit(trimmed, ',')) {
        ns = absl::StripAsciiWhitespace(ns);
        if (!ns.empty()) profile.allowed_namespaces.emplace_back(ns);
      }
      continue;
    }
    profile.values.emplace(key, std::string(trimmed));
  }
  if (ec) {
    return absl::InvalidArgumentError(absl::StrCat("authProfile \"", name, "\": cannot list ",
                                                   path.string(), ": ", ec.message()));
  }
  if (!has_allowed_namespaces) {
    return absl::PermissionDeniedError(absl::StrCat(
        "authProfile \"", name, "\": the profile has no ", kAllowedNamespacesFile,
        " file, so no namespace may use it (the scaler's operator adds ", kAllowedNamespacesFile,
        ": a comma-separated list of namespaces, or * for all)"));
  }
  return profile;
}

absl::StatusOr<Metadata> ProfileStore::Merge(absl::string_view namespace_, const Metadata& metadata,
                                             absl::Time* fresh_until) {
  auto it = metadata.find(kAuthProfileKey);
  if (it == metadata.end()) {
    if (fresh_until != nullptr) *fresh_until = absl::InfiniteFuture();
    return metadata;
  }
  const std::string& name = it->second;
  if (dir_.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("authProfile \"", Cut(name),
                     "\": this klag-scaler has no profiles directory (--profiles-dir)"));
  }
  if (!ValidProfileName(name)) {
    return absl::InvalidArgumentError(
        absl::StrCat("authProfile \"", Cut(name),
                     "\": not a valid profile name (letters, digits, '-', '_', '.')"));
  }
  Profile profile;
  absl::Time loaded_at;
  {
    absl::MutexLock lock(&mu_);
    auto cached = cache_.find(name);
    if (cached != cache_.end() && absl::Now() - cached->second.loaded_at < reload_after_) {
      profile = cached->second.profile;
      loaded_at = cached->second.loaded_at;
    } else {
      absl::StatusOr<Profile> loaded = Load(name);
      if (!loaded.ok()) {
        cache_.erase(name);
        return loaded.status();
      }
      loaded_at = absl::Now();
      cache_[name] = Cached{*loaded, loaded_at};
      profile = *std::move(loaded);
    }
  }

  const bool allowed =
      std::any_of(profile.allowed_namespaces.begin(), profile.allowed_namespaces.end(),
                  [&](const std::string& ns) { return ns == "*" || ns == namespace_; });
  if (!allowed) {
    return absl::PermissionDeniedError(
        absl::StrCat("authProfile \"", name, "\" may not be used from namespace \"",
                     Cut(namespace_), "\" (not in its ", kAllowedNamespacesFile, ")"));
  }

  // The profile pins the cluster its credentials go to.
  const bool pins_cluster = profile.values.contains(kBootstrapServers) ||
                            profile.values.contains(absl::StrCat(kBootstrapServers, kFromEnv));
  if (!pins_cluster) {
    for (const auto& [key, value] : profile.values) {
      if (IsCredentialKey(key)) {
        return absl::FailedPreconditionError(absl::StrCat(
            "authProfile \"", name, "\" holds a credential (", key,
            ") but no bootstrapServers: a profile with credentials must name its cluster"));
      }
    }
  }
  // ... and the trigger may not change where or how they are sent.
  for (const auto& [key, value] : metadata) {
    if (IsConnectionKey(key)) {
      return absl::InvalidArgumentError(absl::StrCat(
          Cut(key), ": a trigger using authProfile \"", name,
          "\" may not set connection keys (bootstrapServers, tls, sasl and oauth keys); the "
          "profile sets them"));
    }
  }

  Metadata merged = metadata;
  for (auto& [key, value] : profile.values) {
    if (merged.contains(key) || merged.contains(absl::StrCat(key, kFromEnv))) {
      return absl::InvalidArgumentError(absl::StrCat("authProfile \"", name, "\" sets ", key,
                                                     ", which the trigger metadata sets too; "
                                                     "set it in one place"));
    }
    merged.emplace(key, value);
  }
  if (fresh_until != nullptr) *fresh_until = loaded_at + reload_after_;
  return merged;
}

}  // namespace klag::scaler
