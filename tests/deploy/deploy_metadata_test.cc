// deploy/ against the real code: the ScaledJob's trigger metadata, resolved as KEDA forwards it,
// parses with klag-scaler's own parser without unknown keys; the ScaledObject example's
// `authProfile` merges with the profile Secret the scaler mounts; the scaler listens where the
// manifests point; the Job template's environment is options klag-job accepts.
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "scaler/lag/trigger_spec.h"
#include "scaler/service/profile_store.h"
#include "scaler/service/server.h"
#include "tools/local/job_runner.h"
#include "tools/local/pod_env.h"
#include "tools/local/scaled_job.h"
#ifdef KLAG_HAVE_JOB_OPTIONS
#include "job/options.h"
#endif

namespace klag {
namespace {

const std::string kDeploy = std::string(KLAG_SOURCE_DIR) + "/deploy";

// Secrets of a manifest file (stringData), as the cluster would hold them.
void AddSecrets(const std::string& path, local::LocalValues* values) {
  for (const YAML::Node& doc : YAML::LoadAllFromFile(path)) {
    if (!doc["kind"] || doc["kind"].Scalar() != "Secret") continue;
    local::StringMap& data = values->secrets[doc["metadata"]["name"].Scalar()];
    for (const auto& kv : doc["stringData"]) data[kv.first.Scalar()] = kv.second.Scalar();
  }
}

local::LocalValues ClusterValues() {
  local::LocalValues values;
  for (const auto& entry : std::filesystem::directory_iterator(kDeploy + "/jobs")) {
    if (entry.path().extension() == ".yaml") AddSecrets(entry.path(), &values);
  }
  return values;
}

TEST(DeployMetadataTest, ScaledJobTriggerParsesWithTheScalersParserAndNoUnknownKeys) {
  absl::StatusOr<local::ScaledJob> sj = local::LoadScaledJob(kDeploy + "/jobs/scaledjob.yaml");
  ASSERT_TRUE(sj.ok()) << sj.status();
  const local::LocalValues values = ClusterValues();
  absl::StatusOr<local::StringMap> env = local::ResolveContainerEnv(sj->job.container, values);
  ASSERT_TRUE(env.ok()) << env.status();
  ASSERT_EQ(sj->triggers.size(), 1u);
  const local::StringMap forwarded =
      local::ResolveTriggerMetadata(sj->triggers[0].metadata, *env, values);
  // Every FromEnv key resolved (none dropped) except the optional, absent credentials.
  for (const auto& [key, value] : sj->triggers[0].metadata) {
    if (key == "usernameFromEnv" || key == "passwordFromEnv") continue;
    EXPECT_TRUE(forwarded.contains(key)) << key << " was dropped: " << value << " unresolved";
  }
  scaler::Metadata metadata(forwarded.begin(), forwarded.end());
  absl::StatusOr<scaler::TriggerSpec> spec = scaler::ParseTriggerSpec(metadata);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_THAT(spec->unknown_keys, ::testing::IsEmpty());
  EXPECT_EQ(spec->consumer_group, "python_data_load");
  EXPECT_THAT(spec->topics, ::testing::ElementsAre("ListedStockPrice"));
  EXPECT_EQ(spec->lag_threshold, 1);
  EXPECT_EQ(spec->offset_reset_policy, scaler::OffsetResetPolicy::kLatest);
  EXPECT_EQ(scaler::MetricName(*spec), "kafka-ListedStockPrice");
}

TEST(DeployMetadataTest, ScaledJobTriggerWithSaslCredentialsStillParses) {
  // The Secret's commented-out SASL settings, filled in: what a production cluster holds.
  absl::StatusOr<local::ScaledJob> sj = local::LoadScaledJob(kDeploy + "/jobs/scaledjob.yaml");
  ASSERT_TRUE(sj.ok()) << sj.status();
  local::LocalValues values = ClusterValues();
  values.secrets["klag-kafka-credentials"] = {
      {"sasl", "scram_sha512"}, {"username", "data-load"}, {"password", "p"}, {"tls", "enable"}};
  absl::StatusOr<local::StringMap> env = local::ResolveContainerEnv(sj->job.container, values);
  ASSERT_TRUE(env.ok()) << env.status();
  const local::StringMap forwarded =
      local::ResolveTriggerMetadata(sj->triggers[0].metadata, *env, values);
  absl::StatusOr<scaler::TriggerSpec> spec =
      scaler::ParseTriggerSpec(scaler::Metadata(forwarded.begin(), forwarded.end()));
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->connection.sasl.mechanism, kafka::SaslMechanism::kScramSha512);
  EXPECT_TRUE(spec->connection.tls.enabled);
}

TEST(DeployMetadataTest, ScaledObjectExampleMergesWithTheMountedProfile) {
  // The profile Secret as the scaler's volume mount lays it out: <dir>/<profile>/<key>.
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("klag-deploy-profiles-" + local::RandomSuffix(8));
  for (const YAML::Node& doc : YAML::LoadAllFromFile(kDeploy + "/scaler/profiles-secret.yaml")) {
    const std::string name = doc["metadata"]["name"].Scalar();
    const std::string prefix = "klag-scaler-profile-";
    ASSERT_EQ(name.rfind(prefix, 0), 0u) << name;
    std::filesystem::create_directories(dir / name.substr(prefix.size()));
    for (const auto& kv : doc["stringData"]) {
      std::ofstream(dir / name.substr(prefix.size()) / kv.first.Scalar()) << kv.second.Scalar();
    }
  }
  YAML::Node so = YAML::LoadFile(kDeploy + "/examples/scaledobject/scaledobject.yaml");
  scaler::Metadata metadata;
  for (const auto& kv : so["spec"]["triggers"][0]["metadata"]) {
    metadata[kv.first.Scalar()] = kv.second.Scalar();
  }
  // The example is applied to the namespace its kustomization names; the profile allows it.
  const std::string ns =
      YAML::LoadFile(kDeploy + "/examples/scaledobject/kustomization.yaml")["namespace"].Scalar();
  scaler::ProfileStore profiles(dir.string());
  absl::StatusOr<scaler::Metadata> merged = profiles.Merge(ns, metadata);
  absl::StatusOr<scaler::Metadata> elsewhere = profiles.Merge("some-other-namespace", metadata);
  std::filesystem::remove_all(dir);
  ASSERT_TRUE(merged.ok()) << merged.status();
  EXPECT_EQ(elsewhere.status().code(), absl::StatusCode::kPermissionDenied) << elsewhere.status();
  absl::StatusOr<scaler::TriggerSpec> spec = scaler::ParseTriggerSpec(*merged);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_THAT(spec->unknown_keys, ::testing::IsEmpty());
  EXPECT_EQ(spec->lag_threshold, 100);
}

TEST(DeployMetadataTest, ScalerListensByDefaultWhereTheManifestsPoint) {
  YAML::Node deployment = YAML::LoadFile(kDeploy + "/scaler/deployment.yaml");
  YAML::Node container = deployment["spec"]["template"]["spec"]["containers"][0];
  const int port = container["ports"][0]["containerPort"].as<int>();
  EXPECT_EQ(scaler::ServerOptions{}.listen, "0.0.0.0:" + std::to_string(port));
  for (const auto& env : container["env"]) {
    if (env["name"].Scalar() == "KLAG_LISTEN") {
      EXPECT_EQ(env["value"].Scalar(), scaler::ServerOptions{}.listen);
    }
  }
}

#ifdef KLAG_HAVE_JOB_OPTIONS
TEST(DeployMetadataTest, JobTemplateEnvironmentIsAcceptedByKlagJob) {
  absl::StatusOr<local::ScaledJob> sj = local::LoadScaledJob(kDeploy + "/jobs/scaledjob.yaml");
  ASSERT_TRUE(sj.ok()) << sj.status();
  absl::StatusOr<local::StringMap> env =
      local::ResolveContainerEnv(sj->job.container, ClusterValues());
  ASSERT_TRUE(env.ok()) << env.status();
  const local::StringMap vars = *env;
  EnvLookup lookup = [vars](absl::string_view name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
  std::string usage;
  absl::StatusOr<job::JobOptions> options =
      job::ParseJobOptions(sj->job.container.args, lookup, &usage);
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->group, "python_data_load");
  EXPECT_THAT(options->topics, ::testing::ElementsAre("ListedStockPrice"));
  EXPECT_EQ(options->sink, job::SinkKind::kPostgres);
  EXPECT_EQ(options->reset, job::OffsetReset::kLatest);
}
#endif

}  // namespace
}  // namespace klag
