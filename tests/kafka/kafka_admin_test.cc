// Checks the real-broker test helpers themselves (tests/testing/kafka_admin.h), so other suites
// can trust them.
#include "tests/testing/kafka_admin.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/testing/test_env.h"

namespace klag::testing {
namespace {

using ::testing::ElementsAre;

TEST(KafkaAdminTest, CreateProduceCommitAndReadBack) {
  KLAG_REQUIRE_BROKER(bootstrap);
  const std::string topic = UniqueName("admin-topic");
  const std::string group = UniqueName("admin-group");
  ASSERT_TRUE(CreateTopic(bootstrap, topic, 3).ok());

  absl::StatusOr<std::vector<int64_t>> p0 = Produce(bootstrap, topic, 0, 5);
  ASSERT_TRUE(p0.ok()) << p0.status();
  EXPECT_THAT(*p0, ElementsAre(0, 1, 2, 3, 4));
  absl::StatusOr<std::vector<int64_t>> p1 = Produce(bootstrap, topic, 1, {"a", "b"});
  ASSERT_TRUE(p1.ok()) << p1.status();
  EXPECT_THAT(*p1, ElementsAre(0, 1));

  absl::StatusOr<std::map<int32_t, int64_t>> end = EndOffsets(bootstrap, topic);
  ASSERT_TRUE(end.ok()) << end.status();
  EXPECT_EQ(*end, (std::map<int32_t, int64_t>{{0, 5}, {1, 2}, {2, 0}}));
  absl::StatusOr<std::map<int32_t, int64_t>> start = LogStartOffsets(bootstrap, topic);
  ASSERT_TRUE(start.ok()) << start.status();
  EXPECT_EQ(*start, (std::map<int32_t, int64_t>{{0, 0}, {1, 0}, {2, 0}}));

  absl::StatusOr<std::map<int32_t, int64_t>> none = CommittedOffsets(bootstrap, group, topic);
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_TRUE(none->empty());

  ASSERT_TRUE(CommitOffsets(bootstrap, group, {{topic, 0, 3}, {topic, 1, 2}}).ok());
  absl::StatusOr<std::map<int32_t, int64_t>> committed = CommittedOffsets(bootstrap, group, topic);
  ASSERT_TRUE(committed.ok()) << committed.status();
  EXPECT_EQ(*committed, (std::map<int32_t, int64_t>{{0, 3}, {1, 2}}));

  // Committing again for the same member-less group moves the offset (no generation involved).
  ASSERT_TRUE(CommitOffsets(bootstrap, group, {{topic, 0, 4}}).ok());
  committed = CommittedOffsets(bootstrap, group, topic);
  ASSERT_TRUE(committed.ok()) << committed.status();
  EXPECT_EQ(*committed, (std::map<int32_t, int64_t>{{0, 4}, {1, 2}}));

  ASSERT_TRUE(DeleteRecordsBefore(bootstrap, topic, 0, 2).ok());
  start = LogStartOffsets(bootstrap, topic);
  ASSERT_TRUE(start.ok()) << start.status();
  EXPECT_EQ(start->at(0), 2);

  EXPECT_TRUE(DeleteTopic(bootstrap, topic).ok());
  EXPECT_EQ(EndOffsets(bootstrap, topic).status().code(), absl::StatusCode::kNotFound);
}

TEST(KafkaAdminTest, CreateExistingTopicIsAlreadyExists) {
  KLAG_REQUIRE_BROKER(bootstrap);
  const std::string topic = UniqueName("admin-dup");
  ASSERT_TRUE(CreateTopic(bootstrap, topic, 1).ok());
  EXPECT_EQ(CreateTopic(bootstrap, topic, 1).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(DeleteTopic(bootstrap, UniqueName("admin-missing")).code(),
            absl::StatusCode::kNotFound);
}

TEST(KafkaAdminTest, TransactionsMoveHighWatermarkAndLastStableOffsetDifferently) {
  KLAG_REQUIRE_BROKER(bootstrap);
  const std::string topic = UniqueName("admin-txn");
  ASSERT_TRUE(CreateTopic(bootstrap, topic, 1).ok());

  absl::StatusOr<std::vector<int64_t>> committed =
      ProduceTransactional(bootstrap, topic, 0, 3, TransactionEnd::kCommit);
  ASSERT_TRUE(committed.ok()) << committed.status();
  EXPECT_THAT(*committed, ElementsAre(0, 1, 2));  // commit marker at 3
  absl::StatusOr<std::vector<int64_t>> aborted =
      ProduceTransactional(bootstrap, topic, 0, 2, TransactionEnd::kAbort);
  ASSERT_TRUE(aborted.ok()) << aborted.status();
  EXPECT_THAT(*aborted, ElementsAre(4, 5));  // abort marker at 6
  EXPECT_EQ(EndOffsets(bootstrap, topic)->at(0), 7);
  EXPECT_EQ(EndOffsets(bootstrap, topic, kafka::IsolationLevel::kReadCommitted)->at(0), 7);

  absl::StatusOr<std::unique_ptr<OpenTransaction>> open = OpenTransaction::Begin(bootstrap);
  ASSERT_TRUE(open.ok()) << open.status();
  absl::StatusOr<std::vector<int64_t>> pending = (*open)->Produce(topic, 0, 2);
  ASSERT_TRUE(pending.ok()) << pending.status();
  EXPECT_THAT(*pending, ElementsAre(7, 8));
  EXPECT_EQ(EndOffsets(bootstrap, topic)->at(0), 9);  // high watermark
  EXPECT_EQ(EndOffsets(bootstrap, topic, kafka::IsolationLevel::kReadCommitted)->at(0),
            7);  // last stable offset: the open transaction's first record
  ASSERT_TRUE((*open)->Abort().ok());
  EXPECT_EQ(EndOffsets(bootstrap, topic, kafka::IsolationLevel::kReadCommitted)->at(0), 10);
}

}  // namespace
}  // namespace klag::testing
