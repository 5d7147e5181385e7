#include "scaler/service/scaledjob_file.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <string>

#include "scaler/service/check_report.h"

namespace klag::scaler {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;

EnvLookup MapEnv(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](absl::string_view name) -> std::optional<std::string> {
    auto it = vars.find(std::string(name));
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

std::string Message(const absl::StatusOr<ManifestTrigger>& t) {
  return std::string(t.status().message());
}

TEST(ScaledJobFileTest, ReadsTheRepositoryExampleScaledJob) {
  absl::StatusOr<ManifestTrigger> t =
      LoadManifestTrigger(KLAG_SOURCE_DIR "/deploy/jobs/scaledjob.yaml", {});
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->kind, "ScaledJob");
  EXPECT_EQ(t->name, "listed-stock-price");
  EXPECT_EQ(t->namespace_, "");
  EXPECT_EQ(t->index, 0u);
  EXPECT_EQ(t->type, "external");
  EXPECT_EQ(t->metadata.at("consumerGroup"), "python_data_load");
  EXPECT_EQ(t->metadata.at("topic"), "ListedStockPrice");
  EXPECT_EQ(t->metadata.at("saslFromEnv"), "KLAG_SASL");
  EXPECT_EQ(t->env_source, "container klag-job of the Job template");
  EXPECT_EQ(t->env.at("KLAG_BOOTSTRAP_SERVERS"), "kafka.kafka.svc.cluster.local:9092");
  // valueFrom entries are not literals.
  EXPECT_FALSE(t->env.contains("KLAG_SASL"));
  EXPECT_EQ(t->authentication_ref, std::nullopt);
  // Every FromEnv key of the example names a secretKeyRef variable: one note each.
  EXPECT_THAT(t->notes,
              ElementsAre(HasSubstr("passwordFromEnv: KLAG_PASSWORD comes from secretKeyRef "
                                    "klag-kafka-credentials/password in the cluster"),
                          HasSubstr("saslFromEnv: KLAG_SASL comes from secretKeyRef"),
                          HasSubstr("tlsFromEnv: KLAG_TLS comes from secretKeyRef"),
                          HasSubstr("usernameFromEnv: KLAG_USERNAME comes from secretKeyRef")));
}

TEST(ScaledJobFileTest, FromEnvKeysResolveFromTheContainerThenTheFallback) {
  constexpr char kYaml[] = R"(
apiVersion: keda.sh/v1alpha1
kind: ScaledJob
metadata: {name: sj, namespace: data}
spec:
  jobTargetRef:
    template:
      spec:
        containers:
          - name: job
            env:
              - {name: BOOT, value: "k:9092"}
              - {name: PW, valueFrom: {secretKeyRef: {name: creds, key: pw}}}
  triggers:
    - type: external
      metadata:
        bootstrapServersFromEnv: BOOT
        passwordFromEnv: PW
        usernameFromEnv: USER
)";
  absl::StatusOr<ManifestTrigger> t = ParseManifestTrigger(kYaml, {});
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->namespace_, "data");
  Metadata metadata = t->metadata;
  // The literal wins over the fallback; the others come from the fallback.
  ASSERT_TRUE(
      ResolveFromEnv(
          ManifestEnv(*t, MapEnv({{"BOOT", "ignored:1"}, {"PW", "from-shell"}, {"USER", "alice"}})),
          &metadata)
          .ok());
  EXPECT_THAT(metadata,
              ElementsAre(Pair("bootstrapServersFromEnv", "k:9092"),
                          Pair("passwordFromEnv", "from-shell"), Pair("usernameFromEnv", "alice")));
  EXPECT_THAT(t->notes,
              ElementsAre(HasSubstr("passwordFromEnv: PW comes from secretKeyRef creds/pw"),
                          HasSubstr("usernameFromEnv: USER is not in the container's env")));

  // Missing in both: the existing error names key and variable, never a value.
  metadata = t->metadata;
  absl::Status s = ResolveFromEnv(ManifestEnv(*t, MapEnv({})), &metadata);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), AllOf(HasSubstr("passwordFromEnv"), HasSubstr("\"PW\"")));
  EXPECT_THAT(std::string(s.message()), ::testing::Not(HasSubstr("k:9092")));
}

TEST(ScaledJobFileTest, EnvSourceContainerNameChoosesTheContainer) {
  constexpr char kYaml[] = R"(
kind: ScaledJob
metadata: {name: sj}
spec:
  envSourceContainerName: second
  jobTargetRef:
    template:
      spec:
        containers:
          - {name: first, env: [{name: V, value: one}]}
          - {name: second, env: [{name: V, value: two}]}
  triggers:
    - {type: external, metadata: {topicFromEnv: V}}
)";
  absl::StatusOr<ManifestTrigger> t = ParseManifestTrigger(kYaml, {});
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->env_source, "container second of the Job template");
  EXPECT_EQ(t->env.at("V"), "two");

  std::string wrong = kYaml;
  wrong.replace(wrong.find("second\n"), 6, "third");
  absl::StatusOr<ManifestTrigger> bad = ParseManifestTrigger(wrong, {});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(bad), HasSubstr("spec.envSourceContainerName names container third"));
}

TEST(ScaledJobFileTest, ScaledObjectTakesTheEnvOfItsTargetInTheSameFile) {
  constexpr char kYaml[] = R"(
apiVersion: v1
kind: Secret
metadata: {name: creds}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    spec:
      containers:
        - {name: app, env: [{name: GROUP, value: g1}]}
---
kind: ScaledObject
metadata: {name: so}
spec:
  scaleTargetRef: {name: web}
  triggers:
    - {type: cpu, metadata: {value: "50"}}
    - type: kafka
      name: lag
      authenticationRef: {name: kafka-auth}
      metadata: {consumerGroupFromEnv: GROUP, topic: t, bootstrapServers: "k:9092"}
)";
  absl::StatusOr<ManifestTrigger> t = ParseManifestTrigger(kYaml, {});
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->kind, "ScaledObject");
  EXPECT_EQ(t->index, 1u);
  EXPECT_EQ(t->type, "kafka");
  EXPECT_EQ(t->trigger_name, "lag");
  EXPECT_EQ(t->env_source, "container app of Deployment web");
  EXPECT_EQ(t->env.at("GROUP"), "g1");
  EXPECT_EQ(t->authentication_ref, "kafka-auth");
  EXPECT_THAT(t->notes, ElementsAre(AllOf(HasSubstr("authenticationRef kafka-auth"),
                                          HasSubstr("not applied"))));

  // Without its target in the file: a note, and the fallback environment.
  absl::StatusOr<ManifestTrigger> alone =
      ParseManifestTrigger(std::string(kYaml).substr(std::string(kYaml).find("kind: Scaled")), {});
  ASSERT_TRUE(alone.ok()) << alone.status();
  EXPECT_EQ(alone->env_source, "");
  EXPECT_THAT(alone->env, IsEmpty());
  EXPECT_THAT(alone->notes,
              ::testing::Contains(HasSubstr("scale target Deployment web is not in the file")));
}

TEST(ScaledJobFileTest, NameAndTriggerSelectTheObjectAndTrigger) {
  constexpr char kYaml[] = R"(
kind: ScaledJob
metadata: {name: a}
spec:
  triggers: [{type: external, metadata: {topic: ta}}]
---
kind: ScaledJob
metadata: {name: b}
spec:
  triggers:
    - {type: external, name: one, metadata: {topic: t1}}
    - {type: external-push, name: two, metadata: {topic: t2}}
    - {type: cron, metadata: {start: x}}
)";
  absl::StatusOr<ManifestTrigger> first = ParseManifestTrigger(kYaml, {});
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->name, "a");
  EXPECT_EQ(first->metadata.at("topic"), "ta");

  absl::StatusOr<ManifestTrigger> ambiguous = ParseManifestTrigger(kYaml, {.name = "b"});
  EXPECT_EQ(ambiguous.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(ambiguous),
              AllOf(HasSubstr("ScaledJob b has more than one external, external-push or kafka "
                              "trigger; choose one with --trigger N"),
                    HasSubstr("0: type external, name one; 1: type external-push, name two; "
                              "2: type cron")));

  absl::StatusOr<ManifestTrigger> second =
      ParseManifestTrigger(kYaml, {.name = "b", .trigger_index = 1});
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->trigger_name, "two");
  EXPECT_EQ(second->metadata.at("topic"), "t2");

  absl::StatusOr<ManifestTrigger> cron =
      ParseManifestTrigger(kYaml, {.name = "b", .trigger_index = 2});
  EXPECT_THAT(Message(cron), HasSubstr("spec.triggers[2] is of type cron"));
  absl::StatusOr<ManifestTrigger> out_of_range =
      ParseManifestTrigger(kYaml, {.name = "b", .trigger_index = 3});
  EXPECT_THAT(Message(out_of_range), HasSubstr("--trigger 3: ScaledJob b has 3 trigger(s)"));
  absl::StatusOr<ManifestTrigger> missing = ParseManifestTrigger(kYaml, {.name = "c"});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(missing),
              HasSubstr("no ScaledJob or ScaledObject named c (found: ScaledJob a, ScaledJob b)"));
}

TEST(ScaledJobFileTest, BadFilesAreErrorsThatSayWhatIsWrong) {
  struct Case {
    const char* yaml;
    absl::StatusCode code;
    const char* message;
  };
  const Case cases[] = {
      {"kind: [unclosed", absl::StatusCode::kInvalidArgument, "not YAML: "},
      {"just some text", absl::StatusCode::kNotFound,
       "no ScaledJob or ScaledObject (found: (no kind) (no name))"},
      {"", absl::StatusCode::kNotFound, "no ScaledJob or ScaledObject (found: no YAML objects)"},
      {"kind: Deployment\nmetadata: {name: web}\n", absl::StatusCode::kNotFound,
       "(found: Deployment web)"},
      {"kind: ScaledJob\nmetadata: {name: x}\nspec: {}\n", absl::StatusCode::kInvalidArgument,
       "ScaledJob x has no spec.triggers"},
      {"kind: ScaledJob\nmetadata: {name: x}\nspec: {triggers: []}\n",
       absl::StatusCode::kInvalidArgument, "ScaledJob x has no spec.triggers"},
      {"kind: ScaledJob\nmetadata: {name: x}\nspec: {triggers: [{type: cpu}]}\n",
       absl::StatusCode::kInvalidArgument,
       "ScaledJob x has no external, external-push or kafka trigger (0: type cpu)"},
      {"kind: ScaledJob\nmetadata: {name: x}\nspec: {triggers: [{type: external}]}\n",
       absl::StatusCode::kInvalidArgument, "ScaledJob x spec.triggers[0].metadata: is required"},
      {"kind: ScaledJob\nmetadata: {name: x}\nspec: {triggers: [{type: external, metadata: "
       "{topic: [a, b]}}]}\n",
       absl::StatusCode::kInvalidArgument,
       "ScaledJob x spec.triggers[0].metadata.topic: must be a string"},
      // What `kubectl apply` refuses (KEDA's CRD: metadata is map<string, string>), check
      // refuses too, instead of evaluating a manifest that cannot be deployed.
      {"kind: ScaledJob\nmetadata: {name: x}\nspec: {triggers: [{type: external, metadata: "
       "{topic: t, lagThreshold: 5}}]}\n",
       absl::StatusCode::kInvalidArgument,
       "ScaledJob x spec.triggers[0].metadata.lagThreshold: must be a string; quote numbers"},
      {"kind: ScaledJob\nspec: 7\n", absl::StatusCode::kInvalidArgument,
       "ScaledJob (no name) has no spec.triggers"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<ManifestTrigger> t = ParseManifestTrigger(c.yaml, {});
    EXPECT_EQ(t.status().code(), c.code) << c.yaml << ": " << t.status();
    EXPECT_THAT(Message(t), HasSubstr(c.message)) << c.yaml;
  }
}

TEST(ScaledJobFileTest, LoadNamesTheFile) {
  absl::StatusOr<ManifestTrigger> missing = LoadManifestTrigger("/nonexistent/sj.yaml", {});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(missing), HasSubstr("/nonexistent/sj.yaml: cannot read the file"));

  const std::string path = ::testing::TempDir() + "/not_a_scaledjob.yaml";
  std::ofstream(path) << "kind: ConfigMap\nmetadata: {name: c}\n";
  absl::StatusOr<ManifestTrigger> wrong = LoadManifestTrigger(path, {});
  EXPECT_THAT(Message(wrong),
              AllOf(::testing::StartsWith(path + ": "), HasSubstr("no ScaledJob or ScaledObject")));
  std::remove(path.c_str());
}

}  // namespace
}  // namespace klag::scaler
