#include "job/no_work.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/testing/fake_offset_reader.h"

namespace klag::job {
namespace {

kafka::PartitionOffsets P(int32_t partition, std::optional<int64_t> committed, int64_t log_start,
                          int64_t end) {
  return {.topic = "t",
          .partition = partition,
          .committed = committed,
          .log_start = log_start,
          .end = end};
}

TEST(PendingLagTest, Table) {
  struct Case {
    std::string name;
    std::vector<kafka::PartitionOffsets> partitions;
    OffsetReset reset;
    int64_t lag;
  };
  const std::vector<Case> cases = {
      {"no partitions", {}, OffsetReset::kEarliest, 0},
      {"committed at end", {P(0, 10, 0, 10)}, OffsetReset::kEarliest, 0},
      {"committed behind", {P(0, 4, 0, 10)}, OffsetReset::kEarliest, 6},
      {"sums partitions", {P(0, 4, 0, 10), P(1, 1, 0, 3)}, OffsetReset::kEarliest, 8},
      {"committed past end counts 0, never negative",
       {P(0, 12, 0, 10), P(1, 8, 0, 10)},
       OffsetReset::kEarliest,
       2},
      {"no commit, earliest: from the log start",
       {P(0, std::nullopt, 3, 10)},
       OffsetReset::kEarliest,
       7},
      {"no commit, latest: must join to commit the end",
       {P(0, std::nullopt, 3, 10)},
       OffsetReset::kLatest,
       1},
      {"no commit, latest, empty partition: still a commit to make",
       {P(0, std::nullopt, 0, 0)},
       OffsetReset::kLatest,
       1},
      {"commit below log start, earliest: from the log start",
       {P(0, 1, 5, 10)},
       OffsetReset::kEarliest,
       5},
      {"commit below log start, latest: the retained records, as the scaler counts them",
       {P(0, 1, 5, 10)},
       OffsetReset::kLatest,
       5},
      {"commit below log start, empty retained log: nothing (the scaler sees 0 too)",
       {P(0, 1, 5, 5)},
       OffsetReset::kLatest,
       0},
      {"committed at end, latest: nothing", {P(0, 10, 0, 10)}, OffsetReset::kLatest, 0},
      {"empty partition", {P(0, std::nullopt, 0, 0)}, OffsetReset::kEarliest, 0},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(PendingLag({.partitions = c.partitions}, c.reset), c.lag) << c.name;
  }
}

TEST(MeasureLagTest, AsksTheReaderForTheGroupTopicsAndIsolation) {
  testing::FakeOffsetReader reader;
  reader.SetOffsets("g", {P(0, 4, 0, 10), P(1, 10, 0, 10)});
  absl::StatusOr<int64_t> lag =
      MeasureLag(reader, "g", {"t"}, kafka::IsolationLevel::kReadCommitted, OffsetReset::kEarliest,
                 absl::Now() + absl::Seconds(1));
  ASSERT_TRUE(lag.ok()) << lag.status();
  EXPECT_EQ(*lag, 6);
  ASSERT_EQ(reader.queries().size(), 1u);
  EXPECT_EQ(reader.queries()[0].group, "g");
  EXPECT_EQ(reader.queries()[0].topics, std::vector<std::string>{"t"});
  EXPECT_EQ(reader.queries()[0].isolation, kafka::IsolationLevel::kReadCommitted);
}

TEST(MeasureLagTest, ReaderErrorsPassThrough) {
  testing::FakeOffsetReader reader;
  reader.SetError("g", absl::UnavailableError("no broker"));
  absl::StatusOr<int64_t> lag =
      MeasureLag(reader, "g", {"t"}, kafka::IsolationLevel::kReadCommitted, OffsetReset::kEarliest,
                 absl::Now() + absl::Seconds(1));
  EXPECT_EQ(lag.status().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace klag::job
