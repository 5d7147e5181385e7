// The no-work check: before joining the group, compare the group's committed offsets with the
// end offsets (an OffsetReader, no group membership) so a Job with nothing to do exits at once
// and never triggers a rebalance.
//
//   ASSIGN_OR_RETURN(int64_t lag, MeasureLag(reader, "python_data_load", {"ListedStockPrice"},
//                                            kafka::IsolationLevel::kReadCommitted,
//                                            OffsetReset::kEarliest, deadline));
//   if (lag == 0) return kExitOk;
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "job/consumer.h"
#include "kafka/offsets.h"

namespace klag::job {

// Work the Job has: per partition with a commit at or above the log start, end - committed
// (clamped at 0). A partition without a commit, or with one below the log start, counts
// end - log start under earliest (where the consumer resumes), and 1 under latest: nothing to
// read, but the Job must join and commit the end, or the scaler (KEDA's rule: no commit counts
// 1) would keep starting Jobs that exit without work.
int64_t PendingLag(const kafka::GroupOffsets& offsets, OffsetReset reset);

// Reads the offsets of every partition of `topics` for `group` (by `deadline`) and returns
// PendingLag. Errors: those of OffsetReader::ReadOffsets (kNotFound for a missing topic,
// kUnavailable when no broker is reachable, kDeadlineExceeded, ...).
absl::StatusOr<int64_t> MeasureLag(kafka::OffsetReader& reader, const std::string& group,
                                   const std::vector<std::string>& topics,
                                   kafka::IsolationLevel isolation, OffsetReset reset,
                                   absl::Time deadline);

}  // namespace klag::job
