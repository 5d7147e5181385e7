#include "job/no_work.h"

#include <algorithm>
#include <limits>

#include "kafka/partition_work.h"

namespace klag::job {

int64_t PendingLag(const kafka::GroupOffsets& offsets, OffsetReset reset) {
  // The scaler's rule (kafka/partition_work.h), so that this Job finds work whenever the scaler
  // reported lag: under latest a partition without a commit counts 1 (the Job must commit its
  // end, or the scaler would start Jobs forever).
  const kafka::PartitionWorkRule rule{.reset_to_earliest = reset == OffsetReset::kEarliest};
  int64_t lag = 0;
  for (const kafka::PartitionOffsets& p : offsets.partitions) {
    const int64_t work = kafka::PartitionWork(p, rule);
    lag = work > std::numeric_limits<int64_t>::max() - lag ? std::numeric_limits<int64_t>::max()
                                                           : lag + work;
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
