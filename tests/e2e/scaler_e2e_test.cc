// klag-scaler end to end: the real gRPC server in-process, real librdkafka readers, the real
// broker from scripts/kafka.sh. Each test makes its own topics and groups.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "kafka/cluster_registry.h"
#include "kafka/rdkafka_offset_reader.h"
#include "scaler/service/external_scaler_service.h"
#include "scaler/service/server.h"
#include "tests/testing/kafka_admin.h"
#include "tests/testing/test_env.h"

namespace klag::scaler {
namespace {

using externalscaler::ExternalScaler;

// The scaler as klag-scaler's main() wires it, on 127.0.0.1:0.
class InProcessScaler {
 public:
  explicit InProcessScaler(absl::Duration kafka_timeout = absl::Seconds(5))
      : registry_(
            [](const kafka::ConnectionConfig& config)
                -> absl::StatusOr<std::shared_ptr<kafka::OffsetReader>> {
              auto reader = kafka::RdkafkaOffsetReader::Create(
                  config, {.metadata_max_age = absl::Seconds(30)});
              if (!reader.ok()) return reader.status();
              return std::shared_ptr<kafka::OffsetReader>(*std::move(reader));
            },
            absl::Minutes(10)),
        evaluator_(
            [this](const kafka::ConnectionConfig& c) { return registry_.For(c); }, nullptr,
            EvaluatorOptions{.kafka_timeout = kafka_timeout, .window = absl::Milliseconds(500)}),
        service_(&evaluator_, ServiceOptions{}) {
    auto server = ScalerServer::Start(ServerOptions{.listen = "127.0.0.1:0"}, &service_);
    EXPECT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    stub_ = ExternalScaler::NewStub(grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                                        grpc::InsecureChannelCredentials()));
  }
  ~InProcessScaler() { server_->Shutdown(absl::Seconds(1)); }

  struct Poll {
    grpc::Status status;
    std::string metric_name;
    int64_t target = 0;
    double value = 0;
    bool active = false;
  };

  // One poll the way KEDA makes it: GetMetricSpec, GetMetrics, IsActive.
  Poll PollOnce(const std::map<std::string, std::string>& metadata) {
    externalscaler::ScaledObjectRef ref;
    ref.set_name("stock-job");
    ref.set_namespace_("e2e");
    ref.mutable_scalermetadata()->insert(metadata.begin(), metadata.end());
    Poll poll;
    {
      grpc::ClientContext ctx;
      externalscaler::GetMetricSpecResponse spec;
      poll.status = stub_->GetMetricSpec(&ctx, ref, &spec);
      if (!poll.status.ok()) return poll;
      EXPECT_EQ(spec.metricspecs_size(), 1);
      poll.metric_name = spec.metricspecs(0).metricname();
      poll.target = static_cast<int64_t>(spec.metricspecs(0).targetsizefloat());
    }
    {
      grpc::ClientContext ctx;
      externalscaler::GetMetricsRequest request;
      *request.mutable_scaledobjectref() = ref;
      request.set_metricname(poll.metric_name);
      externalscaler::GetMetricsResponse metrics;
      poll.status = stub_->GetMetrics(&ctx, request, &metrics);
      if (!poll.status.ok()) return poll;
      EXPECT_EQ(metrics.metricvalues_size(), 1);
      poll.value = metrics.metricvalues(0).metricvaluefloat();
    }
    {
      grpc::ClientContext ctx;
      externalscaler::IsActiveResponse active;
      poll.status = stub_->IsActive(&ctx, ref, &active);
      poll.active = active.result();
    }
    return poll;
  }

  const EvaluatorStats Stats() const { return evaluator_.Stats(); }

 private:
  kafka::ClusterRegistry registry_;
  Evaluator evaluator_;
  ExternalScalerService service_;
  std::unique_ptr<ScalerServer> server_;
  std::unique_ptr<ExternalScaler::Stub> stub_;
};

// A topic of `partitions` partitions with `produced[p]` records in partition p and the group's
// commits `committed[p]` (absent: no commit).
struct Scenario {
  std::string topic;
  std::string group;
};

Scenario MakeScenario(const std::string& bootstrap, const std::vector<int>& produced,
                      const std::map<int32_t, int64_t>& committed) {
  Scenario s{testing::UniqueName("prices"), testing::UniqueName("group")};
  EXPECT_TRUE(testing::CreateTopic(bootstrap, s.topic, static_cast<int>(produced.size())).ok());
  for (size_t p = 0; p < produced.size(); ++p) {
    if (produced[p] > 0) {
      EXPECT_TRUE(testing::Produce(bootstrap, s.topic, static_cast<int32_t>(p), produced[p]).ok());
    }
  }
  std::vector<testing::CommitEntry> commits;
  for (auto [p, offset] : committed) commits.push_back({s.topic, p, offset});
  if (!commits.empty()) {
    absl::Status committed_status = testing::CommitOffsets(bootstrap, s.group, commits);
    EXPECT_TRUE(committed_status.ok()) << committed_status;
  }
  return s;
}

std::map<std::string, std::string> Metadata(const std::string& bootstrap, const Scenario& s,
                                            std::map<std::string, std::string> extra = {}) {
  std::map<std::string, std::string> md = {{"scalerAddress", "klag-scaler:6000"},
                                           {"bootstrapServers", bootstrap},
                                           {"consumerGroup", s.group},
                                           {"topic", s.topic},
                                           {"lagThreshold", "10"}};
  for (auto& [k, v] : extra) md[k] = v;
  return md;
}

std::string KedaName(std::string topic) {
  for (char& c : topic) {
    if (c == '.' || c == '/' || c == ':' || c == '%' || c == '(' || c == ')') c = '-';
  }
  return "kafka-" + topic;
}

// Partitions 0..3 hold 30, 20, 10, 0 records; the group committed 25, 20 and 4 on partitions
// 0..2 and nothing on partition 3. Lags: 5, 0, 6, and partition 3 has no commit.
class ScalerE2ETest : public ::testing::Test {
 protected:
  void SetUp() override {
    bootstrap_ = testing::BrokerBootstrap();
    if (bootstrap_.empty()) return;
    s_ = MakeScenario(bootstrap_, {30, 20, 10, 0}, {{0, 25}, {1, 20}, {2, 4}});
  }
  std::string bootstrap_;
  Scenario s_;
  InProcessScaler scaler_;
};

TEST_F(ScalerE2ETest, LatestCountsOneForAPartitionWithoutCommit) {
  KLAG_REQUIRE_BROKER(bootstrap);
  auto poll = scaler_.PollOnce(Metadata(bootstrap, s_));
  ASSERT_TRUE(poll.status.ok()) << poll.status.error_message();
  EXPECT_EQ(poll.metric_name, KedaName(s_.topic));
  EXPECT_EQ(poll.target, 10);
  EXPECT_EQ(poll.value, 5 + 0 + 6 + 1);
  EXPECT_TRUE(poll.active);
}

TEST_F(ScalerE2ETest, EarliestCountsFromTheLogStartAndScaleToZeroOnInvalidOffset) {
  KLAG_REQUIRE_BROKER(bootstrap);
  // Partition 3 is empty, so earliest adds end - log start = 0 for it.
  auto earliest = scaler_.PollOnce(Metadata(bootstrap, s_, {{"offsetResetPolicy", "earliest"}}));
  ASSERT_TRUE(earliest.status.ok()) << earliest.status.error_message();
  EXPECT_EQ(earliest.value, 11);
  auto zero = scaler_.PollOnce(Metadata(bootstrap, s_, {{"scaleToZeroOnInvalidOffset", "true"}}));
  ASSERT_TRUE(zero.status.ok());
  EXPECT_EQ(zero.value, 11);
}

TEST_F(ScalerE2ETest, EarliestWithoutCommitsAfterRetentionCountsOnlyWhatIsLeft) {
  KLAG_REQUIRE_BROKER(bootstrap);
  Scenario s = MakeScenario(bootstrap, {40, 40}, {});
  ASSERT_TRUE(testing::DeleteRecordsBefore(bootstrap, s.topic, 0, 30).ok());
  auto poll = scaler_.PollOnce(
      Metadata(bootstrap, s, {{"offsetResetPolicy", "earliest"}, {"lagThreshold", "100"}}));
  ASSERT_TRUE(poll.status.ok()) << poll.status.error_message();
  EXPECT_EQ(poll.value, 10 + 40);  // KEDA would say 80: it counts the whole high watermark
  // A commit below the new log start counts from the log start too.
  ASSERT_TRUE(testing::CommitOffsets(bootstrap, s.group, {{s.topic, 0, 5}, {s.topic, 1, 40}}).ok());
  auto committed = scaler_.PollOnce(Metadata(bootstrap, s, {{"lagThreshold", "100"}}));
  ASSERT_TRUE(committed.status.ok());
  EXPECT_EQ(committed.value, 10);  // KEDA: 35
}

TEST_F(ScalerE2ETest, CapsAtPartitionsTimesThresholdUnlessIdleConsumersAllowed) {
  KLAG_REQUIRE_BROKER(bootstrap);
  // Lag 12 with lagThreshold 2 over 4 partitions: capped at 4 x 2 = 8.
  auto capped = scaler_.PollOnce(Metadata(bootstrap, s_, {{"lagThreshold", "2"}}));
  ASSERT_TRUE(capped.status.ok());
  EXPECT_EQ(capped.value, 8);
  auto idle = scaler_.PollOnce(
      Metadata(bootstrap, s_, {{"lagThreshold", "2"}, {"allowIdleConsumers", "true"}}));
  ASSERT_TRUE(idle.status.ok());
  EXPECT_EQ(idle.value, 12);
}

TEST_F(ScalerE2ETest, LimitToPartitionsWithLagCapsAtLaggingPartitions) {
  KLAG_REQUIRE_BROKER(bootstrap);
  // Partitions with lag: 0 (5), 2 (6), 3 (no commit, counts 1) -> 3 x 2 = 6.
  auto poll = scaler_.PollOnce(
      Metadata(bootstrap, s_, {{"lagThreshold", "2"}, {"limitToPartitionsWithLag", "true"}}));
  ASSERT_TRUE(poll.status.ok()) << poll.status.error_message();
  EXPECT_EQ(poll.value, 6);
}

TEST_F(ScalerE2ETest, PartitionLimitationCountsOnlyTheListedPartitions) {
  KLAG_REQUIRE_BROKER(bootstrap);
  auto poll = scaler_.PollOnce(Metadata(bootstrap, s_, {{"partitionLimitation", "0,2-3,17"}}));
  ASSERT_TRUE(poll.status.ok()) << poll.status.error_message();
  EXPECT_EQ(poll.value, 5 + 6 + 1);
  auto one = scaler_.PollOnce(Metadata(bootstrap, s_, {{"partitionLimitation", "1"}}));
  ASSERT_TRUE(one.status.ok());
  EXPECT_EQ(one.value, 0);
  EXPECT_FALSE(one.active);
}

TEST_F(ScalerE2ETest, EnsureEvenDistributionRoundsUpToAFactorOfThePartitionCount) {
  KLAG_REQUIRE_BROKER(bootstrap);
  // 12 lag, threshold 5, 4 partitions: factors 1, 2, 4 -> 2 x 5 = 10 < 12, 4 x 5 = 20.
  auto poll = scaler_.PollOnce(Metadata(
      bootstrap, s_, {{"lagThreshold", "5"}, {"ensureEvenDistributionOfPartitions", "true"}}));
  ASSERT_TRUE(poll.status.ok()) << poll.status.error_message();
  EXPECT_EQ(poll.value, 20);
}

TEST_F(ScalerE2ETest, TopicListSumsEveryTopic) {
  KLAG_REQUIRE_BROKER(bootstrap);
  Scenario other = MakeScenario(bootstrap, {9, 9}, {});
  ASSERT_TRUE(
      testing::CommitOffsets(bootstrap, s_.group, {{other.topic, 0, 2}, {other.topic, 1, 9}}).ok());
  auto poll = scaler_.PollOnce(
      Metadata(bootstrap, s_, {{"topic", absl::StrCat(s_.topic, ",", other.topic)}}));
  ASSERT_TRUE(poll.status.ok()) << poll.status.error_message();
  EXPECT_EQ(poll.value, 12 + 7);
  EXPECT_EQ(poll.metric_name, KedaName(absl::StrCat(s_.topic, ",", other.topic)));
}

TEST_F(ScalerE2ETest, WithoutTopicTheGroupsCommittedTopicsCount) {
  KLAG_REQUIRE_BROKER(bootstrap);
  auto md = Metadata(bootstrap, s_);
  md.erase("topic");
  auto poll = scaler_.PollOnce(md);
  ASSERT_TRUE(poll.status.ok()) << poll.status.error_message();
  EXPECT_EQ(poll.metric_name, absl::StrCat("kafka-", s_.group, "-topics"));
  EXPECT_EQ(poll.value, 5 + 0 + 6 + 1);
}

TEST_F(ScalerE2ETest, ExcludePersistentLagOverTwoPolls) {
  KLAG_REQUIRE_BROKER(bootstrap);
  auto md = Metadata(bootstrap, s_, {{"excludePersistentLag", "true"}});
  auto first = scaler_.PollOnce(md);
  ASSERT_TRUE(first.status.ok()) << first.status.error_message();
  EXPECT_EQ(first.value, 12);
  // The consumer moves on partition 2 only; partition 0's lag of 5 is stuck (persistent).
  ASSERT_TRUE(testing::CommitOffsets(bootstrap, s_.group, {{s_.topic, 2, 8}}).ok());
  absl::SleepFor(absl::Milliseconds(600));  // past the evaluation window: the next poll
  auto second = scaler_.PollOnce(md);
  ASSERT_TRUE(second.status.ok());
  EXPECT_EQ(second.value, 2 + 1);  // partition 2's lag, partition 3 (no commit, not persistent)
  EXPECT_TRUE(second.active);      // persistent lag still counts for activity
}

TEST_F(ScalerE2ETest, ActivationThresholdIsStrictlyGreater) {
  KLAG_REQUIRE_BROKER(bootstrap);
  auto at = scaler_.PollOnce(Metadata(bootstrap, s_, {{"activationLagThreshold", "12"}}));
  ASSERT_TRUE(at.status.ok());
  EXPECT_FALSE(at.active);
  auto below = scaler_.PollOnce(Metadata(bootstrap, s_, {{"activationLagThreshold", "11"}}));
  ASSERT_TRUE(below.status.ok());
  EXPECT_TRUE(below.active);
}

TEST_F(ScalerE2ETest, UnknownTopicIsNotFound) {
  KLAG_REQUIRE_BROKER(bootstrap);
  const std::string missing = testing::UniqueName("no-such-topic");
  auto poll = scaler_.PollOnce(Metadata(bootstrap, s_, {{"topic", missing}}));
  EXPECT_EQ(poll.status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(poll.status.error_message().find(missing), std::string::npos)
      << poll.status.error_message();
}

TEST_F(ScalerE2ETest, GroupWithoutCommitsAndWithoutTopicIsNotFound) {
  KLAG_REQUIRE_BROKER(bootstrap);
  const std::string group = testing::UniqueName("idle-group");
  auto md = Metadata(bootstrap, s_, {{"consumerGroup", group}});
  md.erase("topic");
  auto poll = scaler_.PollOnce(md);
  EXPECT_EQ(poll.status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(poll.status.error_message().find(group), std::string::npos)
      << poll.status.error_message();
}

TEST_F(ScalerE2ETest, OnePollIsOneKafkaEvaluation) {
  KLAG_REQUIRE_BROKER(bootstrap);
  const int64_t before = scaler_.Stats().evaluations;
  ASSERT_TRUE(scaler_.PollOnce(Metadata(bootstrap, s_)).status.ok());
  EXPECT_EQ(scaler_.Stats().evaluations - before, 1);
}

// --- A broker of its own, stopped and restarted under a running scaler ---------------------

std::string RunScript(const std::string& args) {
  const std::string command = absl::StrCat(KLAG_SOURCE_DIR, "/scripts/kafka.sh ", args, " 2>&1");
  std::string output;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return "";
  char buffer[4096];
  while (fgets(buffer, sizeof buffer, pipe) != nullptr) output += buffer;
  const int rc = pclose(pipe);
  EXPECT_EQ(rc, 0) << command << "\n" << output;
  return output;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return std::string(absl::StripAsciiWhitespace(text));
}

TEST(ScalerBrokerRestartTest, UnavailableWhileDownThenCorrectAgainWithoutRestart) {
  KLAG_REQUIRE_BROKER(shared_bootstrap);  // runs with the real-broker suite
  const std::string state = absl::StrCat(::testing::TempDir(), testing::UniqueName("kafka"));
  const std::string opts = absl::StrCat("--state ", state);
  RunScript(absl::StrCat(opts, " start --fresh"));
  const std::string bootstrap = ReadFile(state + "/bootstrap");
  ASSERT_FALSE(bootstrap.empty());
  const std::string port = ReadFile(state + "/port");
  const std::string controller_port = ReadFile(state + "/controller_port");

  Scenario s = MakeScenario(bootstrap, {10, 10}, {{0, 4}, {1, 10}});
  const absl::Duration kTimeout = absl::Seconds(3);
  InProcessScaler scaler(kTimeout);
  auto md = Metadata(bootstrap, s);
  auto before = scaler.PollOnce(md);
  ASSERT_TRUE(before.status.ok()) << before.status.error_message();
  EXPECT_EQ(before.value, 6);

  RunScript(absl::StrCat(opts, " stop"));
  absl::SleepFor(absl::Milliseconds(600));  // past the evaluation window
  const absl::Time start = absl::Now();
  auto down = scaler.PollOnce(md);
  const absl::Duration took = absl::Now() - start;
  EXPECT_EQ(down.status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << down.status.error_code() << ": " << down.status.error_message();
  // GetMetrics waits at most the deadline; IsActive repeats it at most once more.
  EXPECT_LT(took, 2 * kTimeout + absl::Seconds(2));

  RunScript(absl::StrCat(opts, " start --port ", port, " --controller-port ", controller_port));
  // The same scaler, the same shared client: correct answers once the broker is back.
  InProcessScaler::Poll after;
  const absl::Time give_up = absl::Now() + absl::Seconds(60);
  do {
    absl::SleepFor(absl::Milliseconds(600));
    after = scaler.PollOnce(md);
  } while (!after.status.ok() && absl::Now() < give_up);
  ASSERT_TRUE(after.status.ok()) << after.status.error_message();
  EXPECT_EQ(after.value, 6);
  EXPECT_TRUE(after.active);
  RunScript(absl::StrCat(opts, " clean"));
}

}  // namespace
}  // namespace klag::scaler
