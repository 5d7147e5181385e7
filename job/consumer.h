// Consumer: the Job's seat in the consumer group. RdkafkaConsumer is the real one
// (job/rdkafka_consumer.h); tests use fakes.
//
//   consumer.Subscribe({"ListedStockPrice"}, &listener);   // listener gets (re)assignments
//   ASSIGN_OR_RETURN(PollResult r, consumer.Poll(500, absl::Milliseconds(100)));
//   ...deliver r.records, then...
//   RETURN_IF_ERROR(consumer.Commit({{{"ListedStockPrice", 0}, 1234}}, deadline));
//   consumer.Close(deadline);                              // leaves the group
//
// Not thread-safe: one thread calls every method; listener callbacks run inside Poll() and
// Close() on that thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "job/offset_tracker.h"
#include "job/record.h"
#include "kafka/offsets.h"

namespace klag::job {

// Where to begin on a partition without a usable committed offset (auto.offset.reset).
enum class OffsetReset { kEarliest, kLatest };

// A partition given to this member, with its offsets at that moment.
struct AssignedPartition {
  kafka::TopicPartition partition;
  // Where consumption begins: the committed offset, or the reset position (log start for
  // earliest, end for latest) when there is none or it fell below the log start.
  int64_t start = 0;
  // End offset at assignment (high watermark, or last stable offset under read_committed).
  int64_t end = 0;
  // The group's committed offset at assignment; nullopt when none.
  std::optional<int64_t> committed;

  friend bool operator==(const AssignedPartition&, const AssignedPartition&) = default;
};

// Told about assignment changes, from inside Consumer::Poll()/Close().
class RebalanceListener {
 public:
  virtual ~RebalanceListener() = default;
  // Partitions added to this member.
  virtual void OnAssigned(const std::vector<AssignedPartition>& partitions) = 0;
  // Partitions about to be taken away. Unless `lost` (the member was already evicted, so commits
  // would fail), the listener commits what it may for them now, via Consumer::Commit; once this
  // returns they are gone and records of them must not be delivered.
  virtual void OnRevoked(const std::vector<kafka::TopicPartition>& partitions, bool lost) = 0;
};

struct PollResult {
  std::vector<Record> records;
  // End-of-partition events: the consumer has returned every record below the position.
  // Applying them after `records` is correct whatever their interleaving was (an event's
  // position is never above a later record's offset).
  std::vector<std::pair<kafka::TopicPartition, int64_t>> ends;
};

class Consumer {
 public:
  virtual ~Consumer() = default;

  // Joins the group for `topics`. `listener` must outlive the consumer.
  virtual absl::Status Subscribe(const std::vector<std::string>& topics,
                                 RebalanceListener* listener) = 0;

  // Waits up to `timeout` for the first record or event, then returns what is ready, at most
  // `max_records` records. Errors are fatal for the Job: kNotFound (a subscribed topic does not
  // exist), kPermissionDenied, kUnavailable (no broker reachable for longer than the consumer's
  // Kafka timeout), or a fatal librdkafka error; transient ones are logged and retried inside.
  virtual absl::StatusOr<PollResult> Poll(int max_records, absl::Duration timeout) = 0;

  // Synchronously commits `offsets` (positions to resume from). Errors: the commit failed or did
  // not complete by `deadline` (kDeadlineExceeded).
  virtual absl::Status Commit(const std::vector<CommitOffset>& offsets, absl::Time deadline) = 0;

  // Stops fetching `partitions` (fetch-complete ones) until they are reassigned.
  virtual absl::Status Pause(const std::vector<kafka::TopicPartition>& partitions) = 0;

  // Leaves the group (revocation callbacks run first). Returns by `deadline`; kDeadlineExceeded
  // when the close did not complete in time (the group then sees the member leave when its
  // session times out).
  virtual absl::Status Close(absl::Time deadline) = 0;
};

}  // namespace klag::job
