// `klag-scaler check --scaledjob FILE -o json` end to end: the real binary (KLAG_SCALER_BINARY)
// against the real broker, with a ScaledJob manifest whose ...FromEnv keys name the Job
// container's literal env, and a live consumer in the group (testing::LiveConsumer).
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "nlohmann/json.hpp"
#include "tests/testing/kafka_admin.h"
#include "tests/testing/live_consumer.h"
#include "tests/testing/test_env.h"

namespace klag::scaler {
namespace {

using ::testing::HasSubstr;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

struct ScalerRun {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs klag-scaler with `args` and environment `env` (nothing inherited), capturing both streams.
ScalerRun RunScaler(const std::vector<std::string>& args, const std::vector<std::string>& env) {
  const std::string base = absl::StrCat(::testing::TempDir(), "/check_e2e_", getpid());
  const std::string out_path = base + ".out";
  const std::string err_path = base + ".err";
  std::vector<std::string> argv_strings = {KLAG_SCALER_BINARY};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : argv_strings) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_strings = env;
  std::vector<char*> envp;
  for (std::string& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, out_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  ScalerRun run;
  if (rc != 0) {
    ADD_FAILURE() << "posix_spawn " << argv[0] << ": " << rc;
    return run;
  }
  int status = 0;
  waitpid(pid, &status, 0);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  run.out = ReadAll(out_path);
  run.err = ReadAll(err_path);
  std::remove(out_path.c_str());
  std::remove(err_path.c_str());
  return run;
}

std::string WriteManifest(const std::string& bootstrap, const std::string& group,
                          const std::string& topic) {
  const std::string path = absl::StrCat(::testing::TempDir(), "/check_e2e_sj_", getpid(), ".yaml");
  std::ofstream(path) << absl::StrCat(R"(apiVersion: keda.sh/v1alpha1
kind: ScaledJob
metadata: {name: check-e2e, namespace: data-load}
spec:
  jobTargetRef:
    template:
      spec:
        containers:
          - name: job
            env:
              - {name: BOOTSTRAP, value: ")",
                                      bootstrap, R"("}
              - {name: GROUP, value: ")",
                                      group, R"("}
  triggers:
    - type: cpu
      metadata: {value: "50"}
    - type: external
      metadata:
        scalerAddress: klag-scaler:6000
        bootstrapServersFromEnv: BOOTSTRAP
        consumerGroupFromEnv: GROUP
        topic: )",
                                      topic, R"(
        lagThreshold: "1"
)");
  return path;
}

TEST(CheckE2eTest, ScaledJobFileEvaluatesItsTriggerAndShowsTheLiveMember) {
  KLAG_REQUIRE_BROKER(bootstrap);
  const std::string topic = testing::UniqueName("check-topic");
  const std::string group = testing::UniqueName("check-group");
  ASSERT_TRUE(testing::CreateTopic(bootstrap, topic, 2).ok());
  // Partition 0's records were produced 10 minutes ago, a second apart (CreateTime).
  const absl::Time produced = absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now()) - 600);
  std::vector<absl::Time> times;
  for (int i = 0; i < 5; ++i) times.push_back(produced + absl::Seconds(i));
  ASSERT_TRUE(testing::ProduceWithTimestamps(bootstrap, topic, 0, times).ok());
  ASSERT_TRUE(testing::Produce(bootstrap, topic, 1, 3).ok());
  ASSERT_TRUE(testing::CommitOffsets(bootstrap, group, {{topic, 0, 1}, {topic, 1, 3}}).ok());
  const std::string manifest = WriteManifest(bootstrap, group, topic);

  // No member yet: the group only has commits.
  ScalerRun empty = RunScaler({"check", "-o", "json", "--scaledjob", manifest}, {});
  ASSERT_EQ(empty.exit_code, 0) << empty.err;
  nlohmann::json j = nlohmann::json::parse(empty.out);
  EXPECT_EQ(j["consumer_group"], group);
  EXPECT_EQ(j["total_lag"], 4);             // 5 - 1 on partition 0, 0 on partition 1
  EXPECT_EQ(j["keda"]["metric_value"], 2);  // capped at the partition count
  // The oldest unconsumed record is partition 0's at the committed offset 1, read from the log:
  // its own timestamp, 599 s before now (and no record to read on the caught-up partition 1).
  const nlohmann::json& oldest = j["partitions"][0]["oldest_unconsumed"];
  EXPECT_EQ(oldest["offset"], 1) << j.dump();
  EXPECT_EQ(oldest["timestamp"],
            absl::FormatTime(absl::RFC3339_full, times[1], absl::UTCTimeZone()));
  EXPECT_EQ(oldest["timestamp_type"], "CreateTime");
  EXPECT_GE(oldest["age_seconds"].get<double>(), 599.0);
  EXPECT_LT(oldest["age_seconds"].get<double>(), 599.0 + 120.0);
  EXPECT_EQ(j["oldest_unconsumed_age_seconds"], oldest["age_seconds"]);
  EXPECT_TRUE(j["partitions"][1]["oldest_unconsumed"].is_null());
  EXPECT_THAT(j["source"].get<std::string>(),
              HasSubstr("ScaledJob check-e2e, trigger 1 (external) in "));
  EXPECT_EQ(j["group"]["state"], "Empty");
  EXPECT_EQ(j["group"]["members"], nlohmann::json::array());

  // A live consumer joins: Stable, with the member and both partitions.
  testing::LiveConsumer consumer(bootstrap, group, {topic}, "check-e2e-consumer");
  ASSERT_TRUE(consumer.status().ok()) << consumer.status();
  const absl::Time give_up = absl::Now() + absl::Seconds(60);
  do {
    ScalerRun run =
        RunScaler({"check", "--output=json", "--scaledjob", manifest, "--trigger", "1"}, {});
    ASSERT_EQ(run.exit_code, 0) << run.err;
    j = nlohmann::json::parse(run.out);
    if (j["group"]["state"] == "Stable" && j["group"]["members"].size() == 1 &&
        j["group"]["members"][0]["partitions"].size() == 2) {
      break;
    }
    absl::SleepFor(absl::Milliseconds(500));
  } while (absl::Now() < give_up);
  EXPECT_EQ(j["group"]["state"], "Stable") << j.dump();
  ASSERT_EQ(j["group"]["members"].size(), 1u) << j.dump();
  const nlohmann::json& member = j["group"]["members"][0];
  EXPECT_EQ(member["client_id"], "check-e2e-consumer");
  EXPECT_EQ(member["partitions"], nlohmann::json::array({{{"topic", topic}, {"partition", 0}},
                                                         {{"topic", topic}, {"partition", 1}}}));
  EXPECT_EQ(member["other_partitions"], 0);

  // Text output: the same group section.
  ScalerRun text = RunScaler({"check", "--scaledjob", manifest}, {});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_THAT(text.out, HasSubstr(absl::StrCat("consumer group ", group, ": state Stable")));
  EXPECT_THAT(text.out, HasSubstr(absl::StrCat("check-e2e-consumer")));
  EXPECT_THAT(text.out, HasSubstr(absl::StrCat(topic, ":0,1")));
  std::remove(manifest.c_str());
}

TEST(CheckE2eTest, BadManifestOrMissingVariableIsAnErrorNamingIt) {
  const std::string path = absl::StrCat(::testing::TempDir(), "/check_e2e_bad_", getpid(), ".yaml");
  std::ofstream(path) << "kind: ScaledJob\nmetadata: {name: x}\nspec: {}\n";
  ScalerRun bad = RunScaler({"check", "--scaledjob", path}, {});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_THAT(bad.err, HasSubstr(path + ": ScaledJob x has no spec.triggers"));

  std::ofstream(path) << "kind: ScaledJob\nmetadata: {name: x}\nspec:\n  triggers:\n"
                         "    - {type: external, metadata: {passwordFromEnv: PW, topic: t}}\n";
  ScalerRun missing = RunScaler({"check", "--scaledjob", path}, {});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_THAT(missing.err,
              HasSubstr("passwordFromEnv names the environment variable \"PW\", which is not set"));

  ScalerRun no_file = RunScaler({"check", "--trigger", "0", "topic=t"}, {});
  EXPECT_EQ(no_file.exit_code, 2);
  EXPECT_THAT(no_file.err, HasSubstr("--trigger and --name choose within --scaledjob FILE"));
  std::remove(path.c_str());
}

}  // namespace
}  // namespace klag::scaler
