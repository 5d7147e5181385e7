// RdkafkaOffsetReader with committed_offsets_source = kOffsetsTopic against the real broker:
// committed offsets come from the reader's follower of __consumer_offsets, with no OffsetFetch.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "kafka/rdkafka_offset_reader.h"
#include "tests/testing/kafka_admin.h"
#include "tests/testing/test_env.h"

namespace klag::kafka {
namespace {

using testing::CommitOffsets;
using testing::CreateTopic;
using testing::DeleteGroup;
using testing::Produce;
using testing::UniqueName;

constexpr absl::Duration kDeadline = absl::Seconds(10);

std::unique_ptr<RdkafkaOffsetReader> NewReader(const std::string& bootstrap,
                                               RdkafkaOffsetReaderOptions options) {
  options.committed_offsets_source = CommittedOffsetsSource::kOffsetsTopic;
  ConnectionConfig config;
  config.bootstrap_servers = bootstrap;
  absl::StatusOr<std::unique_ptr<RdkafkaOffsetReader>> reader =
      RdkafkaOffsetReader::Create(config, options);
  EXPECT_TRUE(reader.ok()) << reader.status();
  return reader.ok() ? *std::move(reader) : nullptr;
}

std::map<int32_t, std::optional<int64_t>> Committed(const GroupOffsets& offsets) {
  std::map<int32_t, std::optional<int64_t>> out;
  for (const PartitionOffsets& p : offsets.partitions) out[p.partition] = p.committed;
  return out;
}

// Reads until the follower answers (it reads __consumer_offsets from the beginning first; reads
// before that fall back to OffsetFetch), at most 60 s.
absl::StatusOr<GroupOffsets> ReadOnceLoaded(RdkafkaOffsetReader& reader, const OffsetQuery& query) {
  const absl::Time give_up = absl::Now() + absl::Seconds(60);
  while (true) {
    const int64_t answers = reader.Stats().offsets_topic_answers;
    absl::StatusOr<GroupOffsets> offsets = reader.ReadOffsets(query, absl::Now() + kDeadline);
    if (!offsets.ok() || reader.Stats().offsets_topic_answers > answers) return offsets;
    if (absl::Now() > give_up) return absl::DeadlineExceededError("follower never answered");
    absl::SleepFor(absl::Milliseconds(100));
  }
}

TEST(RdkafkaOffsetsTopicE2eTest, AnswersCommitsFromTheTopicWithoutOffsetFetch) {
  KLAG_REQUIRE_BROKER(bootstrap);
  const std::string topic = UniqueName("follow-offsets");
  const std::string group = UniqueName("follow-group");
  ASSERT_TRUE(CreateTopic(bootstrap, topic, 3).ok());
  ASSERT_TRUE(Produce(bootstrap, topic, 0, 6).ok());
  ASSERT_TRUE(Produce(bootstrap, topic, 1, 4).ok());
  ASSERT_TRUE(CommitOffsets(bootstrap, group, {{topic, 0, 4}, {topic, 1, 1}}).ok());

  // Zero max age: every answer includes every commit acknowledged before the read.
  auto reader = NewReader(bootstrap, {.end_offsets_max_age = absl::ZeroDuration()});
  ASSERT_NE(reader, nullptr);
  absl::StatusOr<GroupOffsets> offsets =
      ReadOnceLoaded(*reader, {.group = group, .topics = {topic}});
  ASSERT_TRUE(offsets.ok()) << offsets.status();
  using Map = std::map<int32_t, std::optional<int64_t>>;
  EXPECT_EQ(Committed(*offsets), (Map{{0, 4}, {1, 1}, {2, std::nullopt}}));
  EXPECT_EQ(offsets->partitions[0].end, 6);

  // New commits, read right after they were acknowledged: seen, and no OffsetFetch sent.
  const RdkafkaOffsetReaderStats before = reader->Stats();
  for (int64_t next : {5, 6}) {
    const absl::Time committed_at = absl::Now();
    ASSERT_TRUE(CommitOffsets(bootstrap, group, {{topic, 0, next}, {topic, 2, 0}}).ok());
    offsets = reader->ReadOffsets({.group = group, .topics = {topic}}, absl::Now() + kDeadline);
    ASSERT_TRUE(offsets.ok()) << offsets.status();
    EXPECT_EQ(Committed(*offsets), (Map{{0, next}, {1, 1}, {2, 0}}));
    EXPECT_GE(offsets->committed_read_at, committed_at);
  }
  // Without topics: every topic the group committed on.
  offsets = reader->ReadOffsets({.group = group}, absl::Now() + kDeadline);
  ASSERT_TRUE(offsets.ok()) << offsets.status();
  EXPECT_EQ(Committed(*offsets), (Map{{0, 6}, {1, 1}, {2, 0}}));
  const RdkafkaOffsetReaderStats after = reader->Stats();
  EXPECT_EQ(after.offset_fetch_requests, before.offset_fetch_requests);
  EXPECT_EQ(after.offsets_topic_answers, before.offsets_topic_answers + 3);
  EXPECT_EQ(after.offsets_topic_fallbacks, before.offsets_topic_fallbacks);
  EXPECT_GE(after.offsets_topic_entries, 3);
}

TEST(RdkafkaOffsetsTopicE2eTest, CommittedOffsetsAreAtMostEndOffsetsMaxAgeOld) {
  KLAG_REQUIRE_BROKER(bootstrap);
  const std::string topic = UniqueName("follow-age");
  const std::string group = UniqueName("follow-age-group");
  ASSERT_TRUE(CreateTopic(bootstrap, topic, 1).ok());
  ASSERT_TRUE(CommitOffsets(bootstrap, group, {{topic, 0, 0}}).ok());
  const absl::Duration max_age = absl::Milliseconds(800);
  auto reader = NewReader(bootstrap, {.end_offsets_max_age = max_age});
  ASSERT_NE(reader, nullptr);
  ASSERT_TRUE(ReadOnceLoaded(*reader, {.group = group, .topics = {topic}}).ok());
  for (int i = 0; i < 8; ++i) {
    const absl::Time arrived = absl::Now();
    absl::StatusOr<GroupOffsets> offsets =
        reader->ReadOffsets({.group = group, .topics = {topic}}, absl::Now() + kDeadline);
    ASSERT_TRUE(offsets.ok()) << offsets.status();
    EXPECT_GE(offsets->committed_read_at, arrived - max_age);
    EXPECT_LE(offsets->committed_read_at, absl::Now());
    absl::SleepFor(absl::Milliseconds(250));
  }
  // After the bound has passed, a commit is always seen.
  ASSERT_TRUE(CommitOffsets(bootstrap, group, {{topic, 0, 3}}).ok());
  absl::SleepFor(max_age);
  absl::StatusOr<GroupOffsets> offsets =
      reader->ReadOffsets({.group = group, .topics = {topic}}, absl::Now() + kDeadline);
  ASSERT_TRUE(offsets.ok()) << offsets.status();
  EXPECT_EQ(offsets->partitions[0].committed, 3);
}

// TryReadOffsets answers at once, without a request, what ReadOffsets would, within the same
// freshness bound: a commit it does not show was made after the end offsets behind the answer
// were listed.
TEST(RdkafkaOffsetsTopicE2eTest, TryReadOffsetsAnswersAtOnceWithinTheSameBound) {
  KLAG_REQUIRE_BROKER(bootstrap);
  const std::string topic = UniqueName("follow-try");
  const std::string group = UniqueName("follow-try-group");
  ASSERT_TRUE(CreateTopic(bootstrap, topic, 2).ok());
  ASSERT_TRUE(Produce(bootstrap, topic, 0, 8).ok());
  ASSERT_TRUE(CommitOffsets(bootstrap, group, {{topic, 0, 3}, {topic, 1, 0}}).ok());
  const absl::Duration max_age = absl::Seconds(2);
  auto reader = NewReader(bootstrap, {.end_offsets_max_age = max_age});
  ASSERT_NE(reader, nullptr);
  const OffsetQuery query{.group = group, .topics = {topic}};
  // Nothing to answer from before the first read: no client, no follower yet.
  EXPECT_FALSE(reader->TryReadOffsets(query).has_value());
  EXPECT_EQ(reader->Stats().clients, 0);

  absl::StatusOr<GroupOffsets> read = ReadOnceLoaded(*reader, query);
  ASSERT_TRUE(read.ok()) << read.status();
  const RdkafkaOffsetReaderStats before = reader->Stats();
  std::optional<GroupOffsets> now = reader->TryReadOffsets(query);
  ASSERT_TRUE(now.has_value());
  using Map = std::map<int32_t, std::optional<int64_t>>;
  EXPECT_EQ(Committed(*now), (Map{{0, 3}, {1, 0}}));
  ASSERT_EQ(now->partitions.size(), 2u);
  EXPECT_EQ(now->partitions[0].end, 8);
  EXPECT_EQ(now->partitions[1].end, 0);
  const RdkafkaOffsetReaderStats after = reader->Stats();
  EXPECT_EQ(after.list_offsets_calls, before.list_offsets_calls);
  EXPECT_EQ(after.offset_fetch_requests, before.offset_fetch_requests);
  EXPECT_EQ(after.metadata_requests, before.metadata_requests);
  EXPECT_EQ(after.offsets_topic_answers, before.offsets_topic_answers + 1);
  // Not for a query without topics (they come from the group's commits: ReadOffsets' work).
  EXPECT_FALSE(reader->TryReadOffsets({.group = group}).has_value());

  // A new commit: every answer at once either shows it or was listed before it was made, and
  // is never older than the bound. The commit itself may take longer than the bound (a new
  // client, the coordinator), so a try that finds the snapshot aged is followed by a read, which
  // lists again, as the evaluator's worker would.
  ASSERT_TRUE(CommitOffsets(bootstrap, group, {{topic, 0, 5}}).ok());
  const absl::Time acknowledged = absl::Now();
  int answers = 0;
  for (absl::Time until = absl::Now() + absl::Seconds(3); absl::Now() < until;) {
    const absl::Time asked = absl::Now();
    std::optional<GroupOffsets> offsets = reader->TryReadOffsets(query);
    if (!offsets.has_value()) {
      ASSERT_TRUE(reader->ReadOffsets(query, absl::Now() + kDeadline).ok());
    } else {
      ++answers;
      EXPECT_GE(offsets->committed_read_at, asked - max_age);
      EXPECT_GE(offsets->end_offsets_read_at, asked - max_age);
      if (offsets->partitions[0].committed != 5) {
        EXPECT_EQ(offsets->partitions[0].committed, 3);
        EXPECT_LT(offsets->committed_read_at, acknowledged);
      }
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_GT(answers, 0);
  // Once the snapshot has aged past the bound (nobody asked meanwhile), no answer at once; a
  // read lists again.
  absl::SleepFor(max_age + absl::Milliseconds(200));
  EXPECT_FALSE(reader->TryReadOffsets(query).has_value());
  ASSERT_TRUE(reader->ReadOffsets(query, absl::Now() + kDeadline).ok());
  now = reader->TryReadOffsets(query);
  ASSERT_TRUE(now.has_value());
  EXPECT_EQ(now->partitions[0].committed, 5);

  // The default source never answers at once.
  ConnectionConfig config;
  config.bootstrap_servers = bootstrap;
  absl::StatusOr<std::unique_ptr<RdkafkaOffsetReader>> fetching =
      RdkafkaOffsetReader::Create(config, {});
  ASSERT_TRUE(fetching.ok()) << fetching.status();
  ASSERT_TRUE((*fetching)->ReadOffsets(query, absl::Now() + kDeadline).ok());
  EXPECT_FALSE((*fetching)->TryReadOffsets(query).has_value());
}

TEST(RdkafkaOffsetsTopicE2eTest, DeletedGroupHasNoCommitsAnyMore) {
  KLAG_REQUIRE_BROKER(bootstrap);
  const std::string topic = UniqueName("follow-delete");
  const std::string group = UniqueName("follow-delete-group");
  ASSERT_TRUE(CreateTopic(bootstrap, topic, 2).ok());
  ASSERT_TRUE(CommitOffsets(bootstrap, group, {{topic, 0, 0}, {topic, 1, 0}}).ok());
  auto reader = NewReader(bootstrap, {.end_offsets_max_age = absl::ZeroDuration()});
  ASSERT_NE(reader, nullptr);
  absl::StatusOr<GroupOffsets> offsets = ReadOnceLoaded(*reader, {.group = group});
  ASSERT_TRUE(offsets.ok()) << offsets.status();
  EXPECT_EQ(offsets->partitions.size(), 2u);
  const int64_t fallbacks = reader->Stats().offsets_topic_fallbacks;  // while it was loading

  // Deleting the group writes tombstones for its offsets.
  ASSERT_TRUE(DeleteGroup(bootstrap, group).ok());
  offsets = reader->ReadOffsets({.group = group, .topics = {topic}}, absl::Now() + kDeadline);
  ASSERT_TRUE(offsets.ok()) << offsets.status();
  for (const PartitionOffsets& p : offsets->partitions) EXPECT_EQ(p.committed, std::nullopt);
  offsets = reader->ReadOffsets({.group = group}, absl::Now() + kDeadline);
  EXPECT_EQ(offsets.status().code(), absl::StatusCode::kNotFound) << offsets.status();
  EXPECT_EQ(reader->Stats().offsets_topic_fallbacks, fallbacks);
}

// Every read is right (OffsetFetch) before, while and after the follower reads and gives up; it
// never answers (it gives up before it has read the partition holding the group's commits).
void ExpectEveryReadFromOffsetFetch(const std::string& bootstrap,
                                    const RdkafkaOffsetReaderOptions& options) {
  const std::string topic = UniqueName("follow-full");
  const std::string group = UniqueName("follow-full-group");
  ASSERT_TRUE(CreateTopic(bootstrap, topic, 2).ok());
  ASSERT_TRUE(CommitOffsets(bootstrap, group, {{topic, 0, 0}, {topic, 1, 0}}).ok());
  auto reader = NewReader(bootstrap, options);
  ASSERT_NE(reader, nullptr);
  constexpr int kReads = 20;
  for (int i = 0; i < kReads; ++i) {
    absl::StatusOr<GroupOffsets> offsets =
        reader->ReadOffsets({.group = group, .topics = {topic}}, absl::Now() + kDeadline);
    ASSERT_TRUE(offsets.ok()) << offsets.status();
    using Map = std::map<int32_t, std::optional<int64_t>>;
    EXPECT_EQ(Committed(*offsets), (Map{{0, 0}, {1, 0}}));
    absl::SleepFor(absl::Milliseconds(200));
  }
  const RdkafkaOffsetReaderStats stats = reader->Stats();
  EXPECT_EQ(stats.offsets_topic_answers, 0);
  EXPECT_EQ(stats.offsets_topic_fallbacks, kReads);
  EXPECT_EQ(stats.offset_fetch_requests, kReads);
  EXPECT_EQ(stats.offsets_topic_entries, 0);
}

TEST(RdkafkaOffsetsTopicE2eTest, TooManyCommitsFallsBackToOffsetFetch) {
  KLAG_REQUIRE_BROKER(bootstrap);
  // This group's two commits alone are more than one entry.
  ExpectEveryReadFromOffsetFetch(bootstrap, {.offsets_topic_max_entries = 1});
}

TEST(RdkafkaOffsetsTopicE2eTest, SharedBudgetUsedUpFallsBackToOffsetFetchAndIsGivenBack) {
  KLAG_REQUIRE_BROKER(bootstrap);
  auto budget = std::make_shared<CommitBudget>(1);
  ExpectEveryReadFromOffsetFetch(bootstrap, {.offsets_topic_budget = budget});
  // The stopped follower freed its table, and the reader gave back all it held.
  EXPECT_EQ(budget->used(), 0);
}

}  // namespace
}  // namespace klag::kafka
