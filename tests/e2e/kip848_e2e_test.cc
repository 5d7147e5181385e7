// klag-scaler's lag of a group of the KIP-848 consumer protocol (label kafka4): Kafka's own Java
// console consumer with group.protocol=consumer makes the group and commits part of a topic
// (scripts/kafka.sh run-class), then the scaler's evaluator, wired as klag-scaler's main() wires
// it (ClusterRegistry of RdkafkaOffsetReaders), reports the lag. Needs a Kafka >= 4.0 broker:
// KLAG_TEST_BOOTSTRAP and KLAG_KAFKA_STATE.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "kafka/cluster_registry.h"
#include "kafka/rdkafka_offset_reader.h"
#include "scaler/service/evaluator.h"
#include "tests/testing/kafka_admin.h"
#include "tests/testing/kafka_tools.h"
#include "tests/testing/test_env.h"

namespace klag::scaler {
namespace {

// klag-scaler's evaluation path without the gRPC layer (scaler_e2e_test covers that): per-
// partition lag is not on the wire, and this test checks it partition by partition.
class RealEvaluator {
 public:
  RealEvaluator()
      : registry_(
            [](const kafka::ConnectionConfig& config)
                -> absl::StatusOr<std::shared_ptr<kafka::OffsetReader>> {
              auto reader = kafka::RdkafkaOffsetReader::Create(config, {});
              if (!reader.ok()) return reader.status();
              return std::shared_ptr<kafka::OffsetReader>(*std::move(reader));
            },
            absl::Minutes(10)),
        evaluator_(
            [this](const kafka::ConnectionConfig& c) { return registry_.For(c); }, nullptr,
            EvaluatorOptions{.kafka_timeout = absl::Seconds(10), .window = absl::ZeroDuration()}) {}

  absl::StatusOr<LagReport> Evaluate(Metadata metadata) {
    absl::StatusOr<std::shared_ptr<const Evaluation>> e =
        evaluator_.Evaluate({.name = "kip848", .namespace_ = "e2e", .metadata = metadata});
    if (!e.ok()) return e.status();
    return (*e)->report;
  }

 private:
  kafka::ClusterRegistry registry_;
  Evaluator evaluator_;
};

TEST(Kip848E2eTest, ScalerReportsTheExactLagOfAGroupOfTheConsumerProtocol) {
  KLAG_REQUIRE_KAFKA4(bootstrap, state);
  const testing::KafkaTools tools(KLAG_SOURCE_DIR "/scripts/kafka.sh", state);
  const std::string topic = testing::UniqueName("kip848-lag");
  const std::string group = testing::UniqueName("kip848-lag-g");
  const std::vector<int> produced = {20, 30, 40};
  ASSERT_TRUE(testing::CreateTopic(bootstrap, topic, 3).ok());
  for (int p = 0; p < 3; ++p) ASSERT_TRUE(testing::Produce(bootstrap, topic, p, produced[p]).ok());

  // The Java consumer takes 35 of the 90 records and commits what it received when it closes.
  absl::StatusOr<testing::ConsumedOffsets> consumed =
      tools.ConsumeWithConsumerProtocol(bootstrap, topic, group, 35);
  ASSERT_TRUE(consumed.ok()) << consumed.status();
  EXPECT_EQ(testing::GroupType(bootstrap, group).value_or("error"), "consumer")
      << "the Java consumer did not make a KIP-848 group";
  std::map<int32_t, int64_t> position;  // next offset to read, per partition it read from
  for (const auto& [p, offsets] : *consumed) {
    for (size_t i = 0; i < offsets.size(); ++i) {
      ASSERT_EQ(offsets[i], static_cast<int64_t>(i)) << "partition " << p << " read out of order";
    }
    position[p] = static_cast<int64_t>(offsets.size());
  }
  absl::StatusOr<std::map<int32_t, int64_t>> committed =
      testing::CommittedOffsets(bootstrap, group, topic);
  ASSERT_TRUE(committed.ok()) << committed.status();
  for (int32_t p = 0; p < 3; ++p) {
    // A partition it read nothing from has a commit of 0 or none; both leave its whole lag.
    const int64_t expected = position.contains(p) ? position.at(p) : 0;
    EXPECT_EQ(committed->contains(p) ? committed->at(p) : 0, expected) << "partition " << p;
  }

  // More records after the group went empty: lag = end - what the Java consumer read.
  for (int p = 0; p < 3; ++p) ASSERT_TRUE(testing::Produce(bootstrap, topic, p, 5).ok());
  std::map<int32_t, int64_t> expected_lag;
  int64_t expected_total = 0;
  for (int32_t p = 0; p < 3; ++p) {
    const int64_t read = position.contains(p) ? position.at(p) : 0;
    expected_lag[p] = produced[p] + 5 - read;
    expected_total += expected_lag[p];
  }
  ASSERT_EQ(expected_total, 90 + 15 - 35);

  RealEvaluator scaler;
  absl::StatusOr<LagReport> report = scaler.Evaluate({{"bootstrapServers", bootstrap},
                                                      {"consumerGroup", group},
                                                      {"topic", topic},
                                                      {"lagThreshold", "10"},
                                                      {"offsetResetPolicy", "earliest"},
                                                      {"allowIdleConsumers", "true"}});
  ASSERT_TRUE(report.ok()) << report.status();
  std::map<int32_t, int64_t> lag;
  for (const PartitionLag& p : report->partitions) lag[p.partition] = p.lag;
  EXPECT_EQ(lag, expected_lag);
  EXPECT_EQ(report->total_lag, expected_total);
  EXPECT_EQ(report->metric_value, expected_total);
  EXPECT_TRUE(report->active);

  // Without `topic` the scaler finds the topics from the group's commits (OffsetFetch for the
  // whole group) and counts the partitions that have one.
  absl::StatusOr<LagReport> all_topics = scaler.Evaluate({{"bootstrapServers", bootstrap},
                                                          {"consumerGroup", group},
                                                          {"lagThreshold", "10"},
                                                          {"allowIdleConsumers", "true"}});
  ASSERT_TRUE(all_topics.ok()) << all_topics.status();
  int64_t expected_with_commits = 0;
  for (const auto& [p, offset] : *committed) expected_with_commits += expected_lag.at(p);
  EXPECT_EQ(all_topics->total_lag, expected_with_commits);
  EXPECT_EQ(all_topics->partitions.size(), committed->size());
}

TEST(Kip848E2eTest, ScalerReadsTheCommitsOfAGroupWithALiveConsumerProtocolMember) {
  KLAG_REQUIRE_KAFKA4(bootstrap, state);
  const testing::KafkaTools tools(KLAG_SOURCE_DIR "/scripts/kafka.sh", state);
  const std::string topic = testing::UniqueName("kip848-live");
  const std::string group = testing::UniqueName("kip848-live-g");
  ASSERT_TRUE(testing::CreateTopic(bootstrap, topic, 2).ok());
  for (int p = 0; p < 2; ++p) ASSERT_TRUE(testing::Produce(bootstrap, topic, p, 40).ok());

  // The Java consumer reads all 80 records, then stays in the group (Stable) for 20 s without
  // records, auto-committing (every 5 s by default) while it is a member.
  absl::StatusOr<testing::ConsumedOffsets> consumed;
  std::thread member([&] {
    consumed = tools.ConsumeWithConsumerProtocol(bootstrap, topic, group, 1000, absl::Seconds(120),
                                                 absl::Seconds(20));
  });
  const std::map<int32_t, int64_t> ends = {{0, 40}, {1, 40}};
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  std::map<int32_t, int64_t> committed;
  std::string group_state;
  while (absl::Now() < deadline && (committed != ends || group_state != "Stable")) {
    absl::SleepFor(absl::Milliseconds(500));
    committed = testing::CommittedOffsets(bootstrap, group, topic).value_or(committed);
    group_state = testing::GroupState(bootstrap, group).value_or("");
  }
  ASSERT_EQ(committed, ends) << "the Java consumer did not commit the end while a member";
  ASSERT_EQ(group_state, "Stable");

  RealEvaluator scaler;
  absl::StatusOr<LagReport> report = scaler.Evaluate({{"bootstrapServers", bootstrap},
                                                      {"consumerGroup", group},
                                                      {"topic", topic},
                                                      {"lagThreshold", "10"}});
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->partitions.size(), 2u);
  for (const PartitionLag& p : report->partitions) {
    EXPECT_EQ(p.committed, 40) << "partition " << p.partition;
    EXPECT_EQ(p.lag, 0) << "partition " << p.partition;
  }
  EXPECT_EQ(report->total_lag, 0);
  EXPECT_FALSE(report->active);
  // The member was still there while the scaler read the group.
  EXPECT_EQ(testing::GroupState(bootstrap, group).value_or(""), "Stable");
  EXPECT_EQ(testing::GroupType(bootstrap, group).value_or(""), "consumer");

  member.join();
  ASSERT_TRUE(consumed.ok()) << consumed.status();
  EXPECT_EQ(consumed->at(0).size() + consumed->at(1).size(), 80u);
}

}  // namespace
}  // namespace klag::scaler
