// klag-job: drains a consumer group's lag into a sink, commits and exits. See job/README.md.
#include <signal.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "common/flags.h"
#include "common/logging.h"
#include "common/version.h"
#include "job/drain.h"
#include "job/options.h"
#include "job/run.h"
#include "job/stop_signal.h"
#include "kafka/rdkafka_version.h"

namespace {

// `--version` before the end of the flags (`--`). Checked ahead of ParseJobOptions, which treats
// flags it does not know as errors.
bool VersionRequested(const std::vector<std::string>& args) {
  for (const std::string& arg : args) {
    if (arg == "--") return false;
    if (arg == "--version") return true;
  }
  return false;
}

// klag-job does not use gRPC.
klag::LibraryVersions Libraries() { return {{"librdkafka", klag::kafka::LibrdkafkaVersion()}}; }

}  // namespace

int main(int argc, char** argv) {
  // Debian builds Abseil without NDEBUG: every absl::Mutex keeps a lock graph for deadlock
  // detection. A debugging aid the tests keep; the binary does not pay for it.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  std::vector<std::string> args(argv + 1, argv + argc);
  if (VersionRequested(args)) {
    std::cout << klag::VersionText("klag-job", Libraries());
    return klag::job::kExitOk;
  }
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

  spdlog::info("{} starting", klag::VersionLine("klag-job", Libraries()));
  if (absl::Status s = klag::kafka::CheckLibrdkafkaVersion(); !s.ok()) {
    spdlog::critical("{}", std::string(s.message()));
    return klag::job::kExitFailed;
  }

  const std::atomic<bool>& stop = klag::job::InstallStopSignalHandlers();
  // A closed stdout or an exec handler that stops reading must be an error, not a death.
  signal(SIGPIPE, SIG_IGN);

  const klag::job::RunOutcome outcome = klag::job::RunJob(*options, stop);
  if (outcome.end_process_now) {
    std::fflush(nullptr);
    std::_Exit(outcome.exit_code);
  }
  return outcome.exit_code;
}
