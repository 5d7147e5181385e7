#include "kafka/rdkafka_record_time.h"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "kafka/rdkafka_handle.h"
#include "kafka/rdkafka_status.h"

namespace klag::kafka {

absl::StatusOr<std::vector<std::optional<RecordTimestamp>>> ReadRecordTimestamps(
    const ConnectionConfig& connection, const std::vector<RecordAt>& queries,
    IsolationLevel isolation, absl::Time deadline) {
  std::vector<std::optional<RecordTimestamp>> out(queries.size());
  if (queries.empty()) return out;
  const std::string context =
      absl::StrCat("cluster ", connection.bootstrap_servers, ": reading record timestamps");
  absl::StatusOr<RdkafkaProperties> properties = ToRdkafkaProperties(connection);
  if (!properties.ok()) return properties.status();
  properties->insert(
      properties->end(),
      {{"client.id", "klag-scaler-check"},
       // assign() needs a group.id; nothing joins or commits under it.
       {"group.id", "klag-scaler-check"},
       {"enable.auto.commit", "false"},
       {"enable.auto.offset.store", "false"},
       // The end of a partition answers "no record" at once instead of at the deadline.
       {"enable.partition.eof", "true"},
       // An offset below the log start (retention deleted it) reads from the log start: the
       // oldest record the group has not consumed.
       {"auto.offset.reset", "earliest"},
       {"isolation.level",
        isolation == IsolationLevel::kReadCommitted ? "read_committed" : "read_uncommitted"},
       // One record per partition is wanted: keep the prefetch small.
       {"queued.max.messages.kbytes", "1024"},
       {"fetch.max.bytes", "1048576"},
       {"max.partition.fetch.bytes", "65536"}});
  absl::StatusOr<rdkafka::HandlePtr> rk = rdkafka::NewHandle(RD_KAFKA_CONSUMER, *properties);
  if (!rk.ok()) return rk.status();

  // (topic, partition) -> indexes of the queries on it (a partition asked twice is read once,
  // from the lowest offset: later queries on it take the first record at or after theirs).
  std::map<std::pair<std::string, int32_t>, std::vector<size_t>> by_partition;
  for (size_t i = 0; i < queries.size(); ++i) {
    by_partition[{queries[i].topic, queries[i].partition}].push_back(i);
  }
  rdkafka::PartitionListPtr assignment(
      rd_kafka_topic_partition_list_new(static_cast<int>(by_partition.size())));
  for (const auto& [tp, indexes] : by_partition) {
    int64_t from = queries[indexes.front()].offset;
    for (size_t i : indexes) from = std::min(from, queries[i].offset);
    rd_kafka_topic_partition_list_add(assignment.get(), tp.first.c_str(), tp.second)->offset =
        std::max<int64_t>(from, 0);
  }
  if (rd_kafka_resp_err_t err = rd_kafka_assign(rk->get(), assignment.get());
      err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return RdkafkaStatus(err, context);
  }

  size_t pending = by_partition.size();
  while (pending > 0 && absl::Now() < deadline) {
    rd_kafka_message_t* message =
        rd_kafka_consumer_poll(rk->get(), std::min(rdkafka::RemainingMs(deadline), 100));
    if (message == nullptr) continue;
    const bool eof = message->err == RD_KAFKA_RESP_ERR__PARTITION_EOF;
    if ((message->err == RD_KAFKA_RESP_ERR_NO_ERROR || eof) && message->rkt != nullptr) {
      auto it = by_partition.find({rd_kafka_topic_name(message->rkt), message->partition});
      if (it != by_partition.end() && !it->second.empty()) {
        for (size_t i : it->second) {
          if (eof || out[i].has_value() || message->offset < queries[i].offset) continue;
          rd_kafka_timestamp_type_t type = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
          const int64_t ms = rd_kafka_message_timestamp(message, &type);
          if (type == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE || ms < 0) continue;
          out[i] = RecordTimestamp{.offset = message->offset,
                                   .time = absl::FromUnixMillis(ms),
                                   .log_append_time = type == RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME};
        }
        // Done with the partition once every query on it has a record, or at its end.
        const bool all = std::all_of(it->second.begin(), it->second.end(),
                                     [&](size_t i) { return out[i].has_value(); });
        if (eof || all) {
          it->second.clear();
          --pending;
        }
      }
    }
    // Other errors (a broker down, a topic not yet known) are retried by librdkafka until the
    // deadline; the partitions they concern stay unanswered.
    rd_kafka_message_destroy(message);
  }
  // No group membership to leave: closing only stops the fetchers.
  rd_kafka_consumer_close(rk->get());
  return out;
}

}  // namespace klag::kafka
