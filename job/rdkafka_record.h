// Converts a librdkafka message into a job::Record (topic, partition, offset, timestamp, key,
// value, headers; bytes copied). Used by RdkafkaConsumer and by test helpers that read topics.
//
//   rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 100);
//   if (m != nullptr && m->err == RD_KAFKA_RESP_ERR_NO_ERROR) records.push_back(RecordFrom(m));
#pragma once

#include <librdkafka/rdkafka.h>

#include "job/record.h"

namespace klag::job {

// `message` must be a record (err == RD_KAFKA_RESP_ERR_NO_ERROR), not an event.
Record RecordFrom(const rd_kafka_message_t* message);

}  // namespace klag::job
