// Test helper: commits offsets for many groups through one short-lived librdkafka client (one
// AlterConsumerGroupOffsets per group, all in flight at once), for tests that need a thousand
// groups with known commits; testing::CommitOffsets makes one client per group.
//
//   std::vector<testing::GroupCommit> commits = {{"group-1", {{"orders", 0, 4}}}, ...};
//   ASSERT_TRUE(testing::CommitMany(bootstrap, commits).ok());
#pragma once

#include <librdkafka/rdkafka.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "kafka/rdkafka_handle.h"
#include "kafka/rdkafka_status.h"
#include "tests/testing/kafka_admin.h"

namespace klag::testing {

struct GroupCommit {
  std::string group;
  std::vector<CommitEntry> offsets;
};

// Commits every entry of `commits` (groups without live members). Errors: the first group or
// partition error, or kDeadlineExceeded when not every result arrived within `timeout`.
inline absl::Status CommitMany(const std::string& bootstrap,
                               const std::vector<GroupCommit>& commits,
                               absl::Duration timeout = absl::Seconds(60)) {
  const absl::Time deadline = absl::Now() + timeout;
  absl::StatusOr<kafka::rdkafka::HandlePtr> rk =
      kafka::rdkafka::NewHandle(RD_KAFKA_PRODUCER, {{"bootstrap.servers", bootstrap}});
  if (!rk.ok()) return rk.status();
  kafka::rdkafka::QueuePtr queue(rd_kafka_queue_new(rk->get()));
  rd_kafka_AdminOptions_t* options =
      rd_kafka_AdminOptions_new(rk->get(), RD_KAFKA_ADMIN_OP_ALTERCONSUMERGROUPOFFSETS);
  char errstr[256];
  rd_kafka_AdminOptions_set_request_timeout(
      options, static_cast<int>(absl::ToInt64Milliseconds(timeout)), errstr, sizeof(errstr));
  for (const GroupCommit& commit : commits) {
    kafka::rdkafka::PartitionListPtr list(
        rd_kafka_topic_partition_list_new(static_cast<int>(commit.offsets.size())));
    for (const CommitEntry& entry : commit.offsets) {
      rd_kafka_topic_partition_list_add(list.get(), entry.topic.c_str(), entry.partition)->offset =
          entry.offset;
    }
    rd_kafka_AlterConsumerGroupOffsets_t* alter =
        rd_kafka_AlterConsumerGroupOffsets_new(commit.group.c_str(), list.get());
    rd_kafka_AlterConsumerGroupOffsets(rk->get(), &alter, 1, options, queue.get());
    rd_kafka_AlterConsumerGroupOffsets_destroy(alter);
  }
  rd_kafka_AdminOptions_destroy(options);
  absl::Status status;
  for (size_t done = 0; done < commits.size();) {
    const int64_t left = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (left <= 0) {
      return absl::DeadlineExceededError(
          absl::StrCat("CommitMany: ", done, " of ", commits.size(), " groups committed"));
    }
    rd_kafka_event_t* event = rd_kafka_queue_poll(queue.get(), static_cast<int>(left));
    if (event == nullptr) continue;
    kafka::rdkafka::EventPtr owned(event);
    if (rd_kafka_event_type(event) != RD_KAFKA_EVENT_ALTERCONSUMERGROUPOFFSETS_RESULT) continue;
    ++done;
    if (!status.ok()) continue;
    if (rd_kafka_event_error(event) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      status = kafka::RdkafkaStatus(rd_kafka_event_error(event), "CommitMany",
                                    rd_kafka_event_error_string(event));
      continue;
    }
    size_t count = 0;
    const rd_kafka_group_result_t** groups = rd_kafka_AlterConsumerGroupOffsets_result_groups(
        rd_kafka_event_AlterConsumerGroupOffsets_result(event), &count);
    for (size_t i = 0; i < count && status.ok(); ++i) {
      status = kafka::RdkafkaErrorStatus(
          rd_kafka_group_result_error(groups[i]),
          absl::StrCat("CommitMany: group ", rd_kafka_group_result_name(groups[i])));
      const rd_kafka_topic_partition_list_t* partitions =
          rd_kafka_group_result_partitions(groups[i]);
      for (int p = 0; status.ok() && partitions != nullptr && p < partitions->cnt; ++p) {
        status = kafka::RdkafkaStatus(
            partitions->elems[p].err,
            absl::StrCat("CommitMany: group ", rd_kafka_group_result_name(groups[i])));
      }
    }
  }
  return status;
}

}  // namespace klag::testing
