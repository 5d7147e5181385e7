// One shared OffsetReader per cluster: every trigger whose connection settings are equal (same
// ConnectionConfig::Key(), i.e. bootstrap servers + TLS + credentials) gets the same reader, and
// readers nobody asked for during an idle timeout are dropped (KEDA never says that a ScaledJob
// is gone, so stale clusters must go away by themselves).
//
//   kafka::ClusterRegistry registry(
//       [](const kafka::ConnectionConfig& c) ->
//       absl::StatusOr<std::shared_ptr<kafka::OffsetReader>> {
//         ASSIGN_OR_RETURN(auto reader, kafka::RdkafkaOffsetReader::Create(c));
//         return std::shared_ptr<kafka::OffsetReader>(std::move(reader));
//       },
//       absl::Minutes(10));
//   absl::StatusOr<std::shared_ptr<kafka::OffsetReader>> reader = registry.For(spec.connection);
//
// Nothing here includes librdkafka: the factory decides what a reader is (unit tests pass one
// that returns testing::FakeOffsetReader).
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "kafka/connection_config.h"
#include "kafka/offsets.h"

namespace klag::kafka {

class ClusterRegistry {
 public:
  using Factory =
      std::function<absl::StatusOr<std::shared_ptr<OffsetReader>>(const ConnectionConfig&)>;
  using Clock = std::function<absl::Time()>;

  // `factory` creates the reader for a cluster seen for the first time (or again after
  // eviction); it is called with the registry's lock held, so it must not block on the network
  // (RdkafkaOffsetReader::Create does not) and must not call back into the registry. A reader
  // not handed out by For() for `idle_timeout` is dropped by the registry (holders keep it alive
  // until they release it; the next For() creates a fresh one). `clock` is for tests.
  explicit ClusterRegistry(
      Factory factory, absl::Duration idle_timeout = absl::Minutes(10),
      Clock clock = [] { return absl::Now(); });

  ClusterRegistry(const ClusterRegistry&) = delete;
  ClusterRegistry& operator=(const ClusterRegistry&) = delete;

  // The shared reader for `config`'s cluster, created on first use. Also drops idle readers
  // (checked at most every idle_timeout / 4). Errors: the factory's (not cached: the next call
  // tries again). Thread-safe.
  absl::StatusOr<std::shared_ptr<OffsetReader>> For(const ConnectionConfig& config);

  // Drops every reader not handed out for idle_timeout; returns how many were dropped.
  // Thread-safe; readers are released outside the lock (a librdkafka reader takes a moment to
  // shut down).
  int EvictIdle();

  // Readers held now. Thread-safe.
  size_t Size() const;

  // The readers held now, each with its cluster name (bootstrap servers, no secret), for
  // periodic statistics. Thread-safe; the readers stay valid while the caller holds them.
  std::vector<std::pair<std::string, std::shared_ptr<OffsetReader>>> Snapshot() const;

 private:
  struct Entry {
    std::shared_ptr<OffsetReader> reader;
    std::string cluster;  // bootstrap servers, for logs
    absl::Time last_used;
  };

  // Moves idle entries' readers into `evicted` (released by the caller after unlocking).
  void EvictIdleLocked(absl::Time now, std::vector<std::shared_ptr<OffsetReader>>& evicted)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Factory factory_;
  const absl::Duration idle_timeout_;
  const Clock clock_;

  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Entry> readers_ ABSL_GUARDED_BY(mu_);
  absl::Time last_sweep_ ABSL_GUARDED_BY(mu_);
};

}  // namespace klag::kafka
