#include "job/no_work.h"

#include <algorithm>

namespace klag::job {

int64_t PendingLag(const kafka::GroupOffsets& offsets, OffsetReset reset) {
  int64_t lag = 0;
  for (const kafka::PartitionOffsets& p : offsets.partitions) {
    if (p.committed.has_value() && *p.committed >= p.log_start) {
      lag += std::max<int64_t>(0, p.end - *p.committed);
    } else if (reset == OffsetReset::kEarliest) {
      lag += std::max<int64_t>(0, p.end - p.log_start);
    } else {
      // Under latest there is nothing to read, but the group must commit the end: the scaler
      // (KEDA's rule) counts a partition without a commit as lag 1, and a commit below the log
      // start as the records after it, so skipping the commit would start Jobs forever.
      lag += 1;
    }
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
