// The stop flag of klag-job and klag-produce: SIGTERM (Kubernetes deleting the pod,
// activeDeadlineSeconds) and SIGINT set it; the loops poll it. Async-signal-safe: the handler
// only stores to a lock-free atomic.
//
//   const std::atomic<bool>& stop = InstallStopSignalHandlers();
//   while (!stop.load()) { ... }
#pragma once

#include <atomic>

namespace klag::job {

// Installs the SIGTERM/SIGINT handlers (once per process) and returns the flag they set.
const std::atomic<bool>& InstallStopSignalHandlers();

}  // namespace klag::job
