// Partition counts per topic for RdkafkaOffsetReader: a cache shared by its clients, refreshed
// after `max_age` and at once after "unknown topic"/"not leader"-style errors, with concurrent
// lookups of one topic sharing one Metadata request. Internal (rdkafka_*.cc files and tests).
//
//   TopicMetadataCache topics("cluster-a", absl::Seconds(30), absl::Milliseconds(500), counter);
//   absl::StatusOr<int> count = topics.PartitionCount(client, "orders", deadline, false);
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "kafka/rdkafka_client.h"

namespace klag::kafka::rdkafka {

class TopicMetadataCache {
 public:
  // `name` (no secret) prefixes error messages; `probe` is passed to Client::Metadata; each
  // Metadata request is counted in `requests`.
  TopicMetadataCache(std::string name, absl::Duration max_age, absl::Duration probe,
                     std::atomic<int64_t>& requests);

  // The topic's partition count, from the cache when younger than max_age (and not `force`),
  // otherwise from one Metadata request through `client`. kNotFound only when a broker says the
  // topic does not exist (twice, a little apart, for a topic seen before: a restarting broker
  // may miss it for a moment). Thread-safe.
  absl::StatusOr<int> PartitionCount(Client& client, const std::string& topic, absl::Time deadline,
                                     bool force);

  // The topic's partition count when the cache holds one younger than max_age (what
  // PartitionCount would answer without a request), else nullopt. Never blocks on Kafka.
  std::optional<int> CachedPartitionCount(const std::string& topic);

  // The next PartitionCount of `topic` asks the cluster.
  void Invalidate(const std::string& topic);

 private:
  struct TopicEntry {
    int partitions = 0;
    bool valid = false;
    absl::Time fetched = absl::InfinitePast();
    absl::Time last_used = absl::InfinitePast();
    bool fetching = false;
    // A Metadata answer listed the topic since the last confirmed absence.
    bool existed = false;
    uint64_t generation = 0;
    absl::Status last_error;
  };

  absl::StatusOr<int> Fetch(Client& client, const std::string& topic, absl::Time deadline);

  const std::string name_;
  const absl::Duration max_age_;
  const absl::Duration probe_;
  std::atomic<int64_t>& requests_;

  absl::Mutex mu_;
  std::map<std::string, TopicEntry> topics_ ABSL_GUARDED_BY(mu_);
  absl::Time last_sweep_ ABSL_GUARDED_BY(mu_);
};

}  // namespace klag::kafka::rdkafka
