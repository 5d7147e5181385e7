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

// Records the Job would read: per partition, end - max(committed, log start), clamped at 0 (a
// commit below the log start resumes at the log start under earliest, at the end under
// latest). A partition without a commit counts end - log start under earliest, 0 under latest
// (the consumer would start at the end).
int64_t PendingLag(const kafka::GroupOffsets& offsets, OffsetReset reset);

// Reads the offsets of every partition of `topics` for `group` (by `deadline`) and returns
// PendingLag. Errors: those of OffsetReader::ReadOffsets (kNotFound for a missing topic,
// kUnavailable when no broker is reachable, kDeadlineExceeded, ...).
absl::StatusOr<int64_t> MeasureLag(kafka::OffsetReader& reader, const std::string& group,
                                   const std::vector<std::string>& topics,
                                   kafka::IsolationLevel isolation, OffsetReset reset,
                                   absl::Time deadline);

}  // namespace klag::job
