// A scriptable kafka::OffsetReader for unit tests: set the answer (offsets or an error) per
// group, count calls, and optionally block calls until the test releases them (for single-flight
// and concurrency tests).
//
//   testing::FakeOffsetReader reader;
//   reader.SetOffsets("g", {{.topic = "t", .partition = 0, .committed = 5, .end = 9}});
//   reader.SetError("broken", absl::UnavailableError("down"));
//   reader.BlockCalls();                 // ReadOffsets now waits ...
//   std::thread t([&] { reader.ReadOffsets({.group = "g"}, absl::Now() + absl::Seconds(1)); });
//   reader.AwaitBlockedCalls(1);         // ... until a test sees it waiting
//   reader.ReleaseCalls();               // and lets it go
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "kafka/offsets.h"

namespace klag::testing {

// Thread-safe, like the real readers.
class FakeOffsetReader : public kafka::OffsetReader {
 public:
  // Answers ReadOffsets for `group`. With query.topics non-empty, only partitions of those
  // topics are returned; a requested topic with no partition in `partitions` is kNotFound (as an
  // unknown topic is for the real reader). The answer is sorted by (topic, partition).
  void SetOffsets(const std::string& group, std::vector<kafka::PartitionOffsets> partitions);

  // Makes ReadOffsets for `group` fail with `status` (takes precedence over SetOffsets).
  void SetError(const std::string& group, absl::Status status);

  // Answer for groups that have neither offsets nor an error set. Default: kNotFound naming the
  // group.
  void SetDefault(absl::StatusOr<kafka::GroupOffsets> answer);

  // Clears the error for `group` (its offsets, if any, apply again).
  void ClearError(const std::string& group);

  // From now on, ReadOffsets waits until ReleaseCalls() or its deadline (then it returns
  // kDeadlineExceeded, as a real reader would). With honor_deadline false it waits for
  // ReleaseCalls() only (a reader stuck past its deadline: for tests that must hold a worker
  // for certain while something else happens).
  void BlockCalls(bool honor_deadline = true);
  // Lets every waiting and future call through.
  void ReleaseCalls();
  // Waits until at least `n` calls are blocked, or `timeout` passes; returns whether they are.
  bool AwaitBlockedCalls(int n, absl::Duration timeout = absl::Seconds(10));

  // Calls so far (all groups / one group), and the queries received, in order.
  int calls() const;
  int calls(const std::string& group) const;
  std::vector<kafka::OffsetQuery> queries() const;

  absl::StatusOr<kafka::GroupOffsets> ReadOffsets(const kafka::OffsetQuery& query,
                                                  absl::Time deadline) override;

  // From now on (while `on`), TryReadOffsets answers what ReadOffsets would, when that is not
  // an error, at once and without counting as a call (never blocks); otherwise nullopt.
  void AnswerImmediately(bool on);
  int immediate_answers() const;
  std::optional<kafka::GroupOffsets> TryReadOffsets(const kafka::OffsetQuery& query) override;

 private:
  absl::StatusOr<kafka::GroupOffsets> AnswerLocked(const kafka::OffsetQuery& query) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  std::map<std::string, std::vector<kafka::PartitionOffsets>> offsets_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, absl::Status> errors_ ABSL_GUARDED_BY(mu_);
  std::optional<absl::StatusOr<kafka::GroupOffsets>> default_ ABSL_GUARDED_BY(mu_);
  std::vector<kafka::OffsetQuery> queries_ ABSL_GUARDED_BY(mu_);
  bool blocking_ ABSL_GUARDED_BY(mu_) = false;
  bool honor_deadline_ ABSL_GUARDED_BY(mu_) = true;
  int blocked_ ABSL_GUARDED_BY(mu_) = 0;
  bool immediate_ ABSL_GUARDED_BY(mu_) = false;
  int immediate_answers_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace klag::testing
