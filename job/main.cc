// klag-job: drains a consumer group's lag into a sink, commits and exits. See job/README.md.
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "common/flags.h"
#include "common/logging.h"
#include "job/drain.h"
#include "job/options.h"
#include "job/run.h"

namespace {

std::atomic<bool> g_stop{false};
static_assert(std::atomic<bool>::is_always_lock_free, "the signal handler needs a lock-free flag");

extern "C" void OnStopSignal(int) { g_stop.store(true); }

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  std::string usage;
  absl::StatusOr<klag::job::JobOptions> options =
      klag::job::ParseJobOptions(args, klag::ProcessEnv(), &usage);
  if (!options.ok()) {
    std::fprintf(stderr, "klag-job: %s\n", std::string(options.status().message()).c_str());
    return klag::job::kExitUsage;
  }
  if (options->help) {
    std::cout << usage;
    return klag::job::kExitOk;
  }
  klag::LogOptions log{.level = options->log_level};
  if (absl::Status s = klag::ParseLogFormat(options->log_format, &log.format); !s.ok()) {
    std::fprintf(stderr, "klag-job: %s\n", std::string(s.message()).c_str());
    return klag::job::kExitUsage;
  }
  if (absl::Status s = klag::ConfigureLogging(log); !s.ok()) {
    std::fprintf(stderr, "klag-job: %s\n", std::string(s.message()).c_str());
    return klag::job::kExitUsage;
  }

  struct sigaction stop_action = {};
  stop_action.sa_handler = &OnStopSignal;
  sigemptyset(&stop_action.sa_mask);
  sigaction(SIGTERM, &stop_action, nullptr);
  sigaction(SIGINT, &stop_action, nullptr);
  // A closed stdout or an exec handler that stops reading must be an error, not a death.
  signal(SIGPIPE, SIG_IGN);

  return klag::job::RunJob(*options, g_stop);
}
