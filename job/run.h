// RunJob: the composition of one klag-job run, from validated options to an exit code. The only
// place that constructs the real Kafka clients and sinks; job/main.cc adds flags, logging and
// signals around it.
//
//   std::atomic<bool> stop{false};
//   int code = RunJob(options, stop);   // prints the summary line, returns the exit code
#pragma once

#include <atomic>

#include "job/options.h"

namespace klag::job {

// Runs: no-work check (unless disabled), sink and consumer set-up, drain, summary. Returns the
// process exit code (kExitOk, kExitStoppedEarly, kExitFailed).
int RunJob(const JobOptions& options, const std::atomic<bool>& stop);

}  // namespace klag::job
