// Producer: what klag-job (dead letters) and klag-produce write to Kafka through. The real one
// is RdkafkaProducer (job/rdkafka_producer.h).
//
//   RETURN_IF_ERROR(producer.Produce({.topic = "dlq", .key = r.key, .value = r.value}));
//   RETURN_IF_ERROR(producer.Flush(absl::Now() + absl::Seconds(10)));  // all acknowledged
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "job/record.h"

namespace klag::job {

struct OutgoingRecord {
  std::string topic;
  std::optional<int32_t> partition;  // nullopt: the partitioner picks (by key)
  std::optional<std::string> key;
  std::optional<std::string> value;
  std::vector<RecordHeader> headers;
};

class Producer {
 public:
  virtual ~Producer() = default;
  // Queues `record`; the outcome arrives by Flush. Errors: kResourceExhausted when the local
  // queue stays full until `deadline`, kInvalidArgument for a record the client refuses.
  virtual absl::Status Produce(const OutgoingRecord& record, absl::Time deadline) = 0;
  // Waits until every queued record is acknowledged by the brokers. Errors: the first delivery
  // failure since the previous Flush, kDeadlineExceeded when not done by `deadline`.
  virtual absl::Status Flush(absl::Time deadline) = 0;
};

}  // namespace klag::job
