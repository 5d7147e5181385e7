#include "tests/testing/fake_offset_reader.h"

#include <algorithm>
#include <set>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"

namespace klag::testing {

void FakeOffsetReader::SetOffsets(const std::string& group,
                                  std::vector<kafka::PartitionOffsets> partitions) {
  absl::MutexLock lock(&mu_);
  offsets_[group] = std::move(partitions);
}

void FakeOffsetReader::SetError(const std::string& group, absl::Status status) {
  absl::MutexLock lock(&mu_);
  errors_[group] = std::move(status);
}

void FakeOffsetReader::SetDefault(absl::StatusOr<kafka::GroupOffsets> answer) {
  absl::MutexLock lock(&mu_);
  default_ = std::move(answer);
}

void FakeOffsetReader::ClearError(const std::string& group) {
  absl::MutexLock lock(&mu_);
  errors_.erase(group);
}

void FakeOffsetReader::BlockCalls(bool honor_deadline) {
  absl::MutexLock lock(&mu_);
  blocking_ = true;
  honor_deadline_ = honor_deadline;
}

void FakeOffsetReader::ReleaseCalls() {
  absl::MutexLock lock(&mu_);
  blocking_ = false;
}

bool FakeOffsetReader::AwaitBlockedCalls(int n, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto enough = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return blocked_ >= n; };
  return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
}

int FakeOffsetReader::calls() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(queries_.size());
}

int FakeOffsetReader::calls(const std::string& group) const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(
      std::count_if(queries_.begin(), queries_.end(),
                    [&](const kafka::OffsetQuery& q) { return q.group == group; }));
}

std::vector<kafka::OffsetQuery> FakeOffsetReader::queries() const {
  absl::MutexLock lock(&mu_);
  return queries_;
}

absl::StatusOr<kafka::GroupOffsets> FakeOffsetReader::ReadOffsets(const kafka::OffsetQuery& query,
                                                                  absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  queries_.push_back(query);
  if (blocking_) {
    ++blocked_;
    auto released = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !blocking_; };
    const bool ok = mu_.AwaitWithDeadline(absl::Condition(&released),
                                          honor_deadline_ ? deadline : absl::InfiniteFuture());
    --blocked_;
    if (!ok) {
      return absl::DeadlineExceededError(
          absl::StrCat("FakeOffsetReader: group ", query.group, ": blocked past the deadline"));
    }
  }
  return AnswerLocked(query);
}

std::optional<kafka::GroupOffsets> FakeOffsetReader::TryReadOffsets(
    const kafka::OffsetQuery& query) {
  absl::MutexLock lock(&mu_);
  if (!immediate_) return std::nullopt;
  absl::StatusOr<kafka::GroupOffsets> answer = AnswerLocked(query);
  if (!answer.ok()) return std::nullopt;
  ++immediate_answers_;
  return *std::move(answer);
}

void FakeOffsetReader::AnswerImmediately(bool on) {
  absl::MutexLock lock(&mu_);
  immediate_ = on;
}

int FakeOffsetReader::immediate_answers() const {
  absl::MutexLock lock(&mu_);
  return immediate_answers_;
}

absl::StatusOr<kafka::GroupOffsets> FakeOffsetReader::AnswerLocked(
    const kafka::OffsetQuery& query) const {
  if (auto it = errors_.find(query.group); it != errors_.end()) return it->second;
  auto it = offsets_.find(query.group);
  if (it == offsets_.end()) {
    if (default_.has_value()) return *default_;
    return absl::NotFoundError(
        absl::StrCat("FakeOffsetReader: group ", query.group, " has no offsets set"));
  }
  kafka::GroupOffsets answer;
  const std::set<std::string> wanted(query.topics.begin(), query.topics.end());
  for (const kafka::PartitionOffsets& p : it->second) {
    if (wanted.empty() || wanted.contains(p.topic)) answer.partitions.push_back(p);
  }
  for (const std::string& topic : wanted) {
    if (std::none_of(answer.partitions.begin(), answer.partitions.end(),
                     [&](const kafka::PartitionOffsets& p) { return p.topic == topic; })) {
      return absl::NotFoundError(absl::StrCat("FakeOffsetReader: unknown topic ", topic));
    }
  }
  std::sort(answer.partitions.begin(), answer.partitions.end(),
            [](const kafka::PartitionOffsets& a, const kafka::PartitionOffsets& b) {
              return std::tie(a.topic, a.partition) < std::tie(b.topic, b.partition);
            });
  return answer;
}

}  // namespace klag::testing
