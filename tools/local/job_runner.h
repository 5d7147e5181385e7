// Local stand-in for the Kubernetes Job controller: each Job runs the template's container as
// local processes ("pods"), with the Job semantics the ScaledJob relies on:
//  - parallelism / completions: up to min(parallelism, completions - succeeded) pods at once;
//    the Job completes when `completions` pods exited 0.
//  - backoffLimit: a pod exiting non-zero is replaced after a back-off (doubling, capped), until
//    more than backoffLimit pods failed: the Job fails (BackoffLimitExceeded).
//  - activeDeadlineSeconds: counted from the Job's start; when exceeded, every pod gets SIGTERM,
//    then SIGKILL after terminationGracePeriodSeconds, and the Job fails (DeadlineExceeded).
//  - history: finished Jobs beyond successfulJobsHistoryLimit / failedJobsHistoryLimit are
//    removed, oldest first (with their log directory).
// Pods run in their own process group. Time is passed in, so tests control it; Tick() never
// blocks. Not thread-safe: one loop thread owns it.
//
//   JobRunner runner(options);
//   runner.StartJob(absl::Now());
//   while (...) { runner.Tick(absl::Now()); ... runner.Running(); }
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "tools/local/scaled_job.h"

namespace klag::local {

struct JobRunnerOptions {
  std::string scaled_job_name = "job";
  std::vector<std::string> argv;  // command + args, argv[0] a path to execute
  StringMap env;                  // the pod's whole environment
  int64_t parallelism = 1;
  int64_t completions = 1;
  int64_t backoff_limit = 6;
  std::optional<absl::Duration> active_deadline;
  absl::Duration termination_grace = absl::Seconds(30);
  // Kubernetes: 10s, doubling, at most 6 minutes.
  absl::Duration retry_backoff = absl::Seconds(10);
  absl::Duration max_retry_backoff = absl::Minutes(6);
  // Empty: pods inherit stdout/stderr. Otherwise <log_dir>/<job>/<pod>.log.
  std::string log_dir;
};

enum class JobPhase { kRunning, kSucceeded, kFailed };

struct JobStatus {
  std::string name;
  JobPhase phase = JobPhase::kRunning;
  std::string reason;  // BackoffLimitExceeded, DeadlineExceeded, StartFailed
  absl::Time start;
  std::optional<absl::Time> finished;
  int64_t active_pods = 0;
  int64_t succeeded_pods = 0;
  int64_t failed_pods = 0;
};

class JobRunner {
 public:
  explicit JobRunner(JobRunnerOptions options);
  ~JobRunner();  // kills (SIGKILL) and reaps pods still running
  JobRunner(const JobRunner&) = delete;
  JobRunner& operator=(const JobRunner&) = delete;

  // Creates a Job (name <scaledjob>-<5 random chars>) and starts its first pods. Returns the name.
  std::string StartJob(absl::Time now);

  // Reaps exited pods, starts replacements whose back-off passed, enforces deadlines and
  // termination grace, and finishes Jobs.
  void Tick(absl::Time now);

  // Unfinished Jobs (KEDA's running count).
  int64_t Running() const;
  // Unfinished Jobs without a live pod (waiting for a retry): KEDA's pending count, for which a
  // local pod that was started counts as Running/Ready/PodScheduled.
  int64_t Pending() const;

  // Removes finished Jobs beyond the limits, oldest completion first. Returns their names.
  std::vector<std::string> CleanUp(int64_t successful_limit, int64_t failed_limit);

  // SIGTERM to every live pod, up to `grace` for them to exit, then SIGKILL. Blocks.
  void StopAll(absl::Duration grace);

  std::vector<JobStatus> Jobs() const;

 private:
  struct Pod {
    std::string name;
    pid_t pid = -1;
    absl::Time started;
    std::optional<absl::Time> kill_at;  // SIGTERM sent; SIGKILL at this time
  };
  struct Job {
    JobStatus status;
    std::vector<Pod> pods;                 // live pods
    std::optional<absl::Time> next_start;  // back-off before replacing a failed pod
    int64_t consecutive_failures = 0;
    bool terminating = false;
  };

  void StartPods(Job& job, absl::Time now);
  bool StartPod(Job& job, absl::Time now);
  void Finish(Job& job, JobPhase phase, const std::string& reason, absl::Time now);
  void Terminate(Job& job, absl::Time now);

  JobRunnerOptions options_;
  std::vector<Job> jobs_;
};

// A lower-case alphanumeric suffix of `n` characters, as Kubernetes' generateName.
std::string RandomSuffix(size_t n);

}  // namespace klag::local
