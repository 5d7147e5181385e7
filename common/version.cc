#include "common/version.h"

#include "absl/strings/str_cat.h"
// Generated into the build tree by common/version.cmake on every build (rewritten only when the
// commit changes, so an unchanged commit rebuilds nothing).
#include "common/version_info.h"

namespace klag {

absl::string_view Version() { return KLAG_VERSION; }

absl::string_view GitCommit() { return KLAG_GIT_COMMIT; }

std::string VersionText(absl::string_view program, const LibraryVersions& libraries) {
  std::string out = absl::StrCat(program, " ", Version(), "\ncommit ", GitCommit(), "\n");
  for (const auto& [name, version] : libraries) absl::StrAppend(&out, name, " ", version, "\n");
  return out;
}

std::string VersionLine(absl::string_view program, const LibraryVersions& libraries) {
  std::string out = absl::StrCat(program, " ", Version(), " (commit ", GitCommit());
  for (const auto& [name, version] : libraries) absl::StrAppend(&out, ", ", name, " ", version);
  absl::StrAppend(&out, ")");
  return out;
}

}  // namespace klag
