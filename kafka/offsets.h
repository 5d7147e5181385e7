// Plain offset types shared by the scaler and the job, and the OffsetReader seam.
//
//   kafka::OffsetQuery q{.group = "python_data_load", .topics = {"ListedStockPrice"}};
//   absl::StatusOr<kafka::GroupOffsets> offsets =
//       reader.ReadOffsets(q, absl::Now() + absl::Seconds(5));
//   for (const kafka::PartitionOffsets& p : offsets->partitions) { ... }
//
// Nothing here includes librdkafka; only kafka/rdkafka_*.cc do.
#pragma once

#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace klag::kafka {

// Which end offset a partition has: the high watermark (read_uncommitted) or the last stable
// offset (read_committed), which stops before open transactions and skips aborted data.
enum class IsolationLevel { kReadUncommitted, kReadCommitted };

struct TopicPartition {
  std::string topic;
  int32_t partition = 0;

  friend auto operator<=>(const TopicPartition&, const TopicPartition&) = default;
  template <typename H>
  friend H AbslHashValue(H h, const TopicPartition& tp) {
    return H::combine(std::move(h), tp.topic, tp.partition);
  }
};

// What the cluster says about one partition for one consumer group.
struct PartitionOffsets {
  std::string topic;
  int32_t partition = 0;
  // The group's committed offset (the next offset it will read); nullopt when it has none.
  std::optional<int64_t> committed;
  // Earliest offset still in the log (retention may have deleted what came before).
  int64_t log_start = 0;
  // Offset the next produced record will get (high watermark), or the last stable offset under
  // read_committed.
  int64_t end = 0;
  // Estimated time at which the oldest record the group has not consumed was produced: when the
  // end offset moved past max(committed, log_start) (log_start without a commit), interpolated
  // from the reader's history of (end offset, time) samples. Lag in seconds is
  // GroupOffsets::committed_read_at minus this. nullopt when nothing is unconsumed
  // (that offset >= end) or the reader cannot tell (no history covers it yet, or the reader
  // keeps none).
  std::optional<absl::Time> unconsumed_since;

  friend bool operator==(const PartitionOffsets&, const PartitionOffsets&) = default;
};

struct OffsetQuery {
  std::string group;
  // Topics to report on, every partition of each. Empty: every topic for which the group has
  // committed offsets.
  std::vector<std::string> topics;
  IsolationLevel isolation = IsolationLevel::kReadUncommitted;
};

struct GroupOffsets {
  // Sorted by (topic, partition); one entry per partition of every requested topic.
  std::vector<PartitionOffsets> partitions;
  // How fresh the answer is. end_offsets_read_at: send time of the oldest ListOffsets request
  // behind the end and log-start offsets (a reader may answer from a shared snapshot: the
  // RdkafkaOffsetReader guarantees end_offsets_read_at >= arrival - end_offsets_max_age).
  // committed_read_at: send time of the OffsetFetch behind the committed offsets, never before
  // the ReadOffsets call arrived (minus the reader's committed_offsets_max_age, zero by default).
  // InfinitePast when unknown (e.g. a fake reader).
  absl::Time end_offsets_read_at = absl::InfinitePast();
  absl::Time committed_read_at = absl::InfinitePast();
};

// Reads committed, log-start and end offsets for a group. Implementations are thread-safe: one
// reader serves every trigger on its cluster concurrently.
class OffsetReader {
 public:
  virtual ~OffsetReader() = default;

  // Returns the offsets of every partition of query.topics (or of the group's committed topics),
  // or fails as a whole; never a partial answer. Returns by `deadline` at the latest.
  // Errors: kNotFound for an unknown topic (the message names it) or, with no topics given, a
  // group that has no committed offsets; kUnavailable when no broker can be reached;
  // kDeadlineExceeded when brokers are reachable but do not answer in time; kPermissionDenied
  // for authorization failures; kInvalidArgument for bad query values.
  virtual absl::StatusOr<GroupOffsets> ReadOffsets(const OffsetQuery& query,
                                                   absl::Time deadline) = 0;

  // ReadOffsets' answer when the reader can give it at once from state it already holds, with
  // the same freshness (no request sent, no wait: e.g. a fresh end offset snapshot and a
  // follower of __consumer_offsets that is caught up); nullopt otherwise, including every case
  // in which ReadOffsets would fail. Lets a caller answer on its own thread and keep
  // ReadOffsets, which blocks, for a worker. Thread-safe; never blocks on Kafka.
  virtual std::optional<GroupOffsets> TryReadOffsets(const OffsetQuery& /*query*/) {
    return std::nullopt;
  }
};

}  // namespace klag::kafka
