// RunJob: the composition of one klag-job run, from validated options to an exit code. The only
// place that constructs the real Kafka clients and sinks; job/main.cc adds flags, logging and
// signals around it.
//
//   std::atomic<bool> stop{false};
//   RunOutcome r = RunJob(options, stop);   // prints the summary line
//   if (r.end_process_now) std::_Exit(r.exit_code);
//   return r.exit_code;
#pragma once

#include <atomic>

#include "job/options.h"

namespace klag::job {

struct RunOutcome {
  int exit_code = 0;  // kExitOk, kExitStoppedEarly, kExitFailed
  // True when RunJob left a Kafka client running on purpose (the no-work exit, which never
  // joined the group and has nothing to commit) instead of waiting for its threads to stop: the
  // caller ends the process at once (std::_Exit) without running destructors, after flushing
  // anything of its own. Summary and logs are already flushed.
  bool end_process_now = false;
};

// Runs: no-work check (unless disabled), sink and consumer set-up, drain, summary.
RunOutcome RunJob(const JobOptions& options, const std::atomic<bool>& stop);

}  // namespace klag::job
