#include "scaler/service/kafka_executor.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/thread_name.h"

namespace klag::scaler {

absl::Status QueuedPastDeadlineError(absl::string_view cluster_name) {
  return absl::DeadlineExceededError(
      absl::StrCat("cluster ", cluster_name,
                   ": waited for a Kafka worker past the deadline (--kafka-timeout); the "
                   "cluster's workers (--kafka-workers-per-cluster) are all busy, is it slow or "
                   "unreachable?"));
}

KafkaExecutor::KafkaExecutor(KafkaExecutorOptions options) : options_(options) {
  const int workers = std::max(1, options_.workers);
  threads_.reserve(workers + 1);
  for (int i = 0; i < workers; ++i) {
    threads_.emplace_back([this] {
      NameThisThread("klag-kafka-work");
      WorkerLoop();
    });
  }
  threads_.emplace_back([this] {
    NameThisThread("klag-kafka-time");
    TimerLoop();
  });
}

KafkaExecutor::~KafkaExecutor() {
  std::vector<Work> cancelled;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    for (auto& [key, cluster] : clusters_) {
      for (Queued& q : cluster.queue) cancelled.push_back(std::move(q.work));
      cluster.queue.clear();
    }
    queued_ = 0;
    ready_.clear();
  }
  for (Work& w : cancelled) {
    std::move(w.run)(absl::CancelledError(
        absl::StrCat("cluster ", w.cluster_name, ": klag-scaler is shutting down")));
  }
  for (std::thread& t : threads_) t.join();
}

absl::Status KafkaExecutor::Submit(Work work) {
  absl::MutexLock lock(&mu_);
  if (stopping_) {
    return absl::CancelledError(
        absl::StrCat("cluster ", work.cluster_name, ": klag-scaler is shutting down"));
  }
  if (absl::Now() >= work.deadline) return QueuedPastDeadlineError(work.cluster_name);
  auto it = clusters_.find(work.cluster_key);
  const int64_t in_cluster = it == clusters_.end() ? 0 : it->second.queue.size();
  if (in_cluster >= options_.max_queued_per_cluster) {
    ++rejected_;
    return absl::ResourceExhaustedError(
        absl::StrCat("cluster ", work.cluster_name, ": ", in_cluster,
                     " evaluations already wait for a Kafka worker, the bound per cluster "
                     "(--kafka-queue-per-cluster=",
                     options_.max_queued_per_cluster, ")"));
  }
  if (queued_ >= options_.max_queued) {
    ++rejected_;
    return absl::ResourceExhaustedError(
        absl::StrCat("cluster ", work.cluster_name, ": ", queued_,
                     " evaluations already wait for a Kafka worker, the bound over all clusters "
                     "(--kafka-queue=",
                     options_.max_queued, ")"));
  }
  if (it == clusters_.end()) {
    it = clusters_.try_emplace(work.cluster_key).first;
    it->second.name = work.cluster_name;
  }
  const std::string key = work.cluster_key;
  it->second.queue.push_back(Queued{.work = std::move(work), .since = absl::Now()});
  ++queued_;
  ++submissions_;
  MaybeReadyLocked(key, it->second);
  return absl::OkStatus();
}

void KafkaExecutor::MaybeReadyLocked(const std::string& key, Cluster& cluster) {
  if (!cluster.ready && !cluster.queue.empty() &&
      cluster.running < std::max(1, options_.workers_per_cluster)) {
    cluster.ready = true;
    ready_.push_back(key);
  }
}

void KafkaExecutor::EraseIfIdleLocked(const std::string& key) {
  auto it = clusters_.find(key);
  if (it != clusters_.end() && it->second.queue.empty() && it->second.running == 0 &&
      !it->second.ready) {
    clusters_.erase(it);
  }
}

void KafkaExecutor::WorkerLoop() {
  for (;;) {
    Work work;
    bool expired = false;
    {
      absl::MutexLock lock(&mu_);
      auto has_work = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || !ready_.empty();
      };
      mu_.Await(absl::Condition(&has_work));
      if (stopping_) return;
      const std::string key = std::move(ready_.front());
      ready_.pop_front();
      Cluster& cluster = clusters_.at(key);
      cluster.ready = false;
      work = std::move(cluster.queue.front().work);
      cluster.queue.pop_front();
      --queued_;
      // Checked here too: the timer may not have reached it yet.
      expired = absl::Now() >= work.deadline;
      if (expired) {
        ++expired_;
        MaybeReadyLocked(key, cluster);
        EraseIfIdleLocked(key);
      } else {
        ++cluster.running;
        ++running_;
        // Round-robin: the cluster goes to the back of the line if it may run more.
        MaybeReadyLocked(key, cluster);
      }
    }
    if (expired) {
      std::move(work.run)(QueuedPastDeadlineError(work.cluster_name));
      continue;
    }
    const std::string key = work.cluster_key;
    std::move(work.run)(absl::OkStatus());
    work = Work();  // release what the work captured before taking the lock
    absl::MutexLock lock(&mu_);
    --running_;
    auto it = clusters_.find(key);
    if (it != clusters_.end()) {
      --it->second.running;
      MaybeReadyLocked(key, it->second);
      EraseIfIdleLocked(key);
    }
  }
}

void KafkaExecutor::TakeExpiredLocked(absl::Time now, std::vector<Work>& expired) {
  std::vector<std::string> emptied;
  for (auto& [key, cluster] : clusters_) {
    while (!cluster.queue.empty() && cluster.queue.front().work.deadline <= now) {
      expired.push_back(std::move(cluster.queue.front().work));
      cluster.queue.pop_front();
      --queued_;
      ++expired_;
    }
    if (cluster.queue.empty()) emptied.push_back(key);
  }
  if (emptied.empty()) return;
  // A cluster left in ready_ with an empty queue would hand a worker nothing.
  for (const std::string& key : emptied) clusters_.at(key).ready = false;
  ready_.erase(std::remove_if(ready_.begin(), ready_.end(),
                              [this](const std::string& key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
                                return clusters_.at(key).queue.empty();
                              }),
               ready_.end());
  for (const std::string& key : emptied) EraseIfIdleLocked(key);
}

void KafkaExecutor::TimerLoop() {
  for (;;) {
    std::vector<Work> expired;
    {
      absl::MutexLock lock(&mu_);
      TakeExpiredLocked(absl::Now(), expired);
      if (expired.empty()) {
        absl::Time earliest = absl::InfiniteFuture();
        for (const auto& [key, cluster] : clusters_) {
          if (!cluster.queue.empty())
            earliest = std::min(earliest, cluster.queue.front().work.deadline);
        }
        const int64_t seen = submissions_;
        auto changed = [this, seen]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return stopping_ || submissions_ != seen;
        };
        mu_.AwaitWithDeadline(absl::Condition(&changed), earliest);
        if (stopping_) return;
        continue;
      }
    }
    for (Work& w : expired) std::move(w.run)(QueuedPastDeadlineError(w.cluster_name));
  }
}

absl::Duration KafkaExecutor::QueueWait(const std::string& cluster_key) const {
  absl::MutexLock lock(&mu_);
  auto it = clusters_.find(cluster_key);
  if (it == clusters_.end() || it->second.queue.empty()) return absl::ZeroDuration();
  return absl::Now() - it->second.queue.front().since;
}

KafkaExecutorStats KafkaExecutor::Stats() const {
  absl::MutexLock lock(&mu_);
  return KafkaExecutorStats{
      .queued = queued_, .running = running_, .rejected = rejected_, .expired = expired_};
}

}  // namespace klag::scaler
