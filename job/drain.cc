#include "job/drain.h"

#include <algorithm>
#include <memory>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace klag::job {

absl::string_view ExitReasonName(ExitReason reason) {
  switch (reason) {
    case ExitReason::kDrained:
      return "drained";
    case ExitReason::kNoWork:
      return "no_work";
    case ExitReason::kNothingAssigned:
      return "nothing_assigned";
    case ExitReason::kSignal:
      return "signal";
    case ExitReason::kMaxRecords:
      return "max_records";
    case ExitReason::kMaxDuration:
      return "max_duration";
    case ExitReason::kFailed:
      return "failed";
  }
  return "unknown";
}

int ExitCode(ExitReason reason) {
  switch (reason) {
    case ExitReason::kDrained:
    case ExitReason::kNoWork:
    case ExitReason::kNothingAssigned:
      return kExitOk;
    case ExitReason::kSignal:
    case ExitReason::kMaxRecords:
    case ExitReason::kMaxDuration:
      return kExitStoppedEarly;
    case ExitReason::kFailed:
      return kExitFailed;
  }
  return kExitFailed;
}

Sleeper InterruptibleSleeper(const std::atomic<bool>& stop) {
  return [&stop](absl::Duration d) {
    const absl::Time until = absl::Now() + d;
    while (!stop.load()) {
      const absl::Duration left = until - absl::Now();
      if (left <= absl::ZeroDuration()) return true;
      std::this_thread::sleep_for(
          absl::ToChronoMilliseconds(std::min(left, absl::Milliseconds(50))));
    }
    return false;
  };
}

// Lets a batch in the sink finish during the first half of the shutdown budget; after that the
// sink abandons it so the commit and the close still fit in the grace period.
class Drainer::Context final : public WriteContext {
 public:
  explicit Context(Drainer& drainer) : drainer_(drainer) {}
  bool ShouldAbandon() const override {
    std::optional<absl::Time> seen = drainer_.StopSeen();
    return seen.has_value() && absl::Now() >= *seen + drainer_.options_.shutdown_timeout / 2;
  }

 private:
  Drainer& drainer_;
};

// One batch at a time through Delivery on a thread of its own, so the consumer's thread reads
// the next batch meanwhile. Start hands a batch over (the courier must be idle); Take returns it
// with its result once delivered.
class Drainer::Courier {
 public:
  struct Delivered {
    std::vector<Record> batch;
    Delivery::Result result;
  };

  Courier(Delivery& delivery, const WriteContext& context)
      : delivery_(delivery), context_(context), thread_([this] { Loop(); }) {}

  ~Courier() {
    {
      absl::MutexLock lock(&mu_);
      quit_ = true;
    }
    thread_.join();
  }

  void Start(std::vector<Record> batch) {
    absl::MutexLock lock(&mu_);
    batch_ = std::move(batch);
    state_ = State::kQueued;
  }

  bool Idle() {
    absl::MutexLock lock(&mu_);
    return state_ == State::kIdle;
  }

  // The delivered batch: waits for it when `wait`; nullopt when idle or (not waiting) still busy.
  std::optional<Delivered> Take(bool wait) {
    absl::MutexLock lock(&mu_);
    if (state_ == State::kIdle) return std::nullopt;
    if (wait) {
      mu_.Await(absl::Condition(this, &Courier::IsDone));
    } else if (state_ != State::kDone) {
      return std::nullopt;
    }
    state_ = State::kIdle;
    return Delivered{std::move(batch_), std::move(result_)};
  }

 private:
  enum class State { kIdle, kQueued, kRunning, kDone };

  bool IsDone() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return state_ == State::kDone; }
  bool HasWorkOrQuit() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return quit_ || state_ == State::kQueued;
  }

  void Loop() {
    mu_.Lock();
    while (true) {
      mu_.Await(absl::Condition(this, &Courier::HasWorkOrQuit));
      if (state_ != State::kQueued) break;  // quit with nothing queued
      state_ = State::kRunning;
      // While running, batch_ is this thread's alone.
      mu_.Unlock();
      Delivery::Result result = delivery_.Deliver(batch_, context_);
      mu_.Lock();
      result_ = std::move(result);
      state_ = State::kDone;
    }
    mu_.Unlock();
  }

  Delivery& delivery_;
  const WriteContext& context_;
  absl::Mutex mu_;
  State state_ ABSL_GUARDED_BY(mu_) = State::kIdle;
  bool quit_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<Record> batch_;  // guarded by mu_ except while kRunning (the courier's own)
  Delivery::Result result_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;  // last: starts once the members above exist
};

Drainer::Drainer(Consumer& consumer, Delivery& delivery, const std::atomic<bool>& stop,
                 DrainOptions options)
    : consumer_(consumer), delivery_(delivery), stop_(stop), options_(std::move(options)) {
  options_.batch_size = std::max(1, options_.batch_size);
}

Drainer::~Drainer() = default;

std::optional<absl::Time> Drainer::StopSeen() {
  absl::MutexLock lock(&stop_mu_);
  if (!stop_seen_.has_value() && stop_.load()) stop_seen_ = absl::Now();
  return stop_seen_;
}

absl::Time Drainer::FinalDeadline(absl::Time now) {
  if (std::optional<absl::Time> seen = StopSeen(); seen.has_value()) {
    // Keep a second for destroying the client and exiting.
    return std::max(now, *seen + options_.shutdown_timeout - absl::Seconds(1));
  }
  return now + options_.kafka_timeout;
}

void Drainer::OnAssigned(const std::vector<AssignedPartition>& partitions) {
  for (const AssignedPartition& a : partitions) {
    if (tracker_.IsAssigned(a.partition)) {
      // Defensive: librdkafka never assigns a partition twice without revoking it, but if it
      // did, starting over from the new offsets is safe.
      tracker_.Revoke(a.partition);
    }
    tracker_.Assign(a.partition, a.start, a.end, a.committed);
    paused_.erase(std::remove(paused_.begin(), paused_.end(), a.partition), paused_.end());
  }
  PauseFetchComplete();
}

void Drainer::OnRevoked(const std::vector<kafka::TopicPartition>& partitions, bool lost) {
  // The batch in the sink finishes first, so what it acknowledges is committed below.
  (void)CollectDelivered(/*wait=*/true);
  // Records of these partitions not yet delivered go back to the group undelivered.
  batch_.erase(std::remove_if(batch_.begin(), batch_.end(),
                              [&](const Record& r) {
                                return std::find(partitions.begin(), partitions.end(),
                                                 r.Partition()) != partitions.end();
                              }),
               batch_.end());
  if (!lost) {
    const absl::Time now = absl::Now();
    const absl::Time deadline = stopping_ ? final_deadline_ : now + options_.kafka_timeout;
    if (absl::Status s = CommitPending(deadline, &partitions); !s.ok()) {
      spdlog::warn("commit before giving up {} partition(s) failed: {}", partitions.size(),
                   std::string(s.message()));
    }
  }
  for (const kafka::TopicPartition& p : partitions) {
    if (tracker_.HasUncommittedAcks(p)) {
      // Lost (evicted, broker unreachable) or the commit failed: the next owner delivers these
      // records again, and this run must not claim its progress was saved.
      ++partitions_with_uncommitted_acks_;
      spdlog::warn(
          "{}[{}] {} with acknowledged records not committed; they will be delivered "
          "again",
          p.topic, p.partition, lost ? "lost" : "revoked");
    }
    tracker_.Revoke(p);
    paused_.erase(std::remove(paused_.begin(), paused_.end(), p), paused_.end());
  }
}

absl::Status Drainer::CommitPending(absl::Time deadline,
                                    const std::vector<kafka::TopicPartition>* only) {
  std::vector<CommitOffset> commits = tracker_.PendingCommits(only);
  if (commits.empty()) return absl::OkStatus();
  absl::Status s = consumer_.Commit(commits, deadline);
  if (s.ok()) {
    ++report_.commits;
    tracker_.Committed(commits);
    for (const CommitOffset& c : commits) {
      spdlog::debug("committed {}[{}] at {}", c.partition.topic, c.partition.partition, c.offset);
    }
  }
  return s;
}

void Drainer::PauseFetchComplete() {
  std::vector<kafka::TopicPartition> done;
  for (const PartitionProgress& p : tracker_.Progress()) {
    if (!p.assigned || !tracker_.FetchComplete(p.partition)) continue;
    if (std::find(paused_.begin(), paused_.end(), p.partition) != paused_.end()) continue;
    done.push_back(p.partition);
  }
  if (done.empty()) return;
  if (absl::Status s = consumer_.Pause(done); !s.ok()) {
    spdlog::warn("pausing fetch-complete partitions failed: {}", std::string(s.message()));
    return;
  }
  paused_.insert(paused_.end(), done.begin(), done.end());
}

std::optional<ExitReason> Drainer::ShouldEnd(absl::Time now, absl::Time start) {
  if (stop_.load()) return ExitReason::kSignal;
  if (tracker_.AssignedCount() > 0 && tracker_.AllDone()) return ExitReason::kDrained;
  if (options_.max_records > 0 && report_.records >= options_.max_records) {
    return ExitReason::kMaxRecords;
  }
  if (now - start >= options_.max_duration) return ExitReason::kMaxDuration;
  return std::nullopt;
}

bool Drainer::DeliverBatch() {
  if (batch_.empty()) return true;
  if (!CollectDelivered(/*wait=*/true)) return false;
  // Stopped while the batch before was in the sink: no new batch (the loop ends next).
  if (stop_.load()) return true;
  in_courier_ = batch_.size();
  courier_->Start(std::move(batch_));
  batch_.clear();
  return true;
}

bool Drainer::CollectDelivered(bool wait) {
  if (courier_ == nullptr) return !failed_;
  std::optional<Courier::Delivered> done = courier_->Take(wait);
  if (!done.has_value()) return !failed_;
  in_courier_ = 0;
  const Delivery::Result& result = done->result;
  ++report_.batches;
  for (size_t i : result.acked) {
    const Record& r = done->batch[i];
    // A partition revoked meanwhile is no longer tracked: its ack changes nothing.
    tracker_.Ack(r.Partition(), r.offset);
    ++report_.records;
    report_.bytes += r.ByteSize();
  }
  report_.dead_lettered += result.dead_lettered;
  if (result.status.ok()) return !failed_;
  failed_ = true;
  if (result.status.code() == absl::StatusCode::kCancelled && stop_.load()) {
    spdlog::warn("{}", std::string(result.status.message()));
    report_.reason = ExitReason::kSignal;
    return false;
  }
  report_.reason = ExitReason::kFailed;
  report_.error = result.status;
  return false;
}

DrainReport Drainer::Run() {
  const absl::Time start = absl::Now();
  report_ = DrainReport();
  bool running = true;
  if (absl::Status s = consumer_.Subscribe(options_.topics, this); !s.ok()) {
    report_.reason = ExitReason::kFailed;
    report_.error = s;
    running = false;
  }
  Context context(*this);
  courier_ = std::make_unique<Courier>(delivery_, context);
  std::optional<absl::Time> unassigned_since = start;
  absl::Time last_commit = start;
  absl::Time last_progress = start;
  int64_t records_at_last_progress = 0;

  while (running) {
    if (!CollectDelivered(/*wait=*/false)) break;
    absl::Time now = absl::Now();
    if (std::optional<ExitReason> end = ShouldEnd(now, start); end.has_value()) {
      report_.reason = *end;
      break;
    }
    if (tracker_.AssignedCount() > 0) {
      unassigned_since.reset();
    } else if (!unassigned_since.has_value()) {
      unassigned_since = now;
    } else if (now - *unassigned_since >= options_.assignment_timeout) {
      spdlog::info("no partition assigned for {}: other members hold them all",
                   absl::FormatDuration(now - *unassigned_since));
      report_.reason = ExitReason::kNothingAssigned;
      break;
    }

    // Room in the batch, also bounded by --max-records.
    int64_t room = options_.batch_size - static_cast<int64_t>(batch_.size());
    if (options_.max_records > 0) {
      room = std::min(room, options_.max_records - report_.records -
                                static_cast<int64_t>(batch_.size() + in_courier_));
    }
    if (room > 0) {
      absl::Duration wait = absl::Milliseconds(100);
      if (!batch_.empty()) {
        wait = std::clamp(batch_started_ + options_.batch_linger - now, absl::ZeroDuration(), wait);
      }
      absl::StatusOr<PollResult> polled = consumer_.Poll(static_cast<int>(room), wait);
      if (failed_) break;  // a revocation collected a failed batch
      if (!polled.ok()) {
        report_.reason = ExitReason::kFailed;
        report_.error = polled.status();
        break;
      }
      for (Record& r : polled->records) {
        switch (tracker_.Offer(r.Partition(), r.offset)) {
          case OffsetTracker::Disposition::kDeliver:
            if (batch_.empty()) batch_started_ = absl::Now();
            batch_.push_back(std::move(r));
            break;
          case OffsetTracker::Disposition::kBeyondEnd:
          case OffsetTracker::Disposition::kStale:
          case OffsetTracker::Disposition::kNotAssigned:
            break;
        }
      }
      for (const auto& [partition, position] : polled->ends) {
        tracker_.ReachedEnd(partition, position);
      }
      PauseFetchComplete();
    }

    now = absl::Now();
    const bool full = room <= 0 || static_cast<int>(batch_.size()) >= options_.batch_size;
    const bool linger_over = now >= batch_started_ + options_.batch_linger;
    if (!batch_.empty() && (full || linger_over || tracker_.AllFetchComplete())) {
      if (!DeliverBatch()) break;
    }
    if (batch_.empty() && !courier_->Idle() &&
        (tracker_.AllFetchComplete() || (room <= 0 && options_.max_records > 0))) {
      // Nothing more to read for now: wait for the last batch rather than poll.
      if (!CollectDelivered(/*wait=*/true)) break;
    }

    now = absl::Now();
    if (now - last_commit >= options_.commit_interval) {
      if (absl::Status s = CommitPending(now + options_.kafka_timeout); !s.ok()) {
        spdlog::warn("periodic commit failed (retried at the next interval): {}",
                     std::string(s.message()));
      }
      last_commit = now;
    }
    if (now - last_progress >= options_.progress_interval) {
      const double rate = static_cast<double>(report_.records - records_at_last_progress) /
                          absl::ToDoubleSeconds(now - last_progress);
      if (tracker_.AssignedCount() == 0) {
        spdlog::info("progress: {} records; waiting for partitions to be assigned",
                     report_.records);
      } else {
        spdlog::info("progress: {} records, {:.0f} records/s, remaining lag {} on {} partition(s)",
                     report_.records, rate, tracker_.RemainingLag(), tracker_.AssignedCount());
      }
      last_progress = now;
      records_at_last_progress = report_.records;
    }
  }

  // Whatever is still in batch_ was never delivered: it stays uncommitted. The batch in the
  // courier finishes (or is abandoned late in a shutdown) and its acknowledgements count.
  batch_.clear();
  (void)CollectDelivered(/*wait=*/true);
  stopping_ = true;
  final_deadline_ = FinalDeadline(absl::Now());
  if (absl::Status s =
          CommitPending(std::min(final_deadline_, absl::Now() + options_.kafka_timeout));
      !s.ok()) {
    spdlog::error("final commit failed: {}", std::string(s.message()));
    if (report_.reason != ExitReason::kFailed) {
      report_.reason = ExitReason::kFailed;
      report_.error = s;
    }
  }
  if (absl::Status s = consumer_.Close(final_deadline_); !s.ok()) {
    spdlog::warn("{}", std::string(s.message()));
  }
  if (partitions_with_uncommitted_acks_ > 0 && report_.reason != ExitReason::kFailed) {
    report_.reason = ExitReason::kFailed;
    report_.error = absl::AbortedError(absl::StrCat(
        partitions_with_uncommitted_acks_,
        " partition(s) were taken away with acknowledged records not committed (the group "
        "lost this member, or commits failed); those records will be delivered again"));
  }
  courier_.reset();
  report_.duration = absl::Now() - start;
  report_.partitions = tracker_.Progress();
  return report_;
}

}  // namespace klag::job
