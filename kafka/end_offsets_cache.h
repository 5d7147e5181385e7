// A shared, bounded-staleness snapshot of end and log-start offsets per topic partition, refreshed
// through one fetch call at a time that concurrent callers share. One instance per librdkafka
// client (isolation level); RdkafkaOffsetReader plugs rd_kafka_offsets_for_times in as the fetch.
//
//   EndOffsetsCache cache(fetch, {.max_age = absl::Seconds(1)});
//   EndOffsetsCache::Answer a = cache.Lookup({{"orders", 0}, {"orders", 1}}, deadline);
//   if (a.timed_out) ...;  // no answer by the deadline
//   // else a.partitions[tp].end / .log_start / .error, a.read_at
//
// The freshness contract: an answer to a Lookup that arrived at time T holds, for every
// partition, values from a fetch that started at or after T - max_age (`read_at` is the earliest
// such start). A partition whose snapshot entry is older is fetched again: the caller joins the
// fetch in flight if that started within the bound and covers the partition, otherwise the next
// one. A fetch carries every partition waiting for it plus the other stale partitions of the same
// topics, so one call serves a whole topic, and of the other topics in use (looked up within
// max_age), so their snapshot ages together and one call per max_age serves them all. Failed
// partitions are never kept in the snapshot. Topics nobody looked up for `idle_ttl` are dropped
// (memory stays bounded by the topics in use).
//
// Each partition also keeps a short history of (end offset, fetch start time) samples
// (end_offset_history.h), fed by every successful fetch, from which TimesOf estimates when a
// given offset was produced ("lag in seconds"). A history lives as long as its partition's entry:
// failed fetches and Invalidate drop the value but keep the history (a leader move or a retried
// error does not change what the end offsets were); idle_ttl drops both.
//
// Nothing here includes librdkafka: errors are the fetch function's own non-zero codes, passed
// through untouched.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "kafka/end_offset_history.h"
#include "kafka/offsets.h"

namespace klag::kafka {

class EndOffsetsCache {
 public:
  struct Offsets {
    int64_t end = 0;
    int64_t log_start = 0;
    // Non-zero: the fetch function's error for this partition (end and log_start are unset).
    int error = 0;
  };

  struct FetchResult {
    // Non-zero: the call as a whole failed; partitions missing from `partitions` get this error.
    int error = 0;
    absl::flat_hash_map<TopicPartition, Offsets> partitions;
  };

  // Looks up `partitions` (distinct) by `deadline`. Called from the cache's own thread, one call
  // at a time.
  using FetchFn = std::function<FetchResult(const std::vector<TopicPartition>& partitions,
                                            absl::Time deadline)>;

  struct Options {
    // How old (by fetch start) a snapshot value may be when it is returned.
    absl::Duration max_age = absl::Seconds(1);
    // How long a fetch waits after its first waiter joins, for others to join it. Zero: none
    // (callers still share the next fetch while one is in flight).
    absl::Duration window = absl::ZeroDuration();
    // Snapshot entries of topics not looked up for this long are dropped.
    absl::Duration idle_ttl = absl::Minutes(10);
    // Points kept per partition in the end offset history (EndOffsetHistory; values below its
    // kMinPoints mean kMinPoints). Zero: no history (TimesOf answers nullopt).
    int history_points = EndOffsetHistory::kDefaultMaxPoints;
    // Time source for freshness and idleness (waiting for deadlines uses the real clock).
    std::function<absl::Time()> clock = [] { return absl::Now(); };
  };

  struct Answer {
    // No answer by the deadline (the fetch serving it had not returned).
    bool timed_out = false;
    // Non-zero: a fetch serving this answer failed as a whole (per-partition errors are in
    // `partitions` too).
    int error = 0;
    // One entry per looked-up partition.
    absl::flat_hash_map<TopicPartition, Offsets> partitions;
    // Start time of the oldest fetch behind the answer (InfiniteFuture when timed_out).
    absl::Time read_at = absl::InfiniteFuture();
    // Whether every value came from the snapshot without waiting for a fetch.
    bool from_snapshot = false;
  };

  struct Stats {
    int64_t lookups = 0;
    int64_t snapshot_answers = 0;  // lookups answered from the snapshot alone
    int64_t fetches = 0;           // fetch function calls
    int64_t fetched_partitions = 0;
    int64_t entries = 0;  // partitions in the snapshot now
    // End offset histories: partitions that have one, points held, bytes of point storage held.
    int64_t histories = 0;
    int64_t history_points = 0;
    int64_t history_bytes = 0;
  };

  EndOffsetsCache(FetchFn fetch, Options options);
  // Stops the fetch thread after the fetch in flight returns. No Lookup may be running.
  ~EndOffsetsCache();
  EndOffsetsCache(const EndOffsetsCache&) = delete;
  EndOffsetsCache& operator=(const EndOffsetsCache&) = delete;

  // Thread-safe. Returns by `deadline` (plus scheduling noise).
  Answer Lookup(const std::vector<TopicPartition>& partitions, absl::Time deadline);

  // Lookup's answer when every partition has a value in the snapshot within max_age, else
  // nullopt; never waits and never starts a fetch (a caller that cannot block asks this first).
  // Counts as a use of the topics. Thread-safe.
  std::optional<Answer> Peek(const std::vector<TopicPartition>& partitions);

  // Drops the snapshot values of `partitions` (e.g. after their leader moved), so the next
  // Lookup fetches them. Their end offset histories stay.
  void Invalidate(const std::vector<TopicPartition>& partitions);

  struct TimeQuery {
    TopicPartition partition;
    int64_t offset = 0;
  };
  // For each query, in order, the estimated time at which the partition's end offset moved past
  // `offset` (EndOffsetHistory::TimeOf on the samples so far, e.g. right after a Lookup); nullopt
  // when the partition has no history (history off, never fetched, or dropped as idle) or the
  // history cannot tell. One lock for all queries. Thread-safe.
  std::vector<std::optional<absl::Time>> TimesOf(const std::vector<TimeQuery>& queries) const;

  Stats GetStats() const;

 private:
  struct Batch {
    absl::flat_hash_set<TopicPartition> partitions;
    absl::Time deadline = absl::InfinitePast();
    absl::Time sent_at = absl::InfiniteFuture();  // fetch start; set when sent
    absl::Time opened_at;
    bool sent = false;
    bool done = false;
    FetchResult result;
  };
  struct Entry {
    // Whether `offsets` holds the latest fetch's value; false after a failure or Invalidate
    // (the entry then stays only for its history).
    bool has_value = false;
    Offsets offsets;
    absl::Time read_at = absl::InfinitePast();
    std::optional<EndOffsetHistory> history;  // engaged on the first sample
  };

  void Run();
  void SweepLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Adds `tp`'s snapshot value to `answer` when it was fetched at or after `bound`; false (and
  // nothing added) otherwise.
  bool FromSnapshotLocked(const TopicPartition& tp, absl::Time bound, Answer& answer) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Forgets the value of `tp` but keeps its history (erases the entry when it has none).
  void DropValueLocked(const TopicPartition& tp) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const FetchFn fetch_;
  const Options options_;

  mutable absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::shared_ptr<Batch> pending_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<Batch> in_flight_ ABSL_GUARDED_BY(mu_);
  // topic -> partition -> latest successful value.
  absl::flat_hash_map<std::string, absl::flat_hash_map<int32_t, Entry>> snapshot_
      ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, absl::Time> topic_used_ ABSL_GUARDED_BY(mu_);
  absl::Time last_sweep_ ABSL_GUARDED_BY(mu_);
  Stats stats_ ABSL_GUARDED_BY(mu_);

  std::thread worker_;  // last: starts after everything it uses
};

}  // namespace klag::kafka
