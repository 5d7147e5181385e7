#include "tools/local/job_runner.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <random>
#include <system_error>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace klag::local {
namespace {

std::string DescribeExit(int wait_status) {
  if (WIFEXITED(wait_status)) return absl::StrCat("exit code ", WEXITSTATUS(wait_status));
  if (WIFSIGNALED(wait_status)) {
    return absl::StrCat("killed by ", strsignal(WTERMSIG(wait_status)));
  }
  return "ended";
}

bool Succeeded(int wait_status) { return WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 0; }

}  // namespace

std::string RandomSuffix(size_t n) {
  static constexpr char kAlphabet[] = "bcdfghjklmnpqrstvwxz2456789";  // as Kubernetes
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::uniform_int_distribution<size_t> pick(0, sizeof(kAlphabet) - 2);
  std::string out;
  for (size_t i = 0; i < n; ++i) out.push_back(kAlphabet[pick(rng)]);
  return out;
}

JobRunner::JobRunner(JobRunnerOptions options) : options_(std::move(options)) {}

JobRunner::~JobRunner() {
  for (Job& job : jobs_) {
    for (Pod& pod : job.pods) {
      kill(-pod.pid, SIGKILL);
      int status = 0;
      waitpid(pod.pid, &status, 0);
    }
  }
}

std::string JobRunner::StartJob(absl::Time now) {
  Job job;
  job.status.name = absl::StrCat(options_.scaled_job_name, "-", RandomSuffix(5));
  job.status.start = now;
  jobs_.push_back(std::move(job));
  Job& created = jobs_.back();
  spdlog::info(
      "job {}: created (parallelism {}, completions {}, backoffLimit {}, "
      "activeDeadlineSeconds {})",
      created.status.name, options_.parallelism, options_.completions, options_.backoff_limit,
      options_.active_deadline.has_value()
          ? absl::StrCat(absl::ToInt64Seconds(*options_.active_deadline))
          : "none");
  StartPods(created, now);
  return created.status.name;
}

void JobRunner::StartPods(Job& job, absl::Time now) {
  if (job.status.phase != JobPhase::kRunning || job.terminating) return;
  if (job.next_start.has_value() && now < *job.next_start) return;
  job.next_start.reset();
  const int64_t wanted =
      std::min(options_.parallelism, options_.completions - job.status.succeeded_pods);
  while (static_cast<int64_t>(job.pods.size()) < wanted) {
    if (!StartPod(job, now)) return;
  }
}

bool JobRunner::StartPod(Job& job, absl::Time now) {
  Pod pod;
  pod.name = absl::StrCat(job.status.name, "-", RandomSuffix(5));
  pod.started = now;

  std::vector<std::string> env_strings;
  for (const auto& [k, v] : options_.env) env_strings.push_back(absl::StrCat(k, "=", v));
  std::vector<char*> envp;
  for (std::string& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = options_.argv;
  std::vector<char*> argv;
  for (std::string& s : args) argv.push_back(s.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  std::string log_path;
  if (!options_.log_dir.empty()) {
    std::error_code ec;
    const std::filesystem::path dir = std::filesystem::path(options_.log_dir) / job.status.name;
    std::filesystem::create_directories(dir, ec);
    log_path = (dir / absl::StrCat(pod.name, ".log")).string();
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log_path.c_str(),
                                     O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  }
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGTERM);
  sigaddset(&defaults, SIGINT);
  sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = -1;
  const int rc = argv[0] != nullptr && std::strchr(argv[0], '/') == nullptr
                     ? posix_spawnp(&pid, argv[0], &actions, &attr, argv.data(), envp.data())
                     : posix_spawn(&pid, argv[0], &actions, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    // The container could not start (a bad image or command): the Job fails at once.
    spdlog::error("job {}: pod {} could not start {}: {}", job.status.name, pod.name,
                  options_.argv.empty() ? "(no command)" : options_.argv[0], std::strerror(rc));
    Finish(job, JobPhase::kFailed, "StartFailed", now);
    return false;
  }
  pod.pid = pid;
  spdlog::info("job {}: pod {} started (pid {}{})", job.status.name, pod.name, pid,
               log_path.empty() ? "" : absl::StrCat(", log ", log_path));
  job.pods.push_back(std::move(pod));
  ++job.status.active_pods;
  return true;
}

void JobRunner::Finish(Job& job, JobPhase phase, const std::string& reason, absl::Time now) {
  if (job.status.phase != JobPhase::kRunning) return;
  job.status.phase = phase;
  job.status.reason = reason;
  job.status.finished = now;
  spdlog::info("job {}: {}{} after {} ({} pods succeeded, {} failed)", job.status.name,
               phase == JobPhase::kSucceeded ? "complete" : "failed",
               reason.empty() ? "" : absl::StrCat(" (", reason, ")"),
               absl::FormatDuration(absl::Trunc(now - job.status.start, absl::Milliseconds(100))),
               job.status.succeeded_pods, job.status.failed_pods);
}

void JobRunner::Terminate(Job& job, absl::Time now) {
  job.terminating = true;
  for (Pod& pod : job.pods) {
    if (pod.kill_at.has_value()) continue;
    kill(-pod.pid, SIGTERM);
    pod.kill_at = now + options_.termination_grace;
    spdlog::info("job {}: SIGTERM to pod {} (SIGKILL in {})", job.status.name, pod.name,
                 absl::FormatDuration(options_.termination_grace));
  }
}

void JobRunner::Tick(absl::Time now) {
  for (Job& job : jobs_) {
    // Reap.
    for (auto it = job.pods.begin(); it != job.pods.end();) {
      int status = 0;
      const pid_t r = waitpid(it->pid, &status, WNOHANG);
      if (r == 0) {
        if (it->kill_at.has_value() && now >= *it->kill_at) {
          spdlog::warn("job {}: pod {} still running after the grace period: SIGKILL",
                       job.status.name, it->name);
          kill(-it->pid, SIGKILL);
          it->kill_at = now + absl::Hours(24 * 365);  // once
        }
        ++it;
        continue;
      }
      // Exited (or r < 0: no longer our child, counted as failed).
      --job.status.active_pods;
      const bool ok = r > 0 && Succeeded(status);
      spdlog::info("job {}: pod {} {} after {}", job.status.name, it->name,
                   r > 0 ? DescribeExit(status) : "lost",
                   absl::FormatDuration(absl::Trunc(now - it->started, absl::Milliseconds(100))));
      if (ok) {
        ++job.status.succeeded_pods;
        job.consecutive_failures = 0;
      } else {
        ++job.status.failed_pods;
        ++job.consecutive_failures;
        if (!job.terminating) {
          absl::Duration delay = options_.retry_backoff;
          for (int64_t i = 1; i < job.consecutive_failures && delay < options_.max_retry_backoff;
               ++i) {
            delay *= 2;
          }
          delay = std::min(delay, options_.max_retry_backoff);
          job.next_start = now + delay;
        }
      }
      // Killing a pod's group also ends its children; nothing else to reap.
      it = job.pods.erase(it);
    }

    if (job.status.phase != JobPhase::kRunning) continue;
    if (job.terminating) {
      if (job.pods.empty()) Finish(job, JobPhase::kFailed, "DeadlineExceeded", now);
      continue;
    }
    if (job.status.succeeded_pods >= options_.completions) {
      for (Pod& pod : job.pods) kill(-pod.pid, SIGTERM);  // extra parallel pods are not needed
      Finish(job, JobPhase::kSucceeded, "", now);
      continue;
    }
    if (job.status.failed_pods > options_.backoff_limit) {
      Terminate(job, now);
      job.terminating = false;  // not a deadline: the reason is the back-off limit
      Finish(job, JobPhase::kFailed, "BackoffLimitExceeded", now);
      continue;
    }
    if (options_.active_deadline.has_value() &&
        now - job.status.start >= *options_.active_deadline) {
      spdlog::warn("job {}: activeDeadlineSeconds ({}) exceeded", job.status.name,
                   absl::ToInt64Seconds(*options_.active_deadline));
      Terminate(job, now);
      if (job.pods.empty()) Finish(job, JobPhase::kFailed, "DeadlineExceeded", now);
      continue;
    }
    if (job.next_start.has_value() && now >= *job.next_start) {
      spdlog::info("job {}: back-off over, replacing the failed pod ({} of {} retries used)",
                   job.status.name, job.status.failed_pods, options_.backoff_limit);
    }
    StartPods(job, now);
  }
  // Pods of failed (BackoffLimitExceeded) Jobs that are still alive keep being reaped above;
  // give them the grace period too.
}

int64_t JobRunner::Running() const {
  return std::count_if(jobs_.begin(), jobs_.end(),
                       [](const Job& j) { return j.status.phase == JobPhase::kRunning; });
}

int64_t JobRunner::Pending() const {
  return std::count_if(jobs_.begin(), jobs_.end(), [](const Job& j) {
    return j.status.phase == JobPhase::kRunning && j.pods.empty();
  });
}

std::vector<std::string> JobRunner::CleanUp(int64_t successful_limit, int64_t failed_limit) {
  std::vector<std::string> removed;
  for (JobPhase phase : {JobPhase::kSucceeded, JobPhase::kFailed}) {
    const int64_t limit = phase == JobPhase::kSucceeded ? successful_limit : failed_limit;
    std::vector<const Job*> finished;
    for (const Job& j : jobs_) {
      // A finished Job whose pods are still being killed stays until they are gone.
      if (j.status.phase == phase && j.pods.empty()) finished.push_back(&j);
    }
    if (static_cast<int64_t>(finished.size()) <= limit) continue;
    std::sort(finished.begin(), finished.end(),
              [](const Job* a, const Job* b) { return *a->status.finished < *b->status.finished; });
    for (size_t i = 0; i < finished.size() - limit; ++i) {
      removed.push_back(finished[i]->status.name);
    }
  }
  for (const std::string& name : removed) {
    if (!options_.log_dir.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(std::filesystem::path(options_.log_dir) / name, ec);
    }
    jobs_.erase(std::remove_if(jobs_.begin(), jobs_.end(),
                               [&](const Job& j) { return j.status.name == name; }),
                jobs_.end());
  }
  return removed;
}

void JobRunner::StopAll(absl::Duration grace) {
  const absl::Time now = absl::Now();
  for (Job& job : jobs_) {
    for (Pod& pod : job.pods) {
      kill(-pod.pid, SIGTERM);
      pod.kill_at = now + grace;
    }
  }
  while (true) {
    bool any = false;
    const absl::Time t = absl::Now();
    for (Job& job : jobs_) {
      for (auto it = job.pods.begin(); it != job.pods.end();) {
        int status = 0;
        if (waitpid(it->pid, &status, WNOHANG) != 0) {
          spdlog::info("job {}: pod {} {} (stopping)", job.status.name, it->name,
                       DescribeExit(status));
          it = job.pods.erase(it);
          --job.status.active_pods;
          continue;
        }
        if (t >= *it->kill_at) kill(-it->pid, SIGKILL);
        any = true;
        ++it;
      }
    }
    if (!any) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

std::vector<JobStatus> JobRunner::Jobs() const {
  std::vector<JobStatus> out;
  for (const Job& j : jobs_) out.push_back(j.status);
  return out;
}

}  // namespace klag::local
