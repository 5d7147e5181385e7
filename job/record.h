// A Kafka record as the Job hands it to a sink: plain data, no librdkafka.
//
//   Record r{.topic = "ListedStockPrice", .partition = 0, .offset = 42,
//            .value = R"({"symbol":"ACME","price":12.5})"};
//   int64_t n = r.ByteSize();  // key + value + header bytes
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kafka/offsets.h"

namespace klag::job {

struct RecordHeader {
  std::string key;
  std::optional<std::string> value;  // nullopt: a null header value

  friend bool operator==(const RecordHeader&, const RecordHeader&) = default;
};

struct Record {
  std::string topic;
  int32_t partition = 0;
  int64_t offset = 0;
  // Milliseconds since the epoch (create or log-append time); nullopt when the broker has none.
  std::optional<int64_t> timestamp_ms;
  std::optional<std::string> key;    // nullopt: null key
  std::optional<std::string> value;  // nullopt: null value (tombstone)
  std::vector<RecordHeader> headers;

  friend bool operator==(const Record&, const Record&) = default;

  kafka::TopicPartition Partition() const { return {topic, partition}; }
  // Payload bytes: key, value, header keys and values.
  int64_t ByteSize() const;
};

}  // namespace klag::job
