#include "tests/testing/kafka_admin.h"

#include <librdkafka/rdkafka.h>

#include <chrono>
#include <map>
#include <set>
#include <thread>
#include <utility>

#include "absl/functional/function_ref.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kafka/rdkafka_handle.h"
#include "kafka/rdkafka_status.h"
#include "tests/testing/test_env.h"

namespace klag::testing {
namespace {

using kafka::RdkafkaErrorStatus;
using kafka::RdkafkaStatus;
using kafka::rdkafka::AwaitAdminResult;
using kafka::rdkafka::ErrorPtr;
using kafka::rdkafka::HandlePtr;
using kafka::rdkafka::MetadataPtr;
using kafka::rdkafka::NewHandle;
using kafka::rdkafka::PartitionListPtr;
using kafka::rdkafka::RemainingMs;

// One record's delivery report, filled in by DeliveryReport on the producing thread (reports are
// served from rd_kafka_poll/rd_kafka_flush).
struct Delivery {
  bool done = false;
  rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
  int64_t offset = -1;
};

void DeliveryReport(rd_kafka_t* /*rk*/, const rd_kafka_message_t* message, void* /*opaque*/) {
  auto* delivery = static_cast<Delivery*>(message->_private);
  delivery->done = true;
  delivery->err = message->err;
  delivery->offset = message->offset;
}

absl::StatusOr<HandlePtr> Client(rd_kafka_type_t type, const std::string& bootstrap,
                                 kafka::RdkafkaProperties extra = {}) {
  kafka::RdkafkaProperties properties = {{"bootstrap.servers", bootstrap},
                                         {"client.id", "klag-test-admin"}};
  for (auto& property : extra) properties.push_back(std::move(property));
  return NewHandle(type, properties, [type](rd_kafka_conf_t* conf) {
    if (type == RD_KAFKA_PRODUCER) rd_kafka_conf_set_dr_msg_cb(conf, &DeliveryReport);
  });
}

absl::StatusOr<HandlePtr> Producer(const std::string& bootstrap, absl::Duration timeout,
                                   kafka::RdkafkaProperties extra = {}) {
  extra.push_back({"acks", "all"});
  extra.push_back({"enable.idempotence", "true"});
  extra.push_back({"linger.ms", "1"});
  extra.push_back({"message.timeout.ms",
                   absl::StrCat(std::max<int64_t>(1, absl::ToInt64Milliseconds(timeout)))});
  return Client(RD_KAFKA_PRODUCER, bootstrap, std::move(extra));
}

// The topic's entry in a full metadata snapshot; nullptr when absent.
const rd_kafka_metadata_topic_t* FindTopic(const rd_kafka_metadata_t& metadata,
                                           const std::string& topic) {
  for (int i = 0; i < metadata.topic_cnt; ++i) {
    if (topic == metadata.topics[i].topic) return &metadata.topics[i];
  }
  return nullptr;
}

absl::StatusOr<MetadataPtr> AllMetadata(rd_kafka_t* rk, absl::Time deadline,
                                        absl::string_view context) {
  const rd_kafka_metadata_t* metadata = nullptr;
  const rd_kafka_resp_err_t err =
      rd_kafka_metadata(rk, /*all_topics=*/1, nullptr, &metadata, RemainingMs(deadline));
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) return RdkafkaStatus(err, context);
  return MetadataPtr(metadata);
}

absl::StatusOr<int> PartitionCount(rd_kafka_t* rk, const std::string& topic, absl::Time deadline,
                                   absl::string_view context) {
  absl::StatusOr<MetadataPtr> metadata = AllMetadata(rk, deadline, context);
  if (!metadata.ok()) return metadata.status();
  const rd_kafka_metadata_topic_t* t = FindTopic(**metadata, topic);
  if (t == nullptr || t->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
    return absl::NotFoundError(absl::StrCat(context, ": unknown topic ", topic));
  }
  if (t->err != RD_KAFKA_RESP_ERR_NO_ERROR) return RdkafkaStatus(t->err, context);
  return t->partition_cnt;
}

PartitionListPtr AllPartitions(const std::string& topic, int partitions, int64_t offset) {
  PartitionListPtr list(rd_kafka_topic_partition_list_new(partitions));
  for (int p = 0; p < partitions; ++p) {
    rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), p)->offset = offset;
  }
  return list;
}

std::string Context(const std::string& bootstrap, absl::string_view what) {
  return absl::StrCat("broker ", bootstrap, ": ", what);
}

absl::StatusOr<std::vector<int64_t>> ProduceOn(rd_kafka_t* rk, const std::string& topic,
                                               int32_t partition,
                                               const std::vector<std::string>& values,
                                               absl::Time deadline, const std::string& context,
                                               const std::vector<absl::Time>& timestamps = {}) {
  std::vector<Delivery> deliveries(values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    // 0: the producer sets the time when the record is produced.
    const int64_t timestamp_ms = i < timestamps.size() ? absl::ToUnixMillis(timestamps[i]) : 0;
    while (true) {
      const rd_kafka_resp_err_t err = rd_kafka_producev(
          rk, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(partition),
          RD_KAFKA_V_VALUE(const_cast<char*>(values[i].data()), values[i].size()),
          RD_KAFKA_V_TIMESTAMP(timestamp_ms), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
          RD_KAFKA_V_OPAQUE(&deliveries[i]), RD_KAFKA_V_END);
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR) break;
      if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || absl::Now() >= deadline) {
        return RdkafkaStatus(err, context);
      }
      rd_kafka_poll(rk, 10);
    }
  }
  const rd_kafka_resp_err_t flushed = rd_kafka_flush(rk, RemainingMs(deadline));
  if (flushed != RD_KAFKA_RESP_ERR_NO_ERROR) return RdkafkaStatus(flushed, context);
  std::vector<int64_t> offsets;
  offsets.reserve(values.size());
  for (const Delivery& delivery : deliveries) {
    if (!delivery.done) return RdkafkaStatus(RD_KAFKA_RESP_ERR__TIMED_OUT, context);
    if (delivery.err != RD_KAFKA_RESP_ERR_NO_ERROR) return RdkafkaStatus(delivery.err, context);
    offsets.push_back(delivery.offset);
  }
  return offsets;
}

std::vector<std::string> Values(int count, size_t value_size) {
  std::vector<std::string> values;
  values.reserve(count);
  for (int i = 0; i < count; ++i) {
    std::string value = absl::StrCat("record-", i, "-");
    value.resize(value_size, 'x');
    values.push_back(std::move(value));
  }
  return values;
}

absl::StatusOr<std::map<int32_t, int64_t>> ListOffsets(const std::string& bootstrap,
                                                       const std::string& topic,
                                                       kafka::IsolationLevel isolation,
                                                       int64_t which, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  const std::string context = Context(bootstrap, absl::StrCat("topic ", topic, ": ListOffsets"));
  absl::StatusOr<HandlePtr> rk =
      Client(RD_KAFKA_CONSUMER, bootstrap,
             {{"isolation.level", isolation == kafka::IsolationLevel::kReadCommitted
                                      ? "read_committed"
                                      : "read_uncommitted"}});
  if (!rk.ok()) return rk.status();
  absl::StatusOr<int> partitions = PartitionCount(rk->get(), topic, deadline, context);
  if (!partitions.ok()) return partitions.status();
  PartitionListPtr list = AllPartitions(topic, *partitions, which);
  const rd_kafka_resp_err_t err =
      rd_kafka_offsets_for_times(rk->get(), list.get(), RemainingMs(deadline));
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) return RdkafkaStatus(err, context);
  std::map<int32_t, int64_t> offsets;
  for (int i = 0; i < list->cnt; ++i) {
    const rd_kafka_topic_partition_t& p = list->elems[i];
    if (p.err != RD_KAFKA_RESP_ERR_NO_ERROR) return RdkafkaStatus(p.err, context);
    offsets[p.partition] = p.offset;
  }
  return offsets;
}

// The first error among CreateTopics/DeleteTopics per-topic results.
absl::Status TopicResultsStatus(const rd_kafka_topic_result_t** results, size_t count,
                                const std::string& context) {
  for (size_t i = 0; i < count; ++i) {
    const char* message = rd_kafka_topic_result_error_string(results[i]);
    absl::Status status = RdkafkaStatus(rd_kafka_topic_result_error(results[i]), context,
                                        message == nullptr ? "" : message);
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

// Asks for the cluster's metadata every 100 ms until `done` holds of `topic`'s entry (nullptr:
// not listed); DEADLINE_EXCEEDED with `context: not_yet` when it still does not by `deadline`.
absl::Status AwaitTopicMetadata(
    rd_kafka_t* rk, const std::string& topic, absl::Time deadline, const std::string& context,
    absl::string_view not_yet,
    absl::FunctionRef<bool(const rd_kafka_metadata_topic_t* entry)> done) {
  while (true) {
    absl::StatusOr<MetadataPtr> metadata = AllMetadata(rk, deadline, context);
    if (!metadata.ok()) return metadata.status();
    if (done(FindTopic(**metadata, topic))) return absl::OkStatus();
    if (absl::Now() + absl::Milliseconds(100) >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat(context, ": ", not_yet));
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
}

}  // namespace

absl::Status CreateTopic(const std::string& bootstrap, const std::string& name, int partitions,
                         absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  const std::string context = Context(bootstrap, absl::StrCat("topic ", name, ": CreateTopics"));
  absl::StatusOr<HandlePtr> rk = Client(RD_KAFKA_PRODUCER, bootstrap);
  if (!rk.ok()) return rk.status();
  char errstr[256];
  rd_kafka_NewTopic_t* new_topic =
      rd_kafka_NewTopic_new(name.c_str(), partitions, 1, errstr, sizeof(errstr));
  if (new_topic == nullptr) return absl::InvalidArgumentError(absl::StrCat(context, ": ", errstr));
  absl::StatusOr<kafka::rdkafka::EventPtr> event =
      AwaitAdminResult(rk->get(), deadline, RD_KAFKA_EVENT_CREATETOPICS_RESULT, context,
                       [&](const rd_kafka_AdminOptions_t* options, rd_kafka_queue_t* queue) {
                         rd_kafka_CreateTopics(rk->get(), &new_topic, 1, options, queue);
                       });
  rd_kafka_NewTopic_destroy(new_topic);
  if (!event.ok()) return event.status();
  size_t count = 0;
  const rd_kafka_topic_result_t** results =
      rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(event->get()), &count);
  RETURN_IF_ERROR(TopicResultsStatus(results, count, context));
  // The controller has the topic; wait until the metadata we would query shows every partition
  // with a leader.
  return AwaitTopicMetadata(
      rk->get(), name, deadline, context, "topic created but metadata does not show it in time",
      [&](const rd_kafka_metadata_topic_t* t) {
        if (t == nullptr || t->err != RD_KAFKA_RESP_ERR_NO_ERROR ||
            t->partition_cnt != partitions) {
          return false;
        }
        for (int p = 0; p < t->partition_cnt; ++p) {
          if (t->partitions[p].err != RD_KAFKA_RESP_ERR_NO_ERROR || t->partitions[p].leader < 0) {
            return false;
          }
        }
        return true;
      });
}

absl::Status DeleteTopic(const std::string& bootstrap, const std::string& name,
                         absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  const std::string context = Context(bootstrap, absl::StrCat("topic ", name, ": DeleteTopics"));
  absl::StatusOr<HandlePtr> rk = Client(RD_KAFKA_PRODUCER, bootstrap);
  if (!rk.ok()) return rk.status();
  rd_kafka_DeleteTopic_t* delete_topic = rd_kafka_DeleteTopic_new(name.c_str());
  absl::StatusOr<kafka::rdkafka::EventPtr> event =
      AwaitAdminResult(rk->get(), deadline, RD_KAFKA_EVENT_DELETETOPICS_RESULT, context,
                       [&](const rd_kafka_AdminOptions_t* options, rd_kafka_queue_t* queue) {
                         rd_kafka_DeleteTopics(rk->get(), &delete_topic, 1, options, queue);
                       });
  rd_kafka_DeleteTopic_destroy(delete_topic);
  if (!event.ok()) return event.status();
  size_t count = 0;
  const rd_kafka_topic_result_t** results =
      rd_kafka_DeleteTopics_result_topics(rd_kafka_event_DeleteTopics_result(event->get()), &count);
  RETURN_IF_ERROR(TopicResultsStatus(results, count, context));
  return AwaitTopicMetadata(
      rk->get(), name, deadline, context, "topic deleted but metadata still lists it",
      [](const rd_kafka_metadata_topic_t* t) {
        return t == nullptr || t->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
      });
}

absl::StatusOr<std::vector<int64_t>> Produce(const std::string& bootstrap, const std::string& topic,
                                             int32_t partition, int count, size_t value_size,
                                             absl::Duration timeout) {
  return Produce(bootstrap, topic, partition, Values(count, value_size), timeout);
}

absl::StatusOr<std::vector<int64_t>> Produce(const std::string& bootstrap, const std::string& topic,
                                             int32_t partition,
                                             const std::vector<std::string>& values,
                                             absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  absl::StatusOr<HandlePtr> rk = Producer(bootstrap, timeout);
  if (!rk.ok()) return rk.status();
  return ProduceOn(rk->get(), topic, partition, values, deadline,
                   Context(bootstrap, absl::StrCat("topic ", topic, ": Produce")));
}

absl::StatusOr<std::vector<int64_t>> ProduceWithTimestamps(
    const std::string& bootstrap, const std::string& topic, int32_t partition,
    const std::vector<absl::Time>& timestamps, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  absl::StatusOr<HandlePtr> rk = Producer(bootstrap, timeout);
  if (!rk.ok()) return rk.status();
  return ProduceOn(rk->get(), topic, partition, Values(static_cast<int>(timestamps.size()), 16),
                   deadline, Context(bootstrap, absl::StrCat("topic ", topic, ": Produce")),
                   timestamps);
}

struct OpenTransaction::Impl {
  std::string bootstrap;
  HandlePtr producer;
  bool open = false;
  std::set<std::pair<std::string, int32_t>> written;  // partitions the transaction wrote to

  // The broker answers EndTxn once the transaction's outcome is logged and writes the commit or
  // abort markers afterwards (Kafka 4's transaction protocol v2 leaves a visible gap). Waits until
  // every written partition's last stable offset has reached its high watermark, i.e. the marker
  // is in the log, so callers see the offsets the header promises.
  absl::Status AwaitMarkers(absl::Time deadline) {
    for (const auto& [topic, partition] : written) {
      for (;;) {
        absl::StatusOr<std::map<int32_t, int64_t>> high = EndOffsets(
            bootstrap, topic, kafka::IsolationLevel::kReadUncommitted, deadline - absl::Now());
        if (!high.ok()) return high.status();
        absl::StatusOr<std::map<int32_t, int64_t>> stable = EndOffsets(
            bootstrap, topic, kafka::IsolationLevel::kReadCommitted, deadline - absl::Now());
        if (!stable.ok()) return stable.status();
        if (stable->at(partition) == high->at(partition)) break;
        if (absl::Now() >= deadline) {
          return absl::DeadlineExceededError(absl::StrCat(
              Context(bootstrap, absl::StrCat("topic ", topic)), ": partition ", partition,
              ": transaction marker not written before the deadline (last stable offset ",
              stable->at(partition), ", high watermark ", high->at(partition), ")"));
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }
    written.clear();
    return absl::OkStatus();
  }
};

OpenTransaction::OpenTransaction(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

OpenTransaction::~OpenTransaction() {
  if (impl_->open) {
    ErrorPtr(rd_kafka_abort_transaction(impl_->producer.get(), 10000));
  }
}

absl::StatusOr<std::unique_ptr<OpenTransaction>> OpenTransaction::Begin(
    const std::string& bootstrap, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  const std::string context = Context(bootstrap, "transaction");
  absl::StatusOr<HandlePtr> rk = Producer(
      bootstrap, timeout,
      {{"transactional.id", UniqueName("klag-test-txn")}, {"transaction.timeout.ms", "60000"}});
  if (!rk.ok()) return rk.status();
  ErrorPtr error(rd_kafka_init_transactions(rk->get(), RemainingMs(deadline)));
  if (error != nullptr) return RdkafkaErrorStatus(error.get(), context + ": init");
  error.reset(rd_kafka_begin_transaction(rk->get()));
  if (error != nullptr) return RdkafkaErrorStatus(error.get(), context + ": begin");
  auto impl = std::make_unique<Impl>();
  impl->bootstrap = bootstrap;
  impl->producer = *std::move(rk);
  impl->open = true;
  return std::unique_ptr<OpenTransaction>(new OpenTransaction(std::move(impl)));
}

absl::StatusOr<std::vector<int64_t>> OpenTransaction::Produce(const std::string& topic,
                                                              int32_t partition, int count,
                                                              size_t value_size,
                                                              absl::Duration timeout) {
  impl_->written.emplace(topic, partition);
  return ProduceOn(
      impl_->producer.get(), topic, partition, Values(count, value_size), absl::Now() + timeout,
      Context(impl_->bootstrap, absl::StrCat("topic ", topic, ": transactional Produce")));
}

absl::Status OpenTransaction::Commit(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  ErrorPtr error(
      rd_kafka_commit_transaction(impl_->producer.get(), absl::ToInt64Milliseconds(timeout)));
  if (error != nullptr) return RdkafkaErrorStatus(error.get(), Context(impl_->bootstrap, "commit"));
  impl_->open = false;
  return impl_->AwaitMarkers(deadline);
}

absl::Status OpenTransaction::Abort(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  ErrorPtr error(
      rd_kafka_abort_transaction(impl_->producer.get(), absl::ToInt64Milliseconds(timeout)));
  if (error != nullptr) return RdkafkaErrorStatus(error.get(), Context(impl_->bootstrap, "abort"));
  impl_->open = false;
  return impl_->AwaitMarkers(deadline);
}

absl::StatusOr<std::vector<int64_t>> ProduceTransactional(const std::string& bootstrap,
                                                          const std::string& topic,
                                                          int32_t partition, int count,
                                                          TransactionEnd end,
                                                          absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  absl::StatusOr<std::unique_ptr<OpenTransaction>> txn = OpenTransaction::Begin(bootstrap, timeout);
  if (!txn.ok()) return txn.status();
  absl::StatusOr<std::vector<int64_t>> offsets =
      (*txn)->Produce(topic, partition, count, 16, deadline - absl::Now());
  if (!offsets.ok()) return offsets.status();
  absl::Status finished = end == TransactionEnd::kCommit ? (*txn)->Commit(deadline - absl::Now())
                                                         : (*txn)->Abort(deadline - absl::Now());
  if (!finished.ok()) return finished;
  return offsets;
}

absl::Status DeleteGroup(const std::string& bootstrap, const std::string& group,
                         absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  const std::string context = Context(bootstrap, absl::StrCat("group ", group, ": DeleteGroups"));
  absl::StatusOr<HandlePtr> rk = Client(RD_KAFKA_PRODUCER, bootstrap);
  if (!rk.ok()) return rk.status();
  rd_kafka_DeleteGroup_t* request = rd_kafka_DeleteGroup_new(group.c_str());
  absl::StatusOr<kafka::rdkafka::EventPtr> event =
      AwaitAdminResult(rk->get(), deadline, RD_KAFKA_EVENT_DELETEGROUPS_RESULT, context,
                       [&](const rd_kafka_AdminOptions_t* options, rd_kafka_queue_t* queue) {
                         rd_kafka_DeleteGroups(rk->get(), &request, 1, options, queue);
                       });
  rd_kafka_DeleteGroup_destroy(request);
  if (!event.ok()) return event.status();
  size_t count = 0;
  const rd_kafka_group_result_t** groups =
      rd_kafka_DeleteGroups_result_groups(rd_kafka_event_DeleteGroups_result(event->get()), &count);
  for (size_t i = 0; i < count; ++i) {
    RETURN_IF_ERROR(RdkafkaErrorStatus(rd_kafka_group_result_error(groups[i]), context));
  }
  return absl::OkStatus();
}

absl::Status CommitOffsets(const std::string& bootstrap, const std::string& group,
                           const std::vector<CommitEntry>& offsets, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  const std::string context =
      Context(bootstrap, absl::StrCat("group ", group, ": AlterConsumerGroupOffsets"));
  absl::StatusOr<HandlePtr> rk = Client(RD_KAFKA_PRODUCER, bootstrap);
  if (!rk.ok()) return rk.status();
  PartitionListPtr list(rd_kafka_topic_partition_list_new(static_cast<int>(offsets.size())));
  for (const CommitEntry& entry : offsets) {
    rd_kafka_topic_partition_list_add(list.get(), entry.topic.c_str(), entry.partition)->offset =
        entry.offset;
  }
  rd_kafka_AlterConsumerGroupOffsets_t* alter =
      rd_kafka_AlterConsumerGroupOffsets_new(group.c_str(), list.get());
  absl::StatusOr<kafka::rdkafka::EventPtr> event = AwaitAdminResult(
      rk->get(), deadline, RD_KAFKA_EVENT_ALTERCONSUMERGROUPOFFSETS_RESULT, context,
      [&](const rd_kafka_AdminOptions_t* options, rd_kafka_queue_t* queue) {
        rd_kafka_AlterConsumerGroupOffsets(rk->get(), &alter, 1, options, queue);
      });
  rd_kafka_AlterConsumerGroupOffsets_destroy(alter);
  if (!event.ok()) return event.status();
  size_t count = 0;
  const rd_kafka_group_result_t** groups = rd_kafka_AlterConsumerGroupOffsets_result_groups(
      rd_kafka_event_AlterConsumerGroupOffsets_result(event->get()), &count);
  for (size_t i = 0; i < count; ++i) {
    absl::Status status = RdkafkaErrorStatus(rd_kafka_group_result_error(groups[i]), context);
    if (!status.ok()) return status;
    const rd_kafka_topic_partition_list_t* partitions = rd_kafka_group_result_partitions(groups[i]);
    for (int p = 0; partitions != nullptr && p < partitions->cnt; ++p) {
      const rd_kafka_topic_partition_t& tp = partitions->elems[p];
      if (tp.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        return RdkafkaStatus(tp.err, absl::StrCat(context, ": ", tp.topic, "[", tp.partition, "]"));
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::map<int32_t, int64_t>> CommittedOffsets(const std::string& bootstrap,
                                                            const std::string& group,
                                                            const std::string& topic,
                                                            absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  const std::string context =
      Context(bootstrap, absl::StrCat("group ", group, ": ListConsumerGroupOffsets"));
  absl::StatusOr<HandlePtr> rk = Client(RD_KAFKA_PRODUCER, bootstrap);
  if (!rk.ok()) return rk.status();
  absl::StatusOr<int> partitions = PartitionCount(rk->get(), topic, deadline, context);
  if (!partitions.ok()) return partitions.status();
  PartitionListPtr list = AllPartitions(topic, *partitions, RD_KAFKA_OFFSET_INVALID);
  rd_kafka_ListConsumerGroupOffsets_t* request =
      rd_kafka_ListConsumerGroupOffsets_new(group.c_str(), list.get());
  absl::StatusOr<kafka::rdkafka::EventPtr> event =
      AwaitAdminResult(rk->get(), deadline, RD_KAFKA_EVENT_LISTCONSUMERGROUPOFFSETS_RESULT, context,
                       [&](const rd_kafka_AdminOptions_t* options, rd_kafka_queue_t* queue) {
                         rd_kafka_ListConsumerGroupOffsets(rk->get(), &request, 1, options, queue);
                       });
  rd_kafka_ListConsumerGroupOffsets_destroy(request);
  if (!event.ok()) return event.status();
  size_t count = 0;
  const rd_kafka_group_result_t** groups = rd_kafka_ListConsumerGroupOffsets_result_groups(
      rd_kafka_event_ListConsumerGroupOffsets_result(event->get()), &count);
  std::map<int32_t, int64_t> committed;
  for (size_t i = 0; i < count; ++i) {
    absl::Status status = RdkafkaErrorStatus(rd_kafka_group_result_error(groups[i]), context);
    if (!status.ok()) return status;
    const rd_kafka_topic_partition_list_t* result = rd_kafka_group_result_partitions(groups[i]);
    for (int p = 0; result != nullptr && p < result->cnt; ++p) {
      const rd_kafka_topic_partition_t& tp = result->elems[p];
      if (tp.err != RD_KAFKA_RESP_ERR_NO_ERROR) return RdkafkaStatus(tp.err, context);
      if (tp.offset >= 0) committed[tp.partition] = tp.offset;
    }
  }
  return committed;
}

absl::StatusOr<std::map<int32_t, int64_t>> EndOffsets(const std::string& bootstrap,
                                                      const std::string& topic,
                                                      kafka::IsolationLevel isolation,
                                                      absl::Duration timeout) {
  return ListOffsets(bootstrap, topic, isolation, RD_KAFKA_OFFSET_END, timeout);
}

absl::StatusOr<std::map<int32_t, int64_t>> LogStartOffsets(const std::string& bootstrap,
                                                           const std::string& topic,
                                                           absl::Duration timeout) {
  return ListOffsets(bootstrap, topic, kafka::IsolationLevel::kReadUncommitted,
                     RD_KAFKA_OFFSET_BEGINNING, timeout);
}

absl::Status DeleteRecordsBefore(const std::string& bootstrap, const std::string& topic,
                                 int32_t partition, int64_t offset, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  const std::string context =
      Context(bootstrap, absl::StrCat("topic ", topic, "[", partition, "]: DeleteRecords"));
  absl::StatusOr<HandlePtr> rk = Client(RD_KAFKA_PRODUCER, bootstrap);
  if (!rk.ok()) return rk.status();
  PartitionListPtr list(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), partition)->offset = offset;
  rd_kafka_DeleteRecords_t* request = rd_kafka_DeleteRecords_new(list.get());
  absl::StatusOr<kafka::rdkafka::EventPtr> event =
      AwaitAdminResult(rk->get(), deadline, RD_KAFKA_EVENT_DELETERECORDS_RESULT, context,
                       [&](const rd_kafka_AdminOptions_t* options, rd_kafka_queue_t* queue) {
                         rd_kafka_DeleteRecords(rk->get(), &request, 1, options, queue);
                       });
  rd_kafka_DeleteRecords_destroy(request);
  if (!event.ok()) return event.status();
  const rd_kafka_topic_partition_list_t* result =
      rd_kafka_DeleteRecords_result_offsets(rd_kafka_event_DeleteRecords_result(event->get()));
  for (int p = 0; result != nullptr && p < result->cnt; ++p) {
    if (result->elems[p].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return RdkafkaStatus(result->elems[p].err, context);
    }
  }
  return absl::OkStatus();
}

}  // namespace klag::testing
