#include "tools/local/pod_env.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace klag::local {
namespace {

using ::testing::HasSubstr;

Container WithEnv(std::vector<EnvVar> env) {
  Container c;
  c.name = "main";
  c.env = std::move(env);
  return c;
}

TEST(PodEnvTest, ResolvesValuesSecretsConfigMapsThenOverrides) {
  absl::StatusOr<LocalValues> values = ParseLocalValues(R"(
secrets: {creds: {sasl: plaintext, password: hunter2}}
configMaps: {kafka: {servers: "k:9092"}}
env: {OVERRIDDEN: "local"}
)");
  ASSERT_TRUE(values.ok()) << values.status();
  Container c = WithEnv({
      {.name = "LITERAL", .value = "x"},
      {.name = "SASL", .secret_key_ref = KeyRef{"creds", "sasl", false}},
      {.name = "SERVERS", .config_map_key_ref = KeyRef{"kafka", "servers", false}},
      {.name = "USER", .secret_key_ref = KeyRef{"creds", "username", true}},
      {.name = "OVERRIDDEN", .value = "manifest"},
  });
  absl::StatusOr<StringMap> env = ResolveContainerEnv(c, *values);
  ASSERT_TRUE(env.ok()) << env.status();
  EXPECT_EQ(*env, (StringMap{{"LITERAL", "x"},
                             {"SASL", "plaintext"},
                             {"SERVERS", "k:9092"},
                             {"OVERRIDDEN", "local"}}));  // optional USER missing: unset
}

TEST(PodEnvTest, MissingRequiredSecretKeyFailsLikeAPodThatCannotStart) {
  Container c = WithEnv({{.name = "PASSWORD", .secret_key_ref = KeyRef{"creds", "password"}}});
  absl::StatusOr<StringMap> env = ResolveContainerEnv(c, LocalValues{});
  EXPECT_EQ(env.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(env.status().message(), HasSubstr("PASSWORD"));
  EXPECT_THAT(env.status().message(), HasSubstr("creds"));
}

TEST(PodEnvTest, FromEnvKeysKeepTheirNameAndGetTheVariablesValue) {
  LocalValues values;
  values.metadata["bootstrapServers"] = "127.0.0.1:9092";
  StringMap md = {{"bootstrapServers", "kafka:9092"},
                  {"passwordFromEnv", "KLAG_PASSWORD"},
                  {"usernameFromEnv", "KLAG_USERNAME"},
                  {"topic", "t"}};
  StringMap env = {{"KLAG_PASSWORD", "hunter2"}};
  EXPECT_EQ(ResolveTriggerMetadata(md, env, values),
            (StringMap{{"bootstrapServers", "127.0.0.1:9092"},
                       {"passwordFromEnv", "hunter2"},
                       {"topic", "t"}}));  // unresolvable usernameFromEnv dropped, as KEDA does
}

TEST(PodEnvTest, ValuesFileRefusesUnknownPartsAndNonStrings) {
  EXPECT_EQ(ParseLocalValues("secret: {}\n").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseLocalValues("env: {A: [1, 2]}\n").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseLocalValues("env: [\n").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(ParseLocalValues("").ok());
}

}  // namespace
}  // namespace klag::local
