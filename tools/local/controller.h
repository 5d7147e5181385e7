// The local ScaledJob loop: every pollingInterval, poll each trigger as KEDA does
// (ScalerClient), apply KEDA's arithmetic (DecideScale) to the Jobs the JobRunner holds, start
// the Jobs it asks for, clean up history, and log the decision with its inputs.
//
//   Controller controller(sj, values_env, &client, &runner, ControllerOptions{});
//   controller.PollOnce(absl::Now());        // one KEDA poll
//   controller.Run(&stop);                   // until `stop` is set
#pragma once

#include <atomic>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "tools/local/job_runner.h"
#include "tools/local/scaled_job.h"
#include "tools/local/scaler_client.h"
#include "tools/local/scaling.h"

namespace klag::local {

struct ControllerOptions {
  // Overrides the manifest's pollingInterval when set.
  std::optional<absl::Duration> polling_interval;
  // How often jobs are reaped and deadlines enforced between polls.
  absl::Duration tick = absl::Milliseconds(100);
  // JSON lines, one per poll ({"t":..,"queueLength":..,"active":..,"running":..,...}) and one per
  // Job start/finish; nullptr: none. Not owned.
  std::FILE* events = nullptr;
};

struct PollResult {
  ScaleInput input;
  ScaleDecision decision;
  std::vector<std::string> errors;  // triggers skipped this poll, with their error
  std::vector<std::string> started;
};

class Controller {
 public:
  // `refs` holds one ScalerRef per trigger (metadata as KEDA forwards it). `client` and `runner`
  // must outlive the controller.
  Controller(ScaledJob scaled_job, std::vector<ScalerRef> refs, ScalerClient* client,
             JobRunner* runner, ControllerOptions options);

  // One poll at `now`: ticks the runner, polls, decides, starts Jobs, cleans up history.
  PollResult PollOnce(absl::Time now);

  // Polls every polling interval (ticking the runner in between) until `stop` becomes true.
  void Run(const std::atomic<bool>* stop);

  absl::Duration polling_interval() const;

 private:
  void Event(absl::Time now, const std::string& json_fields);

  ScaledJob sj_;
  std::vector<ScalerRef> refs_;
  ScalerClient* client_;
  JobRunner* runner_;
  ControllerOptions options_;
  absl::Time started_ = absl::Now();
  std::vector<JobStatus> last_jobs_;
};

}  // namespace klag::local
