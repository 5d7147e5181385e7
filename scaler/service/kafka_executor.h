// A bounded pool of threads for blocking Kafka work, fair between clusters: N workers in all, at
// most M of them on one cluster at a time, FIFO within a cluster and round-robin between
// clusters. A blackholed cluster therefore holds at most M workers while its calls wait for
// their deadlines, and the triggers of healthy clusters keep their normal latency.
//
//   KafkaExecutor executor(KafkaExecutorOptions{.workers = 64, .workers_per_cluster = 32});
//   absl::Status queued = executor.Submit(
//       {.cluster_key = spec.connection.Key(), .cluster_name = spec.connection.bootstrap_servers,
//        .deadline = absl::Now() + absl::Seconds(5),
//        .run = [](absl::Status s) { if (s.ok()) ReadOffsets(...); else Answer(s); }});
//   if (!queued.ok()) Answer(queued);  // RESOURCE_EXHAUSTED: the queue is full
//
// Work still queued when its deadline passes is answered with DEADLINE_EXCEEDED at once (by the
// executor's timer thread), without running.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace klag::scaler {

struct KafkaExecutorOptions {
  // Threads running Kafka work (--kafka-workers). Each is an OS thread with its stack. Each
  // evaluation holds one for its Kafka round trips (an OffsetFetch: about 1-5 ms on a healthy
  // cluster), so one cluster's throughput is about workers_per_cluster / round trip: 4 capped
  // it at roughly 800 evaluations/s (bench: 5,000 ScaledJobs polling every 5 s queued to their
  // deadline).
  int workers = 64;
  // At most this many of them on one cluster at a time (--kafka-workers-per-cluster).
  int workers_per_cluster = 32;
  // Work waiting for a worker, over all clusters (--kafka-queue) and per cluster
  // (--kafka-queue-per-cluster). Over a bound, Submit answers RESOURCE_EXHAUSTED.
  int max_queued = 20000;
  int max_queued_per_cluster = 5000;
};

struct KafkaExecutorStats {
  int64_t queued = 0;    // waiting now
  int64_t running = 0;   // on a worker now
  int64_t rejected = 0;  // Submit answered RESOURCE_EXHAUSTED, since start
  int64_t expired = 0;   // answered DEADLINE_EXCEEDED while queued, since start
};

class KafkaExecutor {
 public:
  struct Work {
    // Which cluster the work talks to (kafka::ConnectionConfig::Key(): may hold hashed secrets,
    // never shown) and its name for messages (the bootstrap servers, no secret).
    std::string cluster_key;
    std::string cluster_name;
    // Work still queued at this time is not run. Within one cluster, deadlines should not
    // decrease in submission order (callers use now + a fixed timeout): the timer looks at the
    // head of each cluster's queue.
    absl::Time deadline;
    // Called exactly once, never under the executor's lock: on a worker with OkStatus() (do the
    // work now, before `deadline`); or with DEADLINE_EXCEEDED naming the cluster if the deadline
    // passed while queued, or CANCELLED when the executor is destroyed first (do not do the work;
    // answer the error). It must not wait for other work of this executor.
    absl::AnyInvocable<void(absl::Status) &&> run;
  };

  // Starts options.workers workers and one timer thread. Both counts are at least 1.
  explicit KafkaExecutor(KafkaExecutorOptions options);
  KafkaExecutor(const KafkaExecutor&) = delete;
  KafkaExecutor& operator=(const KafkaExecutor&) = delete;

  // Answers queued work with CANCELLED, waits for running work to return, joins the threads.
  ~KafkaExecutor();

  // Queues `work`. Errors: RESOURCE_EXHAUSTED naming the bound that is full (the flag and its
  // value; work.run is not called); DEADLINE_EXCEEDED if the deadline has already passed (run not
  // called). Thread-safe, never blocks on Kafka.
  absl::Status Submit(Work work);

  KafkaExecutorStats Stats() const;

  // How long the oldest work of `cluster_key` still waiting for a worker has waited (zero when
  // none waits): what new work of that cluster should expect to wait at least. Thread-safe; takes
  // the executor's lock (never held while calling out), so callers may hold their own locks.
  absl::Duration QueueWait(const std::string& cluster_key) const;

 private:
  struct Queued {
    Work work;
    absl::Time since;  // when it was queued
  };
  struct Cluster {
    std::string name;
    std::deque<Queued> queue;
    int running = 0;
    bool ready = false;  // in ready_
  };

  void WorkerLoop();
  void TimerLoop();
  // Adds `cluster` to ready_ when it has queued work and a free per-cluster slot.
  void MaybeReadyLocked(const std::string& key, Cluster& cluster)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Moves queued work whose deadline passed into `expired` (answered by the caller, unlocked).
  void TakeExpiredLocked(absl::Time now, std::vector<Work>& expired)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EraseIfIdleLocked(const std::string& key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const KafkaExecutorOptions options_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Cluster> clusters_ ABSL_GUARDED_BY(mu_);
  // Keys of clusters with queued work and a free slot, served round-robin.
  std::deque<std::string> ready_ ABSL_GUARDED_BY(mu_);
  int64_t queued_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t running_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t rejected_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t expired_ ABSL_GUARDED_BY(mu_) = 0;
  // Bumped on every Submit so the timer re-reads the earliest deadline.
  int64_t submissions_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

// The DEADLINE_EXCEEDED a queued piece of work gets; exposed for tests.
absl::Status QueuedPastDeadlineError(absl::string_view cluster_name);

}  // namespace klag::scaler
