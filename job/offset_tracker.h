// OffsetTracker: which offsets a Job may commit. Pure bookkeeping, no Kafka, no clock.
//
// The consume loop tells it what the consumer returned and what the sink acknowledged; it answers
// which position per partition is safe to commit (at-least-once: everything below the position
// was acknowledged) and whether every assigned partition is drained up to the end offset it had
// when it was assigned.
//
//   OffsetTracker tracker;
//   tracker.Assign({"prices", 0}, /*start=*/100, /*end=*/103, /*committed=*/100);
//   tracker.Offer({"prices", 0}, 100);         // kDeliver: hand it to the sink
//   tracker.Offer({"prices", 0}, 101);         // kDeliver
//   tracker.Ack({"prices", 0}, 100);
//   tracker.PendingCommits();                  // {{"prices", 0}, 101}
//   tracker.Ack({"prices", 0}, 101);
//   tracker.ReachedEnd({"prices", 0}, 103);    // 102 was a transaction marker
//   tracker.AllDone();                         // true; PendingCommits() == {{"prices", 0}, 103}
//
// Positions, not "last offset + 1": on topics written by transactional producers the log holds
// control records the consumer never returns. When a partition is fully acknowledged the tracker
// commits the consumer's position (from end-of-partition events or from the first record at or
// past the end offset), which steps over those markers, so the group's lag reaches 0.
//
// Not thread-safe: owned by the consume loop.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <vector>

#include "kafka/offsets.h"

namespace klag::job {

// A position to commit: the offset the group resumes from on `partition`.
struct CommitOffset {
  kafka::TopicPartition partition;
  int64_t offset = 0;

  friend bool operator==(const CommitOffset&, const CommitOffset&) = default;
};

// What the Job did on one partition, for the summary.
struct PartitionProgress {
  kafka::TopicPartition partition;
  // Where this Job started reading (the position at first assignment).
  int64_t start = 0;
  // The end offset when the partition was (last) assigned: the Job's work ends there.
  int64_t end = 0;
  // The group's committed offset before this Job, and the last one this Job committed.
  std::optional<int64_t> committed_before;
  std::optional<int64_t> committed;
  // Records acknowledged by the sink.
  int64_t records = 0;
  bool assigned = false;

  friend bool operator==(const PartitionProgress&, const PartitionProgress&) = default;
};

class OffsetTracker {
 public:
  // What to do with a record the consumer returned.
  enum class Disposition {
    kDeliver,      // below the end offset: hand it to the sink, then Ack() it
    kBeyondEnd,    // at or past the end offset: belongs to the next Job; do not deliver
    kStale,        // below the position already reached (a redelivery): drop it
    kNotAssigned,  // the partition is not assigned (revoked meanwhile): drop it
  };

  // A partition was assigned. `start` is the position the consumer begins at, `end` the end
  // offset at assignment (records at or past it are left for the next Job), `committed` the
  // group's committed offset at that time. A partition with start >= end is drained at once.
  // Re-assigning a revoked partition starts over from the new values; its record count and
  // first start are kept for the summary. Assigning an assigned partition aborts.
  void Assign(const kafka::TopicPartition& partition, int64_t start, int64_t end,
              std::optional<int64_t> committed);

  // The partition was revoked or lost. Records handed out for it and not yet acknowledged are
  // forgotten (the next owner reads them again). Unknown partitions are ignored.
  void Revoke(const kafka::TopicPartition& partition);

  // The consumer returned the record at `offset`. Offsets of one partition must be offered in
  // increasing order (kStale otherwise). kBeyondEnd also moves the position to `offset`, which
  // completes fetching of the partition.
  Disposition Offer(const kafka::TopicPartition& partition, int64_t offset);

  // The consumer reached the end of the partition's log: it has returned every record below
  // `position`. Ignored for unassigned partitions, for positions below the current one and once
  // the partition is fetch-complete (the position then rests on a record left undelivered).
  void ReachedEnd(const kafka::TopicPartition& partition, int64_t position);

  // The sink acknowledged the record at `offset` (handed out by Offer). Acknowledgements may
  // come in any order and are idempotent. Acknowledging a record at or past the first
  // unacknowledged one that was not handed out aborts.
  void Ack(const kafka::TopicPartition& partition, int64_t offset);

  // True when the consumer has returned everything below the end offset of `partition`, so
  // fetching it can stop. False for unassigned partitions.
  bool FetchComplete(const kafka::TopicPartition& partition) const;

  // True when every assigned partition is fetch-complete and fully acknowledged. True with no
  // partition assigned.
  bool AllDone() const;

  // True when every assigned partition is fetch-complete (nothing left to read; some records may
  // still await their ack). True with no partition assigned.
  bool AllFetchComplete() const;

  bool IsAssigned(const kafka::TopicPartition& partition) const;

  // Number of assigned partitions.
  int AssignedCount() const;

  // For each assigned partition, the safe position (the first record not yet acknowledged, or
  // the consumer's position when everything is acknowledged) when it is past what the group has
  // committed. Sorted by partition. `only` limits the answer to those partitions when given.
  std::vector<CommitOffset> PendingCommits(
      const std::vector<kafka::TopicPartition>* only = nullptr) const;

  // Records that `offsets` were committed (after the commit succeeded).
  void Committed(const std::vector<CommitOffset>& offsets);

  // True when `partition` (assigned) has acknowledged records at or past its committed position:
  // work that the group would hand out again if the partition went away now.
  bool HasUncommittedAcks(const kafka::TopicPartition& partition) const;

  // Records still to consume: over assigned partitions, the sum of max(0, end - position).
  int64_t RemainingLag() const;

  // Records handed out and not yet acknowledged, over all assigned partitions.
  int64_t Unacknowledged() const;

  // One entry per partition ever assigned, sorted by partition.
  std::vector<PartitionProgress> Progress() const;

 private:
  struct Pending {
    int64_t offset;
    bool acked;
  };
  struct State {
    PartitionProgress progress;
    // The consumer has returned every record below this offset.
    int64_t position = 0;
    // Records handed out, in offset order; the acknowledged prefix is popped eagerly, so the
    // front (when any) is the first unacknowledged record.
    std::deque<Pending> pending;
    // Last position the group holds (committed before the Job or by it).
    std::optional<int64_t> committed;
    // Highest acknowledged offset since the (last) assignment.
    std::optional<int64_t> max_acked;
  };

  State* Find(const kafka::TopicPartition& partition);
  const State* Find(const kafka::TopicPartition& partition) const;
  static int64_t SafePosition(const State& state);

  std::map<kafka::TopicPartition, State> partitions_;
};

}  // namespace klag::job
