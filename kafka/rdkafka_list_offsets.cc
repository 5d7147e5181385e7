#include "kafka/rdkafka_list_offsets.h"

#include <librdkafka/rdkafka.h>

#include <thread>

#include "kafka/rdkafka_handle.h"

namespace klag::kafka::rdkafka {
namespace {

// One rd_kafka_offsets_for_times call asking every partition for `which`.
rd_kafka_resp_err_t ListOffsets(Client& client, const std::vector<TopicPartition>& partitions,
                                int64_t which, absl::Time deadline, ListOffsetsCounters& counters,
                                PartitionListPtr& list) {
  list.reset(rd_kafka_topic_partition_list_new(static_cast<int>(partitions.size())));
  for (const TopicPartition& tp : partitions) {
    rd_kafka_topic_partition_list_add(list.get(), tp.topic.c_str(), tp.partition)->offset = which;
  }
  if (RemainingMs(deadline) <= 0) return RD_KAFKA_RESP_ERR__TIMED_OUT;
  counters.calls.fetch_add(1);
  counters.partitions.fetch_add(list->cnt);
  return rd_kafka_offsets_for_times(client.rk(), list.get(), RemainingMs(deadline));
}

}  // namespace

EndOffsetsCache::FetchResult ListEndAndLogStart(Client& client,
                                                const std::vector<TopicPartition>& partitions,
                                                absl::Time deadline,
                                                ListOffsetsCounters& counters) {
  PartitionListPtr starts;
  rd_kafka_resp_err_t start_err = RD_KAFKA_RESP_ERR_NO_ERROR;
  // The two calls run side by side: a refresh costs one round trip, not two.
  std::thread log_start([&] {
    start_err =
        ListOffsets(client, partitions, RD_KAFKA_OFFSET_BEGINNING, deadline, counters, starts);
  });
  PartitionListPtr ends;
  const rd_kafka_resp_err_t end_err =
      ListOffsets(client, partitions, RD_KAFKA_OFFSET_END, deadline, counters, ends);
  log_start.join();

  EndOffsetsCache::FetchResult result;
  bool any_answer = false;
  if (end_err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    for (int i = 0; i < ends->cnt; ++i) {
      const rd_kafka_topic_partition_t& p = ends->elems[i];
      EndOffsetsCache::Offsets& o = result.partitions[TopicPartition{p.topic, p.partition}];
      o.end = p.offset;
      o.error = p.err;
      any_answer = any_answer || p.err == RD_KAFKA_RESP_ERR_NO_ERROR;
    }
  }
  if (start_err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    for (int i = 0; i < starts->cnt; ++i) {
      const rd_kafka_topic_partition_t& p = starts->elems[i];
      any_answer = any_answer || p.err == RD_KAFKA_RESP_ERR_NO_ERROR;
      auto it = result.partitions.find(TopicPartition{p.topic, p.partition});
      if (it == result.partitions.end()) continue;
      it->second.log_start = p.offset;
      if (it->second.error == RD_KAFKA_RESP_ERR_NO_ERROR) it->second.error = p.err;
    }
  }
  if (any_answer) client.MarkReachable();
  if (end_err != RD_KAFKA_RESP_ERR_NO_ERROR || start_err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    result.partitions.clear();
    result.error = end_err != RD_KAFKA_RESP_ERR_NO_ERROR ? end_err : start_err;
  }
  return result;
}

}  // namespace klag::kafka::rdkafka
