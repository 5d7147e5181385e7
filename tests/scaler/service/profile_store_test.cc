#include "scaler/service/profile_store.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "tests/testing/test_env.h"

namespace klag::scaler {
namespace {

namespace fs = std::filesystem;

class ProfileStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / testing::UniqueName("klag-profiles");
    fs::create_directories(dir_ / "prod");
    Write("prod/sasl", "scram_sha512\n");
    Write("prod/username", "svc-klag");
    Write("prod/password", "s3cret\n");
    fs::create_directories(dir_ / "prod/..data");  // Kubernetes' mount bookkeeping
  }
  void TearDown() override { fs::remove_all(dir_); }
  void Write(const std::string& rel, const std::string& text) { std::ofstream(dir_ / rel) << text; }

  fs::path dir_;
};

TEST_F(ProfileStoreTest, MetadataWithoutProfileIsUnchanged) {
  ProfileStore store(dir_.string());
  Metadata md = {{"topic", "t"}};
  auto merged = store.Merge(md);
  ASSERT_TRUE(merged.ok());
  EXPECT_EQ(*merged, md);
}

TEST_F(ProfileStoreTest, MergesProfileKeysAndDropsTrailingNewline) {
  ProfileStore store(dir_.string());
  auto merged = store.Merge({{"topic", "t"}, {"authProfile", "prod"}});
  ASSERT_TRUE(merged.ok()) << merged.status();
  EXPECT_EQ(merged->at("sasl"), "scram_sha512");
  EXPECT_EQ(merged->at("username"), "svc-klag");
  EXPECT_EQ(merged->at("password"), "s3cret");
  EXPECT_EQ(merged->at("topic"), "t");
  EXPECT_FALSE(merged->contains("..data"));
}

TEST_F(ProfileStoreTest, KeySetInBothPlacesIsAnErrorWithoutTheSecret) {
  ProfileStore store(dir_.string());
  auto merged = store.Merge({{"authProfile", "prod"}, {"passwordFromEnv", "other-secret"}});
  ASSERT_EQ(merged.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(merged.status().message().find("password"), absl::string_view::npos);
  EXPECT_EQ(merged.status().message().find("s3cret"), absl::string_view::npos);
  EXPECT_EQ(merged.status().message().find("other-secret"), absl::string_view::npos);
}

TEST_F(ProfileStoreTest, UnknownAndMalformedProfilesAreErrors) {
  ProfileStore store(dir_.string());
  auto unknown = store.Merge({{"authProfile", "staging"}});
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(unknown.status().message().find("authProfile \"staging\""), absl::string_view::npos);
  auto escape = store.Merge({{"authProfile", "../etc"}});
  EXPECT_EQ(escape.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(escape.status().message().find("not a valid profile name"), absl::string_view::npos);
}

TEST_F(ProfileStoreTest, NoProfilesDirectoryConfigured) {
  ProfileStore store("");
  auto merged = store.Merge({{"authProfile", "prod"}});
  EXPECT_EQ(merged.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(merged.status().message().find("--profiles-dir"), absl::string_view::npos);
}

TEST_F(ProfileStoreTest, RotatedSecretIsReadAfterTheReloadPeriod) {
  ProfileStore store(dir_.string(), absl::ZeroDuration());
  ASSERT_EQ(store.Merge({{"authProfile", "prod"}})->at("password"), "s3cret");
  Write("prod/password", "rotated");
  EXPECT_EQ(store.Merge({{"authProfile", "prod"}})->at("password"), "rotated");
}

}  // namespace
}  // namespace klag::scaler
