// KafkaDeadLetterQueue: sends a poison record to the dead-letter topic, keeping its key, value
// and headers and adding where it came from and why it was rejected:
//   klag.original.topic, klag.original.partition, klag.original.offset,
//   klag.original.timestamp (when the record had one), klag.error.
//
//   KafkaDeadLetterQueue dlq(producer, "ListedStockPrice.dlq", absl::Seconds(10));
//   RETURN_IF_ERROR(dlq.Send(record, status));  // durable (acks=all) when OK
#pragma once

#include <string>

#include "absl/time/time.h"
#include "job/delivery.h"
#include "job/producer.h"

namespace klag::job {

// The record as it goes to the dead-letter topic (exposed for tests).
OutgoingRecord DeadLetterRecord(const Record& record, const absl::Status& error,
                                const std::string& topic);

class KafkaDeadLetterQueue final : public DeadLetterQueue {
 public:
  // `producer` must outlive this object.
  KafkaDeadLetterQueue(Producer& producer, std::string topic, absl::Duration timeout);

  // Produces and waits for the brokers' acknowledgement. Errors: the producer's.
  absl::Status Send(const Record& record, const absl::Status& error) override;

 private:
  Producer& producer_;
  std::string topic_;
  absl::Duration timeout_;
};

}  // namespace klag::job
