#include "job/drain.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"

namespace klag::job {
namespace {

using ::testing::AnyOf;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using Tp = kafka::TopicPartition;

const Tp kP0{"t", 0};
const Tp kP1{"t", 1};

// Offsets the sink acknowledged, shared by the fakes so the consumer can check every commit. The
// sink runs on the Drainer's courier thread, the consumer on the test's.
class Acked {
 public:
  void Add(const Tp& tp, int64_t offset) {
    absl::MutexLock lock(&mu_);
    offsets_[tp].insert(offset);
  }
  std::set<int64_t> Of(const Tp& tp) {
    absl::MutexLock lock(&mu_);
    auto it = offsets_.find(tp);
    return it == offsets_.end() ? std::set<int64_t>() : it->second;
  }

 private:
  absl::Mutex mu_;
  std::map<Tp, std::set<int64_t>> offsets_ ABSL_GUARDED_BY(mu_);
};

struct FakePartition {
  int64_t start = 0;
  int64_t end = 0;
  std::optional<int64_t> committed;
  std::vector<int64_t> offsets;         // what the log returns, in order (may pass `end`)
  std::optional<int64_t> eof_position;  // end-of-partition event after the offsets
};

// A consumer that assigns every configured partition at the first Poll and returns their records
// in order, honouring Pause. Commits are checked against the acknowledged offsets: committing a
// position P is legal only if every delivered-eligible record below P was acknowledged.
class FakeConsumer final : public Consumer {
 public:
  FakeConsumer(std::map<Tp, FakePartition> partitions, Acked& acked)
      : partitions_(std::move(partitions)), acked_(acked) {}

  absl::Status Subscribe(const std::vector<std::string>&, RebalanceListener* listener) override {
    listener_ = listener;
    return absl::OkStatus();
  }

  absl::StatusOr<PollResult> Poll(int max_records, absl::Duration timeout) override {
    ++polls;
    if (before_poll) before_poll(*this);
    if (!assigned_) {
      assigned_ = true;
      std::vector<AssignedPartition> a;
      for (auto& [tp, p] : partitions_) a.push_back({tp, p.start, p.end, p.committed});
      if (!a.empty()) listener_->OnAssigned(a);
    }
    PollResult r;
    for (auto& [tp, p] : partitions_) {
      if (paused.contains(tp) || revoked.contains(tp)) continue;
      size_t& next = next_[tp];
      while (next < p.offsets.size() && static_cast<int>(r.records.size()) < max_records) {
        r.records.push_back({.topic = tp.topic,
                             .partition = tp.partition,
                             .offset = p.offsets[next++],
                             .value = "v"});
        highest_returned = std::max<int64_t>(highest_returned.load(), r.records.back().offset);
      }
      if (next == p.offsets.size() && p.eof_position.has_value() && !eof_sent_[tp]) {
        eof_sent_[tp] = true;
        r.ends.push_back({tp, *p.eof_position});
      }
    }
    if (r.records.empty() && r.ends.empty()) {
      std::this_thread::sleep_for(
          absl::ToChronoMilliseconds(std::min(timeout, absl::Milliseconds(5))));
    }
    return r;
  }

  absl::Status Commit(const std::vector<CommitOffset>& offsets, absl::Time) override {
    for (const CommitOffset& c : offsets) {
      const FakePartition& p = partitions_.at(c.partition);
      const std::set<int64_t> acked = acked_.Of(c.partition);
      for (int64_t o : p.offsets) {
        if (o < c.offset && o < p.end && o >= p.start) {
          EXPECT_TRUE(acked.contains(o)) << "commit of " << c.partition.partition << "@" << c.offset
                                         << " before " << o << " was acknowledged";
        }
      }
    }
    commits.push_back(offsets);
    if (!commit_error.ok()) return commit_error;
    for (const CommitOffset& c : offsets) committed[c.partition] = c.offset;
    return absl::OkStatus();
  }

  absl::Status Pause(const std::vector<Tp>& tps) override {
    for (const Tp& tp : tps) paused.insert(tp);
    return absl::OkStatus();
  }

  absl::Status Close(absl::Time) override {
    std::vector<Tp> still;
    for (auto& [tp, p] : partitions_) {
      if (!revoked.contains(tp)) still.push_back(tp);
    }
    if (assigned_ && !still.empty()) listener_->OnRevoked(still, false);
    closed = true;
    return absl::OkStatus();
  }

  // Takes `tp` away (as a rebalance would, or as an eviction: `lost`), from inside Poll.
  void Revoke(const Tp& tp, bool lost = false) {
    revoked.insert(tp);
    listener_->OnRevoked({tp}, lost);
  }

  std::function<void(FakeConsumer&)> before_poll;
  std::atomic<int> polls{0};
  std::atomic<int64_t> highest_returned{-1};  // offset of the last record Poll returned
  std::vector<std::vector<CommitOffset>> commits;
  std::map<Tp, int64_t> committed;
  std::set<Tp> paused;
  std::set<Tp> revoked;
  absl::Status commit_error;
  bool closed = false;

 private:
  std::map<Tp, FakePartition> partitions_;
  Acked& acked_;
  RebalanceListener* listener_ = nullptr;
  bool assigned_ = false;
  std::map<Tp, size_t> next_;
  std::map<Tp, bool> eof_sent_;
};

class FakeSink final : public Sink {
 public:
  explicit FakeSink(Acked& acked) : acked_(acked) {}
  absl::Status Write(absl::Span<const Record> records, const WriteContext& context) override {
    ++writes;
    absl::Status s = answer ? answer(records, context) : absl::OkStatus();
    if (s.ok()) {
      for (const Record& r : records) {
        acked_.Add(r.Partition(), r.offset);
        delivered.push_back({r.Partition(), r.offset});
      }
    }
    return s;
  }
  std::function<absl::Status(absl::Span<const Record>, const WriteContext&)> answer;
  std::vector<std::pair<Tp, int64_t>> delivered;  // read it after Run
  std::atomic<int> writes{0};

 private:
  Acked& acked_;
};

std::vector<int64_t> Range(int64_t from, int64_t to) {
  std::vector<int64_t> out;
  for (int64_t o = from; o < to; ++o) out.push_back(o);
  return out;
}

DrainOptions Fast() {
  return {.topics = {"t"},
          .batch_size = 4,
          .batch_linger = absl::Milliseconds(1),
          .commit_interval = absl::Hours(1),
          .assignment_timeout = absl::Seconds(5),
          .shutdown_timeout = absl::Seconds(2),
          .progress_interval = absl::Hours(1)};
}

struct Harness {
  Acked acked;
  FakeSink sink{acked};
  std::atomic<bool> stop{false};
  std::vector<absl::Duration> sleeps;
  Delivery delivery;
  FakeConsumer consumer;
  Harness(std::map<Tp, FakePartition> partitions, DeliveryOptions delivery_options = {})
      : delivery(sink, nullptr, delivery_options,
                 [this](absl::Duration d) {
                   sleeps.push_back(d);
                   return !stop.load();
                 }),
        consumer(std::move(partitions), acked) {}
  DrainReport Run(DrainOptions options) {
    Drainer drainer(consumer, delivery, stop, std::move(options));
    return drainer.Run();
  }
};

TEST(DrainerTest, DrainsEachPartitionToItsEndOffsetAndCommitsExactlyThere) {
  Harness h(
      {{kP0, {.start = 0, .end = 10, .offsets = Range(0, 12)}},  // 10, 11: produced later
       {kP1, {.start = 5, .end = 8, .committed = 5, .offsets = Range(5, 8), .eof_position = 8}}});
  DrainReport report = h.Run(Fast());
  EXPECT_EQ(report.reason, ExitReason::kDrained) << report.error;
  EXPECT_EQ(ExitCode(report.reason), 0);
  EXPECT_EQ(report.records, 13);
  const std::vector<int64_t> first_ten = Range(0, 10);
  EXPECT_EQ(h.acked.Of(kP0), std::set<int64_t>(first_ten.begin(), first_ten.end()));
  EXPECT_EQ(h.acked.Of(kP1), (std::set<int64_t>{5, 6, 7}));
  EXPECT_EQ(h.sink.delivered.size(), 13u) << "each record exactly once";
  EXPECT_EQ(h.consumer.committed, (std::map<Tp, int64_t>{{kP0, 10}, {kP1, 8}}));
  EXPECT_TRUE(h.consumer.paused.contains(kP0));
  EXPECT_TRUE(h.consumer.closed);
  ASSERT_EQ(report.partitions.size(), 2u);
  EXPECT_EQ(report.partitions[0].committed, 10);
  EXPECT_EQ(report.partitions[1].committed_before, 5);
  EXPECT_EQ(report.partitions[1].committed, 8);
}

TEST(DrainerTest, TransactionMarkerIsSteppedOverByTheEndOfPartitionPosition) {
  // Records 0..2, commit marker at 3, end offset 4.
  Harness h({{kP0, {.start = 0, .end = 4, .offsets = {0, 1, 2}, .eof_position = 4}}});
  DrainReport report = h.Run(Fast());
  EXPECT_EQ(report.reason, ExitReason::kDrained);
  EXPECT_EQ(h.consumer.committed.at(kP0), 4);
}

TEST(DrainerTest, WithoutEndOfPartitionAPartitionShortOfItsEndIsNotDrained) {
  // The marker at 3 is never stepped over: the Job must not claim to be drained.
  Harness h({{kP0, {.start = 0, .end = 4, .offsets = {0, 1, 2}}}});
  DrainOptions options = Fast();
  options.max_duration = absl::Milliseconds(300);
  DrainReport report = h.Run(options);
  EXPECT_EQ(report.reason, ExitReason::kMaxDuration);
  EXPECT_EQ(ExitCode(report.reason), 3);
  EXPECT_EQ(h.consumer.committed.at(kP0), 3);
}

TEST(DrainerTest, NoLagOnTheAssignedPartitionsExitsWithoutDelivering) {
  Harness h({{kP0, {.start = 7, .end = 7, .committed = 7}}});
  DrainReport report = h.Run(Fast());
  EXPECT_EQ(report.reason, ExitReason::kDrained);
  EXPECT_EQ(h.sink.writes, 0);
  EXPECT_THAT(h.consumer.commits, IsEmpty());
}

TEST(DrainerTest, FailedBatchIsNotCommittedButEarlierBatchesAre) {
  Harness h({{kP0, {.start = 0, .end = 12, .offsets = Range(0, 12)}}}, {.max_attempts = 2});
  h.sink.answer = [](absl::Span<const Record> records, const WriteContext&) {
    for (const Record& r : records) {
      if (r.offset == 9) return absl::InvalidArgumentError("handler exited 1");
    }
    return absl::OkStatus();
  };
  DrainReport report = h.Run(Fast());
  EXPECT_EQ(report.reason, ExitReason::kFailed);
  EXPECT_EQ(ExitCode(report.reason), 1);
  EXPECT_EQ(report.error.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(report.records, 8);
  EXPECT_EQ(h.consumer.committed.at(kP0), 8);  // batches [0..3] and [4..7]; [8..11] failed
  EXPECT_EQ(h.sink.writes, 4);                 // 2 good + 2 attempts of the bad one
}

TEST(DrainerTest, StopSignalEndsTheRunWithAcknowledgedWorkCommitted) {
  Harness h({{kP0, {.start = 0, .end = 100, .offsets = Range(0, 100)}}});
  h.sink.answer = [&](absl::Span<const Record>, const WriteContext&) {
    if (h.sink.writes == 2) h.stop = true;  // SIGTERM arrives during the second batch
    return absl::OkStatus();
  };
  DrainReport report = h.Run(Fast());
  EXPECT_EQ(report.reason, ExitReason::kSignal);
  EXPECT_EQ(ExitCode(report.reason), 3);
  EXPECT_EQ(report.records, 8);
  EXPECT_EQ(h.consumer.committed.at(kP0), 8);
  EXPECT_TRUE(h.consumer.closed);
}

TEST(DrainerTest, BatchStillRunningLateInTheShutdownIsAbandonedAndNotCommitted) {
  Harness h({{kP0, {.start = 0, .end = 100, .offsets = Range(0, 100)}}});
  h.sink.answer = [&](absl::Span<const Record>, const WriteContext& context) {
    if (h.sink.writes == 1) return absl::OkStatus();
    h.stop = true;  // stop arrives; this batch hangs until told to abandon
    while (!context.ShouldAbandon()) absl::SleepFor(absl::Milliseconds(5));
    return absl::CancelledError("abandoned");
  };
  DrainOptions options = Fast();
  options.shutdown_timeout = absl::Seconds(2);
  const absl::Time start = absl::Now();
  DrainReport report = h.Run(options);
  const absl::Duration took = absl::Now() - start;
  EXPECT_EQ(report.reason, ExitReason::kSignal);
  EXPECT_EQ(h.consumer.committed.at(kP0), 4);
  EXPECT_GE(took, absl::Seconds(1));  // half the shutdown budget for the batch
  EXPECT_LT(took, absl::Seconds(2));
}

TEST(DrainerTest, MaxRecordsDeliversExactlyThatManyAndCommitsThere) {
  Harness h({{kP0, {.start = 0, .end = 20, .offsets = Range(0, 20)}}});
  DrainOptions options = Fast();
  options.max_records = 6;
  DrainReport report = h.Run(options);
  EXPECT_EQ(report.reason, ExitReason::kMaxRecords);
  EXPECT_EQ(report.records, 6);
  EXPECT_EQ(h.sink.delivered.size(), 6u);
  EXPECT_EQ(h.consumer.committed.at(kP0), 6);
}

TEST(DrainerTest, NothingAssignedExitsZeroAfterTheAssignmentTimeout) {
  Harness h({});
  DrainOptions options = Fast();
  options.assignment_timeout = absl::Milliseconds(300);
  const absl::Time start = absl::Now();
  DrainReport report = h.Run(options);
  EXPECT_EQ(report.reason, ExitReason::kNothingAssigned);
  EXPECT_EQ(ExitCode(report.reason), 0);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(300));
}

TEST(DrainerTest, RevokedPartitionIsCommittedOnTheWayOutAndNotDeliveredAfter) {
  Harness h({{kP0, {.start = 0, .end = 8, .offsets = Range(0, 8), .eof_position = 8}},
             {kP1, {.start = 0, .end = 8, .offsets = Range(0, 8)}}});
  DrainOptions options = Fast();
  options.batch_size = 2;
  h.consumer.before_poll = [&](FakeConsumer& c) {
    // Once the first batch is in the sink, P1 moves to another member.
    if (h.sink.writes >= 1 && !c.revoked.contains(kP1)) c.Revoke(kP1);
  };
  DrainReport report = h.Run(options);
  EXPECT_EQ(report.reason, ExitReason::kDrained) << report.error;
  int64_t p1_delivered = 0;
  for (const auto& [tp, offset] : h.sink.delivered) p1_delivered += tp == kP1 ? 1 : 0;
  // What P1 had acknowledged when revoked was committed; nothing of it was delivered later.
  ASSERT_TRUE(h.consumer.committed.contains(kP1));
  EXPECT_EQ(h.consumer.committed.at(kP1), p1_delivered);
  EXPECT_EQ(h.consumer.committed.at(kP0), 8);
}

TEST(DrainerTest, LosingAPartitionWithUncommittedAcksIsAFailure) {
  Harness h({{kP1, {.start = 0, .end = 8, .offsets = Range(0, 8)}}});
  DrainOptions options = Fast();
  options.batch_size = 2;
  options.assignment_timeout = absl::Milliseconds(200);
  h.consumer.before_poll = [&](FakeConsumer& c) {
    // Once the first batch is in the sink, the member is evicted: P1 is lost uncommitted.
    if (h.sink.writes >= 1 && !c.revoked.contains(kP1)) c.Revoke(kP1, /*lost=*/true);
  };
  DrainReport report = h.Run(options);
  // The first batch, and the second when it was already in the sink as P1 was lost (the
  // Drainer lets it finish: pipelining).
  EXPECT_THAT(h.sink.delivered.size(), AnyOf(2u, 4u));
  EXPECT_EQ(report.reason, ExitReason::kFailed);
  EXPECT_EQ(report.error.code(), absl::StatusCode::kAborted) << report.error;
  EXPECT_THAT(h.consumer.commits, IsEmpty()) << "no commit for a lost partition";
}

TEST(DrainerTest, RevokingAPartitionWhoseCommitFailsIsAFailure) {
  Harness h({{kP0, {.start = 0, .end = 8, .offsets = Range(0, 8)}}});
  DrainOptions options = Fast();
  options.batch_size = 2;
  options.assignment_timeout = absl::Milliseconds(200);
  h.consumer.before_poll = [&](FakeConsumer& c) {
    if (h.sink.writes >= 1 && !c.revoked.contains(kP0)) {
      c.commit_error = absl::UnavailableError("coordinator moved");
      c.Revoke(kP0);
    }
  };
  DrainReport report = h.Run(options);
  EXPECT_EQ(report.reason, ExitReason::kFailed);
  EXPECT_EQ(report.error.code(), absl::StatusCode::kAborted) << report.error;
}

TEST(DrainerTest, PeriodicCommitsHappenDuringALongDrain) {
  Harness h({{kP0, {.start = 0, .end = 40, .offsets = Range(0, 40)}}});
  h.sink.answer = [](absl::Span<const Record>, const WriteContext&) {
    absl::SleepFor(absl::Milliseconds(20));
    return absl::OkStatus();
  };
  DrainOptions options = Fast();
  options.commit_interval = absl::Milliseconds(50);
  DrainReport report = h.Run(options);
  EXPECT_EQ(report.reason, ExitReason::kDrained);
  EXPECT_GE(h.consumer.commits.size(), 3u);
  // Committed positions only grow.
  int64_t last = -1;
  for (const auto& commit : h.consumer.commits) {
    ASSERT_EQ(commit.size(), 1u);
    EXPECT_GT(commit[0].offset, last);
    last = commit[0].offset;
  }
  EXPECT_EQ(last, 40);
}

TEST(DrainerTest, NextBatchIsReadWhileTheSinkWritesOneAndBatchesStayInOrder) {
  Harness h({{kP0, {.start = 0, .end = 40, .offsets = Range(0, 40), .eof_position = 40}}});
  std::atomic<int> in_sink{0};
  std::atomic<int> overlapping{0};
  std::atomic<int> next_batch_read_meanwhile{0};
  h.sink.answer = [&](absl::Span<const Record> records, const WriteContext&) {
    if (in_sink.fetch_add(1) != 0) overlapping.fetch_add(1);
    // Hold each batch but the last until the consumer's thread has read the whole next batch
    // (bounded: 2 s).
    const int64_t next_last = records.back().offset + 8;
    if (next_last < 40) {
      for (int i = 0; i < 400 && h.consumer.highest_returned.load() < next_last; ++i) {
        absl::SleepFor(absl::Milliseconds(5));
      }
      if (h.consumer.highest_returned.load() >= next_last) next_batch_read_meanwhile.fetch_add(1);
    }
    in_sink.fetch_sub(1);
    return absl::OkStatus();
  };
  DrainOptions options = Fast();
  options.batch_size = 8;
  options.batch_linger = absl::Seconds(5);  // batches of exactly 8
  DrainReport report = h.Run(options);
  EXPECT_EQ(report.reason, ExitReason::kDrained) << report.error;
  EXPECT_EQ(report.records, 40);
  EXPECT_EQ(h.sink.writes, 5);
  EXPECT_EQ(overlapping.load(), 0) << "one batch in the sink at a time";
  EXPECT_EQ(next_batch_read_meanwhile.load(), 4);
  ASSERT_EQ(h.sink.delivered.size(), 40u);
  for (size_t i = 0; i < h.sink.delivered.size(); ++i) {
    EXPECT_EQ(h.sink.delivered[i].second, static_cast<int64_t>(i)) << "in order";
  }
  EXPECT_EQ(h.consumer.committed.at(kP0), 40);
}

TEST(DrainerTest, RevocationWaitsForTheBatchInTheSinkAndCommitsWhatItAcknowledged) {
  Harness h({{kP0, {.start = 0, .end = 40, .offsets = Range(0, 40)}}});
  std::atomic<bool> in_sink{false};
  h.sink.answer = [&](absl::Span<const Record>, const WriteContext&) {
    in_sink = true;
    absl::SleepFor(absl::Milliseconds(200));
    in_sink = false;
    return absl::OkStatus();
  };
  DrainOptions options = Fast();
  options.assignment_timeout = absl::Milliseconds(200);
  bool revoked_during_write = false;
  h.consumer.before_poll = [&](FakeConsumer& c) {
    if (in_sink && !c.revoked.contains(kP0)) {
      revoked_during_write = true;
      c.Revoke(kP0);
    }
  };
  DrainReport report = h.Run(options);
  EXPECT_EQ(report.reason, ExitReason::kNothingAssigned) << report.error;
  ASSERT_TRUE(revoked_during_write);
  // The revocation waited for the batch in the sink and committed everything acknowledged; no
  // record of P0 went to the sink after that.
  ASSERT_FALSE(h.consumer.commits.empty());
  const auto delivered = static_cast<int64_t>(h.sink.delivered.size());
  EXPECT_GE(delivered, 4);  // whole batches: those before the revocation and the one it met
  EXPECT_EQ(delivered % 4, 0);
  EXPECT_THAT(h.consumer.commits[0], ElementsAre(CommitOffset{kP0, delivered}));
  EXPECT_EQ(h.consumer.commits.size(), 1u);
  EXPECT_EQ(report.records, delivered);
}

TEST(DrainerTest, FailedFinalCommitIsAFailure) {
  Harness h({{kP0, {.start = 0, .end = 4, .offsets = Range(0, 4)}}});
  h.consumer.commit_error = absl::UnavailableError("coordinator gone");
  DrainReport report = h.Run(Fast());
  EXPECT_EQ(report.reason, ExitReason::kFailed);
  EXPECT_EQ(report.error.code(), absl::StatusCode::kUnavailable);
}

TEST(ExitCodeTest, Table) {
  EXPECT_EQ(ExitCode(ExitReason::kDrained), 0);
  EXPECT_EQ(ExitCode(ExitReason::kNoWork), 0);
  EXPECT_EQ(ExitCode(ExitReason::kNothingAssigned), 0);
  EXPECT_EQ(ExitCode(ExitReason::kSignal), 3);
  EXPECT_EQ(ExitCode(ExitReason::kMaxRecords), 3);
  EXPECT_EQ(ExitCode(ExitReason::kMaxDuration), 3);
  EXPECT_EQ(ExitCode(ExitReason::kFailed), 1);
}

}  // namespace
}  // namespace klag::job
