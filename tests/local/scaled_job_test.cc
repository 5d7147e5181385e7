#include "tools/local/scaled_job.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace klag::local {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

const std::string kDeployScaledJob = std::string(KLAG_SOURCE_DIR) + "/deploy/jobs/scaledjob.yaml";

TEST(ScaledJobTest, ReadsTheDeployManifestFieldForField) {
  absl::StatusOr<ScaledJob> sj = LoadScaledJob(kDeployScaledJob);
  ASSERT_TRUE(sj.ok()) << sj.status();
  EXPECT_EQ(sj->name, "listed-stock-price");
  EXPECT_EQ(sj->job.parallelism, 1);
  EXPECT_EQ(sj->job.completions, 1);
  EXPECT_EQ(sj->job.active_deadline, absl::Seconds(600));
  EXPECT_EQ(sj->job.backoff_limit, 6);
  EXPECT_EQ(sj->job.restart_policy, "Never");
  EXPECT_EQ(sj->polling_interval, absl::Seconds(30));
  EXPECT_EQ(sj->successful_jobs_history_limit, 5);
  EXPECT_EQ(sj->failed_jobs_history_limit, 5);
  EXPECT_EQ(sj->min_replica_count, 0);
  EXPECT_EQ(sj->max_replica_count, 1);
  EXPECT_EQ(sj->rollout_strategy, "gradual");
  EXPECT_EQ(sj->scaling_strategy.strategy, Strategy::kDefault);
  EXPECT_EQ(sj->scaling_strategy.multiple_scalers_calculation, MultipleScalersCalculation::kMax);
  EXPECT_THAT(sj->scaling_strategy.pending_pod_conditions, ElementsAre("Ready", "PodScheduled"));
  ASSERT_EQ(sj->triggers.size(), 1u);
  EXPECT_EQ(sj->triggers[0].type, "external");
  EXPECT_EQ(sj->triggers[0].metadata.at("consumerGroup"), "python_data_load");
  EXPECT_EQ(sj->triggers[0].metadata.at("lagThreshold"), "1");
  EXPECT_EQ(sj->job.container.name, "klag-job");
  EXPECT_THAT(sj->job.container.command, ElementsAre("/usr/local/bin/klag-job"));
}

constexpr char kMinimal[] = R"(
apiVersion: v1
kind: Secret
metadata: {name: not-this-one}
---
apiVersion: keda.sh/v1alpha1
kind: ScaledJob
metadata: {name: sj, namespace: ns}
spec:
  jobTargetRef:
    template:
      spec:
        containers:
          - name: sidecar
            image: busybox
          - name: main
            image: klag-job
            command: [/bin/true]
            env:
              - name: A
                value: "1"
              - name: B
                valueFrom: {secretKeyRef: {name: s, key: b, optional: true}}
              - name: C
                valueFrom: {configMapKeyRef: {name: cm, key: c}}
  envSourceContainerName: main
  triggers:
    - type: external
      metadata: {scalerAddress: "h:1", lagThreshold: "5"}
)";

TEST(ScaledJobTest, AppliesKedaAndKubernetesDefaults) {
  absl::StatusOr<ScaledJob> sj = ParseScaledJob(kMinimal);
  ASSERT_TRUE(sj.ok()) << sj.status();
  EXPECT_EQ(sj->namespace_, "ns");
  EXPECT_EQ(sj->polling_interval, absl::Seconds(30));
  EXPECT_EQ(sj->successful_jobs_history_limit, 100);
  EXPECT_EQ(sj->failed_jobs_history_limit, 100);
  EXPECT_EQ(sj->max_replica_count, std::nullopt);
  EXPECT_EQ(sj->job.backoff_limit, 6);
  EXPECT_EQ(sj->job.active_deadline, std::nullopt);
  EXPECT_EQ(sj->job.termination_grace, absl::Seconds(30));
  EXPECT_EQ(sj->job.restart_policy, "OnFailure");
  EXPECT_EQ(sj->job.container_count, 2u);
}

TEST(ScaledJobTest, UsesEnvSourceContainerNameAndReadsEnvReferences) {
  absl::StatusOr<ScaledJob> sj = ParseScaledJob(kMinimal);
  ASSERT_TRUE(sj.ok()) << sj.status();
  const Container& c = sj->job.container;
  EXPECT_EQ(c.name, "main");
  ASSERT_EQ(c.env.size(), 3u);
  EXPECT_EQ(c.env[0].value, "1");
  ASSERT_TRUE(c.env[1].secret_key_ref.has_value());
  EXPECT_EQ(c.env[1].secret_key_ref->name, "s");
  EXPECT_TRUE(c.env[1].secret_key_ref->optional);
  ASSERT_TRUE(c.env[2].config_map_key_ref.has_value());
  EXPECT_FALSE(c.env[2].config_map_key_ref->optional);
}

struct BadCase {
  std::string name;
  std::string yaml;
  std::string want;
};

std::string With(const std::string& from, const std::string& to) {
  std::string s = kMinimal;
  const size_t at = s.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  s.replace(at, from.size(), to);
  return s;
}

TEST(ScaledJobTest, RefusesWhatKedaOrKubernetesWouldRefuse) {
  const std::vector<BadCase> cases = {
      {"unquoted number in metadata", With("lagThreshold: \"5\"", "lagThreshold: 5"),
       "spec.triggers[0].metadata.lagThreshold"},
      {"no triggers",
       With("  triggers:\n    - type: external\n      metadata: {scalerAddress: "
            "\"h:1\", lagThreshold: \"5\"}\n",
            ""),
       "spec.triggers"},
      {"unknown strategy",
       With("  envSourceContainerName: main\n",
            "  envSourceContainerName: main\n  scalingStrategy: {strategy: "
            "fast}\n"),
       "spec.scalingStrategy.strategy"},
      {"negative backoffLimit", With("    template:\n", "    backoffLimit: -1\n    template:\n"),
       "spec.jobTargetRef.backoffLimit"},
      {"no such env source container",
       With("envSourceContainerName: main", "envSourceContainerName: other"),
       "envSourceContainerName"},
      {"text where a number belongs",
       With("  envSourceContainerName: main\n",
            "  envSourceContainerName: main\n  pollingInterval: "
            "soon\n"),
       "spec.pollingInterval"},
      {"unquoted boolean in metadata", With("lagThreshold: \"5\"", "enableTLS: yes"),
       "spec.triggers[0].metadata.enableTLS"},
      {"malformed YAML", "kind: ScaledJob\nspec: [\n", "YAML"},
  };
  for (const BadCase& c : cases) {
    absl::StatusOr<ScaledJob> sj = ParseScaledJob(c.yaml);
    ASSERT_FALSE(sj.ok()) << c.name;
    EXPECT_EQ(sj.status().code(), absl::StatusCode::kInvalidArgument) << c.name;
    EXPECT_THAT(sj.status().message(), HasSubstr(c.want)) << c.name;
  }
}

TEST(ScaledJobTest, NotFoundWithoutAScaledJobDocument) {
  absl::StatusOr<ScaledJob> sj = ParseScaledJob("kind: Secret\nmetadata: {name: x}\n");
  EXPECT_EQ(sj.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(LoadScaledJob("/nonexistent/sj.yaml").status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace klag::local
