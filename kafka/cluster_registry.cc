#include "kafka/cluster_registry.h"

#include <utility>
#include <vector>

#include "spdlog/spdlog.h"

namespace klag::kafka {

ClusterRegistry::ClusterRegistry(Factory factory, absl::Duration idle_timeout, Clock clock)
    : factory_(std::move(factory)), idle_timeout_(idle_timeout), clock_(std::move(clock)) {
  last_sweep_ = clock_();
}

absl::StatusOr<std::shared_ptr<OffsetReader>> ClusterRegistry::For(const ConnectionConfig& config) {
  std::vector<std::shared_ptr<OffsetReader>> evicted;  // released after the lock
  std::shared_ptr<OffsetReader> reader;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = clock_();
    if (now - last_sweep_ >= idle_timeout_ / 4) EvictIdleLocked(now, evicted);
    const std::string key = config.Key();
    auto it = readers_.find(key);
    if (it == readers_.end()) {
      absl::StatusOr<std::shared_ptr<OffsetReader>> created = factory_(config);
      if (!created.ok()) return created.status();
      if (*created == nullptr) {
        return absl::InternalError("cluster registry: the reader factory returned null");
      }
      spdlog::info("cluster {}: new shared offset reader ({} clusters)", config.bootstrap_servers,
                   readers_.size() + 1);
      it = readers_.emplace(key, Entry{*std::move(created), config.bootstrap_servers, now}).first;
    }
    it->second.last_used = now;
    reader = it->second.reader;
  }
  return reader;
}

int ClusterRegistry::EvictIdle() {
  std::vector<std::shared_ptr<OffsetReader>> evicted;
  {
    absl::MutexLock lock(&mu_);
    EvictIdleLocked(clock_(), evicted);
  }
  return static_cast<int>(evicted.size());
}

void ClusterRegistry::EvictIdleLocked(absl::Time now,
                                      std::vector<std::shared_ptr<OffsetReader>>& evicted) {
  last_sweep_ = now;
  for (auto it = readers_.begin(); it != readers_.end();) {
    if (now - it->second.last_used >= idle_timeout_) {
      spdlog::info("cluster {}: offset reader unused for {}, dropped", it->second.cluster,
                   absl::FormatDuration(now - it->second.last_used));
      evicted.push_back(std::move(it->second.reader));
      readers_.erase(it++);
    } else {
      ++it;
    }
  }
}

size_t ClusterRegistry::Size() const {
  absl::MutexLock lock(&mu_);
  return readers_.size();
}

std::vector<std::pair<std::string, std::shared_ptr<OffsetReader>>> ClusterRegistry::Snapshot()
    const {
  absl::MutexLock lock(&mu_);
  std::vector<std::pair<std::string, std::shared_ptr<OffsetReader>>> out;
  out.reserve(readers_.size());
  for (const auto& [key, entry] : readers_) out.emplace_back(entry.cluster, entry.reader);
  return out;
}

}  // namespace klag::kafka
