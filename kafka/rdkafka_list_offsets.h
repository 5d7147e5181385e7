// The fetch function behind RdkafkaOffsetReader's EndOffsetsCache: end and log-start offsets of
// many partitions through two concurrent rd_kafka_offsets_for_times calls (RD_KAFKA_OFFSET_END
// and RD_KAFKA_OFFSET_BEGINNING; each sends one ListOffsets request per leader broker, with the
// client's isolation level). Internal (rdkafka_*.cc files and tests).
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

#include "absl/time/time.h"
#include "kafka/end_offsets_cache.h"
#include "kafka/rdkafka_client.h"

namespace klag::kafka::rdkafka {

struct ListOffsetsCounters {
  std::atomic<int64_t> calls{0};       // rd_kafka_offsets_for_times calls
  std::atomic<int64_t> partitions{0};  // partitions asked for in them
};

// Errors are librdkafka error codes (rd_kafka_resp_err_t). When either call fails as a whole, the
// result holds that error and no partitions. An answered call marks `client` reachable.
EndOffsetsCache::FetchResult ListEndAndLogStart(Client& client,
                                                const std::vector<TopicPartition>& partitions,
                                                absl::Time deadline, ListOffsetsCounters& counters);

}  // namespace klag::kafka::rdkafka
