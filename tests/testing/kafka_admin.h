// Synchronous helpers for tests that talk to a real broker (scripts/kafka.sh): create and delete
// topics, produce records (plain or in a transaction), commit offsets for a group that has no
// live members, and read back committed, log-start and end offsets for assertions. Each call
// creates its own short-lived librdkafka client and returns by its timeout.
//
//   KLAG_REQUIRE_BROKER(bootstrap);
//   const std::string topic = testing::UniqueName("orders");
//   ASSERT_TRUE(testing::CreateTopic(bootstrap, topic, 3).ok());
//   absl::StatusOr<std::vector<int64_t>> offsets = testing::Produce(bootstrap, topic, 0, 10);
//   ASSERT_TRUE(testing::CommitOffsets(bootstrap, "group", {{topic, 0, 4}}).ok());
//   EXPECT_EQ(*testing::CommittedOffsets(bootstrap, "group", topic),
//             (std::map<int32_t, int64_t>{{0, 4}}));
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "kafka/offsets.h"

namespace klag::testing {

inline constexpr absl::Duration kAdminTimeout = absl::Seconds(30);

// Creates `name` with `partitions` partitions (replication factor 1) and waits until the
// broker's metadata shows every partition with a leader. Errors: kAlreadyExists, or the mapped
// librdkafka error.
absl::Status CreateTopic(const std::string& bootstrap, const std::string& name, int partitions,
                         absl::Duration timeout = kAdminTimeout);

// Deletes `name` and waits until metadata no longer lists it. Errors: kNotFound for an unknown
// topic, or the mapped librdkafka error.
absl::Status DeleteTopic(const std::string& bootstrap, const std::string& name,
                         absl::Duration timeout = kAdminTimeout);

// Produces `count` records of `value_size` bytes to one partition (acks=all, idempotent) and
// returns their offsets in order.
absl::StatusOr<std::vector<int64_t>> Produce(const std::string& bootstrap, const std::string& topic,
                                             int32_t partition, int count, size_t value_size = 16,
                                             absl::Duration timeout = kAdminTimeout);

// Same with explicit record values.
absl::StatusOr<std::vector<int64_t>> Produce(const std::string& bootstrap, const std::string& topic,
                                             int32_t partition,
                                             const std::vector<std::string>& values,
                                             absl::Duration timeout = kAdminTimeout);

// Produces one record per timestamp, each with that CreateTime (millisecond precision), and
// returns their offsets in order.
absl::StatusOr<std::vector<int64_t>> ProduceWithTimestamps(
    const std::string& bootstrap, const std::string& topic, int32_t partition,
    const std::vector<absl::Time>& timestamps, absl::Duration timeout = kAdminTimeout);

enum class TransactionEnd { kCommit, kAbort };

// Produces `count` records to one partition in one transaction, then commits or aborts it.
// Returns the data records' offsets; the transaction marker takes the offset after the last one.
absl::StatusOr<std::vector<int64_t>> ProduceTransactional(const std::string& bootstrap,
                                                          const std::string& topic,
                                                          int32_t partition, int count,
                                                          TransactionEnd end,
                                                          absl::Duration timeout = kAdminTimeout);

// A transaction kept open for as long as the object lives, so tests can look at the last stable
// offset while it is open. The destructor aborts a transaction still open. Not thread-safe.
class OpenTransaction {
 public:
  // Starts a transactional producer (unique transactional.id) and begins a transaction.
  static absl::StatusOr<std::unique_ptr<OpenTransaction>> Begin(
      const std::string& bootstrap, absl::Duration timeout = kAdminTimeout);
  ~OpenTransaction();
  OpenTransaction(const OpenTransaction&) = delete;
  OpenTransaction& operator=(const OpenTransaction&) = delete;

  // Produces `count` records and waits until they are written (in the log, not yet committed).
  absl::StatusOr<std::vector<int64_t>> Produce(const std::string& topic, int32_t partition,
                                               int count, size_t value_size = 16,
                                               absl::Duration timeout = kAdminTimeout);
  // Both return once the transaction's markers are in the log of every partition it wrote to
  // (the broker answers EndTxn before it writes them).
  absl::Status Commit(absl::Duration timeout = kAdminTimeout);
  absl::Status Abort(absl::Duration timeout = kAdminTimeout);

  struct Impl;

 private:
  explicit OpenTransaction(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

struct CommitEntry {
  std::string topic;
  int32_t partition = 0;
  int64_t offset = 0;
};

// Commits `offsets` for `group`, which must have no live members (admin
// AlterConsumerGroupOffsets, i.e. an OffsetCommit outside any generation). Errors: a per-partition
// error (e.g. kNotFound for an unknown partition) or the mapped librdkafka error.
absl::Status CommitOffsets(const std::string& bootstrap, const std::string& group,
                           const std::vector<CommitEntry>& offsets,
                           absl::Duration timeout = kAdminTimeout);

// Deletes `group` (which must have no live members) with its committed offsets: the coordinator
// writes tombstones for them. Errors: the group's error (e.g. kNotFound) or the mapped librdkafka
// error.
absl::Status DeleteGroup(const std::string& bootstrap, const std::string& group,
                         absl::Duration timeout = kAdminTimeout);

// The group's committed offsets for every partition of `topic` that has one (partitions without
// a commit are absent).
absl::StatusOr<std::map<int32_t, int64_t>> CommittedOffsets(const std::string& bootstrap,
                                                            const std::string& group,
                                                            const std::string& topic,
                                                            absl::Duration timeout = kAdminTimeout);

// End offset of every partition of `topic`: the high watermark, or the last stable offset under
// read_committed.
absl::StatusOr<std::map<int32_t, int64_t>> EndOffsets(
    const std::string& bootstrap, const std::string& topic,
    kafka::IsolationLevel isolation = kafka::IsolationLevel::kReadUncommitted,
    absl::Duration timeout = kAdminTimeout);

// Log-start offset of every partition of `topic`.
absl::StatusOr<std::map<int32_t, int64_t>> LogStartOffsets(const std::string& bootstrap,
                                                           const std::string& topic,
                                                           absl::Duration timeout = kAdminTimeout);

// Deletes the records of one partition below `offset` (admin DeleteRecords), moving its log
// start to `offset`, as retention would.
absl::Status DeleteRecordsBefore(const std::string& bootstrap, const std::string& topic,
                                 int32_t partition, int64_t offset,
                                 absl::Duration timeout = kAdminTimeout);

}  // namespace klag::testing
