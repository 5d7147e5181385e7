// ExecSink: runs a command once per batch with the batch's records as JSON lines
// (job/record_json.h) on its stdin. Exit status 0 acknowledges the batch; so a team keeps its
// existing record handler (a Python script, say) while klag-job owns the Kafka semantics.
//
//   ExecSink sink({.command = "python3 handler.py", .timeout = absl::Minutes(5)});
//   absl::Status s = sink.Write(batch, context);
//
// The command runs under /bin/sh -c in its own process group, with stdout sent to klag-job's
// stderr (klag-job's stdout carries the summary), stderr inherited, the default signal
// dispositions, and KLAG_BATCH_RECORDS=<records in the batch> added to the environment.
#pragma once

#include <string>

#include "absl/time/time.h"
#include "job/sink.h"

namespace klag::job {

struct ExecSinkOptions {
  std::string command;                        // run with /bin/sh -c
  absl::Duration timeout = absl::Minutes(5);  // per batch; then the process group is killed
};

class ExecSink final : public Sink {
 public:
  explicit ExecSink(ExecSinkOptions options);

  // Errors: kInvalidArgument when the command exits non-zero or dies of a signal (it rejected
  // the batch); kDeadlineExceeded when it runs past the timeout (killed); kFailedPrecondition
  // when the shell cannot find or run it (exit 126/127); kCancelled when `context` asks to
  // abandon (killed); kUnavailable when no process can be started.
  absl::Status Write(absl::Span<const Record> records, const WriteContext& context) override;

 private:
  ExecSinkOptions options_;
  std::string buffer_;
};

}  // namespace klag::job
