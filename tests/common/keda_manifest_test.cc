#include "common/keda_manifest.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

namespace klag::manifest {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

YAML::Node Load(const std::string& text) {
  absl::StatusOr<std::vector<YAML::Node>> docs = ParseDocuments(text);
  EXPECT_TRUE(docs.ok()) << docs.status();
  EXPECT_EQ(docs.ok() ? docs->size() : 0u, 1u) << text;
  return docs.ok() && !docs->empty() ? (*docs)[0] : YAML::Node();
}

TEST(KedaManifestTest, ParseDocumentsKeepsEveryDocumentAndRefusesWhatIsNotYaml) {
  absl::StatusOr<std::vector<YAML::Node>> docs =
      ParseDocuments("kind: Secret\n---\n---\nkind: ScaledJob\n");
  ASSERT_TRUE(docs.ok()) << docs.status();
  ASSERT_EQ(docs->size(), 3u);
  EXPECT_EQ(ScalarAt((*docs)[0], "kind"), "Secret");
  EXPECT_TRUE((*docs)[1].IsNull());
  EXPECT_EQ(ScalarAt((*docs)[2], "kind"), "ScaledJob");

  // The message places the error and never repeats the text (a manifest may hold secrets).
  absl::StatusOr<std::vector<YAML::Node>> bad = ParseDocuments("password: [hunter2\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("not YAML: "));
  EXPECT_THAT(std::string(bad.status().message()), Not(HasSubstr("hunter2")));
}

TEST(KedaManifestTest, AtNeverThrowsOnScalarsMissingKeysOrNulls) {
  const YAML::Node doc = Load("kind: ScaledJob\nspec: 7\nmetadata: {name: x, labels: ~}\n");
  EXPECT_FALSE(Present(At(At(doc, "spec"), "triggers")));    // spec is a scalar
  EXPECT_FALSE(Present(At(doc, "status")));                  // missing
  EXPECT_FALSE(Present(At(At(doc, "metadata"), "labels")));  // explicit null
  EXPECT_EQ(ScalarAt(At(doc, "metadata"), "name"), "x");
  EXPECT_EQ(ScalarAt(doc, "metadata"), std::nullopt);  // a map, not a scalar
  EXPECT_EQ(ScalarAt(YAML::Node(), "kind"), std::nullopt);
}

TEST(KedaManifestTest, IsYamlStringFollowsKubernetesYaml11Resolution) {
  struct Case {
    const char* value;  // as written after `v: `
    bool string;
  };
  const Case cases[] = {
      // Strings.
      {"\"5\"", true},
      {"'true'", true},
      {"ListedStockPrice", true},
      {"kafka:9092", true},
      {"klag-scaler:6000", true},
      {"\"\"", true},
      {"tRue", true},  // yaml.v2 knows exact spellings only
      {"yES", true},
      {"inf", true},
      {"e3", true},
      {"1e", true},
      {"0x", true},
      {"0x1G", true},
      {"0b2", true},
      {"_1", true},          // numbers start with a digit, a sign or a dot
      {"2001-12-14", true},  // a timestamp: a string in the JSON the API server checks
      {"1.2.3", true},
      {"+", true},
      // Numbers.
      {"5", false},
      {"-3", false},
      {"+7", false},
      {"2.5", false},
      {"1.", false},
      {".5", false},
      {"+.5", false},
      {"1e3", false},
      {"1.5E-3", false},
      {"08", false},
      {"0x1F", false},
      {"-0x1f", false},
      {"0o17", false},
      {"0b101", false},
      {"1_000", false},
      {".inf", false},
      {"-.Inf", false},
      {".NaN", false},
      // Booleans and null.
      {"true", false},
      {"False", false},
      {"yes", false},
      {"Y", false},
      {"NO", false},
      {"off", false},
      {"~", false},
      {"null", false},
      // Not scalars.
      {"[a, b]", false},
      {"{a: b}", false},
  };
  for (const Case& c : cases) {
    const YAML::Node doc = Load(std::string("v: ") + c.value + "\n");
    EXPECT_EQ(IsYamlString(At(doc, "v")), c.string) << c.value;
  }
  EXPECT_FALSE(IsYamlString(At(Load("v:\n"), "v")));  // empty: null
}

TEST(KedaManifestTest, ParseTriggerReadsTypeNameMetadataAndAuthenticationRef) {
  const YAML::Node trigger = Load(R"(
type: external
name: lag
metadata:
  scalerAddress: klag-scaler.keda:6000
  topic: ListedStockPrice
  lagThreshold: "5"
authenticationRef: {name: kafka-auth}
)");
  absl::StatusOr<Trigger> t = ParseTrigger(trigger, "spec.triggers[0]");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->type, "external");
  EXPECT_EQ(t->name, "lag");
  EXPECT_EQ(t->metadata.size(), 3u);
  EXPECT_EQ(t->metadata.at("scalerAddress"), "klag-scaler.keda:6000");
  EXPECT_EQ(t->metadata.at("lagThreshold"), "5");
  EXPECT_EQ(t->authentication_ref, "kafka-auth");

  absl::StatusOr<Trigger> bare = ParseTrigger(Load("{type: kafka, metadata: {}}"), "t");
  ASSERT_TRUE(bare.ok()) << bare.status();
  EXPECT_EQ(bare->name, "");
  EXPECT_TRUE(bare->metadata.empty());
  EXPECT_EQ(bare->authentication_ref, std::nullopt);
}

TEST(KedaManifestTest, ParseTriggerRefusesWhatTheApiServerWouldRefuseNamingTheField) {
  struct Case {
    const char* yaml;
    const char* message;
  };
  const Case cases[] = {
      {"[external]", "spec.triggers[1]: must be a map"},
      {"{metadata: {a: b}}", "spec.triggers[1].type: is required"},
      {"{type: [a], metadata: {a: b}}", "spec.triggers[1].type: is required"},
      {"{type: external, name: [a], metadata: {a: b}}", "spec.triggers[1].name: must be a string"},
      {"{type: external}", "spec.triggers[1].metadata: is required (a map of strings)"},
      {"{type: external, metadata: [a]}", "spec.triggers[1].metadata: is required"},
      {"{type: external, metadata: {lagThreshold: 5}}",
       "spec.triggers[1].metadata.lagThreshold: must be a string; quote numbers and booleans"},
      {"{type: external, metadata: {enableTLS: yes}}", "spec.triggers[1].metadata.enableTLS: "},
      {"{type: external, metadata: {topic: [a, b]}}", "spec.triggers[1].metadata.topic: "},
      {"{type: external, metadata: {topic: }}", "spec.triggers[1].metadata.topic: "},
      {"{type: external, metadata: {[k]: v}}", "spec.triggers[1].metadata: keys must be strings"},
      {"{type: external, metadata: {a: b}, authenticationRef: {kind: x}}",
       "spec.triggers[1].authenticationRef.name: is required"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<Trigger> t = ParseTrigger(Load(c.yaml), "spec.triggers[1]");
    ASSERT_FALSE(t.ok()) << c.yaml;
    EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument) << c.yaml;
    EXPECT_THAT(std::string(t.status().message()), HasSubstr(c.message)) << c.yaml;
  }
}

TEST(KedaManifestTest, ReadFileReadsTheWholeFileOrNamesIt) {
  const std::string path = ::testing::TempDir() + "/keda_manifest_test.yaml";
  std::ofstream(path) << "kind: ScaledJob\n---\nkind: Secret\n";
  absl::StatusOr<std::string> text = ReadFile(path);
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(*text, "kind: ScaledJob\n---\nkind: Secret\n");
  std::remove(path.c_str());

  absl::StatusOr<std::string> missing = ReadFile("/nonexistent/sj.yaml");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(missing.status().message(), "/nonexistent/sj.yaml: cannot read the file");
}

}  // namespace
}  // namespace klag::manifest
