#include "scaler/service/profile_store.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace klag::scaler {
namespace {

constexpr char kAuthProfileKey[] = "authProfile";

bool ValidProfileName(const std::string& name) {
  if (name.empty() || name.size() > 253 || name[0] == '.') return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') {
      return false;
    }
  }
  return true;
}

}  // namespace

ProfileStore::ProfileStore(std::string dir, absl::Duration reload_after)
    : dir_(std::move(dir)), reload_after_(reload_after) {}

absl::StatusOr<Metadata> ProfileStore::Load(const std::string& name) {
  namespace fs = std::filesystem;
  const fs::path path = fs::path(dir_) / name;
  std::error_code ec;
  if (!fs::is_directory(path, ec)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "authProfile \"", name, "\": no such profile (looked for directory ", path.string(), ")"));
  }
  Metadata values;
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
    values.emplace(key, std::string(trimmed));
  }
  if (ec) {
    return absl::InvalidArgumentError(absl::StrCat("authProfile \"", name, "\": cannot list ",
                                                   path.string(), ": ", ec.message()));
  }
  return values;
}

absl::StatusOr<Metadata> ProfileStore::Merge(const Metadata& metadata) {
  auto it = metadata.find(kAuthProfileKey);
  if (it == metadata.end()) return metadata;
  const std::string& name = it->second;
  if (dir_.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "authProfile \"", name, "\": this klag-scaler has no profiles directory (--profiles-dir)"));
  }
  if (!ValidProfileName(name)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "authProfile \"", name, "\": not a valid profile name (letters, digits, '-', '_', '.')"));
  }
  Metadata profile;
  {
    absl::MutexLock lock(&mu_);
    auto cached = cache_.find(name);
    if (cached != cache_.end() && absl::Now() - cached->second.loaded_at < reload_after_) {
      profile = cached->second.values;
    } else {
      absl::StatusOr<Metadata> loaded = Load(name);
      if (!loaded.ok()) {
        cache_.erase(name);
        return loaded.status();
      }
      cache_[name] = Cached{*loaded, absl::Now()};
      profile = *std::move(loaded);
    }
  }
  Metadata merged = metadata;
  for (auto& [key, value] : profile) {
    if (merged.contains(key) || merged.contains(absl::StrCat(key, "FromEnv"))) {
      return absl::InvalidArgumentError(absl::StrCat("authProfile \"", name, "\" sets ", key,
                                                     ", which the trigger metadata sets too; "
                                                     "set it in one place"));
    }
    merged.emplace(key, value);
  }
  return merged;
}

}  // namespace klag::scaler
