#include "tools/local/controller.h"

#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "spdlog/spdlog.h"

namespace klag::local {
namespace {

const char* PhaseName(JobPhase p) {
  switch (p) {
    case JobPhase::kRunning:
      return "running";
    case JobPhase::kSucceeded:
      return "succeeded";
    case JobPhase::kFailed:
      return "failed";
  }
  return "?";
}

}  // namespace

Controller::Controller(ScaledJob scaled_job, std::vector<ScalerRef> refs, ScalerClient* client,
                       JobRunner* runner, ControllerOptions options)
    : sj_(std::move(scaled_job)),
      refs_(std::move(refs)),
      client_(client),
      runner_(runner),
      options_(std::move(options)) {}

absl::Duration Controller::polling_interval() const {
  return options_.polling_interval.value_or(sj_.polling_interval);
}

void Controller::Event(absl::Time now, const std::string& json_fields) {
  if (options_.events == nullptr) return;
  std::fprintf(options_.events, "{\"t\":%.3f,%s}\n", absl::ToDoubleSeconds(now - started_),
               json_fields.c_str());
  std::fflush(options_.events);
}

PollResult Controller::PollOnce(absl::Time now) {
  runner_->Tick(now);
  PollResult result;
  ScaleInput& in = result.input;
  in.min_replica_count = sj_.min_replica_count;
  in.max_replica_count = sj_.max_replica_count;
  in.strategy = sj_.scaling_strategy;

  for (size_t i = 0; i < refs_.size(); ++i) {
    absl::StatusOr<TriggerPoll> poll = client_->Poll(refs_[i]);
    if (!poll.ok()) {
      // KEDA skips a failing trigger for this poll (an event, no scale decision from it).
      result.errors.push_back(absl::StrCat("trigger ", i, ": ", poll.status().ToString()));
      spdlog::warn("poll: trigger {} skipped: {}", i, poll.status().ToString());
      continue;
    }
    in.triggers.push_back(poll->sample);
  }
  in.running = runner_->Running();
  in.pending = runner_->Pending();
  result.decision = DecideScale(in);
  const ScaleDecision& d = result.decision;
  spdlog::info("poll: {}", DescribeDecision(in, d));

  for (int64_t i = 0; i < d.jobs_to_create; ++i) result.started.push_back(runner_->StartJob(now));
  double queue = 0;
  for (const TriggerSample& t : in.triggers) queue = std::max(queue, t.queue_length);
  Event(now, absl::StrCat("\"event\":\"poll\",\"queueLength\":", queue,
                          ",\"active\":", d.active ? "true" : "false", ",\"running\":", in.running,
                          ",\"pending\":", in.pending, ",\"create\":", d.jobs_to_create,
                          ",\"errors\":", result.errors.size()));

  std::vector<std::string> removed =
      runner_->CleanUp(sj_.successful_jobs_history_limit, sj_.failed_jobs_history_limit);
  if (!removed.empty()) {
    spdlog::info("history: removed {} (successfulJobsHistoryLimit {}, failedJobsHistoryLimit {})",
                 absl::StrJoin(removed, ", "), sj_.successful_jobs_history_limit,
                 sj_.failed_jobs_history_limit);
  }
  return result;
}

void Controller::Run(const std::atomic<bool>* stop) {
  const absl::Duration interval = polling_interval();
  absl::Time next_poll = absl::Now();
  while (!stop->load()) {
    absl::Time now = absl::Now();
    if (now >= next_poll) {
      PollOnce(now);
      next_poll += interval;
      if (next_poll < now) next_poll = now + interval;  // a slow poll does not cause a burst
    } else {
      runner_->Tick(now);
    }
    // Job transitions, for the events file (the chart's running-Jobs line).
    std::vector<JobStatus> jobs = runner_->Jobs();
    for (const JobStatus& j : jobs) {
      auto before = std::find_if(last_jobs_.begin(), last_jobs_.end(),
                                 [&](const JobStatus& o) { return o.name == j.name; });
      if (before == last_jobs_.end() || before->phase != j.phase) {
        Event(now, absl::StrCat("\"event\":\"job\",\"job\":\"", j.name, "\",\"phase\":\"",
                                PhaseName(j.phase), "\",\"running\":", runner_->Running()));
      }
    }
    last_jobs_ = std::move(jobs);
    std::this_thread::sleep_for(absl::ToChronoMilliseconds(
        std::min(options_.tick, std::max(absl::ZeroDuration(), next_poll - absl::Now()))));
  }
}

}  // namespace klag::local
