// Sink: where the Job delivers records. One Write per batch; OK acknowledges every record of the
// batch (the Job may then commit past them). Implementations: JsonlSink (stdout or a file),
// ExecSink (a command per batch), PostgresSink (one transaction per batch).
//
//   class Stopping final : public WriteContext { bool ShouldAbandon() const override; };
//   absl::Status s = sink.Write(batch, stopping);
//   if (s.ok()) { /* ack every record of batch */ }
//
// Error codes tell the Job what a failure means:
//   kInvalidArgument, kDeadlineExceeded, kOutOfRange: the sink rejected the batch,
//       possibly because of a record in it; the Job may look for the poison record by
//       bisecting and dead-letter it (see IsRecordRejection);
//   kCancelled: the write was abandoned because the Job is stopping (WriteContext);
//   anything else (kUnavailable, kFailedPrecondition, kResourceExhausted, ...): the sink itself
//       is unusable; retried, then fatal; never blamed on a record.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "job/record.h"

namespace klag::job {

// What a sink may ask the Job while a write is in progress.
class WriteContext {
 public:
  virtual ~WriteContext() = default;
  // True once the Job is stopping and the batch in progress should be abandoned. Sinks that can
  // block (a command, a database) check it about every 50 ms and then return kCancelled.
  virtual bool ShouldAbandon() const = 0;
};

// A WriteContext that never abandons.
class NeverAbandon final : public WriteContext {
 public:
  bool ShouldAbandon() const override { return false; }
};

class Sink {
 public:
  virtual ~Sink() = default;
  // Delivers `records` durably: OK only when every record is flushed/committed by the sink.
  // Records of one partition come in offset order; a batch may be delivered again after a
  // failure or a crash (at-least-once). Called by one thread at a time (the Drainer's courier,
  // not the thread that created the sink).
  virtual absl::Status Write(absl::Span<const Record> records, const WriteContext& context) = 0;
};

// True when `status` (from Sink::Write) blames the data rather than the sink: the codes for
// which looking for a poison record makes sense.
bool IsRecordRejection(const absl::Status& status);

}  // namespace klag::job
