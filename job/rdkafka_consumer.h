// RdkafkaConsumer: Consumer on librdkafka's high-level consumer, set up for draining lag safely:
// cooperative-sticky assignment, no automatic commits or offset stores, an explicit isolation
// level, end-of-partition events, and explicit start offsets computed at assignment.
//
//   RdkafkaConsumerOptions o{.connection = *kafka::ToRdkafkaProperties(config),
//                            .group = "python_data_load"};
//   ASSIGN_OR_RETURN(std::unique_ptr<RdkafkaConsumer> consumer, RdkafkaConsumer::Create(o));
//
// At each assignment it reads, for the new partitions, the group's committed offsets and the
// log-start and end offsets (one request each, bounded by kafka_timeout) and assigns with the
// start offsets it computed, so the OffsetTracker and the consumer agree on where reading begins.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "job/consumer.h"
#include "kafka/connection_config.h"
#include "kafka/offsets.h"

struct rd_kafka_s;
struct rd_kafka_topic_partition_list_s;

namespace klag::job {

struct RdkafkaConsumerOptions {
  // bootstrap.servers, security and SASL settings (kafka::ToRdkafkaProperties).
  kafka::RdkafkaProperties connection;
  std::string group;
  std::string client_id = "klag-job";
  kafka::IsolationLevel isolation = kafka::IsolationLevel::kReadCommitted;
  OffsetReset reset = OffsetReset::kEarliest;
  // Bounds offset queries at assignment and how long "all brokers down" is tolerated.
  absl::Duration kafka_timeout = absl::Seconds(10);
  absl::Duration session_timeout = absl::Seconds(10);
  // Extra librdkafka properties (tuning); the ones above and the commit settings cannot be
  // overridden (Create refuses them).
  kafka::RdkafkaProperties extra;
};

class RdkafkaConsumer final : public Consumer {
 public:
  // Errors: kInvalidArgument for a bad or forbidden property.
  static absl::StatusOr<std::unique_ptr<RdkafkaConsumer>> Create(RdkafkaConsumerOptions options);
  ~RdkafkaConsumer() override;

  absl::Status Subscribe(const std::vector<std::string>& topics,
                         RebalanceListener* listener) override;
  absl::StatusOr<PollResult> Poll(int max_records, absl::Duration timeout) override;
  absl::Status Commit(const std::vector<CommitOffset>& offsets, absl::Time deadline) override;
  absl::Status Pause(const std::vector<kafka::TopicPartition>& partitions) override;
  absl::Status Close(absl::Time deadline) override;

 private:
  friend struct RdkafkaConsumerCallbacks;  // librdkafka's C callbacks, in the .cc

  explicit RdkafkaConsumer(RdkafkaConsumerOptions options);
  // `err` is librdkafka's rd_kafka_resp_err_t.
  void OnRebalance(int err, rd_kafka_topic_partition_list_s* list);
  // Client-level errors (librdkafka's error_cb), served on the polling thread.
  void OnError(int err, const char* reason);
  void Assign(rd_kafka_topic_partition_list_s* list);
  void Revoke(rd_kafka_topic_partition_list_s* list);
  // Reads committed, log-start and end offsets for `list` and sets each entry's offset to the
  // start position. Returns the assignment for the listener.
  absl::StatusOr<std::vector<AssignedPartition>> ResolveStarts(
      rd_kafka_topic_partition_list_s* list);
  void NoteError(absl::Status status);
  std::string Context() const;

  RdkafkaConsumerOptions options_;
  rd_kafka_s* rk_ = nullptr;
  RebalanceListener* listener_ = nullptr;
  absl::Status error_;  // first fatal error, returned by the next Poll
  std::optional<absl::Time> brokers_down_since_;
  bool closed_ = false;
};

}  // namespace klag::job
