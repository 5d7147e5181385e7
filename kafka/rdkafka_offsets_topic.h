// Follows one cluster's `__consumer_offsets` topic the way Burrow does: a librdkafka client of
// its own reads every partition from the beginning (read_committed, no consumer group, nothing
// committed) and keeps the latest committed offset of every group (kafka/offsets_topic.h), so
// RdkafkaOffsetReader can answer committed offsets without an OffsetFetch per group.
// Internal to RdkafkaOffsetReader (`committed_offsets_source = kOffsetsTopic`).
//
//   absl::StatusOr<std::unique_ptr<rdkafka::OffsetsTopicFollower>> follower =
//       rdkafka::OffsetsTopicFollower::Start(properties, {.name = "prod"}, ends);
//   absl::Time read_at;
//   absl::StatusOr<absl::flat_hash_map<TopicPartition, int64_t>> committed =
//       (*follower)->Committed("billing", nullptr, deadline, read_at);
//
// Freshness: Committed() answers once the follower has read every partition of the topic up to
// its last stable offset as listed by the `ends` function it was given (RdkafkaOffsetReader's
// read_committed snapshot: a ListOffsets sent at most end_offsets_max_age before the call;
// `read_at` is that send time). The ListOffsets must go over another client's connections: a
// broker serves one request per connection at a time, so behind the follower's own long-polling
// Fetch it would wait up to fetch.wait.max.ms (measured: whole-poll p99 ~450 ms). A group
// coordinator answers an OffsetCommit only after the commit is written and replicated, so the
// answer holds every commit acknowledged before `read_at`: the same bound klag applies to end
// offsets. Transactional offset commits count once their transaction commits (read_committed), as
// with OffsetFetch.
//
// Life cycle: Start() returns at once; a thread looks up the topic's partitions (retrying while
// the topic does not exist yet: a cluster where no group ever committed), then reads. Until
// every partition has been read to its end once, Committed() answers kUnavailable (loading), so
// the caller reads elsewhere; a follower that cannot go on (no permission to read the topic, more
// commits than `max_entries`) stops, frees its table and answers kFailedPrecondition with the
// reason from then on.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "kafka/connection_config.h"
#include "kafka/end_offsets_cache.h"
#include "kafka/offsets.h"
#include "kafka/offsets_topic.h"
#include "kafka/rdkafka_client.h"

namespace klag::kafka::rdkafka {

class OffsetsTopicFollower {
 public:
  struct Options {
    // Cluster name for errors and logs (no secret).
    std::string name;
    // Most (group, topic, partition) commits kept; past it the follower stops (memory bound).
    int64_t max_entries = 200'000;
    // Entries shared with every other follower of the process (may be null); past it the
    // follower stops too. Must outlive the follower.
    CommitBudget* budget = nullptr;
    // While the topic does not exist or its metadata fails: how long between lookups.
    absl::Duration retry = absl::Seconds(5);
    // Statistics for the client's broker request counter; zero disables.
    absl::Duration statistics_interval = absl::Seconds(1);
  };

  struct Stats {
    bool ready = false;
    bool failed = false;
    int64_t records = 0;    // records read
    int64_t malformed = 0;  // records skipped as unparsable
    int64_t entries = 0;    // commits held now
    int64_t groups = 0;     // groups with commits now
    int64_t broker_requests = 0;
  };

  // Lists end offsets (last stable offsets) of `partitions` of the topic by `deadline`, on
  // another client (see the header comment). Called from Committed() callers' threads.
  using EndsFn = std::function<EndOffsetsCache::Answer(const std::vector<TopicPartition>&,
                                                       absl::Time deadline)>;

  // `properties`: the cluster's connection properties and client settings; the follower adds
  // what reading needs (isolation level, partition EOF events, bounded prefetch). Errors:
  // kInvalidArgument from librdkafka's configuration (never a property value).
  static absl::StatusOr<std::unique_ptr<OffsetsTopicFollower>> Start(
      const RdkafkaProperties& properties, const Options& options, EndsFn ends);

  // Stops reading and destroys the client. No Committed() call may be running.
  ~OffsetsTopicFollower();
  OffsetsTopicFollower(const OffsetsTopicFollower&) = delete;
  OffsetsTopicFollower& operator=(const OffsetsTopicFollower&) = delete;

  // The committed offsets of `group` (of `partitions` when given, else every partition it has a
  // commit for), as of the freshness bound above; `read_at` gets the ListOffsets send time.
  // Thread-safe. Errors: kUnavailable while loading or when the end offsets cannot be listed,
  // kFailedPrecondition once the follower stopped (the reason), kDeadlineExceeded when reading
  // did not reach the end offsets by `deadline`.
  absl::StatusOr<absl::flat_hash_map<TopicPartition, int64_t>> Committed(
      const std::string& group, const std::vector<TopicPartition>* partitions, absl::Time deadline,
      absl::Time& read_at);

  // Committed() without waiting and without listing: answers when the follower has loaded and
  // has already read every partition up to the end offsets `peek` gives (the reader's snapshot,
  // EndOffsetsCache::Peek), else nullopt. Thread-safe; never blocks on Kafka.
  using PeekFn =
      std::function<std::optional<EndOffsetsCache::Answer>(const std::vector<TopicPartition>&)>;
  std::optional<absl::flat_hash_map<TopicPartition, int64_t>> TryCommitted(
      const std::string& group, const std::vector<TopicPartition>* partitions, const PeekFn& peek,
      absl::Time& read_at);

  Stats GetStats() const;

 private:
  // The end offset of each of `topic_partitions` (in order) from `ends`; the first failed or
  // missing partition's error otherwise.
  absl::StatusOr<std::vector<int64_t>> EndsOf(const std::vector<TopicPartition>& topic_partitions,
                                              const EndOffsetsCache::Answer& ends) const;
  // The first partition not yet read up to its `end` (indexed like partitions_), if any.
  std::optional<size_t> FirstBehindLocked(const std::vector<int64_t>& end) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  OffsetsTopicFollower(Options options, std::unique_ptr<Client> client, EndsFn ends);
  void Run();
  // Looks up the topic's partitions and starts reading them; false to try again later.
  bool StartReading();
  void Fail(absl::Status reason);
  int32_t PartitionCountLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return partitions_ == nullptr ? 0 : static_cast<int32_t>(partitions_->size());
  }

  const Options options_;
  std::unique_ptr<Client> client_;
  const EndsFn ends_;
  std::atomic<int64_t> metadata_requests_{0};
  std::atomic<bool> stop_{false};
  std::thread reader_;
  // Owned by the reader thread (set before reading starts, released in the destructor).
  rd_kafka_topic_t* topic_ = nullptr;
  rd_kafka_queue_t* queue_ = nullptr;

  mutable absl::Mutex mu_;
  // The topic's partitions, set once when reading starts (null until then): what every
  // Committed() asks the end offsets of.
  std::shared_ptr<const std::vector<TopicPartition>> partitions_ ABSL_GUARDED_BY(mu_);
  // Per partition: the offset read up to (next record offset), and whether its end was reached
  // once (loading is over when every partition's was).
  std::vector<int64_t> reached_ ABSL_GUARDED_BY(mu_);
  std::vector<bool> loaded_ ABSL_GUARDED_BY(mu_);
  int32_t loaded_count_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status failed_ ABSL_GUARDED_BY(mu_);
  CommittedOffsetsTable table_ ABSL_GUARDED_BY(mu_);
  int64_t records_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t malformed_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time started_at_;
};

}  // namespace klag::kafka::rdkafka
