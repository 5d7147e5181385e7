// When was the oldest record a group has not consumed produced? The scaler estimates it from its
// history of end offsets (kafka/end_offset_history.h); `klag-scaler check` reads once, so it asks
// the log instead: the timestamp of the record at each lagging partition's committed offset,
// fetched with a short-lived consumer of its own. Never on the scaler's serving path.
//
//   std::vector<kafka::RecordAt> at = {{"ListedStockPrice", 0, 1234}};
//   absl::StatusOr<std::vector<std::optional<kafka::RecordTimestamp>>> times =
//       kafka::ReadRecordTimestamps(connection, at, IsolationLevel::kReadUncommitted,
//                                   absl::Now() + absl::Seconds(5));
//   // (*times)[0]->time: the CreateTime (or LogAppendTime) of record 1234, or of the first
//   // record after it when 1234 is gone (compaction, a transaction marker).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "kafka/connection_config.h"
#include "kafka/offsets.h"

namespace klag::kafka {

struct RecordAt {
  std::string topic;
  int32_t partition = 0;
  int64_t offset = 0;
};

struct RecordTimestamp {
  // The record read: the first at or after the requested offset (offsets below the log start
  // read from the log start).
  int64_t offset = 0;
  absl::Time time;
  // The topic's message.timestamp.type is LogAppendTime (the broker's clock), not CreateTime
  // (the producer's).
  bool log_append_time = false;
};

// Reads the record at (or the first after) each query's offset, waiting until `deadline`.
// result[i] answers queries[i]: nullopt when the partition has no record at or after the offset
// (the end was reached: under read_committed only aborted records or markers remain), the
// record has no timestamp, or nothing arrived by the deadline. The consumer reads from the
// offsets given (assign, no subscribe): it joins no group and commits nothing; its group.id,
// which librdkafka requires for assign, is "klag-scaler-check". It buffers at most about 1 MiB.
// Errors: kInvalidArgument for connection settings librdkafka refuses; otherwise the mapped
// librdkafka error of the assignment. Messages name the cluster, never a credential.
// Thread-safe (each call has its own client).
absl::StatusOr<std::vector<std::optional<RecordTimestamp>>> ReadRecordTimestamps(
    const ConnectionConfig& connection, const std::vector<RecordAt>& queries,
    IsolationLevel isolation, absl::Time deadline);

}  // namespace klag::kafka
