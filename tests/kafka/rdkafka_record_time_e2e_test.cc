// ReadRecordTimestamps against the real broker: records produced with known CreateTimes are read
// back by offset; an empty partition and an offset at the end answer "no record" without waiting
// for the deadline.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "kafka/rdkafka_record_time.h"
#include "tests/testing/kafka_admin.h"
#include "tests/testing/test_env.h"

namespace klag::kafka {
namespace {

ConnectionConfig Plain(const std::string& bootstrap) {
  ConnectionConfig c;
  c.bootstrap_servers = bootstrap;
  return c;
}

TEST(RdkafkaRecordTimeE2eTest, ReadsTheCreateTimeOfTheRecordAtEachOffset) {
  KLAG_REQUIRE_BROKER(bootstrap);
  const std::string topic = testing::UniqueName("record-time");
  ASSERT_TRUE(testing::CreateTopic(bootstrap, topic, 2).ok());
  // Millisecond timestamps (Kafka's precision), minutes in the past.
  const absl::Time now = absl::FromUnixMillis(absl::ToUnixMillis(absl::Now()));
  const std::vector<absl::Time> times = {now - absl::Seconds(300), now - absl::Seconds(200),
                                         now - absl::Seconds(100)};
  absl::StatusOr<std::vector<int64_t>> offsets =
      testing::ProduceWithTimestamps(bootstrap, topic, 0, times);
  ASSERT_TRUE(offsets.ok()) << offsets.status();
  ASSERT_EQ(*offsets, (std::vector<int64_t>{0, 1, 2}));

  const absl::Time start = absl::Now();
  absl::StatusOr<std::vector<std::optional<RecordTimestamp>>> got = ReadRecordTimestamps(
      Plain(bootstrap), {{topic, 0, 1}, {topic, 0, 0}, {topic, 0, 2}, {topic, 0, 3}, {topic, 1, 0}},
      IsolationLevel::kReadUncommitted, absl::Now() + absl::Seconds(60));
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), 5u);
  ASSERT_TRUE((*got)[0].has_value());
  EXPECT_EQ((*got)[0]->offset, 1);
  EXPECT_EQ((*got)[0]->time, times[1]);
  EXPECT_FALSE((*got)[0]->log_append_time);
  ASSERT_TRUE((*got)[1].has_value());
  EXPECT_EQ((*got)[1]->offset, 0);
  EXPECT_EQ((*got)[1]->time, times[0]);
  ASSERT_TRUE((*got)[2].has_value());
  EXPECT_EQ((*got)[2]->offset, 2);
  EXPECT_EQ((*got)[2]->time, times[2]);
  // At the end of partition 0, and on the empty partition 1: no record.
  EXPECT_EQ((*got)[3], std::nullopt);
  EXPECT_EQ((*got)[4], std::nullopt);
  // The end of a partition answers at once: the call did not wait for its 60 s deadline.
  EXPECT_LT(absl::Now() - start, absl::Seconds(30));
}

TEST(RdkafkaRecordTimeE2eTest, OffsetBelowTheLogStartReadsFromTheLogStart) {
  KLAG_REQUIRE_BROKER(bootstrap);
  const std::string topic = testing::UniqueName("record-time-trunc");
  ASSERT_TRUE(testing::CreateTopic(bootstrap, topic, 1).ok());
  const absl::Time now = absl::FromUnixMillis(absl::ToUnixMillis(absl::Now()));
  const std::vector<absl::Time> times = {now - absl::Seconds(30), now - absl::Seconds(20),
                                         now - absl::Seconds(10)};
  ASSERT_TRUE(testing::ProduceWithTimestamps(bootstrap, topic, 0, times).ok());
  ASSERT_TRUE(testing::DeleteRecordsBefore(bootstrap, topic, 0, 2).ok());

  absl::StatusOr<std::vector<std::optional<RecordTimestamp>>> got =
      ReadRecordTimestamps(Plain(bootstrap), {{topic, 0, 0}}, IsolationLevel::kReadCommitted,
                           absl::Now() + absl::Seconds(60));
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_TRUE((*got)[0].has_value());
  EXPECT_EQ((*got)[0]->offset, 2);
  EXPECT_EQ((*got)[0]->time, times[2]);
}

TEST(RdkafkaRecordTimeE2eTest, NoQueriesNeedNoClient) {
  absl::StatusOr<std::vector<std::optional<RecordTimestamp>>> got =
      ReadRecordTimestamps(Plain("127.0.0.1:1"), {}, IsolationLevel::kReadUncommitted, absl::Now());
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(got->empty());
}

}  // namespace
}  // namespace klag::kafka
