#include "scaler/service/profile_store.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "tests/testing/test_env.h"

namespace klag::scaler {
namespace {

namespace fs = std::filesystem;

constexpr absl::string_view kSecret = "s3cret";

class ProfileStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / testing::UniqueName("klag-profiles");
    fs::create_directories(dir_ / "prod");
    Write("prod/bootstrapServers", "kafka.kafka.svc:9092\n");
    Write("prod/sasl", "scram_sha512\n");
    Write("prod/username", "svc-klag");
    Write("prod/password", "s3cret\n");
    Write("prod/allowedNamespaces", "data, team-b\n");
    fs::create_directories(dir_ / "prod/..data");  // Kubernetes' mount bookkeeping
  }
  void TearDown() override { fs::remove_all(dir_); }
  void Write(const std::string& rel, const std::string& text) { std::ofstream(dir_ / rel) << text; }

  static bool Has(const absl::Status& s, absl::string_view text) {
    return s.message().find(text) != absl::string_view::npos;
  }

  fs::path dir_;
};

TEST_F(ProfileStoreTest, MetadataWithoutProfileIsUnchanged) {
  ProfileStore store(dir_.string());
  Metadata md = {{"topic", "t"}, {"bootstrapServers", "mine:9092"}};
  auto merged = store.Merge("any", md);
  ASSERT_TRUE(merged.ok());
  EXPECT_EQ(*merged, md);
}

TEST_F(ProfileStoreTest, AllowedNamespaceGetsTheProfileKeys) {
  ProfileStore store(dir_.string());
  for (const char* ns : {"data", "team-b"}) {
    auto merged = store.Merge(ns, {{"topic", "t"}, {"authProfile", "prod"}});
    ASSERT_TRUE(merged.ok()) << merged.status();
    EXPECT_EQ(merged->at("bootstrapServers"), "kafka.kafka.svc:9092");
    EXPECT_EQ(merged->at("sasl"), "scram_sha512");
    EXPECT_EQ(merged->at("username"), "svc-klag");
    EXPECT_EQ(merged->at("password"), "s3cret");
    EXPECT_EQ(merged->at("topic"), "t");
    EXPECT_FALSE(merged->contains("..data"));
    EXPECT_FALSE(merged->contains("allowedNamespaces"));  // not a metadata key
  }
}

TEST_F(ProfileStoreTest, NamespaceNotAllowedIsPermissionDeniedNamingProfileAndNamespace) {
  ProfileStore store(dir_.string());
  for (const char* ns : {"team-c", "dat", "", "data,team-b"}) {
    auto merged = store.Merge(ns, {{"topic", "t"}, {"authProfile", "prod"}});
    ASSERT_EQ(merged.status().code(), absl::StatusCode::kPermissionDenied) << ns;
    EXPECT_TRUE(Has(merged.status(), "authProfile \"prod\"")) << merged.status();
    EXPECT_TRUE(Has(merged.status(), absl::StrCat("namespace \"", ns, "\""))) << merged.status();
    EXPECT_FALSE(Has(merged.status(), kSecret));
    EXPECT_FALSE(Has(merged.status(), "svc-klag"));
  }
}

TEST_F(ProfileStoreTest, LongNamespaceIsCutInTheError) {
  ProfileStore store(dir_.string());
  auto merged = store.Merge(std::string(100000, 'n'), {{"authProfile", "prod"}});
  ASSERT_EQ(merged.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_LT(merged.status().message().size(), 300u) << merged.status();
  EXPECT_TRUE(Has(merged.status(), "(100000 bytes)")) << merged.status();
}

TEST_F(ProfileStoreTest, StarAllowsEveryNamespace) {
  Write("prod/allowedNamespaces", "*");
  ProfileStore store(dir_.string());
  EXPECT_TRUE(store.Merge("team-c", {{"authProfile", "prod"}}).ok());
  EXPECT_TRUE(store.Merge("kube-system", {{"authProfile", "prod"}}).ok());
}

TEST_F(ProfileStoreTest, ProfileWithoutAllowedNamespacesIsRefusedSayingSo) {
  fs::remove(dir_ / "prod/allowedNamespaces");
  ProfileStore store(dir_.string());
  auto merged = store.Merge("data", {{"authProfile", "prod"}});
  ASSERT_EQ(merged.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(Has(merged.status(), "no allowedNamespaces file")) << merged.status();
  EXPECT_FALSE(Has(merged.status(), kSecret));
}

TEST_F(ProfileStoreTest, EmptyAllowedNamespacesAllowsNobody) {
  Write("prod/allowedNamespaces", " , \n");
  ProfileStore store(dir_.string());
  EXPECT_EQ(store.Merge("data", {{"authProfile", "prod"}}).status().code(),
            absl::StatusCode::kPermissionDenied);
}

TEST_F(ProfileStoreTest, ProfileWithCredentialsMustPinBootstrapServers) {
  fs::remove(dir_ / "prod/bootstrapServers");
  ProfileStore store(dir_.string());
  auto merged = store.Merge("data", {{"authProfile", "prod"}});
  ASSERT_EQ(merged.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(Has(merged.status(), "bootstrapServers")) << merged.status();
  EXPECT_FALSE(Has(merged.status(), kSecret));

  // A profile with only mode switches (no credential) need not pin a cluster.
  fs::create_directories(dir_ / "plain");
  Write("plain/sasl", "none");
  Write("plain/tls", "disable");
  Write("plain/allowedNamespaces", "*");
  auto plain = store.Merge("data", {{"authProfile", "plain"}});
  EXPECT_TRUE(plain.ok()) << plain.status();
  // Every credential key counts, also in its FromEnv form.
  for (const std::string& key : ProfileStore::CredentialKeys()) {
    fs::create_directories(dir_ / "cred");
    Write("cred/allowedNamespaces", "*");
    Write("cred/" + key + "FromEnv", "x");
    EXPECT_EQ(store.Merge("data", {{"authProfile", "cred"}}).status().code(),
              absl::StatusCode::kFailedPrecondition)
        << key;
    fs::remove_all(dir_ / "cred");
  }
}

TEST_F(ProfileStoreTest, TriggerCannotOverrideAPinnedConnectionKey) {
  ProfileStore store(dir_.string());
  // Each would send the profile's password elsewhere or weaken how it is sent.
  for (const char* key :
       {"bootstrapServers", "bootstrapServersFromEnv", "tls", "ca", "cert", "key", "unsafeSsl",
        "sasl", "username", "passwordFromEnv", "oauthTokenEndpointUri", "saslTokenProvider",
        "scopes", "oauthExtensions", "keytab", "realm", "kerberosServiceName"}) {
    auto merged = store.Merge(
        "data", {{"authProfile", "prod"}, {"topic", "t"}, {key, "attacker.example:9092"}});
    ASSERT_EQ(merged.status().code(), absl::StatusCode::kInvalidArgument) << key;
    EXPECT_EQ(merged.status().message().rfind(absl::StrCat(key, ":"), 0), 0u) << merged.status();
    EXPECT_FALSE(Has(merged.status(), kSecret));
  }
  // KEDA's own keys for its connection to the scaler stay allowed.
  auto keda = store.Merge("data", {{"authProfile", "prod"}, {"caCert", "pem"}, {"enableTLS", "1"}});
  EXPECT_TRUE(keda.ok()) << keda.status();
}

TEST_F(ProfileStoreTest, NonConnectionKeySetInBothPlacesIsAnError) {
  Write("prod/consumerGroup", "g");
  ProfileStore store(dir_.string());
  auto merged = store.Merge("data", {{"authProfile", "prod"}, {"consumerGroup", "mine"}});
  ASSERT_EQ(merged.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Has(merged.status(), "consumerGroup")) << merged.status();
}

TEST_F(ProfileStoreTest, UnknownAndMalformedProfilesAreErrors) {
  ProfileStore store(dir_.string());
  auto unknown = store.Merge("data", {{"authProfile", "staging"}});
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Has(unknown.status(), "authProfile \"staging\""));
  auto escape = store.Merge("data", {{"authProfile", "../etc"}});
  EXPECT_EQ(escape.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Has(escape.status(), "not a valid profile name"));
  auto huge = store.Merge("data", {{"authProfile", std::string(100000, '/')}});
  EXPECT_EQ(huge.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_LT(huge.status().message().size(), 300u);
}

TEST_F(ProfileStoreTest, NoProfilesDirectoryConfigured) {
  ProfileStore store("");
  auto merged = store.Merge("data", {{"authProfile", "prod"}});
  EXPECT_EQ(merged.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Has(merged.status(), "--profiles-dir"));
}

TEST_F(ProfileStoreTest, RotatedSecretAndNamespacesAreReadAfterTheReloadPeriod) {
  ProfileStore store(dir_.string(), absl::ZeroDuration());
  ASSERT_EQ(store.Merge("data", {{"authProfile", "prod"}})->at("password"), "s3cret");
  Write("prod/password", "rotated");
  EXPECT_EQ(store.Merge("data", {{"authProfile", "prod"}})->at("password"), "rotated");
  Write("prod/allowedNamespaces", "team-b");
  EXPECT_EQ(store.Merge("data", {{"authProfile", "prod"}}).status().code(),
            absl::StatusCode::kPermissionDenied);
}

}  // namespace
}  // namespace klag::scaler
