// RdkafkaOffsetReader against librdkafka's mock cluster (rdkafka_mock.h): fault injection that a
// real broker cannot do on demand (downed brokers, slow responses, request errors, moved
// leaders). Label unit: needs no external broker. (The 2.0.2 mock cannot CreateTopics or
// DescribeConsumerGroups: topics come from rd_kafka_mock_topic_create.)
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <atomic>
#include <cstdio>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "kafka/rdkafka_offset_reader.h"
#include "tests/testing/kafka_admin.h"
#include "tests/testing/test_env.h"

namespace klag::kafka {
namespace {

using ::klag::testing::UniqueName;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

// Kafka protocol API keys (rdkafka_protocol.h is not installed).
constexpr int16_t kListOffsets = 2;
constexpr int16_t kOffsetFetch = 9;

// How late past its deadline a call may return (thread wake-ups on a shared 2-core machine).
constexpr absl::Duration kSlack = absl::Milliseconds(300);

class MockCluster {
 public:
  explicit MockCluster(int brokers) {
    char errstr[256];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "2", errstr, sizeof(errstr));
    rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    mcluster_ = rd_kafka_mock_cluster_new(rk_, brokers);
  }
  ~MockCluster() {
    rd_kafka_mock_cluster_destroy(mcluster_);
    rd_kafka_destroy(rk_);
  }
  MockCluster(const MockCluster&) = delete;
  MockCluster& operator=(const MockCluster&) = delete;

  rd_kafka_mock_cluster_t* get() const { return mcluster_; }
  std::string bootstrap() const { return rd_kafka_mock_cluster_bootstraps(mcluster_); }

  // A topic with `partitions` partitions and `records[p]` records in partition p.
  std::string Topic(int partitions, const std::vector<int>& records = {}) {
    const std::string topic = UniqueName("mock-topic");
    EXPECT_EQ(rd_kafka_mock_topic_create(mcluster_, topic.c_str(), partitions, 1),
              RD_KAFKA_RESP_ERR_NO_ERROR);
    for (size_t p = 0; p < records.size(); ++p) {
      if (records[p] == 0) continue;
      absl::StatusOr<std::vector<int64_t>> produced =
          testing::Produce(bootstrap(), topic, static_cast<int32_t>(p), records[p]);
      EXPECT_TRUE(produced.ok()) << produced.status();
    }
    return topic;
  }

 private:
  rd_kafka_t* rk_ = nullptr;
  rd_kafka_mock_cluster_t* mcluster_ = nullptr;
};

std::unique_ptr<RdkafkaOffsetReader> NewReader(const std::string& bootstrap,
                                               RdkafkaOffsetReaderOptions options = {}) {
  ConnectionConfig config;
  config.bootstrap_servers = bootstrap;
  absl::StatusOr<std::unique_ptr<RdkafkaOffsetReader>> reader =
      RdkafkaOffsetReader::Create(config, options);
  EXPECT_TRUE(reader.ok()) << reader.status();
  return reader.ok() ? *std::move(reader) : nullptr;
}

PartitionOffsets P(const std::string& topic, int32_t partition, std::optional<int64_t> committed,
                   int64_t log_start, int64_t end) {
  return PartitionOffsets{topic, partition, committed, log_start, end};
}

// Reads and reports how long the call took.
struct Timed {
  absl::StatusOr<GroupOffsets> result;
  absl::Duration took;
};
Timed ReadTimed(OffsetReader& reader, const OffsetQuery& query, absl::Duration timeout) {
  const absl::Time start = absl::Now();
  absl::StatusOr<GroupOffsets> result = reader.ReadOffsets(query, start + timeout);
  return Timed{std::move(result), absl::Now() - start};
}

TEST(RdkafkaOffsetReaderMockTest, ReadsCommittedLogStartAndEnd) {
  MockCluster cluster(3);
  const std::string topic = cluster.Topic(3, {3, 0, 5});
  const std::string group = UniqueName("mock-group");
  ASSERT_TRUE(testing::CommitOffsets(cluster.bootstrap(), group, {{topic, 0, 2}}).ok());
  auto reader = NewReader(cluster.bootstrap());
  ASSERT_NE(reader, nullptr);
  absl::StatusOr<GroupOffsets> offsets =
      reader->ReadOffsets({.group = group, .topics = {topic}}, absl::Now() + absl::Seconds(5));
  ASSERT_TRUE(offsets.ok()) << offsets.status();
  EXPECT_THAT(offsets->partitions,
              ElementsAre(P(topic, 0, 2, 0, 3), P(topic, 1, std::nullopt, 0, 0),
                          P(topic, 2, std::nullopt, 0, 5)));
}

TEST(RdkafkaOffsetReaderMockTest, AllBrokersDownIsUnavailableWithinTheDeadline) {
  MockCluster cluster(3);
  const std::string topic = cluster.Topic(2, {1, 1});
  const OffsetQuery query{.group = UniqueName("mock-group"), .topics = {topic}};
  auto reader = NewReader(cluster.bootstrap());
  ASSERT_NE(reader, nullptr);
  ASSERT_TRUE(reader->ReadOffsets(query, absl::Now() + absl::Seconds(5)).ok());

  ASSERT_EQ(rd_kafka_mock_broker_set_down(cluster.get(), -1), RD_KAFKA_RESP_ERR_NO_ERROR);
  constexpr absl::Duration kDeadline = absl::Seconds(2);
  for (int i = 0; i < 2; ++i) {
    Timed read = ReadTimed(*reader, query, kDeadline);
    EXPECT_EQ(read.result.status().code(), absl::StatusCode::kUnavailable) << read.result.status();
    EXPECT_THAT(read.result.status().message(), HasSubstr(cluster.bootstrap()));
    EXPECT_THAT(read.result.status().message(), HasSubstr(query.group));
    EXPECT_LT(read.took, kDeadline + kSlack);
  }

  // Back up: the same reader answers again.
  ASSERT_EQ(rd_kafka_mock_broker_set_up(cluster.get(), -1), RD_KAFKA_RESP_ERR_NO_ERROR);
  absl::StatusOr<GroupOffsets> offsets;
  const absl::Time up = absl::Now();
  while (absl::Now() - up < absl::Seconds(20)) {
    offsets = reader->ReadOffsets(query, absl::Now() + absl::Seconds(2));
    if (offsets.ok()) break;
  }
  ASSERT_TRUE(offsets.ok()) << offsets.status();
  EXPECT_THAT(offsets->partitions,
              ElementsAre(P(topic, 0, std::nullopt, 0, 1), P(topic, 1, std::nullopt, 0, 1)));
}

TEST(RdkafkaOffsetReaderMockTest, NeverReachableClusterIsUnavailable) {
  MockCluster cluster(1);
  const std::string topic = cluster.Topic(1);
  ASSERT_EQ(rd_kafka_mock_broker_set_down(cluster.get(), -1), RD_KAFKA_RESP_ERR_NO_ERROR);
  auto reader = NewReader(cluster.bootstrap());
  ASSERT_NE(reader, nullptr);
  constexpr absl::Duration kDeadline = absl::Seconds(2);
  for (const OffsetQuery& query :
       {OffsetQuery{.group = "g", .topics = {topic}}, OffsetQuery{.group = "g", .topics = {}}}) {
    Timed read = ReadTimed(*reader, query, kDeadline);
    EXPECT_EQ(read.result.status().code(), absl::StatusCode::kUnavailable) << read.result.status();
    EXPECT_LT(read.took, kDeadline + kSlack);
  }
}

TEST(RdkafkaOffsetReaderMockTest, SlowBrokerIsDeadlineExceededWithinTheDeadline) {
  MockCluster cluster(1);
  const std::string topic = cluster.Topic(2, {4, 4});
  const OffsetQuery query{.group = UniqueName("mock-group"), .topics = {topic}};
  auto reader = NewReader(cluster.bootstrap());
  ASSERT_NE(reader, nullptr);
  ASSERT_TRUE(reader->ReadOffsets(query, absl::Now() + absl::Seconds(5)).ok());

  ASSERT_EQ(rd_kafka_mock_broker_set_rtt(cluster.get(), -1, 3000), RD_KAFKA_RESP_ERR_NO_ERROR);
  constexpr absl::Duration kDeadline = absl::Seconds(1);
  Timed read = ReadTimed(*reader, query, kDeadline);
  EXPECT_EQ(read.result.status().code(), absl::StatusCode::kDeadlineExceeded)
      << read.result.status();
  EXPECT_LT(read.took, kDeadline + kSlack);
  EXPECT_GE(read.took, kDeadline - absl::Milliseconds(50));

  ASSERT_EQ(rd_kafka_mock_broker_set_rtt(cluster.get(), -1, 0), RD_KAFKA_RESP_ERR_NO_ERROR);
  absl::StatusOr<GroupOffsets> offsets;
  const absl::Time fast = absl::Now();
  while (absl::Now() - fast < absl::Seconds(20)) {
    offsets = reader->ReadOffsets(query, absl::Now() + absl::Seconds(5));
    if (offsets.ok()) break;
  }
  ASSERT_TRUE(offsets.ok()) << offsets.status();
  EXPECT_EQ(offsets->partitions.at(1).end, 4);
}

TEST(RdkafkaOffsetReaderMockTest, DeadlineAlreadyPassedFailsAtOnce) {
  MockCluster cluster(1);
  const std::string topic = cluster.Topic(1);
  auto reader = NewReader(cluster.bootstrap());
  ASSERT_NE(reader, nullptr);
  Timed read = ReadTimed(*reader, {.group = "g", .topics = {topic}}, -absl::Seconds(1));
  EXPECT_EQ(read.result.status().code(), absl::StatusCode::kDeadlineExceeded)
      << read.result.status();
  EXPECT_LT(read.took, absl::Milliseconds(100));
}

TEST(RdkafkaOffsetReaderMockTest, TopicAuthorizationFailureOnListOffsetsIsPermissionDenied) {
  MockCluster cluster(1);
  const std::string topic = cluster.Topic(1, {2});
  auto reader = NewReader(cluster.bootstrap());
  ASSERT_NE(reader, nullptr);
  const OffsetQuery query{.group = "g", .topics = {topic}};
  ASSERT_TRUE(reader->ReadOffsets(query, absl::Now() + absl::Seconds(5)).ok());
  rd_kafka_mock_push_request_errors(cluster.get(), kListOffsets, 2,
                                    RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
                                    RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
  absl::StatusOr<GroupOffsets> offsets = reader->ReadOffsets(query, absl::Now() + absl::Seconds(5));
  EXPECT_EQ(offsets.status().code(), absl::StatusCode::kPermissionDenied) << offsets.status();
  EXPECT_THAT(offsets.status().message(), HasSubstr(topic));
  EXPECT_THAT(offsets.status().message(), HasSubstr("TOPIC_AUTHORIZATION_FAILED"));
}

TEST(RdkafkaOffsetReaderMockTest, TopicAuthorizationFailureOnMetadataIsPermissionDenied) {
  MockCluster cluster(1);
  const std::string topic = cluster.Topic(1, {2});
  rd_kafka_mock_topic_set_error(cluster.get(), topic.c_str(),
                                RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
  auto reader = NewReader(cluster.bootstrap());
  ASSERT_NE(reader, nullptr);
  absl::StatusOr<GroupOffsets> offsets =
      reader->ReadOffsets({.group = "g", .topics = {topic}}, absl::Now() + absl::Seconds(5));
  EXPECT_EQ(offsets.status().code(), absl::StatusCode::kPermissionDenied) << offsets.status();
  EXPECT_THAT(offsets.status().message(), HasSubstr(topic));
}

TEST(RdkafkaOffsetReaderMockTest, GroupAuthorizationFailureIsPermissionDenied) {
  MockCluster cluster(1);
  const std::string topic = cluster.Topic(1, {2});
  const std::string group = UniqueName("mock-group");
  auto reader = NewReader(cluster.bootstrap());
  ASSERT_NE(reader, nullptr);
  rd_kafka_mock_push_request_errors(cluster.get(), kOffsetFetch, 1,
                                    RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED);
  absl::StatusOr<GroupOffsets> offsets =
      reader->ReadOffsets({.group = group, .topics = {topic}}, absl::Now() + absl::Seconds(5));
  EXPECT_EQ(offsets.status().code(), absl::StatusCode::kPermissionDenied) << offsets.status();
  EXPECT_THAT(offsets.status().message(), HasSubstr(group));
}

TEST(RdkafkaOffsetReaderMockTest, NotLeaderIsRetriedAfterAMetadataRefresh) {
  MockCluster cluster(3);
  const std::string topic = cluster.Topic(2, {3, 1});
  auto reader = NewReader(cluster.bootstrap());
  ASSERT_NE(reader, nullptr);
  const OffsetQuery query{.group = "g", .topics = {topic}};
  ASSERT_TRUE(reader->ReadOffsets(query, absl::Now() + absl::Seconds(5)).ok());
  const RdkafkaOffsetReaderStats before = reader->Stats();
  rd_kafka_mock_push_request_errors(cluster.get(), kListOffsets, 2,
                                    RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                                    RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION);
  absl::StatusOr<GroupOffsets> offsets = reader->ReadOffsets(query, absl::Now() + absl::Seconds(5));
  ASSERT_TRUE(offsets.ok()) << offsets.status();
  EXPECT_THAT(offsets->partitions,
              ElementsAre(P(topic, 0, std::nullopt, 0, 3), P(topic, 1, std::nullopt, 0, 1)));
  const RdkafkaOffsetReaderStats after = reader->Stats();
  EXPECT_GT(after.list_offsets_calls - before.list_offsets_calls, 2);  // retried
  EXPECT_GT(after.metadata_requests, before.metadata_requests);        // after a refresh
}

TEST(RdkafkaOffsetReaderMockTest, MovedLeaderIsFollowedWithoutRecreatingTheReader) {
  MockCluster cluster(3);
  const std::string topic = cluster.Topic(1, {5});
  ASSERT_EQ(rd_kafka_mock_partition_set_leader(cluster.get(), topic.c_str(), 0, 1),
            RD_KAFKA_RESP_ERR_NO_ERROR);
  auto reader = NewReader(cluster.bootstrap());
  ASSERT_NE(reader, nullptr);
  const OffsetQuery query{.group = "g", .topics = {topic}};
  ASSERT_TRUE(reader->ReadOffsets(query, absl::Now() + absl::Seconds(5)).ok());
  ASSERT_EQ(rd_kafka_mock_partition_set_leader(cluster.get(), topic.c_str(), 0, 2),
            RD_KAFKA_RESP_ERR_NO_ERROR);
  absl::StatusOr<GroupOffsets> offsets = reader->ReadOffsets(query, absl::Now() + absl::Seconds(5));
  ASSERT_TRUE(offsets.ok()) << offsets.status();
  EXPECT_EQ(offsets->partitions.at(0).end, 5);
}

TEST(RdkafkaOffsetReaderMockTest, UnknownTopicIsNotFoundAndSeenAsSoonAsItExists) {
  // The mock creates topics it is asked about whatever the request says, so "unknown" is
  // injected as the topic's Metadata error (the real-broker test covers a truly absent topic).
  MockCluster cluster(1);
  const std::string topic = cluster.Topic(2, {0, 3});
  rd_kafka_mock_topic_set_error(cluster.get(), topic.c_str(),
                                RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
  auto reader = NewReader(cluster.bootstrap());
  ASSERT_NE(reader, nullptr);
  const OffsetQuery query{.group = "g", .topics = {topic}};
  absl::StatusOr<GroupOffsets> offsets = reader->ReadOffsets(query, absl::Now() + absl::Seconds(5));
  ASSERT_EQ(offsets.status().code(), absl::StatusCode::kNotFound) << offsets.status();
  EXPECT_THAT(offsets.status().message(), HasSubstr(topic));
  // "Does not exist" is not cached: the next evaluation asks again.
  rd_kafka_mock_topic_set_error(cluster.get(), topic.c_str(), RD_KAFKA_RESP_ERR_NO_ERROR);
  offsets = reader->ReadOffsets(query, absl::Now() + absl::Seconds(5));
  ASSERT_TRUE(offsets.ok()) << offsets.status();
  EXPECT_THAT(offsets->partitions,
              ElementsAre(P(topic, 0, std::nullopt, 0, 0), P(topic, 1, std::nullopt, 0, 3)));
}

TEST(RdkafkaOffsetReaderMockTest, SlowOffsetFetchAbandonedThenOutageAndRecoveryDoesNotCrash) {
  // The committed-offsets request outlives the evaluation that started it, then its coordinator
  // goes away and comes back: librdkafka 2.0.2 aborted the process in this situation when the
  // request had a short librdkafka-side timeout (issue #4605).
  MockCluster cluster(1);
  const std::string topic = cluster.Topic(1, {1});
  const std::string group = UniqueName("mock-group");
  auto reader = NewReader(cluster.bootstrap());
  ASSERT_NE(reader, nullptr);
  const OffsetQuery query{.group = group, .topics = {topic}};
  ASSERT_TRUE(reader->ReadOffsets(query, absl::Now() + absl::Seconds(5)).ok());
  ASSERT_EQ(rd_kafka_mock_broker_push_request_error_rtts(cluster.get(), 1, kOffsetFetch, 1,
                                                         RD_KAFKA_RESP_ERR_NO_ERROR, 2000),
            RD_KAFKA_RESP_ERR_NO_ERROR);
  Timed read = ReadTimed(*reader, query, absl::Milliseconds(500));
  EXPECT_EQ(read.result.status().code(), absl::StatusCode::kDeadlineExceeded)
      << read.result.status();
  ASSERT_EQ(rd_kafka_mock_broker_set_down(cluster.get(), -1), RD_KAFKA_RESP_ERR_NO_ERROR);
  read = ReadTimed(*reader, query, absl::Seconds(1));
  EXPECT_EQ(read.result.status().code(), absl::StatusCode::kUnavailable) << read.result.status();
  absl::SleepFor(absl::Seconds(1));
  ASSERT_EQ(rd_kafka_mock_broker_set_up(cluster.get(), -1), RD_KAFKA_RESP_ERR_NO_ERROR);
  absl::StatusOr<GroupOffsets> offsets;
  const absl::Time up = absl::Now();
  while (absl::Now() - up < absl::Seconds(20)) {
    offsets = reader->ReadOffsets(query, absl::Now() + absl::Seconds(2));
    if (offsets.ok()) break;
  }
  ASSERT_TRUE(offsets.ok()) << offsets.status();
  absl::SleepFor(absl::Seconds(3));  // let the abandoned request finish inside librdkafka
  EXPECT_TRUE(reader->ReadOffsets(query, absl::Now() + absl::Seconds(2)).ok());
}

TEST(RdkafkaOffsetReaderMockTest, ConcurrentReadersAreCoalescedIntoFewListOffsetsCalls) {
  MockCluster cluster(3);
  constexpr int kTopics = 10;
  constexpr int kReaders = 200;
  std::vector<std::string> topics;
  for (int i = 0; i < kTopics; ++i) topics.push_back(cluster.Topic(6, {i + 1}));
  for (absl::Duration window : {absl::Milliseconds(5), absl::ZeroDuration()}) {
    RdkafkaOffsetReaderOptions options;
    options.list_offsets_window = window;
    auto reader = NewReader(cluster.bootstrap(), options);
    ASSERT_NE(reader, nullptr);
    for (const std::string& topic : topics) {  // warm the metadata cache
      ASSERT_TRUE(
          reader->ReadOffsets({.group = "warm", .topics = {topic}}, absl::Now() + absl::Seconds(5))
              .ok());
    }
    const RdkafkaOffsetReaderStats before = reader->Stats();
    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    const absl::Time start = absl::Now();
    for (int i = 0; i < kReaders; ++i) {
      threads.emplace_back([&, i] {
        absl::StatusOr<GroupOffsets> offsets =
            reader->ReadOffsets({.group = absl::StrCat("g", i), .topics = {topics[i % kTopics]}},
                                absl::Now() + absl::Seconds(10));
        if (!offsets.ok() || offsets->partitions.at(0).end != i % kTopics + 1) ++failures;
      });
    }
    for (std::thread& t : threads) t.join();
    const absl::Duration took = absl::Now() - start;
    const RdkafkaOffsetReaderStats after = reader->Stats();
    const int64_t calls = after.list_offsets_calls - before.list_offsets_calls;
    std::printf(
        "window %s: %d concurrent ReadOffsets over %d topics x 6 partitions, 3 brokers: "
        "%lld offsets_for_times calls (%lld partitions), %lld OffsetFetch, %.0f ms\n",
        absl::FormatDuration(window).c_str(), kReaders, kTopics, static_cast<long long>(calls),
        static_cast<long long>(after.list_offsets_partitions - before.list_offsets_partitions),
        static_cast<long long>(after.offset_fetch_requests - before.offset_fetch_requests),
        absl::ToDoubleMilliseconds(took));
    EXPECT_EQ(failures.load(), 0);
    EXPECT_EQ(after.list_offsets_lookups - before.list_offsets_lookups, 2 * kReaders);
    if (window > absl::ZeroDuration()) {
      // 2 * kReaders lookups without coalescing; measured 6-10 calls here.
      EXPECT_LE(calls, 2 * kReaders / 10) << "window " << window;
    } else {
      // Without a window, lookups only join while the previous call is in flight (measured
      // 26-64 calls): still far fewer than one per lookup.
      EXPECT_LE(calls, kReaders) << "window " << window;
    }
  }
}

TEST(RdkafkaOffsetReaderMockTest, InvalidQueriesAreInvalidArgument) {
  MockCluster cluster(1);
  auto reader = NewReader(cluster.bootstrap());
  ASSERT_NE(reader, nullptr);
  EXPECT_EQ(reader->ReadOffsets({.group = "", .topics = {"t"}}, absl::Now() + absl::Seconds(1))
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(reader->ReadOffsets({.group = "g", .topics = {""}}, absl::Now() + absl::Seconds(1))
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(reader->Stats().clients, 0);  // rejected before any client exists
}

TEST(RdkafkaOffsetReaderMockTest, BadPropertyFailsCreateWithoutEchoingItsValue) {
  ConnectionConfig config;
  config.bootstrap_servers = "127.0.0.1:1";
  RdkafkaOffsetReaderOptions options;
  options.extra_properties = {{"no.such.property", "s3cr3t-value"}};
  absl::StatusOr<std::unique_ptr<RdkafkaOffsetReader>> reader =
      RdkafkaOffsetReader::Create(config, options);
  ASSERT_EQ(reader.status().code(), absl::StatusCode::kInvalidArgument) << reader.status();
  EXPECT_THAT(reader.status().message(), HasSubstr("no.such.property"));
  EXPECT_THAT(reader.status().message(), Not(HasSubstr("s3cr3t-value")));
}

}  // namespace
}  // namespace klag::kafka
