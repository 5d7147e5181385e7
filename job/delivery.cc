#include "job/delivery.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace klag::job {

bool IsRecordRejection(const absl::Status& status) {
  switch (status.code()) {
    // A sink that ran out of time (kDeadlineExceeded) or a handler killed by a signal
    // (kUnavailable) says nothing about the records: a slow or crashed downstream must not
    // dead-letter healthy records.
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      return true;
    default:
      return false;
  }
}

Delivery::Delivery(Sink& sink, DeadLetterQueue* dead_letters, DeliveryOptions options,
                   Sleeper sleep)
    : sink_(sink),
      dead_letters_(dead_letters),
      options_(std::move(options)),
      sleep_(std::move(sleep)) {
  options_.max_attempts = std::max(1, options_.max_attempts);
}

absl::Status Delivery::WriteWithRetries(absl::Span<const Record> records, int attempts,
                                        const WriteContext& context, Result* result) {
  absl::Duration backoff = options_.backoff;
  absl::Status status;
  for (int attempt = 1; attempt <= attempts; ++attempt) {
    if (attempt > 1) {
      spdlog::warn("sink rejected {} records (attempt {}/{}): {}; retrying in {}", records.size(),
                   attempt - 1, attempts, std::string(status.message()),
                   absl::FormatDuration(backoff));
      if (!sleep_(backoff)) {
        return absl::CancelledError("delivery abandoned during back-off: the Job is stopping");
      }
      backoff = std::min(backoff * 2, options_.max_backoff);
    }
    if (context.ShouldAbandon()) {
      return absl::CancelledError("delivery abandoned: the Job is stopping");
    }
    ++result->attempts;
    status = sink_.Write(records, context);
    if (status.ok() || status.code() == absl::StatusCode::kCancelled) return status;
  }
  return status;
}

absl::Status Delivery::Isolate(absl::Span<const Record> records, size_t first,
                               const absl::Status& error, const WriteContext& context,
                               Result* result) {
  if (records.size() == 1) {
    const Record& r = records[0];
    spdlog::error("poison record {}[{}]@{}: {}; sending it to the dead-letter topic", r.topic,
                  r.partition, r.offset, std::string(error.message()));
    if (absl::Status s = dead_letters_->Send(r, error); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat("dead-letter of ", r.topic, "[", r.partition, "]@",
                                                 r.offset, " failed: ", s.message()));
    }
    ++result->dead_lettered;
    result->acked.push_back(first);
    return absl::OkStatus();
  }
  const size_t half = records.size() / 2;
  const absl::Span<const Record> parts[2] = {records.subspan(0, half), records.subspan(half)};
  for (int i = 0; i < 2; ++i) {
    const size_t part_first = first + (i == 0 ? 0 : half);
    // A half is tried once: if it fails it is split again. A single record gets every attempt
    // before it is declared poison, so a passing glitch does not dead-letter a good record.
    const int attempts = parts[i].size() == 1 ? options_.max_attempts : 1;
    absl::Status s = WriteWithRetries(parts[i], attempts, context, result);
    if (s.ok()) {
      for (size_t k = 0; k < parts[i].size(); ++k) result->acked.push_back(part_first + k);
      continue;
    }
    if (!IsRecordRejection(s)) return s;
    if (absl::Status sub = Isolate(parts[i], part_first, s, context, result); !sub.ok()) {
      return sub;
    }
  }
  return absl::OkStatus();
}

Delivery::Result Delivery::Deliver(absl::Span<const Record> batch, const WriteContext& context) {
  Result result;
  if (batch.empty()) return result;
  absl::Status s = WriteWithRetries(batch, options_.max_attempts, context, &result);
  if (s.ok()) {
    for (size_t i = 0; i < batch.size(); ++i) result.acked.push_back(i);
    return result;
  }
  if (options_.on_poison == PoisonPolicy::kFail || dead_letters_ == nullptr ||
      !IsRecordRejection(s)) {
    result.status = s;
    return result;
  }
  // The whole batch had all its attempts: a single record is poison now; a larger batch is
  // bisected.
  result.status = Isolate(batch, 0, s, context, &result);
  std::sort(result.acked.begin(), result.acked.end());
  return result;
}

}  // namespace klag::job
