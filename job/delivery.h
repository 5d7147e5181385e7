// Delivery: hands a batch to the Sink with retries and back-off, and deals with poison records.
//
//   Delivery delivery(sink, dead_letters /* nullable */, options, sleeper);
//   Delivery::Result r = delivery.Deliver(batch, context);
//   for (size_t i : r.acked) tracker.Ack(batch[i].Partition(), batch[i].offset);
//   if (!r.status.ok()) { /* fatal: commit what was acked, exit 1 */ }
//
// A batch is written up to `max_attempts` times, sleeping `backoff`, 2*backoff, ... (capped at
// `max_backoff`) between tries. When it still fails:
//   - with PoisonPolicy::kFail, or when the error blames the sink rather than the data
//     (!IsRecordRejection), the result carries the error and no record of the batch is acked;
//   - with PoisonPolicy::kDeadLetter, the batch is bisected: each half is written once, a
//     failing half is split again, and a single record that fails `max_attempts` times is sent
//     to the dead-letter queue, which acknowledges it. Cost is bounded: at most
//     max_attempts + 2n + n*max_attempts writes for a batch of n records. Never an endless loop.
// Acked records are those the sink or the dead-letter queue took; everything else stays
// uncommitted. A stop (the WriteContext asks to abandon, or the sleeper is interrupted) ends the
// delivery with kCancelled.
#pragma once

#include <cstddef>
#include <functional>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "job/record.h"
#include "job/sink.h"

namespace klag::job {

// Where poison records go: a dead-letter topic in production, a fake in tests.
class DeadLetterQueue {
 public:
  virtual ~DeadLetterQueue() = default;
  // Stores `record` durably with the reason it was rejected; OK acknowledges it.
  virtual absl::Status Send(const Record& record, const absl::Status& error) = 0;
};

enum class PoisonPolicy { kFail, kDeadLetter };

struct DeliveryOptions {
  int max_attempts = 3;  // >= 1
  absl::Duration backoff = absl::Seconds(1);
  absl::Duration max_backoff = absl::Seconds(30);
  PoisonPolicy on_poison = PoisonPolicy::kFail;
};

// Sleeps for a duration; returns false when interrupted (the Job is stopping).
using Sleeper = std::function<bool(absl::Duration)>;

class Delivery {
 public:
  struct Result {
    absl::Status status;        // OK: every record acked (by the sink or as a dead letter)
    std::vector<size_t> acked;  // indexes into the batch, ascending
    int64_t dead_lettered = 0;  // records sent to the dead-letter queue
    int64_t attempts = 0;       // Sink::Write calls made
  };

  // `dead_letters` may be null unless options.on_poison is kDeadLetter. All references must
  // outlive the Delivery.
  Delivery(Sink& sink, DeadLetterQueue* dead_letters, DeliveryOptions options, Sleeper sleep);

  Result Deliver(absl::Span<const Record> batch, const WriteContext& context);

 private:
  // Writes `records` up to `attempts` times with back-off.
  absl::Status WriteWithRetries(absl::Span<const Record> records, int attempts,
                                const WriteContext& context, Result* result);
  // Bisects `records` (starting at batch index `first`) after they failed with `error`.
  absl::Status Isolate(absl::Span<const Record> records, size_t first, const absl::Status& error,
                       const WriteContext& context, Result* result);

  Sink& sink_;
  DeadLetterQueue* dead_letters_;
  DeliveryOptions options_;
  Sleeper sleep_;
};

}  // namespace klag::job
