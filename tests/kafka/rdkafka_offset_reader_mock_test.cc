// RdkafkaOffsetReader against librdkafka's mock cluster (tests/kafka/mock_cluster.h): fault
// injection that a real broker cannot do on demand. Label unit: needs no external broker.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <atomic>
#include <cstdio>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "kafka/rdkafka_offset_reader.h"
#include "tests/kafka/commit_many.h"
#include "tests/kafka/mock_cluster.h"
#include "tests/testing/kafka_admin.h"
#include "tests/testing/test_env.h"

namespace klag::kafka {
namespace {

using ::klag::testing::kListOffsets;
using ::klag::testing::kOffsetFetch;
using ::klag::testing::MockCluster;
using ::klag::testing::UniqueName;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

// How late past its deadline a call may return (thread wake-ups on a shared 2-core machine).
constexpr absl::Duration kSlack = absl::Milliseconds(300);

std::unique_ptr<RdkafkaOffsetReader> NewReader(const std::string& bootstrap,
                                               RdkafkaOffsetReaderOptions options = {}) {
  ConnectionConfig config;
  config.bootstrap_servers = bootstrap;
  absl::StatusOr<std::unique_ptr<RdkafkaOffsetReader>> reader =
      RdkafkaOffsetReader::Create(config, options);
  EXPECT_TRUE(reader.ok()) << reader.status();
  return reader.ok() ? *std::move(reader) : nullptr;
}

// The offsets without PartitionOffsets::unconsumed_since (an estimate from the reader's history,
// tested in lag_seconds_e2e_test), for exact comparisons.
std::vector<PartitionOffsets> WithoutEstimates(std::vector<PartitionOffsets> partitions) {
  for (PartitionOffsets& p : partitions) p.unconsumed_since.reset();
  return partitions;
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
  EXPECT_THAT(WithoutEstimates(offsets->partitions),
              ElementsAre(P(topic, 0, 2, 0, 3), P(topic, 1, std::nullopt, 0, 0),
                          P(topic, 2, std::nullopt, 0, 5)));
}

TEST(RdkafkaOffsetReaderMockTest, UnconsumedSinceComesFromTheEndOffsetHistory) {
  MockCluster cluster(3);
  const std::string topic = cluster.Topic(3, {3, 0, 5});
  const std::string group = UniqueName("mock-group");
  ASSERT_TRUE(testing::CommitOffsets(cluster.bootstrap(), group, {{topic, 0, 2}}).ok());
  const OffsetQuery query{.group = group, .topics = {topic}};

  auto reader = NewReader(cluster.bootstrap(), {.end_offsets_max_age = absl::ZeroDuration()});
  ASSERT_NE(reader, nullptr);
  const absl::Time before = absl::Now();
  absl::StatusOr<GroupOffsets> offsets = reader->ReadOffsets(query, before + absl::Seconds(5));
  const absl::Time after = absl::Now();
  ASSERT_TRUE(offsets.ok()) << offsets.status();
  ASSERT_EQ(offsets->partitions.size(), 3u);
  // Records older than the only sample: its time (the age is a lower bound).
  for (int p : {0, 2}) {
    const std::optional<absl::Time> since = offsets->partitions[p].unconsumed_since;
    ASSERT_TRUE(since.has_value()) << p;
    EXPECT_GE(*since, before) << p;
    EXPECT_LE(*since, after) << p;
  }
  EXPECT_EQ(offsets->partitions[1].unconsumed_since, std::nullopt);  // empty: nothing unconsumed
  EXPECT_GT(reader->Stats().lag_history_points, 0);

  // Committed at the end: nothing unconsumed.
  ASSERT_TRUE(testing::CommitOffsets(cluster.bootstrap(), group, {{topic, 0, 3}}).ok());
  offsets = reader->ReadOffsets(query, absl::Now() + absl::Seconds(5));
  ASSERT_TRUE(offsets.ok()) << offsets.status();
  EXPECT_EQ(offsets->partitions[0].unconsumed_since, std::nullopt);

  auto without = NewReader(cluster.bootstrap(), {.lag_history_points = 0});
  ASSERT_NE(without, nullptr);
  offsets = without->ReadOffsets(query, absl::Now() + absl::Seconds(5));
  ASSERT_TRUE(offsets.ok()) << offsets.status();
  for (const PartitionOffsets& p : offsets->partitions) {
    EXPECT_EQ(p.unconsumed_since, std::nullopt) << p.partition;
  }
  EXPECT_EQ(without->Stats().lag_history_points, 0);
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
  EXPECT_THAT(WithoutEstimates(offsets->partitions),
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
  // Every read sends ListOffsets (no snapshot answers): this test is about their errors.
  auto reader = NewReader(cluster.bootstrap(), {.end_offsets_max_age = absl::ZeroDuration()});
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
  // Every read sends ListOffsets (no snapshot answers): this test is about their errors.
  auto reader = NewReader(cluster.bootstrap(), {.end_offsets_max_age = absl::ZeroDuration()});
  ASSERT_NE(reader, nullptr);
  const OffsetQuery query{.group = "g", .topics = {topic}};
  ASSERT_TRUE(reader->ReadOffsets(query, absl::Now() + absl::Seconds(5)).ok());
  const RdkafkaOffsetReaderStats before = reader->Stats();
  rd_kafka_mock_push_request_errors(cluster.get(), kListOffsets, 2,
                                    RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                                    RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION);
  absl::StatusOr<GroupOffsets> offsets = reader->ReadOffsets(query, absl::Now() + absl::Seconds(5));
  ASSERT_TRUE(offsets.ok()) << offsets.status();
  EXPECT_THAT(WithoutEstimates(offsets->partitions),
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
  EXPECT_THAT(WithoutEstimates(offsets->partitions),
              ElementsAre(P(topic, 0, std::nullopt, 0, 0), P(topic, 1, std::nullopt, 0, 3)));
}

TEST(RdkafkaOffsetReaderMockTest, UnknownPartitionOnListOffsetsOfAListedTopicIsUnavailable) {
  // A restarting broker answers ListOffsets with UNKNOWN_TOPIC_OR_PART for partitions it has not
  // loaded yet, while Metadata lists the topic: transient, never "not found".
  MockCluster cluster(1);
  const std::string topic = cluster.Topic(2, {3, 1});
  // Every read sends ListOffsets (no snapshot answers): this test is about their errors.
  auto reader = NewReader(cluster.bootstrap(), {.end_offsets_max_age = absl::ZeroDuration()});
  ASSERT_NE(reader, nullptr);
  const OffsetQuery query{.group = "g", .topics = {topic}};
  ASSERT_TRUE(reader->ReadOffsets(query, absl::Now() + absl::Seconds(5)).ok());

  // A few: retried after a metadata refresh, the answer is exact.
  rd_kafka_mock_push_request_errors(cluster.get(), kListOffsets, 2,
                                    RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
                                    RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
  absl::StatusOr<GroupOffsets> offsets = reader->ReadOffsets(query, absl::Now() + absl::Seconds(5));
  ASSERT_TRUE(offsets.ok()) << offsets.status();
  EXPECT_THAT(WithoutEstimates(offsets->partitions),
              ElementsAre(P(topic, 0, std::nullopt, 0, 3), P(topic, 1, std::nullopt, 0, 1)));

  // More than the retries: kUnavailable, saying it is transient.
  std::vector<rd_kafka_resp_err_t> errors(20, RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
  rd_kafka_mock_push_request_errors_array(cluster.get(), kListOffsets, errors.size(),
                                          errors.data());
  offsets = reader->ReadOffsets(query, absl::Now() + absl::Seconds(5));
  EXPECT_EQ(offsets.status().code(), absl::StatusCode::kUnavailable) << offsets.status();
  EXPECT_THAT(offsets.status().message(), HasSubstr(topic));
  EXPECT_THAT(offsets.status().message(), HasSubstr("UNKNOWN_TOPIC_OR_PART"));
  EXPECT_THAT(offsets.status().message(), HasSubstr("transient"));
  rd_kafka_mock_clear_request_errors(cluster.get(), kListOffsets);
  offsets = reader->ReadOffsets(query, absl::Now() + absl::Seconds(5));
  ASSERT_TRUE(offsets.ok()) << offsets.status();
  EXPECT_EQ(offsets->partitions.at(0).end, 3);
}

TEST(RdkafkaOffsetReaderMockTest, UnknownPartitionOnOffsetFetchIsUnavailable) {
  MockCluster cluster(1);
  const std::string topic = cluster.Topic(1, {2});
  const std::string group = UniqueName("mock-group");
  auto reader = NewReader(cluster.bootstrap());
  ASSERT_NE(reader, nullptr);
  for (const OffsetQuery& query :
       {OffsetQuery{.group = group, .topics = {topic}}, OffsetQuery{.group = group}}) {
    rd_kafka_mock_push_request_errors(cluster.get(), kOffsetFetch, 1,
                                      RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
    absl::StatusOr<GroupOffsets> offsets =
        reader->ReadOffsets(query, absl::Now() + absl::Seconds(5));
    EXPECT_EQ(offsets.status().code(), absl::StatusCode::kUnavailable) << offsets.status();
    EXPECT_THAT(offsets.status().message(), HasSubstr(group));
    EXPECT_THAT(offsets.status().message(), HasSubstr("transient"));
  }
}

TEST(RdkafkaOffsetReaderMockTest, KnownTopicBrieflyMissingFromMetadataIsNotNotFound) {
  // A topic that this reader has seen exist is reported missing by one Metadata answer (a broker
  // that has not caught up): the second answer, a little later, lists it again.
  MockCluster cluster(1);
  const std::string topic = cluster.Topic(1, {4});
  RdkafkaOffsetReaderOptions options;
  options.metadata_max_age = absl::ZeroDuration();  // every read asks Metadata
  auto reader = NewReader(cluster.bootstrap(), options);
  ASSERT_NE(reader, nullptr);
  const OffsetQuery query{.group = "g", .topics = {topic}};
  ASSERT_TRUE(reader->ReadOffsets(query, absl::Now() + absl::Seconds(5)).ok());
  rd_kafka_mock_topic_set_error(cluster.get(), topic.c_str(),
                                RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
  std::thread heal([&] {
    absl::SleepFor(absl::Milliseconds(100));
    rd_kafka_mock_topic_set_error(cluster.get(), topic.c_str(), RD_KAFKA_RESP_ERR_NO_ERROR);
  });
  absl::StatusOr<GroupOffsets> offsets = reader->ReadOffsets(query, absl::Now() + absl::Seconds(5));
  heal.join();
  ASSERT_TRUE(offsets.ok()) << offsets.status();
  EXPECT_EQ(offsets->partitions.at(0).end, 4);

  // Gone for good: kNotFound once a second answer confirms it, and the next read asks only once.
  rd_kafka_mock_topic_set_error(cluster.get(), topic.c_str(),
                                RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
  Timed read = ReadTimed(*reader, query, absl::Seconds(5));
  EXPECT_EQ(read.result.status().code(), absl::StatusCode::kNotFound) << read.result.status();
  EXPECT_THAT(read.result.status().message(), HasSubstr(topic));
  EXPECT_GE(read.took, absl::Milliseconds(300));
  const RdkafkaOffsetReaderStats before = reader->Stats();
  read = ReadTimed(*reader, query, absl::Seconds(5));
  EXPECT_EQ(read.result.status().code(), absl::StatusCode::kNotFound) << read.result.status();
  EXPECT_EQ(reader->Stats().metadata_requests - before.metadata_requests, 1);

  // A deadline too short for the second answer: kUnavailable, not an unconfirmed kNotFound.
  rd_kafka_mock_topic_set_error(cluster.get(), topic.c_str(), RD_KAFKA_RESP_ERR_NO_ERROR);
  ASSERT_TRUE(reader->ReadOffsets(query, absl::Now() + absl::Seconds(5)).ok());
  rd_kafka_mock_topic_set_error(cluster.get(), topic.c_str(),
                                RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
  read = ReadTimed(*reader, query, absl::Milliseconds(400));
  EXPECT_EQ(read.result.status().code(), absl::StatusCode::kUnavailable) << read.result.status();
}

TEST(RdkafkaOffsetReaderMockTest, CoordinatorMovingIsRetriedThenUnavailable) {
  MockCluster cluster(1);
  const std::string topic = cluster.Topic(1, {5});
  const std::string group = UniqueName("mock-group");
  ASSERT_TRUE(testing::CommitOffsets(cluster.bootstrap(), group, {{topic, 0, 2}}).ok());
  auto reader = NewReader(cluster.bootstrap());
  ASSERT_NE(reader, nullptr);
  const OffsetQuery query{.group = group, .topics = {topic}};
  ASSERT_TRUE(reader->ReadOffsets(query, absl::Now() + absl::Seconds(5)).ok());
  for (rd_kafka_resp_err_t err :
       {RD_KAFKA_RESP_ERR_NOT_COORDINATOR, RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS,
        RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE}) {
    // Two in a row: the third request answers.
    rd_kafka_mock_push_request_errors(cluster.get(), kOffsetFetch, 2, err, err);
    const RdkafkaOffsetReaderStats before = reader->Stats();
    absl::StatusOr<GroupOffsets> offsets =
        reader->ReadOffsets(query, absl::Now() + absl::Seconds(5));
    ASSERT_TRUE(offsets.ok()) << rd_kafka_err2name(err) << ": " << offsets.status();
    EXPECT_THAT(WithoutEstimates(offsets->partitions), ElementsAre(P(topic, 0, 2, 0, 5)));
    EXPECT_EQ(reader->Stats().offset_fetch_requests - before.offset_fetch_requests, 3);
    // More than the retries: kUnavailable naming the error.
    rd_kafka_mock_push_request_errors(cluster.get(), kOffsetFetch, 3, err, err, err);
    offsets = reader->ReadOffsets(query, absl::Now() + absl::Seconds(5));
    EXPECT_EQ(offsets.status().code(), absl::StatusCode::kUnavailable) << offsets.status();
    EXPECT_THAT(offsets.status().message(), HasSubstr(rd_kafka_err2name(err)));
  }
}

// librdkafka #5040: the admin ListConsumerGroupOffsets path handed a NOT_COORDINATOR (or
// COORDINATOR_NOT_AVAILABLE) answer to the client's consumer group, which a client without
// group.id does not have: SIGSEGV in rd_kafka_cgrp_op(rkcg=0x0, ...) on librdkafka's main thread.
// A restarting broker answers exactly that, and klag-scaler died on every broker restart under
// load. Fixed by scripts/librdkafka/offsetfetch-admin-no-cgrp.patch; without it this test dies
// on the first such answer. Here 1,000 groups are read by 16 threads while OffsetFetch answers
// coordinator errors and the groups' coordinator moves twice (the old coordinator then answers
// NOT_COORDINATOR, some of them late, as a real one does).
TEST(RdkafkaOffsetReaderMockTest, CoordinatorErrorsAndMovesUnderLoadDoNotCrashOrReadAsNotFound) {
  constexpr int kGroups = 1000;
  constexpr int kTopics = 10;
  constexpr int kThreads = 16;
  MockCluster cluster(3);
  absl::Time setup = absl::Now();
  std::vector<std::string> topics;
  for (int t = 0; t < kTopics; ++t) topics.push_back(cluster.Topic(2, {t + 1, 2 * t + 3}));
  std::printf("set-up: topics %.0f ms\n", absl::ToDoubleMilliseconds(absl::Now() - setup));
  setup = absl::Now();
  std::vector<std::string> groups;
  std::vector<testing::GroupCommit> commits;
  for (int g = 0; g < kGroups; ++g) {
    groups.push_back(absl::StrCat(UniqueName("mock-load"), "-", g));
    // Partition 0 committed at g % (its end + 1); partition 1 never committed.
    const int64_t offset = g % (g % kTopics + 2);
    commits.push_back({groups.back(), {{topics[g % kTopics], 0, offset}}});
  }
  // (Coordinators are spread over the 3 brokers by the mock's hash of the group until moved.)
  ASSERT_TRUE(testing::CommitMany(cluster.bootstrap(), commits).ok());
  std::printf("set-up: commits %.0f ms\n", absl::ToDoubleMilliseconds(absl::Now() - setup));
  auto expected = [&](int g) {
    const std::string& topic = topics[g % kTopics];
    const int t = g % kTopics;
    return std::vector<PartitionOffsets>{P(topic, 0, g % (t + 2), 0, t + 1),
                                         P(topic, 1, std::nullopt, 0, 2 * t + 3)};
  };

  auto reader = NewReader(cluster.bootstrap());
  ASSERT_NE(reader, nullptr);
  struct Tally {
    int exact = 0;
    int wrong = 0;
    int unavailable = 0;
    std::map<std::string, int> other;  // "CODE: message" of anything else (kNotFound included)
  };
  // One round: every group read once, by kThreads threads.
  auto round = [&](const std::function<void(int)>& during) {
    Tally tally;
    absl::Mutex mu;
    std::atomic<int> next{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < kThreads; ++i) {
      threads.emplace_back([&] {
        for (int g = next++; g < kGroups; g = next++) {
          if (during) during(g);
          absl::StatusOr<GroupOffsets> offsets =
              reader->ReadOffsets({.group = groups[g], .topics = {topics[g % kTopics]}},
                                  absl::Now() + absl::Seconds(5));
          absl::MutexLock lock(&mu);
          if (offsets.ok()) {
            ++(WithoutEstimates(offsets->partitions) == expected(g) ? tally.exact : tally.wrong);
          } else if (offsets.status().code() == absl::StatusCode::kUnavailable) {
            ++tally.unavailable;
          } else {
            ++tally.other[offsets.status().ToString()];
          }
        }
      });
    }
    for (std::thread& t : threads) t.join();
    return tally;
  };
  auto print = [](const char* phase, const Tally& t, absl::Duration took) {
    std::printf("%s: %d exact, %d wrong, %d UNAVAILABLE, %zu other kinds, %.0f ms\n", phase,
                t.exact, t.wrong, t.unavailable, t.other.size(), absl::ToDoubleMilliseconds(took));
    for (const auto& [what, n] : t.other) std::printf("  %d x %s\n", n, what.c_str());
  };

  absl::Time start = absl::Now();
  Tally before = round(nullptr);
  print("before", before, absl::Now() - start);
  ASSERT_EQ(before.exact, kGroups);

  // The disturbance: 900 coordinator errors for whichever OffsetFetch comes next, and the
  // coordinator of every group moving to broker 2, then to broker 3, while the readers run, the
  // other brokers answering NOT_COORDINATOR (some late) to the requests that still reach them.
  // (rd_kafka_mock_coordinator_set waits for the mock's I/O loop to serve it, up to a second
  // on an idle mock: Metadata requests from another client keep the loop turning meanwhile.)
  std::vector<rd_kafka_resp_err_t> errors;
  for (int i = 0; i < 300; ++i) {
    errors.push_back(RD_KAFKA_RESP_ERR_NOT_COORDINATOR);
    errors.push_back(RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS);
    errors.push_back(RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE);
  }
  const RdkafkaOffsetReaderStats stats_before = reader->Stats();
  start = absl::Now();
  rd_kafka_mock_push_request_errors_array(cluster.get(), kOffsetFetch, errors.size(),
                                          errors.data());
  auto move_to = [&](int to) {
    std::atomic<bool> moved{false};
    std::thread busy([&] {
      char errstr[256];
      rd_kafka_conf_t* conf = rd_kafka_conf_new();
      rd_kafka_conf_set(conf, "bootstrap.servers", cluster.bootstrap().c_str(), errstr,
                        sizeof(errstr));
      rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
      while (rk != nullptr && !moved.load()) {
        const rd_kafka_metadata_t* metadata = nullptr;
        if (rd_kafka_metadata(rk, 0, nullptr, &metadata, 1000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
          rd_kafka_metadata_destroy(metadata);
        }
      }
      if (rk != nullptr) rd_kafka_destroy(rk);
    });
    for (const std::string& group : groups) {
      rd_kafka_mock_coordinator_set(cluster.get(), "group", group.c_str(), to);
    }
    moved.store(true);
    busy.join();
    // (A broker with errors of its own for an API answers only those, then no error.)
    for (int from = 1; from <= 3; ++from) {
      if (from == to) continue;
      EXPECT_EQ(rd_kafka_mock_broker_push_request_error_rtts(
                    cluster.get(), from, kOffsetFetch, 5, RD_KAFKA_RESP_ERR_NOT_COORDINATOR, 0,
                    RD_KAFKA_RESP_ERR_NOT_COORDINATOR, 200, RD_KAFKA_RESP_ERR_NOT_COORDINATOR, 0,
                    RD_KAFKA_RESP_ERR_NOT_COORDINATOR, 50, RD_KAFKA_RESP_ERR_NOT_COORDINATOR, 0),
                RD_KAFKA_RESP_ERR_NO_ERROR);
    }
  };
  Tally during = round([&](int g) {
    if (g == kGroups / 3) move_to(2);
    if (g == 2 * kGroups / 3) move_to(3);
  });
  print("during", during, absl::Now() - start);
  const RdkafkaOffsetReaderStats stats_during = reader->Stats();
  std::printf("during: %lld OffsetFetch requests for %d reads\n",
              static_cast<long long>(stats_during.offset_fetch_requests -
                                     stats_before.offset_fetch_requests),
              kGroups);
  EXPECT_EQ(during.wrong, 0);
  EXPECT_TRUE(during.other.empty()) << "only UNAVAILABLE may fail a read during the disturbance";
  EXPECT_GT(during.unavailable, 0) << "the disturbance was not seen";
  EXPECT_GT(stats_during.offset_fetch_requests - stats_before.offset_fetch_requests, kGroups)
      << "coordinator errors are retried";

  // Afterwards every answer is exact again, once the errors still pushed are used up.
  rd_kafka_mock_clear_request_errors(cluster.get(), kOffsetFetch);
  Tally after;
  for (int i = 0; i < 5 && after.exact != kGroups; ++i) {
    start = absl::Now();
    after = round(nullptr);
    print("after", after, absl::Now() - start);
    EXPECT_EQ(after.wrong, 0);
    EXPECT_TRUE(after.other.empty());
  }
  EXPECT_EQ(after.exact, kGroups);
  for (int broker = 1; broker <= 3; ++broker) {
    size_t left = 0;
    rd_kafka_mock_broker_error_stack_cnt(cluster.get(), broker, kOffsetFetch, &left);
    std::printf("broker %d: %zu NOT_COORDINATOR answers unused\n", broker, left);
  }
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
  struct Config {
    absl::Duration max_age;
    absl::Duration window;
  };
  // max_age 0: every reader needs a refresh sent after it arrived (how refreshes coalesce);
  // the default 1 s: readers are answered from the snapshot the warm-up filled.
  for (const Config& config : {Config{absl::ZeroDuration(), absl::Milliseconds(5)},
                               Config{absl::ZeroDuration(), absl::ZeroDuration()},
                               Config{absl::Seconds(1), absl::ZeroDuration()}}) {
    RdkafkaOffsetReaderOptions options;
    options.end_offsets_max_age = config.max_age;
    options.list_offsets_window = config.window;
    auto reader = NewReader(cluster.bootstrap(), options);
    ASSERT_NE(reader, nullptr);
    const absl::Time warm_start = absl::Now();
    for (const std::string& topic : topics) {  // warm the metadata cache (and the snapshot)
      ASSERT_TRUE(
          reader->ReadOffsets({.group = "warm", .topics = {topic}}, absl::Now() + absl::Seconds(5))
              .ok());
    }
    const RdkafkaOffsetReaderStats before = reader->Stats();
    std::atomic<int> failures{0};
    std::atomic<int> stale{0};
    std::vector<std::thread> threads;
    const absl::Time start = absl::Now();
    for (int i = 0; i < kReaders; ++i) {
      threads.emplace_back([&, i] {
        const absl::Time arrived = absl::Now();
        absl::StatusOr<GroupOffsets> offsets =
            reader->ReadOffsets({.group = absl::StrCat("g", i), .topics = {topics[i % kTopics]}},
                                absl::Now() + absl::Seconds(10));
        if (!offsets.ok() || offsets->partitions.at(0).end != i % kTopics + 1) ++failures;
        if (offsets.ok() && offsets->end_offsets_read_at < arrived - config.max_age) ++stale;
      });
    }
    for (std::thread& t : threads) t.join();
    const absl::Duration took = absl::Now() - start;
    const RdkafkaOffsetReaderStats after = reader->Stats();
    const int64_t calls = after.list_offsets_calls - before.list_offsets_calls;
    std::printf(
        "max_age %s, window %s: %d concurrent ReadOffsets over %d topics x 6 partitions, "
        "3 brokers: %lld offsets_for_times calls (%lld partitions, %lld refreshes, %lld snapshot "
        "answers), %lld OffsetFetch, %.0f ms\n",
        absl::FormatDuration(config.max_age).c_str(), absl::FormatDuration(config.window).c_str(),
        kReaders, kTopics, static_cast<long long>(calls),
        static_cast<long long>(after.list_offsets_partitions - before.list_offsets_partitions),
        static_cast<long long>(after.snapshot_refreshes - before.snapshot_refreshes),
        static_cast<long long>(after.snapshot_answers - before.snapshot_answers),
        static_cast<long long>(after.offset_fetch_requests - before.offset_fetch_requests),
        absl::ToDoubleMilliseconds(took));
    EXPECT_EQ(failures.load(), 0);
    EXPECT_EQ(stale.load(), 0);
    EXPECT_EQ(after.list_offsets_lookups - before.list_offsets_lookups, 2 * kReaders);
    EXPECT_EQ(calls, 2 * (after.snapshot_refreshes - before.snapshot_refreshes));
    if (config.max_age > absl::ZeroDuration()) {
      if (absl::Now() - warm_start < config.max_age) {
        EXPECT_EQ(calls, 0);  // all from the snapshot
        EXPECT_EQ(after.snapshot_answers - before.snapshot_answers, kReaders);
      } else {
        EXPECT_LE(calls, 2 * kTopics);  // at most one refresh per topic
      }
    } else if (config.window > absl::ZeroDuration()) {
      // 2 * kReaders lookups without coalescing.
      EXPECT_LE(calls, 2 * kReaders / 10) << "window " << config.window;
    } else {
      // Without a window, readers share the next refresh while one is in flight.
      EXPECT_LE(calls, kReaders) << "window " << config.window;
    }
  }
}

// Concurrent readers of one group share OffsetFetch requests, but never one sent before they
// arrived: committed offsets are always read for this call.
TEST(RdkafkaOffsetReaderMockTest, ConcurrentReadersOfOneGroupShareOnlyFreshOffsetFetches) {
  MockCluster cluster(1);
  const std::string topic = cluster.Topic(3, {1, 1, 1});
  auto reader = NewReader(cluster.bootstrap());
  ASSERT_NE(reader, nullptr);
  const OffsetQuery query{.group = UniqueName("mock-group"), .topics = {topic}};
  ASSERT_TRUE(reader->ReadOffsets(query, absl::Now() + absl::Seconds(5)).ok());
  // A slow coordinator keeps each OffsetFetch in flight while others arrive.
  rd_kafka_mock_broker_set_rtt(cluster.get(), 1, 50);
  constexpr int kReaders = 40;
  absl::Notification go;
  const RdkafkaOffsetReaderStats before = reader->Stats();
  std::atomic<int> failures{0};
  std::atomic<int> read_before_arrival{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kReaders; ++i) {
    threads.emplace_back([&, i] {
      go.WaitForNotification();
      // Half arrive together, half during the first OffsetFetch.
      if (i % 2 == 1) absl::SleepFor(absl::Milliseconds(20));
      const absl::Time arrived = absl::Now();
      absl::StatusOr<GroupOffsets> offsets =
          reader->ReadOffsets(query, arrived + absl::Seconds(10));
      if (!offsets.ok()) {
        ++failures;
        return;
      }
      if (offsets->committed_read_at < arrived) ++read_before_arrival;
    });
  }
  go.Notify();
  for (std::thread& t : threads) t.join();
  const RdkafkaOffsetReaderStats after = reader->Stats();
  const int64_t fetches = after.offset_fetch_requests - before.offset_fetch_requests;
  const int64_t shared = after.offset_fetch_shared - before.offset_fetch_shared;
  std::printf("%d readers of one group, 50 ms RTT: %lld OffsetFetch, %lld shared\n", kReaders,
              static_cast<long long>(fetches), static_cast<long long>(shared));
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(read_before_arrival.load(), 0);
  EXPECT_EQ(fetches + shared, kReaders);  // each reader either sent one or shared one
}

// committed_offsets_max_age: sequential readers of one group share an answered OffsetFetch
// while it is young enough, and committed_read_at says how old it is; without it (the default)
// every sequential call reads its own.
TEST(RdkafkaOffsetReaderMockTest, CommittedOffsetsMaxAgeSharesAnsweredOffsetFetches) {
  MockCluster cluster(1);
  const std::string topic = cluster.Topic(3, {1, 1, 1});
  const OffsetQuery query{.group = UniqueName("mock-group"), .topics = {topic}};
  constexpr absl::Duration kMaxAge = absl::Seconds(2);
  for (const absl::Duration max_age : {absl::ZeroDuration(), kMaxAge}) {
    auto reader = NewReader(cluster.bootstrap(), {.committed_offsets_max_age = max_age});
    ASSERT_NE(reader, nullptr);
    const absl::Time first = absl::Now();
    constexpr int kReads = 5;
    for (int i = 0; i < kReads; ++i) {
      const absl::Time arrived = absl::Now();
      absl::StatusOr<GroupOffsets> offsets = reader->ReadOffsets(query, arrived + absl::Seconds(5));
      ASSERT_TRUE(offsets.ok()) << offsets.status();
      EXPECT_GE(offsets->committed_read_at, arrived - max_age);
    }
    RdkafkaOffsetReaderStats stats = reader->Stats();
    if (absl::Now() - first >= kMaxAge) GTEST_SKIP() << "reads too slow for the age bound";
    if (max_age == absl::ZeroDuration()) {
      EXPECT_EQ(stats.offset_fetch_requests, kReads);
      EXPECT_EQ(stats.offset_fetch_shared, 0);
      continue;
    }
    EXPECT_EQ(stats.offset_fetch_requests, 1);
    EXPECT_EQ(stats.offset_fetch_shared, kReads - 1);
    // Past the age, the next call reads again.
    absl::SleepFor(kMaxAge + absl::Milliseconds(100));
    const absl::Time arrived = absl::Now();
    absl::StatusOr<GroupOffsets> offsets = reader->ReadOffsets(query, arrived + absl::Seconds(5));
    ASSERT_TRUE(offsets.ok()) << offsets.status();
    EXPECT_GE(offsets->committed_read_at, arrived);
    EXPECT_EQ(reader->Stats().offset_fetch_requests, 2);
  }
}

// An OffsetFetch does not depend on the isolation level (it only changes which end offsets a
// read_committed trigger sees): read_uncommitted and read_committed triggers on one group and
// topic share committed reads, though each level has its own end-offset client.
TEST(RdkafkaOffsetReaderMockTest, IsolationLevelsShareCommittedReads) {
  MockCluster cluster(1);
  const std::string topic = cluster.Topic(3, {1, 1, 1});
  const std::string group = UniqueName("mock-group");
  ASSERT_TRUE(testing::CommitOffsets(cluster.bootstrap(), group, {{topic, 1, 1}}).ok());
  auto reader = NewReader(cluster.bootstrap(), {.committed_offsets_max_age = absl::Seconds(30)});
  ASSERT_NE(reader, nullptr);
  for (const IsolationLevel isolation :
       {IsolationLevel::kReadUncommitted, IsolationLevel::kReadCommitted}) {
    absl::StatusOr<GroupOffsets> offsets =
        reader->ReadOffsets({.group = group, .topics = {topic}, .isolation = isolation},
                            absl::Now() + absl::Seconds(5));
    ASSERT_TRUE(offsets.ok()) << offsets.status();
    EXPECT_THAT(WithoutEstimates(offsets->partitions),
                ElementsAre(P(topic, 0, std::nullopt, 0, 1), P(topic, 1, 1, 0, 1),
                            P(topic, 2, std::nullopt, 0, 1)));
  }
  const RdkafkaOffsetReaderStats stats = reader->Stats();
  EXPECT_EQ(stats.offset_fetch_requests, 1);
  EXPECT_EQ(stats.offset_fetch_shared, 1);
  EXPECT_EQ(stats.clients, 3);  // committed offsets, and one per isolation level
}

// A cluster whose connections are refused, or whose name does not resolve, answers kUnavailable
// long before a 5 s deadline once the reader has seen the failure.
TEST(RdkafkaOffsetReaderMockTest, DeadClusterFailsFast) {
  for (const std::string bootstrap : {"127.0.0.1:1", "klag-no-such-host.invalid:9092"}) {
    auto reader = NewReader(bootstrap);
    ASSERT_NE(reader, nullptr);
    const OffsetQuery query{.group = "g", .topics = {"t"}};
    constexpr absl::Duration kDeadline = absl::Seconds(5);
    for (int i = 0; i < 3; ++i) {
      Timed read = ReadTimed(*reader, query, kDeadline);
      std::printf("%s read %d: %s after %.0f ms\n", bootstrap.c_str(), i,
                  read.result.status().ToString().c_str(), absl::ToDoubleMilliseconds(read.took));
      EXPECT_EQ(read.result.status().code(), absl::StatusCode::kUnavailable)
          << read.result.status();
      EXPECT_THAT(read.result.status().message(), HasSubstr(bootstrap));
      if (i == 0) {
        EXPECT_LT(read.took, kDeadline + kSlack);
      } else {
        EXPECT_LT(read.took, absl::Seconds(1)) << bootstrap;  // the failure is known by now
      }
    }
    EXPECT_GT(reader->Stats().unreachable_probe_failures, 0);
  }
}

// Once a probe of a dead cluster failed, calls arriving within the next probe interval (or while
// a probe waits) answer kUnavailable without waiting for a connection of their own: many
// concurrent callers cost one waiting call, and probing goes on after the interval.
TEST(RdkafkaOffsetReaderMockTest, DeadClusterProbesOneAtATime) {
  RdkafkaOffsetReaderOptions options;
  options.unreachable_probe = absl::Seconds(2);  // long enough that the burst lands inside it
  ConnectionConfig config;
  config.bootstrap_servers = "127.0.0.1:1";
  absl::StatusOr<std::unique_ptr<RdkafkaOffsetReader>> reader =
      RdkafkaOffsetReader::Create(config, options);
  ASSERT_TRUE(reader.ok()) << reader.status();
  const OffsetQuery query{.group = "g", .topics = {"t"}};
  // The first calls learn that connections are refused.
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ((*reader)->ReadOffsets(query, absl::Now() + absl::Seconds(5)).status().code(),
              absl::StatusCode::kUnavailable);
  }
  const RdkafkaOffsetReaderStats before = (*reader)->Stats();
  ASSERT_GT(before.unreachable_probes, 0);
  constexpr int kCallers = 32;
  std::atomic<int> unavailable{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kCallers; ++i) {
    threads.emplace_back([&] {
      absl::StatusOr<GroupOffsets> offsets =
          (*reader)->ReadOffsets(query, absl::Now() + absl::Seconds(5));
      if (absl::IsUnavailable(offsets.status())) ++unavailable;
    });
  }
  for (std::thread& t : threads) t.join();
  const RdkafkaOffsetReaderStats after = (*reader)->Stats();
  std::printf(
      "%d callers of a refused cluster: %lld probes, %lld answered at once\n", kCallers,
      static_cast<long long>(after.unreachable_probes - before.unreachable_probes),
      static_cast<long long>(after.unreachable_fast_failures - before.unreachable_fast_failures));
  EXPECT_EQ(unavailable.load(), kCallers);
  EXPECT_LE(after.unreachable_probes - before.unreachable_probes, 1);
  EXPECT_GE(after.unreachable_fast_failures - before.unreachable_fast_failures, kCallers - 1);
  // After the interval the next call probes again (so a cluster coming back is noticed).
  absl::SleepFor(options.unreachable_probe + absl::Milliseconds(100));
  EXPECT_EQ((*reader)->ReadOffsets(query, absl::Now() + absl::Seconds(5)).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ((*reader)->Stats().unreachable_probes, after.unreachable_probes + 1);
}

// All brokers down: fast kUnavailable; back up: answers again within about a reconnect backoff.
TEST(RdkafkaOffsetReaderMockTest, BrokersDownFailFastAndRecoverWhenBackUp) {
  MockCluster cluster(1);
  const std::string topic = cluster.Topic(1, {2});
  const OffsetQuery query{.group = UniqueName("mock-group"), .topics = {topic}};
  auto reader = NewReader(cluster.bootstrap());
  ASSERT_NE(reader, nullptr);
  ASSERT_TRUE(reader->ReadOffsets(query, absl::Now() + absl::Seconds(5)).ok());
  ASSERT_EQ(rd_kafka_mock_broker_set_down(cluster.get(), -1), RD_KAFKA_RESP_ERR_NO_ERROR);
  // The first read may have to wait for the disconnect news; later ones fail within a probe.
  (void)ReadTimed(*reader, query, absl::Seconds(5));
  for (int i = 0; i < 3; ++i) {
    Timed read = ReadTimed(*reader, query, absl::Seconds(5));
    EXPECT_EQ(read.result.status().code(), absl::StatusCode::kUnavailable) << read.result.status();
    EXPECT_LT(read.took, absl::Seconds(1));
  }
  ASSERT_EQ(rd_kafka_mock_broker_set_up(cluster.get(), -1), RD_KAFKA_RESP_ERR_NO_ERROR);
  const absl::Time up = absl::Now();
  absl::StatusOr<GroupOffsets> offsets;
  while (absl::Now() - up < absl::Seconds(10)) {
    offsets = reader->ReadOffsets(query, absl::Now() + absl::Seconds(5));
    if (offsets.ok()) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_TRUE(offsets.ok()) << offsets.status();
  std::printf("brokers back up: first answer after %.0f ms\n",
              absl::ToDoubleMilliseconds(absl::Now() - up));
  EXPECT_EQ(offsets->partitions.at(0).end, 2);
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
