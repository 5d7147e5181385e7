// The version of klag a binary was built as, for `--version` and the start-up log line: the
// project version (CMake's `project(klag VERSION ...)`), the git commit the build tree was built
// from ("unknown" outside a git checkout, e.g. in an image build whose context has no .git, unless
// CMake is given -DKLAG_GIT_COMMIT=...), and the versions of the libraries the binary loads.
//
//   if (show_version) {
//     std::cout << klag::VersionText("klag-scaler", {{"librdkafka", kafka::LibrdkafkaVersion()},
//                                                    {"gRPC", grpc::Version()}});
//     return 0;
//   }
//   spdlog::info("{}", klag::VersionLine("klag-scaler", {...}));
//
// No Kafka, no gRPC here: each main() passes the versions of the libraries it links.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

namespace klag {

// A library and its version as the binary sees it at run time, e.g. {"librdkafka", "2.8.0"}.
using LibraryVersions = std::vector<std::pair<std::string, std::string>>;

// "0.1.0": the project version the build was configured with.
absl::string_view Version();

// The abbreviated (12 hex digits) commit of HEAD when the binary was built, or "unknown".
absl::string_view GitCommit();

// Multi-line text for `--version`, ending in a newline:
//   klag-scaler 0.1.0
//   commit 1ffef57a0c3d
//   librdkafka 2.8.0
//   gRPC 1.51.1
std::string VersionText(absl::string_view program, const LibraryVersions& libraries);

// The same on one line, for the start-up log:
//   "klag-scaler 0.1.0 (commit 1ffef57a0c3d, librdkafka 2.8.0, gRPC 1.51.1)"
std::string VersionLine(absl::string_view program, const LibraryVersions& libraries);

}  // namespace klag
