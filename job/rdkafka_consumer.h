// RdkafkaConsumer: Consumer on librdkafka's high-level consumer, set up for draining lag safely:
// incremental (cooperative) assignment, no automatic commits or offset stores, an explicit
// isolation level, end-of-partition events, and explicit start offsets computed at assignment.
//
//   RdkafkaConsumerOptions o{.connection = *kafka::ToRdkafkaProperties(config),
//                            .group = "python_data_load",
//                            .group_protocol = GroupProtocol::kClassic};
//   ASSIGN_OR_RETURN(std::unique_ptr<RdkafkaConsumer> consumer, RdkafkaConsumer::Create(o));
//
// At each assignment it reads, for the new partitions, the group's committed offsets and the
// log-start and end offsets (one request each, bounded by kafka_timeout) and assigns with the
// start offsets it computed, so the OffsetTracker and the consumer agree on where reading begins.
//
// Group protocols: kClassic (JoinGroup/SyncGroup, every broker) uses the client-side
// cooperative-sticky assignor and --session-timeout. kConsumer (KIP-848, group.protocol=consumer;
// Kafka >= 4.0, or 3.7+ with the protocol enabled) lets the group coordinator assign: session
// timeout, heartbeat interval and assignor are broker/group settings then
// (group.consumer.session.timeout.ms, group.consumer.heartbeat.interval.ms,
// group.consumer.assignors), so klag-job sets none of session.timeout.ms, heartbeat.interval.ms,
// partition.assignment.strategy or group.protocol.type. Both deliver assignments incrementally,
// which the rebalance callback handles the same way.
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

// Which consumer group protocol the Job joins with (librdkafka's group.protocol).
enum class GroupProtocol {
  kClassic,   // "classic": JoinGroup/SyncGroup, client-side assignor; works on every broker
  kConsumer,  // "consumer": KIP-848 ConsumerGroupHeartbeat, server-side assignor
};

// "classic" / "consumer", as librdkafka and Kafka spell them.
inline const char* GroupProtocolName(GroupProtocol protocol) {
  return protocol == GroupProtocol::kConsumer ? "consumer" : "classic";
}

struct RdkafkaConsumerOptions {
  // bootstrap.servers, security and SASL settings (kafka::ToRdkafkaProperties).
  kafka::RdkafkaProperties connection;
  std::string group;
  std::string client_id = "klag-job";
  kafka::IsolationLevel isolation = kafka::IsolationLevel::kReadCommitted;
  OffsetReset reset = OffsetReset::kEarliest;
  // Bounds offset queries at assignment and how long "all brokers down" is tolerated.
  absl::Duration kafka_timeout = absl::Seconds(10);
  // Classic protocol only; under kConsumer the broker's session timeout applies.
  absl::Duration session_timeout = absl::Seconds(10);
  GroupProtocol group_protocol = GroupProtocol::kClassic;
  // max.poll.interval.ms: the longest the Job may spend between polls (delivering one batch)
  // before librdkafka leaves the group; run.cc sets it above the longest delivery.
  absl::Duration max_poll_interval = absl::Minutes(5);
  // Extra librdkafka properties (tuning); the ones above and the commit settings cannot be
  // overridden (Create refuses them). Under kConsumer, `group.remote.assignor` picks the
  // server-side assignor (default "uniform", the broker's default); session.timeout.ms and
  // heartbeat.interval.ms are refused (they are broker settings there). Under kClassic,
  // `group.remote.assignor` is refused.
  kafka::RdkafkaProperties extra;
};

class RdkafkaConsumer final : public Consumer {
 public:
  // Errors: kInvalidArgument for a bad or forbidden property (see `extra`).
  static absl::StatusOr<std::unique_ptr<RdkafkaConsumer>> Create(RdkafkaConsumerOptions options);
  // The librdkafka properties Create configures, in order (later entries win): the connection,
  // klag-job's fixed settings for the group protocol, then `extra`. Holds secrets: never log it.
  // Errors: as Create, before librdkafka checks the values.
  static absl::StatusOr<kafka::RdkafkaProperties> Properties(const RdkafkaConsumerOptions& options);
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
