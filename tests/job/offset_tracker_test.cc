#include "job/offset_tracker.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace klag::job {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using Disposition = OffsetTracker::Disposition;

const kafka::TopicPartition kP0{"prices", 0};
const kafka::TopicPartition kP1{"prices", 1};

// One step of a table case: an operation on the tracker.
struct Step {
  enum Op { kAssign, kRevoke, kOffer, kEnd, kAck, kCommitted } op;
  kafka::TopicPartition tp;
  int64_t a = 0;  // start (assign), offset (offer, ack, commit), position (end)
  int64_t b = 0;  // end (assign)
  std::optional<int64_t> committed = std::nullopt;  // assign
  Disposition expect = Disposition::kDeliver;       // offer
};

Step Assign(const kafka::TopicPartition& tp, int64_t start, int64_t end,
            std::optional<int64_t> committed) {
  return {Step::kAssign, tp, start, end, committed};
}
Step Offer(const kafka::TopicPartition& tp, int64_t offset,
           Disposition expect = Disposition::kDeliver) {
  return {Step::kOffer, tp, offset, 0, std::nullopt, expect};
}
Step Ack(const kafka::TopicPartition& tp, int64_t offset) { return {Step::kAck, tp, offset}; }
Step End(const kafka::TopicPartition& tp, int64_t position) { return {Step::kEnd, tp, position}; }
Step Revoke(const kafka::TopicPartition& tp) { return {Step::kRevoke, tp}; }
Step Committed(const kafka::TopicPartition& tp, int64_t offset) {
  return {Step::kCommitted, tp, offset};
}

struct Case {
  std::string name;
  std::vector<Step> steps;
  std::vector<CommitOffset> commits;
  bool all_done;
  int64_t remaining_lag;
};

void RunSteps(OffsetTracker& tracker, const std::vector<Step>& steps) {
  for (const Step& s : steps) {
    switch (s.op) {
      case Step::kAssign:
        tracker.Assign(s.tp, s.a, s.b, s.committed);
        break;
      case Step::kRevoke:
        tracker.Revoke(s.tp);
        break;
      case Step::kOffer:
        EXPECT_EQ(tracker.Offer(s.tp, s.a), s.expect) << "offer " << s.tp.partition << "@" << s.a;
        break;
      case Step::kEnd:
        tracker.ReachedEnd(s.tp, s.a);
        break;
      case Step::kAck:
        tracker.Ack(s.tp, s.a);
        break;
      case Step::kCommitted:
        tracker.Committed({{s.tp, s.a}});
        break;
    }
  }
}

TEST(OffsetTrackerTest, Table) {
  const std::vector<Case> cases = {
      {"nothing assigned is done", {}, {}, true, 0},
      {"assigned with no lag is done and commits nothing", {Assign(kP0, 10, 10, 10)}, {}, true, 0},
      {"no committed offset and nothing to read commits the start",
       {Assign(kP0, 7, 7, std::nullopt)},
       {{kP0, 7}},
       true,
       0},
      {"handed out but unacknowledged commits nothing",
       {Assign(kP0, 0, 3, 0), Offer(kP0, 0), Offer(kP0, 1)},
       {},
       false,
       1},
      {"acknowledged prefix commits the position after it",
       {Assign(kP0, 0, 3, 0), Offer(kP0, 0), Offer(kP0, 1), Ack(kP0, 0)},
       {{kP0, 1}},
       false,
       1},
      {"out-of-order ack holds at the first unacknowledged record",
       {Assign(kP0, 0, 5, 0), Offer(kP0, 0), Offer(kP0, 1), Offer(kP0, 2), Ack(kP0, 0),
        Ack(kP0, 2)},
       {{kP0, 1}},
       false,
       2},
      {"all acknowledged up to the end is done",
       {Assign(kP0, 0, 3, std::nullopt), Offer(kP0, 0), Offer(kP0, 1), Offer(kP0, 2), Ack(kP0, 1),
        Ack(kP0, 0), Ack(kP0, 2)},
       {{kP0, 3}},
       true,
       0},
      {"transaction marker: end-of-partition position steps over it",
       // records 0..2, commit marker at 3, end offset 4
       {Assign(kP0, 0, 4, std::nullopt), Offer(kP0, 0), Offer(kP0, 1), Offer(kP0, 2), Ack(kP0, 0),
        Ack(kP0, 1), Ack(kP0, 2)},
       {{kP0, 3}},
       false,
       1},
      {"transaction marker then end of partition commits the end",
       {Assign(kP0, 0, 4, std::nullopt), Offer(kP0, 0), Offer(kP0, 1), Offer(kP0, 2), Ack(kP0, 0),
        Ack(kP0, 1), Ack(kP0, 2), End(kP0, 4)},
       {{kP0, 4}},
       true,
       0},
      {"end of partition with records unacknowledged commits the first unacknowledged",
       {Assign(kP0, 0, 4, std::nullopt), Offer(kP0, 0), Offer(kP0, 1), Offer(kP0, 2), Ack(kP0, 0),
        End(kP0, 4)},
       {{kP0, 1}},
       false,
       0},
      {"record at the end offset is left for the next Job and completes the fetch",
       {Assign(kP0, 5, 7, 5), Offer(kP0, 5), Offer(kP0, 6), Offer(kP0, 7, Disposition::kBeyondEnd),
        Offer(kP0, 8, Disposition::kBeyondEnd), Ack(kP0, 5), Ack(kP0, 6)},
       {{kP0, 7}},
       true,
       0},
      {"first record past a marker beyond the end commits that record's offset",
       // records 0..1, marker at 2, end 3, record produced later at 3
       {Assign(kP0, 0, 3, std::nullopt), Offer(kP0, 0), Offer(kP0, 1),
        Offer(kP0, 3, Disposition::kBeyondEnd), Ack(kP0, 0), Ack(kP0, 1)},
       {{kP0, 3}},
       true,
       0},
      {"end of partition after a record left for the next Job does not step past it",
       {Assign(kP0, 0, 2, 0), Offer(kP0, 0), Offer(kP0, 1), Offer(kP0, 2, Disposition::kBeyondEnd),
        End(kP0, 5), Ack(kP0, 0), Ack(kP0, 1)},
       {{kP0, 2}},
       true,
       0},
      {"redelivered record is stale",
       {Assign(kP0, 0, 5, 0), Offer(kP0, 0), Offer(kP0, 1), Offer(kP0, 1, Disposition::kStale),
        Offer(kP0, 0, Disposition::kStale), Ack(kP0, 0), Ack(kP0, 1)},
       {{kP0, 2}},
       false,
       3},
      {"record below the start position is stale",
       {Assign(kP0, 10, 12, 10), Offer(kP0, 9, Disposition::kStale)},
       {},
       false,
       2},
      {"record of an unassigned partition is dropped",
       {Assign(kP0, 0, 2, 0), Offer(kP1, 0, Disposition::kNotAssigned)},
       {},
       false,
       2},
      {"committed position is not committed again",
       {Assign(kP0, 0, 3, 0), Offer(kP0, 0), Ack(kP0, 0), Committed(kP0, 1)},
       {},
       false,
       2},
      {"commit moves on after more acks",
       {Assign(kP0, 0, 3, 0), Offer(kP0, 0), Ack(kP0, 0), Committed(kP0, 1), Offer(kP0, 1),
        Ack(kP0, 1)},
       {{kP0, 2}},
       false,
       1},
      {"two partitions: done only when both are",
       {Assign(kP0, 0, 1, 0), Assign(kP1, 4, 6, 4), Offer(kP0, 0), Ack(kP0, 0), Offer(kP1, 4),
        Ack(kP1, 4)},
       {{kP0, 1}, {kP1, 5}},
       false,
       1},
      {"revoked partition no longer blocks done nor commits",
       {Assign(kP0, 0, 1, 0), Assign(kP1, 4, 6, 4), Offer(kP0, 0), Ack(kP0, 0), Offer(kP1, 4),
        Revoke(kP1)},
       {{kP0, 1}},
       true,
       0},
      {"ack after revoke is ignored",
       {Assign(kP0, 0, 2, 0), Offer(kP0, 0), Revoke(kP0), Ack(kP0, 0)},
       {},
       true,
       0},
      {"reassigned partition starts over from the new values",
       {Assign(kP0, 0, 5, 0), Offer(kP0, 0), Revoke(kP0), Assign(kP0, 3, 9, 3), Offer(kP0, 3),
        Ack(kP0, 3)},
       {{kP0, 4}},
       false,
       5},
      {"end-of-partition below the position is ignored",
       {Assign(kP0, 0, 3, 0), Offer(kP0, 0), Offer(kP0, 1), Ack(kP0, 0), Ack(kP0, 1), End(kP0, 1)},
       {{kP0, 2}},
       false,
       1},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    OffsetTracker tracker;
    RunSteps(tracker, c.steps);
    EXPECT_EQ(tracker.PendingCommits(), c.commits);
    EXPECT_EQ(tracker.AllDone(), c.all_done);
    EXPECT_EQ(tracker.RemainingLag(), c.remaining_lag);
  }
}

TEST(OffsetTrackerTest, FetchCompleteOnceThePositionReachesTheEnd) {
  OffsetTracker tracker;
  tracker.Assign(kP0, 0, 2, 0);
  EXPECT_FALSE(tracker.FetchComplete(kP0));
  EXPECT_EQ(tracker.Offer(kP0, 0), Disposition::kDeliver);
  EXPECT_FALSE(tracker.FetchComplete(kP0));
  EXPECT_EQ(tracker.Offer(kP0, 1), Disposition::kDeliver);
  EXPECT_TRUE(tracker.FetchComplete(kP0));
  EXPECT_FALSE(tracker.AllDone());  // fetched, not yet acknowledged
  EXPECT_EQ(tracker.Unacknowledged(), 2);
  EXPECT_FALSE(tracker.FetchComplete(kP1));
}

TEST(OffsetTrackerTest, PendingCommitsLimitedToGivenPartitions) {
  OffsetTracker tracker;
  tracker.Assign(kP0, 0, 9, std::nullopt);
  tracker.Assign(kP1, 0, 9, std::nullopt);
  tracker.Offer(kP0, 0);
  tracker.Ack(kP0, 0);
  tracker.Offer(kP1, 0);
  tracker.Ack(kP1, 0);
  std::vector<kafka::TopicPartition> only = {kP1};
  EXPECT_THAT(tracker.PendingCommits(&only), ElementsAre(CommitOffset{kP1, 1}));
  std::vector<kafka::TopicPartition> none;
  EXPECT_THAT(tracker.PendingCommits(&none), IsEmpty());
}

TEST(OffsetTrackerTest, ProgressKeepsFirstStartAndCountsAcknowledgedRecordsAcrossAssignments) {
  OffsetTracker tracker;
  tracker.Assign(kP0, 10, 20, 10);
  tracker.Offer(kP0, 10);
  tracker.Offer(kP0, 11);
  tracker.Ack(kP0, 10);
  tracker.Ack(kP0, 11);
  tracker.Committed({{kP0, 12}});
  tracker.Revoke(kP0);
  tracker.Assign(kP0, 12, 25, 12);
  tracker.Offer(kP0, 12);
  tracker.Ack(kP0, 12);
  tracker.Ack(kP0, 12);  // a second ack of the same record counts once
  tracker.Committed({{kP0, 13}});
  PartitionProgress expected{.partition = kP0,
                             .start = 10,
                             .end = 25,
                             .committed_before = 10,
                             .committed = 13,
                             .records = 3,
                             .assigned = true};
  EXPECT_THAT(tracker.Progress(), ElementsAre(expected));
}

TEST(OffsetTrackerTest, UncommittedAcksAreThoseAtOrPastTheCommittedPosition) {
  OffsetTracker tracker;
  tracker.Assign(kP0, 0, 10, std::nullopt);
  EXPECT_FALSE(tracker.HasUncommittedAcks(kP0));  // nothing acknowledged
  tracker.Offer(kP0, 0);
  tracker.Offer(kP0, 1);
  EXPECT_FALSE(tracker.HasUncommittedAcks(kP0));  // handed out only
  tracker.Ack(kP0, 0);
  EXPECT_TRUE(tracker.HasUncommittedAcks(kP0));  // no commit at all yet
  tracker.Committed({{kP0, 1}});
  EXPECT_FALSE(tracker.HasUncommittedAcks(kP0));
  tracker.Ack(kP0, 1);
  EXPECT_TRUE(tracker.HasUncommittedAcks(kP0));
  tracker.Committed({{kP0, 2}});
  EXPECT_FALSE(tracker.HasUncommittedAcks(kP0));
  tracker.Revoke(kP0);
  EXPECT_FALSE(tracker.HasUncommittedAcks(kP0));  // unassigned
}

TEST(OffsetTrackerDeathTest, AckOfRecordNotHandedOutAborts) {
  OffsetTracker tracker;
  tracker.Assign(kP0, 0, 5, 0);
  tracker.Offer(kP0, 0);
  EXPECT_DEATH(tracker.Ack(kP0, 3), "not handed out");
}

TEST(OffsetTrackerDeathTest, AckOfRecordNeverOfferedAborts) {
  OffsetTracker tracker;
  tracker.Assign(kP0, 0, 5, 0);
  tracker.Offer(kP0, 0);
  tracker.Offer(kP0, 2);
  EXPECT_DEATH(tracker.Ack(kP0, 1), "not handed out");
}

TEST(OffsetTrackerDeathTest, AssigningAnAssignedPartitionAborts) {
  OffsetTracker tracker;
  tracker.Assign(kP0, 0, 5, 0);
  EXPECT_DEATH(tracker.Assign(kP0, 0, 5, 0), "assigned twice");
}

}  // namespace
}  // namespace klag::job
