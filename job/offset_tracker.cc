#include "job/offset_tracker.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"

namespace klag::job {
namespace {

// A broken invariant of the caller: say so on stderr and abort.
[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "%s\n", message.c_str());
  std::abort();
}

}  // namespace

OffsetTracker::State* OffsetTracker::Find(const kafka::TopicPartition& partition) {
  auto it = partitions_.find(partition);
  if (it == partitions_.end() || !it->second.progress.assigned) return nullptr;
  return &it->second;
}

const OffsetTracker::State* OffsetTracker::Find(const kafka::TopicPartition& partition) const {
  auto it = partitions_.find(partition);
  if (it == partitions_.end() || !it->second.progress.assigned) return nullptr;
  return &it->second;
}

int64_t OffsetTracker::SafePosition(const State& state) {
  return state.pending.empty() ? state.position : state.pending.front().offset;
}

void OffsetTracker::Assign(const kafka::TopicPartition& partition, int64_t start, int64_t end,
                           std::optional<int64_t> committed) {
  auto [it, inserted] = partitions_.try_emplace(partition);
  State& state = it->second;
  if (!inserted && state.progress.assigned) {
    Die(absl::StrCat("OffsetTracker: ", partition.topic, "[", partition.partition,
                     "] assigned twice"));
  }
  if (inserted) {
    state.progress.partition = partition;
    state.progress.start = start;
    state.progress.committed_before = committed;
  }
  state.progress.end = end;
  state.progress.assigned = true;
  state.position = start;
  state.pending.clear();
  state.committed = committed;
  state.max_acked.reset();
}

void OffsetTracker::Revoke(const kafka::TopicPartition& partition) {
  State* state = Find(partition);
  if (state == nullptr) return;
  state->progress.assigned = false;
  state->pending.clear();
}

OffsetTracker::Disposition OffsetTracker::Offer(const kafka::TopicPartition& partition,
                                                int64_t offset) {
  State* state = Find(partition);
  if (state == nullptr) return Disposition::kNotAssigned;
  if (offset < state->position) return Disposition::kStale;
  if (offset >= state->progress.end) {
    // Everything between the position and this record was not a record for the application
    // (transaction markers, aborted or compacted data), so the position may step to it; but
    // never past a record that was not delivered.
    if (state->position < state->progress.end) state->position = offset;
    return Disposition::kBeyondEnd;
  }
  state->position = offset + 1;
  state->pending.push_back({offset, false});
  return Disposition::kDeliver;
}

void OffsetTracker::ReachedEnd(const kafka::TopicPartition& partition, int64_t position) {
  State* state = Find(partition);
  if (state == nullptr) return;
  // Once fetching is complete the position may rest on a record left for the next Job; the
  // consumer has returned it, but it was not delivered.
  if (state->position >= state->progress.end) return;
  state->position = std::max(state->position, position);
}

void OffsetTracker::Ack(const kafka::TopicPartition& partition, int64_t offset) {
  State* state = Find(partition);
  if (state == nullptr) return;  // revoked meanwhile: the next owner reads it again
  std::deque<Pending>& pending = state->pending;
  // Below the first unacknowledged record: acknowledged before (acks are idempotent).
  if (offset < state->position && (pending.empty() || offset < pending.front().offset)) return;
  auto it = std::lower_bound(pending.begin(), pending.end(), offset,
                             [](const Pending& p, int64_t o) { return p.offset < o; });
  if (it == pending.end() || it->offset != offset) {
    Die(absl::StrCat("OffsetTracker: ack of ", partition.topic, "[", partition.partition, "]@",
                     offset, ", which was not handed out"));
  }
  if (it->acked) return;
  it->acked = true;
  ++state->progress.records;
  state->max_acked = std::max(state->max_acked.value_or(offset), offset);
  while (!pending.empty() && pending.front().acked) pending.pop_front();
}

bool OffsetTracker::FetchComplete(const kafka::TopicPartition& partition) const {
  const State* state = Find(partition);
  return state != nullptr && state->position >= state->progress.end;
}

bool OffsetTracker::AllDone() const {
  for (const auto& [partition, state] : partitions_) {
    if (!state.progress.assigned) continue;
    if (state.position < state.progress.end || !state.pending.empty()) return false;
  }
  return true;
}

bool OffsetTracker::AllFetchComplete() const {
  for (const auto& [partition, state] : partitions_) {
    if (state.progress.assigned && state.position < state.progress.end) return false;
  }
  return true;
}

bool OffsetTracker::IsAssigned(const kafka::TopicPartition& partition) const {
  return Find(partition) != nullptr;
}

int OffsetTracker::AssignedCount() const {
  int n = 0;
  for (const auto& [partition, state] : partitions_) n += state.progress.assigned ? 1 : 0;
  return n;
}

std::vector<CommitOffset> OffsetTracker::PendingCommits(
    const std::vector<kafka::TopicPartition>* only) const {
  std::vector<CommitOffset> out;
  for (const auto& [partition, state] : partitions_) {
    if (!state.progress.assigned) continue;
    if (only != nullptr && std::find(only->begin(), only->end(), partition) == only->end()) {
      continue;
    }
    int64_t safe = SafePosition(state);
    if (!state.committed.has_value() || safe > *state.committed) {
      out.push_back({partition, safe});
    }
  }
  return out;
}

void OffsetTracker::Committed(const std::vector<CommitOffset>& offsets) {
  for (const CommitOffset& c : offsets) {
    auto it = partitions_.find(c.partition);
    if (it == partitions_.end()) continue;
    State& state = it->second;
    if (!state.committed.has_value() || c.offset > *state.committed) state.committed = c.offset;
    state.progress.committed = state.committed;
  }
}

bool OffsetTracker::HasUncommittedAcks(const kafka::TopicPartition& partition) const {
  const State* state = Find(partition);
  if (state == nullptr || !state->max_acked.has_value()) return false;
  return !state->committed.has_value() || *state->max_acked >= *state->committed;
}

int64_t OffsetTracker::RemainingLag() const {
  int64_t lag = 0;
  for (const auto& [partition, state] : partitions_) {
    if (!state.progress.assigned) continue;
    lag += std::max<int64_t>(0, state.progress.end - state.position);
  }
  return lag;
}

int64_t OffsetTracker::Unacknowledged() const {
  int64_t n = 0;
  for (const auto& [partition, state] : partitions_) {
    for (const Pending& p : state.pending) n += p.acked ? 0 : 1;
  }
  return n;
}

std::vector<PartitionProgress> OffsetTracker::Progress() const {
  std::vector<PartitionProgress> out;
  out.reserve(partitions_.size());
  for (const auto& [partition, state] : partitions_) out.push_back(state.progress);
  return out;
}

}  // namespace klag::job
