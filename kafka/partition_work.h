// How much work a consumer group has on one partition: the one rule klag-scaler's lag (what KEDA
// is told) and klag-job's no-work check both use, so that a Job started because the scaler saw
// lag never decides there is nothing to do, and the other way round.
//
//   int64_t n = kafka::PartitionWork(p, {.reset_to_earliest = false});
//
// Header-only and pure.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>

#include "kafka/offsets.h"

namespace klag::kafka {

struct PartitionWorkRule {
  // offsetResetPolicy earliest (KEDA's `offsetResetPolicy`, klag-job's auto.offset.reset): a
  // partition without a commit has its whole retained log to read; latest: 1 (see below).
  bool reset_to_earliest = false;
  // KEDA's scaleToZeroOnInvalidOffset: a partition without a commit counts 0.
  bool scale_to_zero_on_invalid_offset = false;
};

// Records between `from` and `end`, never negative, saturating instead of overflowing.
inline int64_t OffsetDistance(int64_t from, int64_t end) {
  int64_t d = 0;
  if (__builtin_sub_overflow(end, from, &d)) {
    return end > from ? std::numeric_limits<int64_t>::max() : 0;
  }
  return std::max<int64_t>(d, 0);
}

// The partition's work (lag) before excludePersistentLag and any cap:
// - no commit: 0 with scale_to_zero_on_invalid_offset; else end - log start under earliest, and
//   1 under latest (KEDA's rule: one consumer has to start to establish a position, even on an
//   empty partition; klag-job then commits the end);
// - a commit: from max(committed, log start) to the end, never negative (records below the log
//   start were deleted by retention; a commit past the end is no work, not negative work).
inline int64_t PartitionWork(const PartitionOffsets& p, const PartitionWorkRule& rule) {
  if (!p.committed.has_value()) {
    if (rule.scale_to_zero_on_invalid_offset) return 0;
    if (!rule.reset_to_earliest) return 1;
    return OffsetDistance(p.log_start, p.end);
  }
  return OffsetDistance(std::max(*p.committed, p.log_start), p.end);
}

}  // namespace klag::kafka
