// ExecSink: runs a command once per batch with the batch's records as JSON lines
// (job/record_json.h) on its stdin. Exit status 0 acknowledges the batch; so a team keeps its
// existing record handler (a Python script, say) while klag-job owns the Kafka semantics.
//
//   ExecSink sink({.command = "python3 handler.py", .timeout = absl::Minutes(5)});
//   absl::Status s = sink.Write(batch, context);
//
// The command runs under /bin/sh -c in its own process group, with stdout sent to klag-job's
// stderr (klag-job's stdout carries the summary), stderr inherited, the default signal
// dispositions, and klag-job's environment without its own KLAG_* settings (they hold klag's
// secrets: KLAG_PASSWORD, KLAG_KEY, KLAG_POSTGRES_URI, ...) except those named in `pass_env`,
// plus KLAG_BATCH_RECORDS=<records in the batch>.
#pragma once

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "job/sink.h"

namespace klag::job {

struct ExecSinkOptions {
  std::string command;                        // run with /bin/sh -c
  absl::Duration timeout = absl::Minutes(5);  // per batch; then the process group is killed
  std::vector<std::string> pass_env;          // KLAG_* variables the command still receives
};

class ExecSink final : public Sink {
 public:
  explicit ExecSink(ExecSinkOptions options);

  // Errors: kInvalidArgument when the command exits non-zero (it rejected the batch: the only
  // error that can make a record poison); kDeadlineExceeded when it runs past the timeout
  // (killed); kUnavailable when it dies of a signal or no process can be started;
  // kFailedPrecondition when the shell cannot find or run it (exit 126/127); kCancelled when
  // `context` asks to abandon (killed).
  absl::Status Write(absl::Span<const Record> records, const WriteContext& context) override;

 private:
  ExecSinkOptions options_;
  std::string buffer_;
};

}  // namespace klag::job
