#include "common/version.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

namespace klag {
namespace {

using ::testing::MatchesRegex;

TEST(VersionTest, IsTheCMakeProjectVersion) {
  EXPECT_EQ(Version(), KLAG_EXPECTED_VERSION);  // set from PROJECT_VERSION by CMake
}

TEST(VersionTest, GitCommitIsTwelveHexDigitsOrUnknown) {
  const std::string commit(GitCommit());
  EXPECT_THAT(commit, MatchesRegex("([0-9a-f]{12}|unknown)")) << commit;
}

TEST(VersionTest, TextHasOneLinePerItem) {
  EXPECT_EQ(VersionText("klag-x", {{"librdkafka", "2.8.0"}, {"gRPC", "1.51.1"}}),
            "klag-x " + std::string(Version()) + "\ncommit " + std::string(GitCommit()) +
                "\nlibrdkafka 2.8.0\ngRPC 1.51.1\n");
}

TEST(VersionTest, LineIsOneLineForTheStartUpLog) {
  EXPECT_EQ(VersionLine("klag-x", {{"gRPC", "1.51.1"}}),
            "klag-x " + std::string(Version()) + " (commit " + std::string(GitCommit()) +
                ", gRPC 1.51.1)");
}

}  // namespace
}  // namespace klag
