#include "kafka/offsets_topic.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <string>

namespace klag::kafka {
namespace {

// Big-endian encoders for building records the way the group coordinator writes them.
std::string I16(int16_t v) {
  return {static_cast<char>((v >> 8) & 0xff), static_cast<char>(v & 0xff)};
}
std::string I32(int32_t v) {
  std::string out;
  for (int shift = 24; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((v >> shift) & 0xff));
  return out;
}
std::string I64(int64_t v) {
  std::string out;
  for (int shift = 56; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((v >> shift) & 0xff));
  return out;
}
std::string Str(const std::string& s) { return I16(static_cast<int16_t>(s.size())) + s; }
std::string Varint(uint32_t v) {
  std::string out;
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
  return out;
}
std::string CompactStr(const std::string& s) {
  return Varint(static_cast<uint32_t>(s.size() + 1)) + s;
}

std::string CommitKey(int16_t version, const std::string& group, const std::string& topic,
                      int32_t partition) {
  return I16(version) + Str(group) + Str(topic) + I32(partition);
}

OffsetCommitRecord Commit(const std::string& group, const std::string& topic, int32_t partition,
                          std::optional<int64_t> offset, int64_t timestamp_ms) {
  return OffsetCommitRecord{group, TopicPartition{topic, partition}, offset, timestamp_ms};
}

TEST(ParseOffsetsTopicRecordTest, ReadsEveryOffsetCommitValueVersion) {
  const std::string key = CommitKey(1, "billing", "invoices", 7);
  struct Case {
    const char* name;
    std::string value;
  };
  const Case cases[] = {
      {"v0", I16(0) + I64(42) + Str("meta") + I64(1700000000000)},
      {"v1 (expire timestamp)", I16(1) + I64(42) + Str("") + I64(1700000000000) + I64(-1)},
      {"v2", I16(2) + I64(42) + Str("m") + I64(1700000000000)},
      {"v3 (leader epoch)", I16(3) + I64(42) + I32(5) + Str("") + I64(1700000000000)},
      {"v4 (compact string, no tagged field)",
       I16(4) + I64(42) + I32(-1) + CompactStr("meta") + I64(1700000000000) + Varint(0)},
      {"v4 with the topic id tagged field", I16(4) + I64(42) + I32(-1) + CompactStr("") +
                                                I64(1700000000000) + Varint(1) + Varint(0) +
                                                Varint(16) + std::string(16, '\x07')},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    absl::StatusOr<std::optional<OffsetCommitRecord>> record =
        ParseOffsetsTopicRecord(key, c.value);
    ASSERT_TRUE(record.ok()) << record.status();
    ASSERT_TRUE(record->has_value());
    EXPECT_EQ(**record, Commit("billing", "invoices", 7, 42, 1700000000000));
  }
}

TEST(ParseOffsetsTopicRecordTest, LegacyKeyVersionZeroIsAnOffsetCommitToo) {
  absl::StatusOr<std::optional<OffsetCommitRecord>> record = ParseOffsetsTopicRecord(
      CommitKey(0, "g", "t", 0), I16(1) + I64(3) + Str("") + I64(10) + I64(20));
  ASSERT_TRUE(record.ok()) << record.status();
  EXPECT_EQ(**record, Commit("g", "t", 0, 3, 10));
}

TEST(ParseOffsetsTopicRecordTest, NullValueIsATombstone) {
  absl::StatusOr<std::optional<OffsetCommitRecord>> record =
      ParseOffsetsTopicRecord(CommitKey(1, "g", "t", 2), std::nullopt);
  ASSERT_TRUE(record.ok()) << record.status();
  EXPECT_EQ(**record, Commit("g", "t", 2, std::nullopt, 0));
}

TEST(ParseOffsetsTopicRecordTest, SkipsRecordsThatCarryNoOffset) {
  // Group metadata (key version 2: just the group) and the KIP-848 / share / streams group
  // records (3 and up), with or without a value: not parsed beyond the version.
  for (int16_t version : {2, 3, 5, 8, 11, 17}) {
    SCOPED_TRACE(version);
    absl::StatusOr<std::optional<OffsetCommitRecord>> record =
        ParseOffsetsTopicRecord(I16(version) + Str("g"), std::string("\x00\x03junk", 6));
    ASSERT_TRUE(record.ok()) << record.status();
    EXPECT_FALSE(record->has_value());
    record = ParseOffsetsTopicRecord(I16(version) + Str("g"), std::nullopt);
    ASSERT_TRUE(record.ok()) << record.status();
    EXPECT_FALSE(record->has_value());
  }
}

TEST(ParseOffsetsTopicRecordTest, MalformedRecordsAreErrorsNamingTheField) {
  const std::string key = CommitKey(1, "g", "t", 0);
  const std::string v3 = I16(3) + I64(42) + I32(5) + Str("") + I64(10);
  struct Case {
    const char* name;
    std::string key;
    std::optional<std::string> value;
    const char* message;
  };
  const Case cases[] = {
      {"empty key", "", std::nullopt, "key: version: truncated"},
      {"key cut in the topic", I16(1) + Str("g") + I16(5) + "ab", std::nullopt,
       "key: topic: truncated"},
      {"negative group length", I16(1) + I16(-2), std::nullopt, "key: group: negative length -2"},
      {"key with bytes left over", key + "x", std::nullopt, "key: 1 bytes left over"},
      {"value cut in the offset", key, I16(3) + "\x01\x02", "value of group g: offset: truncated"},
      {"value cut in the timestamp", key, v3.substr(0, v3.size() - 1),
       "value of group g: commit timestamp: truncated"},
      {"unknown value version", key, I16(9) + I64(1), "value of group g: unknown version 9"},
      {"value with bytes left over", key, v3 + "zz", "value of group g: 2 bytes left over"},
      {"tagged field longer than the value", key,
       I16(4) + I64(1) + I32(0) + CompactStr("") + I64(1) + Varint(1) + Varint(0) + Varint(50),
       "value of group g: tagged field: truncated"},
      {"endless varint", key, I16(4) + I64(1) + I32(0) + std::string(6, '\xff'),
       "value of group g: metadata: varint longer than 5 bytes"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    absl::StatusOr<std::optional<OffsetCommitRecord>> record =
        ParseOffsetsTopicRecord(c.key, c.value);
    ASSERT_FALSE(record.ok());
    EXPECT_EQ(record.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(record.status().message(), std::string("__consumer_offsets record ") + c.message);
  }
}

TEST(CommittedOffsetsTableTest, KeepsTheLatestCommitAndForgetsTombstonedOnes) {
  CommittedOffsetsTable table({.max_entries = 10});
  EXPECT_TRUE(table.Apply(Commit("billing", "invoices", 0, 5, 1)));
  EXPECT_TRUE(table.Apply(Commit("billing", "invoices", 1, 7, 1)));
  EXPECT_TRUE(table.Apply(Commit("billing", "invoices", 0, 9, 2)));
  EXPECT_TRUE(table.Apply(Commit("audit", "invoices", 0, 1, 2)));
  EXPECT_EQ(table.entries(), 3);
  EXPECT_EQ(table.groups(), 2);
  using Map = absl::flat_hash_map<TopicPartition, int64_t>;
  EXPECT_EQ(table.Group("billing", nullptr), (Map{{{"invoices", 0}, 9}, {{"invoices", 1}, 7}}));
  const std::vector<TopicPartition> asked = {{"invoices", 1}, {"invoices", 2}, {"other", 0}};
  EXPECT_EQ(table.Group("billing", &asked), (Map{{{"invoices", 1}, 7}}));
  EXPECT_EQ(table.Group("nobody", nullptr), Map{});

  EXPECT_TRUE(table.Apply(Commit("billing", "invoices", 0, std::nullopt, 0)));
  EXPECT_EQ(table.Group("billing", nullptr), (Map{{{"invoices", 1}, 7}}));
  EXPECT_TRUE(table.Apply(Commit("billing", "invoices", 1, std::nullopt, 0)));
  EXPECT_EQ(table.Group("billing", nullptr), Map{});
  EXPECT_EQ(table.groups(), 1);  // a group whose last commit is gone is gone
  // A tombstone for something never seen changes nothing.
  EXPECT_TRUE(table.Apply(Commit("ghost", "t", 0, std::nullopt, 0)));
  EXPECT_EQ(table.entries(), 1);
}

TEST(CommittedOffsetsTableTest, RefusesToGrowPastMaxEntriesButUpdatesWhatItHolds) {
  CommittedOffsetsTable table({.max_entries = 2});
  EXPECT_TRUE(table.Apply(Commit("a", "t", 0, 1, 0)));
  EXPECT_TRUE(table.Apply(Commit("b", "t", 0, 1, 0)));
  EXPECT_FALSE(table.Apply(Commit("c", "t", 0, 1, 0)));
  EXPECT_FALSE(table.Apply(Commit("a", "t", 1, 1, 0)));
  EXPECT_EQ(table.entries(), 2);
  EXPECT_EQ(table.groups(), 2);
  EXPECT_TRUE(table.Apply(Commit("a", "t", 0, 8, 0)));
  EXPECT_EQ(table.Group("a", nullptr).at(TopicPartition{"t", 0}), 8);
  // Room again after a tombstone.
  EXPECT_TRUE(table.Apply(Commit("b", "t", 0, std::nullopt, 0)));
  EXPECT_TRUE(table.Apply(Commit("c", "t", 0, 1, 0)));
  table.Clear();
  EXPECT_EQ(table.entries(), 0);
  EXPECT_EQ(table.groups(), 0);
}

TEST(CommittedOffsetsTableTest, TablesSharingABudgetHoldAtMostItTogether) {
  CommitBudget budget(3);
  {
    CommittedOffsetsTable a({.max_entries = 10, .budget = &budget});
    CommittedOffsetsTable b({.max_entries = 10, .budget = &budget});
    EXPECT_TRUE(a.Apply(Commit("g", "t", 0, 1, 0)));
    EXPECT_TRUE(a.Apply(Commit("g", "t", 1, 1, 0)));
    EXPECT_TRUE(b.Apply(Commit("h", "t", 0, 1, 0)));
    EXPECT_EQ(budget.used(), 3);
    EXPECT_FALSE(b.Apply(Commit("h", "t", 1, 1, 0)));  // the budget, not b's own bound
    EXPECT_EQ(b.entries(), 1);
    EXPECT_TRUE(a.Apply(Commit("g", "t", 0, 5, 0)));  // updates need no budget
    // A tombstone gives its entry back; so does Clear.
    EXPECT_TRUE(a.Apply(Commit("g", "t", 1, std::nullopt, 0)));
    EXPECT_EQ(budget.used(), 2);
    EXPECT_TRUE(b.Apply(Commit("h", "t", 1, 1, 0)));
    a.Clear();
    EXPECT_EQ(budget.used(), 2);
    // A table refused by its own bound takes nothing from the budget.
    CommittedOffsetsTable c({.max_entries = 0, .budget = &budget});
    EXPECT_FALSE(c.Apply(Commit("i", "t", 0, 1, 0)));
    EXPECT_EQ(budget.used(), 2);
  }
  EXPECT_EQ(budget.used(), 0);  // destroyed tables give everything back
}

}  // namespace
}  // namespace klag::kafka
