#include "kafka/end_offsets_cache.h"

#include <algorithm>
#include <utility>

#include "common/thread_name.h"

namespace klag::kafka {

EndOffsetsCache::EndOffsetsCache(FetchFn fetch, Options options)
    : fetch_(std::move(fetch)), options_(std::move(options)) {
  {
    absl::MutexLock lock(&mu_);
    last_sweep_ = options_.clock();
  }
  worker_ = std::thread([this] {
    NameThisThread("klag-end-offset");
    Run();
  });
}

EndOffsetsCache::~EndOffsetsCache() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  worker_.join();
}

void EndOffsetsCache::SweepLocked(absl::Time now) {
  if (now - last_sweep_ < std::min(options_.idle_ttl, absl::Minutes(1))) return;
  last_sweep_ = now;
  for (auto it = topic_used_.begin(); it != topic_used_.end();) {
    if (now - it->second > options_.idle_ttl) {
      snapshot_.erase(it->first);
      topic_used_.erase(it++);
    } else {
      ++it;
    }
  }
}

bool EndOffsetsCache::FromSnapshotLocked(const TopicPartition& tp, absl::Time bound,
                                         Answer& answer) const {
  auto topic = snapshot_.find(tp.topic);
  if (topic == snapshot_.end()) return false;
  auto entry = topic->second.find(tp.partition);
  if (entry == topic->second.end() || !entry->second.has_value || entry->second.read_at < bound) {
    return false;
  }
  answer.partitions[tp] = entry->second.offsets;
  answer.read_at = std::min(answer.read_at, entry->second.read_at);
  return true;
}

std::optional<EndOffsetsCache::Answer> EndOffsetsCache::Peek(
    const std::vector<TopicPartition>& partitions) {
  const absl::Time now = options_.clock();
  const absl::Time bound = now - options_.max_age;
  Answer answer;
  absl::MutexLock lock(&mu_);
  for (const TopicPartition& tp : partitions) {
    topic_used_[tp.topic] = now;
    if (!FromSnapshotLocked(tp, bound, answer)) return std::nullopt;
  }
  ++stats_.lookups;
  ++stats_.snapshot_answers;
  answer.from_snapshot = true;
  return answer;
}

EndOffsetsCache::Answer EndOffsetsCache::Lookup(const std::vector<TopicPartition>& partitions,
                                                absl::Time deadline) {
  const absl::Time now = options_.clock();
  const absl::Time bound = now - options_.max_age;
  Answer answer;
  absl::MutexLock lock(&mu_);
  ++stats_.lookups;
  SweepLocked(now);

  std::vector<TopicPartition> need;
  for (const TopicPartition& tp : partitions) {
    topic_used_[tp.topic] = now;
    if (!FromSnapshotLocked(tp, bound, answer)) need.push_back(tp);
  }
  if (need.empty()) {
    ++stats_.snapshot_answers;
    answer.from_snapshot = true;
    return answer;
  }

  // Which fetch serves each needed partition: the one in flight when it started within the
  // bound and asks for the partition, otherwise the next one.
  std::vector<std::pair<TopicPartition, std::shared_ptr<Batch>>> waits;
  std::vector<TopicPartition> to_pending;
  for (TopicPartition& tp : need) {
    if (in_flight_ != nullptr && in_flight_->sent_at >= bound &&
        in_flight_->partitions.contains(tp)) {
      waits.emplace_back(std::move(tp), in_flight_);
    } else {
      to_pending.push_back(std::move(tp));
    }
  }
  if (!to_pending.empty()) {
    if (pending_ == nullptr) {
      pending_ = std::make_shared<Batch>();
      pending_->opened_at = absl::Now();
      // Stale partitions of the other topics in use (looked up within max_age) ride along too:
      // their callers would ask in a moment, and one refresh per max_age then serves them all.
      for (const auto& [topic, used] : topic_used_) {
        if (used < bound) continue;
        auto entries = snapshot_.find(topic);
        if (entries == snapshot_.end()) continue;
        for (const auto& [partition, entry] : entries->second) {
          if (entry.has_value && entry.read_at < bound) {
            pending_->partitions.insert({topic, partition});
          }
        }
      }
    }
    for (const TopicPartition& tp : to_pending) {
      pending_->partitions.insert(tp);
      // The other stale partitions of the topic ride along: one call serves the topic.
      if (auto topic = snapshot_.find(tp.topic); topic != snapshot_.end()) {
        for (const auto& [partition, entry] : topic->second) {
          if (entry.has_value && entry.read_at < bound) {
            pending_->partitions.insert({tp.topic, partition});
          }
        }
      }
    }
    pending_->deadline = std::max(pending_->deadline, deadline);
    for (TopicPartition& tp : to_pending) waits.emplace_back(std::move(tp), pending_);
  }

  auto all_done = [&waits]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (const auto& [tp, batch] : waits) {
      if (!batch->done) return false;
    }
    return true;
  };
  if (!mu_.AwaitWithDeadline(absl::Condition(&all_done), deadline)) {
    return Answer{.timed_out = true};
  }
  for (const auto& [tp, batch] : waits) {
    if (!batch->sent) return Answer{.timed_out = true};  // never sent (stopping)
    auto it = batch->result.partitions.find(tp);
    // Absent: the whole call failed before the fetch looked at the partition.
    answer.partitions[tp] =
        it != batch->result.partitions.end() ? it->second : Offsets{.error = batch->result.error};
    if (batch->result.error != 0 && answer.error == 0) answer.error = batch->result.error;
    answer.read_at = std::min(answer.read_at, batch->sent_at);
  }
  return answer;
}

void EndOffsetsCache::DropValueLocked(const TopicPartition& tp) {
  auto topic = snapshot_.find(tp.topic);
  if (topic == snapshot_.end()) return;
  auto it = topic->second.find(tp.partition);
  if (it == topic->second.end()) return;
  Entry& entry = it->second;
  if (!entry.history.has_value() || entry.history->empty()) {
    topic->second.erase(it);
    return;
  }
  entry.has_value = false;
  entry.offsets = Offsets{};
  entry.read_at = absl::InfinitePast();
}

void EndOffsetsCache::Invalidate(const std::vector<TopicPartition>& partitions) {
  absl::MutexLock lock(&mu_);
  for (const TopicPartition& tp : partitions) DropValueLocked(tp);
}

std::vector<std::optional<absl::Time>> EndOffsetsCache::TimesOf(
    const std::vector<TimeQuery>& queries) const {
  std::vector<std::optional<absl::Time>> times(queries.size());
  absl::MutexLock lock(&mu_);
  for (size_t i = 0; i < queries.size(); ++i) {
    const TopicPartition& tp = queries[i].partition;
    auto topic = snapshot_.find(tp.topic);
    if (topic == snapshot_.end()) continue;
    auto entry = topic->second.find(tp.partition);
    if (entry == topic->second.end() || !entry->second.history.has_value()) continue;
    times[i] = entry->second.history->TimeOf(queries[i].offset);
  }
  return times;
}

EndOffsetsCache::Stats EndOffsetsCache::GetStats() const {
  absl::MutexLock lock(&mu_);
  Stats stats = stats_;
  stats.entries = 0;
  for (const auto& [topic, entries] : snapshot_) {
    for (const auto& [partition, entry] : entries) {
      if (entry.has_value) ++stats.entries;
      if (entry.history.has_value()) {
        ++stats.histories;
        stats.history_points += static_cast<int64_t>(entry.history->size());
        stats.history_bytes += static_cast<int64_t>(entry.history->MemoryBytes());
      }
    }
  }
  return stats;
}

void EndOffsetsCache::Run() {
  absl::MutexLock lock(&mu_);
  while (true) {
    auto ready = [this]()
                     ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_ || pending_ != nullptr; };
    mu_.Await(absl::Condition(&ready));
    if (stop_) break;
    if (options_.window > absl::ZeroDuration()) {
      mu_.AwaitWithDeadline(absl::Condition(&stop_), pending_->opened_at + options_.window);
      if (stop_) break;
    }
    std::shared_ptr<Batch> batch = std::move(pending_);
    pending_.reset();
    batch->sent = true;
    batch->sent_at = options_.clock();
    in_flight_ = batch;
    std::vector<TopicPartition> partitions(batch->partitions.begin(), batch->partitions.end());
    std::sort(partitions.begin(), partitions.end());
    const absl::Time deadline = batch->deadline;
    // Every waiter's deadline has passed: nobody would read the answer.
    const bool skip = absl::Now() >= deadline;
    if (!skip) {
      ++stats_.fetches;
      stats_.fetched_partitions += static_cast<int64_t>(partitions.size());
    }
    mu_.Unlock();

    FetchResult result;
    if (!skip) result = fetch_(partitions, deadline);

    mu_.Lock();
    for (const TopicPartition& tp : partitions) {
      auto it = result.partitions.find(tp);
      const bool ok = !skip && it != result.partitions.end() && it->second.error == 0;
      if (!ok) {
        // Never keep a value the latest fetch could not confirm.
        if (!skip) DropValueLocked(tp);
        continue;
      }
      if (!topic_used_.contains(tp.topic)) continue;  // swept while in flight
      Entry& entry = snapshot_[tp.topic][tp.partition];
      if (entry.read_at <= batch->sent_at) {
        entry.has_value = true;
        entry.offsets = it->second;
        entry.read_at = batch->sent_at;
      }
      if (options_.history_points > 0) {
        if (!entry.history.has_value()) entry.history.emplace(options_.history_points);
        // A fetch that returned after a later one is ignored by the history itself.
        entry.history->Add(it->second.end, batch->sent_at);
      }
    }
    if (skip) batch->sent = false;
    batch->result = std::move(result);
    batch->done = true;
    in_flight_.reset();
  }
  // Let waiters of a fetch that will never be sent go at once.
  if (pending_ != nullptr) pending_->done = true;
}

}  // namespace klag::kafka
