#include "job/no_work.h"

#include <algorithm>

namespace klag::job {

int64_t PendingLag(const kafka::GroupOffsets& offsets, OffsetReset reset) {
  int64_t lag = 0;
  for (const kafka::PartitionOffsets& p : offsets.partitions) {
    int64_t from;
    if (p.committed.has_value() && *p.committed >= p.log_start) {
      from = *p.committed;
    } else {
      from = reset == OffsetReset::kEarliest ? p.log_start : p.end;
    }
    lag += std::max<int64_t>(0, p.end - from);
  }
  return lag;
}

absl::StatusOr<int64_t> MeasureLag(kafka::OffsetReader& reader, const std::string& group,
                                   const std::vector<std::string>& topics,
                                   kafka::IsolationLevel isolation, OffsetReset reset,
                                   absl::Time deadline) {
  kafka::OffsetQuery query{.group = group, .topics = topics, .isolation = isolation};
  absl::StatusOr<kafka::GroupOffsets> offsets = reader.ReadOffsets(query, deadline);
  if (!offsets.ok()) return offsets.status();
  return PendingLag(*offsets, reset);
}

}  // namespace klag::job
