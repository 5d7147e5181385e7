// The records of Kafka's internal `__consumer_offsets` topic that carry committed offsets, and a
// table of the latest committed offset per (group, topic, partition) built from them: the state
// behind klag-scaler's `--committed-offsets-source offsets-topic` (the way Burrow reads commits),
// kept up to date by kafka/rdkafka_offsets_topic.h. Pure: no librdkafka, no clock.
//
//   absl::StatusOr<std::optional<kafka::OffsetCommitRecord>> record =
//       kafka::ParseOffsetsTopicRecord(key, value);  // value nullopt: a tombstone
//   kafka::CommittedOffsetsTable table({.max_entries = 200000});
//   if (record.ok() && record->has_value()) table.Apply(**record);
//   absl::flat_hash_map<kafka::TopicPartition, int64_t> offsets = table.Group("billing", nullptr);
//
// Record layout, from the broker's generated schemas (Kafka 4.4's group coordinator jar,
// OffsetCommitKey / OffsetCommitValue; the same fields as Kafka 2.x-3.x's GroupMetadataManager):
//   key   = int16 version, then for versions 0 and 1 (an offset commit):
//           group (int16-length string), topic (string), partition (int32);
//           version 2 is group metadata, 3 and up are the KIP-848 / share / streams group
//           records: none of them carries an offset and all are skipped.
//   value = int16 version (0-4), offset (int64), leader epoch (int32, version 3+), metadata
//           (string; from version 4 a compact string: unsigned varint length + 1), commit
//           timestamp (int64), expire timestamp (int64, version 1 only), tagged fields
//           (version 4+). A null value is a tombstone: the offset was deleted (the group was
//           deleted, or its offsets expired).
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "kafka/offsets.h"

namespace klag::kafka {

inline constexpr absl::string_view kOffsetsTopic = "__consumer_offsets";

// One committed offset as written by the group coordinator.
struct OffsetCommitRecord {
  std::string group;
  TopicPartition partition;
  // The committed offset; nullopt for a tombstone (the commit was deleted).
  std::optional<int64_t> offset;
  // Commit time in milliseconds since the epoch (0 for a tombstone).
  int64_t commit_timestamp_ms = 0;

  friend bool operator==(const OffsetCommitRecord&, const OffsetCommitRecord&) = default;
};

// Parses one `__consumer_offsets` record. Returns nullopt for a record that carries no
// committed offset (group metadata and the newer group record types, skipped by key version).
// Errors: kInvalidArgument naming what is malformed (truncated field, negative length, unknown
// value version of an offset commit, bytes left over).
absl::StatusOr<std::optional<OffsetCommitRecord>> ParseOffsetsTopicRecord(
    absl::string_view key, std::optional<absl::string_view> value);

// Entries every CommittedOffsetsTable sharing it may hold together (a process-wide memory bound
// over all clusters). Thread-safe.
class CommitBudget {
 public:
  explicit CommitBudget(int64_t max_entries) : max_(max_entries) {}
  // Takes one entry; false (nothing taken) when all are in use.
  bool Take() {
    int64_t used = used_.load();
    do {
      if (used >= max_) return false;
    } while (!used_.compare_exchange_weak(used, used + 1));
    return true;
  }
  void Give(int64_t n) { used_.fetch_sub(n); }
  int64_t used() const { return used_.load(); }
  int64_t max() const { return max_; }

 private:
  const int64_t max_;
  std::atomic<int64_t> used_{0};
};

// The latest committed offset per (group, topic, partition), as of the records applied so far.
// Not thread-safe (its owner locks).
class CommittedOffsetsTable {
 public:
  struct Options {
    // Most (group, topic, partition) entries kept; Apply refuses to grow past it.
    int64_t max_entries = 200'000;
    // Shared with other tables (may be null); Apply also refuses to grow when it is used up.
    // Must outlive the table.
    CommitBudget* budget = nullptr;
  };

  explicit CommittedOffsetsTable(Options options) : options_(options) {}
  ~CommittedOffsetsTable() { Clear(); }
  CommittedOffsetsTable(const CommittedOffsetsTable&) = delete;
  CommittedOffsetsTable& operator=(const CommittedOffsetsTable&) = delete;

  // Records `record` (a tombstone deletes the entry). Returns false, changing nothing, when it
  // would add an entry beyond max_entries or the shared budget.
  bool Apply(const OffsetCommitRecord& record);

  // The group's committed offsets: those of `partitions` (when given) or every partition it has
  // a commit for.
  absl::flat_hash_map<TopicPartition, int64_t> Group(
      const std::string& group, const std::vector<TopicPartition>* partitions) const;

  int64_t entries() const { return entries_; }
  int64_t groups() const { return static_cast<int64_t>(groups_.size()); }
  void Clear();

 private:
  Options options_;
  absl::flat_hash_map<std::string, absl::flat_hash_map<TopicPartition, int64_t>> groups_;
  int64_t entries_ = 0;
};

}  // namespace klag::kafka
