// Drainer: one Job run. Joins the group through a Consumer, reads every assigned partition up to
// its end offset at assignment, delivers batches through Delivery, commits acknowledged positions
// (periodically and at the end) and leaves the group.
//
//   std::atomic<bool> stop{false};             // set by the SIGTERM handler
//   Drainer drainer(consumer, delivery, stop, {.topics = {"ListedStockPrice"}});
//   DrainReport report = drainer.Run();
//   return ExitCode(report.reason);
//
// Stopping: when `stop` is set (or --max-records / --max-duration is reached) it stops fetching;
// a batch in the sink may finish until half of shutdown_timeout has passed and is abandoned
// after that (the sink sees WriteContext::ShouldAbandon); then it commits what was acknowledged
// and closes, all within shutdown_timeout.
//
// Pipelining: a batch is delivered on a second thread (the courier) while the next one is
// consumed, one batch in the sink at a time and in order. Its acknowledgements reach the offset
// tracker on the consumer's thread, before the next batch is handed over, before a revocation
// commits and at the end, so a commit never covers a record the sink has not acknowledged.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "job/consumer.h"
#include "job/delivery.h"
#include "job/offset_tracker.h"

namespace klag::job {

struct DrainOptions {
  std::vector<std::string> topics;
  int batch_size = 500;
  // How long a batch may wait to fill up before it is delivered anyway.
  absl::Duration batch_linger = absl::Milliseconds(200);
  int64_t max_records = 0;  // 0: no limit
  absl::Duration max_duration = absl::InfiniteDuration();
  // Acknowledged progress is committed this often (and at the end): a Job killed with SIGKILL
  // redelivers at most about this much acknowledged work. One OffsetCommit per interval, only
  // when something was acknowledged since the last one.
  absl::Duration commit_interval = absl::Seconds(1);
  // Exit 0 when no partition has been assigned for this long (other Jobs hold them all).
  absl::Duration assignment_timeout = absl::Seconds(15);
  absl::Duration shutdown_timeout = absl::Seconds(20);
  absl::Duration progress_interval = absl::Seconds(5);
  // Deadline of one commit outside a shutdown.
  absl::Duration kafka_timeout = absl::Seconds(10);
};

enum class ExitReason {
  kDrained,          // every assigned partition read to its end offset and committed
  kNoWork,           // no lag before joining (decided by the caller)
  kNothingAssigned,  // no partition assigned within assignment_timeout
  kSignal,           // SIGTERM/SIGINT
  kMaxRecords,
  kMaxDuration,
  kFailed,  // fatal error; see DrainReport::error
};

// "drained", "no_work", "nothing_assigned", "signal", "max_records", "max_duration", "failed".
absl::string_view ExitReasonName(ExitReason reason);

// Process exit codes.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitStoppedEarly = 3;

// 0 for drained, no work and nothing assigned; 3 for the early stops (progress committed); 1 for
// kFailed.
int ExitCode(ExitReason reason);

struct DrainReport {
  ExitReason reason = ExitReason::kDrained;
  absl::Status error;   // why, for kFailed
  int64_t records = 0;  // acknowledged by the sink (dead letters included)
  int64_t bytes = 0;    // payload bytes of those records
  int64_t dead_lettered = 0;
  int64_t batches = 0;
  int64_t commits = 0;  // successful OffsetCommits (periodic, on revocation, final)
  absl::Duration duration;
  std::vector<PartitionProgress> partitions;
};

// A Sleeper (for Delivery's back-off) that wakes early, returning false, once `stop` is set.
Sleeper InterruptibleSleeper(const std::atomic<bool>& stop);

class Drainer final : public RebalanceListener {
 public:
  // References must outlive the Drainer. The Delivery (and its sink) is used from the courier's
  // thread, one batch at a time.
  Drainer(Consumer& consumer, Delivery& delivery, const std::atomic<bool>& stop,
          DrainOptions options);
  ~Drainer() override;

  // Runs once. Never throws; a fatal error ends the run with kFailed after committing what was
  // acknowledged.
  DrainReport Run();

  void OnAssigned(const std::vector<AssignedPartition>& partitions) override;
  void OnRevoked(const std::vector<kafka::TopicPartition>& partitions, bool lost) override;

 private:
  class Context;  // WriteContext: abandon a batch late in a shutdown
  class Courier;  // delivers one batch at a time on its own thread

  // Stop reason when the loop should end now, else nullopt.
  std::optional<ExitReason> ShouldEnd(absl::Time now, absl::Time start);
  // Hands `batch_` to the courier once the batch before it is collected; false when the run
  // must end (report_ set).
  bool DeliverBatch();
  // Applies the outcome of the batch in the courier: waits for it when `wait`, else only when
  // it is done. False when that batch failed and the run must end (report_ set; also failed_).
  bool CollectDelivered(bool wait);
  // Commits pending positions (of `only` when given) by `deadline`.
  absl::Status CommitPending(absl::Time deadline,
                             const std::vector<kafka::TopicPartition>* only = nullptr);
  void PauseFetchComplete();
  // When the stop request was first seen (nullopt while running normally).
  std::optional<absl::Time> StopSeen();
  // Deadline for committing and closing at the end.
  absl::Time FinalDeadline(absl::Time now);

  Consumer& consumer_;
  Delivery& delivery_;
  const std::atomic<bool>& stop_;
  DrainOptions options_;
  OffsetTracker tracker_;
  std::vector<Record> batch_;
  absl::Time batch_started_;
  std::unique_ptr<Courier> courier_;
  size_t in_courier_ = 0;  // records of the batch the courier holds
  bool failed_ = false;    // a delivered batch failed (seen in a rebalance callback too)
  std::vector<kafka::TopicPartition> paused_;
  absl::Mutex stop_mu_;  // the courier's thread asks StopSeen too
  std::optional<absl::Time> stop_seen_ ABSL_GUARDED_BY(stop_mu_);
  bool stopping_ = false;  // the loop ended; commits in callbacks use the final deadline
  absl::Time final_deadline_;
  int partitions_with_uncommitted_acks_ = 0;  // revoked or lost so
  DrainReport report_;
};

}  // namespace klag::job
