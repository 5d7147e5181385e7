#include "job/rdkafka_consumer.h"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "job/rdkafka_record.h"
#include "kafka/rdkafka_handle.h"
#include "kafka/rdkafka_status.h"
#include "spdlog/spdlog.h"

namespace klag::job {

namespace rdk = kafka::rdkafka;

struct RdkafkaConsumerCallbacks {
  static void Rebalance(rd_kafka_t*, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* list,
                        void* opaque) {
    static_cast<RdkafkaConsumer*>(opaque)->OnRebalance(err, list);
  }
  static void Error(rd_kafka_t*, int err, const char* reason, void* opaque) {
    static_cast<RdkafkaConsumer*>(opaque)->OnError(err, reason);
  }
};

namespace {

// Settings the Job's guarantees rest on; --kafka-properties may not change them.
constexpr const char* kReservedProperties[] = {
    "group.id", "enable.auto.commit", "enable.auto.offset.store", "isolation.level",
    "auto.offset.reset", "partition.assignment.strategy", "enable.partition.eof", "group.protocol",
    "group.protocol.type", "bootstrap.servers",
    // GSSAPI: the values kafka/connection_config.cc
    // checks before they reach kinit's shell.
    "sasl.kerberos.kinit.cmd", "sasl.kerberos.keytab", "sasl.kerberos.principal",
    "sasl.kerberos.service.name"};

// Checks --kafka-properties against the reserved settings and the group protocol's own.
absl::Status CheckExtraProperties(const kafka::RdkafkaProperties& extra, GroupProtocol protocol) {
  for (const auto& [name, value] : extra) {
    for (const char* reserved : kReservedProperties) {
      if (name == reserved) {
        return absl::InvalidArgumentError(absl::StrCat(
            "librdkafka property \"", name, "\" is set by klag-job and cannot be overridden",
            name == "group.protocol" ? " (use --group-protocol)" : ""));
      }
    }
    if (protocol == GroupProtocol::kConsumer &&
        (name == "session.timeout.ms" || name == "heartbeat.interval.ms")) {
      // KIP-848 moved both to the broker: librdkafka's INTRODUCTION.md (2.8) lists them as not
      // used with group.protocol=consumer, so a value here would silently do nothing.
      return absl::InvalidArgumentError(absl::StrCat(
          "librdkafka property \"", name,
          "\" has no effect with group protocol consumer: the broker's "
          "group.consumer.session.timeout.ms / group.consumer.heartbeat.interval.ms (or the "
          "group's consumer.session.timeout.ms / consumer.heartbeat.interval.ms) apply"));
    }
    if (protocol == GroupProtocol::kClassic && name == "group.remote.assignor") {
      return absl::InvalidArgumentError(
          "librdkafka property \"group.remote.assignor\" needs group protocol consumer "
          "(--group-protocol consumer); the classic protocol uses cooperative-sticky");
    }
  }
  return absl::OkStatus();
}

std::string PartitionName(const char* topic, int32_t partition) {
  return absl::StrCat(topic, "[", partition, "]");
}

rdk::PartitionListPtr CopyList(const rd_kafka_topic_partition_list_t* list, int64_t offset) {
  rdk::PartitionListPtr copy(rd_kafka_topic_partition_list_new(list->cnt));
  for (int i = 0; i < list->cnt; ++i) {
    rd_kafka_topic_partition_list_add(copy.get(), list->elems[i].topic, list->elems[i].partition)
        ->offset = offset;
  }
  return copy;
}

rdk::PartitionListPtr ToList(const std::vector<kafka::TopicPartition>& partitions) {
  rdk::PartitionListPtr list(
      rd_kafka_topic_partition_list_new(static_cast<int>(partitions.size())));
  for (const kafka::TopicPartition& p : partitions) {
    rd_kafka_topic_partition_list_add(list.get(), p.topic.c_str(), p.partition);
  }
  return list;
}

}  // namespace

absl::StatusOr<kafka::RdkafkaProperties> RdkafkaConsumer::Properties(
    const RdkafkaConsumerOptions& options) {
  if (absl::Status extra = CheckExtraProperties(options.extra, options.group_protocol);
      !extra.ok()) {
    return extra;
  }
  if (options.group.empty()) return absl::InvalidArgumentError("consumer group is empty");
  kafka::RdkafkaProperties props = options.connection;
  std::vector<std::pair<std::string, std::string>> fixed = {
      {"group.id", options.group},
      {"client.id", options.client_id},
      {"enable.auto.commit", "false"},
      {"enable.auto.offset.store", "false"},
      {"isolation.level", options.isolation == kafka::IsolationLevel::kReadCommitted
                              ? "read_committed"
                              : "read_uncommitted"},
      {"auto.offset.reset", options.reset == OffsetReset::kEarliest ? "earliest" : "latest"},
      {"enable.partition.eof", "true"},
      {"max.poll.interval.ms", absl::StrCat(absl::ToInt64Milliseconds(options.max_poll_interval))},
      // Fetch queue: small, refilled quickly. Measured with librdkafka 2.8.0, 300,000 records of
      // ~200 B over 6 partitions on one broker, jsonl to /dev/null, 2 cores at load 2-3, against
      // kcat in the same minute (0.89-0.98 s, 53-65 MB peak RSS):
      // - queued.max.messages.kbytes (per partition; 64 MB by default): klag-job's earlier
      //   queued.min.messages=1000000 (a librdkafka 2.0.2 workaround) let each partition queue
      //   up to 64 MB: 0.70-0.99 s at 131-153 MB. 2048 KB (~10,000 of these records per
      //   partition): 30-34 MB at the same speed; 1024 KB: 25 MB, no slower here.
      // - fetch.queue.backoff.ms: how long a partition whose queue is over that bound waits
      //   before it is fetched again (default 1000 ms, which the small queue would hit all the
      //   time: the default queued.min.messages alone took 2.59 s at 85 MB); 5 ms.
      // - fetch.wait.max.ms: how long the broker holds a Fetch that finds no new data (default
      //   500 ms). Near the end, a Fetch naming only partitions at their end is held that long
      //   while the others' queues drain and cannot be refilled (one Fetch in flight per
      //   broker): with 500 ms, 100 ms, four of eight drains took 1.7-1.9 s instead of 0.7-0.9 s;
      //   with 50 ms none of eight. Partitions at their end are paused, so an idle Job does not
      //   fetch at this rate.
      // Result: 0.70-0.85 s at 25-34 MB, below kcat in time and memory. All overridable with
      // --kafka-properties.
      {"queued.max.messages.kbytes", "2048"},
      {"fetch.queue.backoff.ms", "5"},
      {"fetch.wait.max.ms", "50"},
  };
  switch (options.group_protocol) {
    case GroupProtocol::kClassic:
      fixed.emplace_back("group.protocol", "classic");
      fixed.emplace_back("partition.assignment.strategy", "cooperative-sticky");
      fixed.emplace_back("session.timeout.ms",
                         absl::StrCat(absl::ToInt64Milliseconds(options.session_timeout)));
      break;
    case GroupProtocol::kConsumer:
      fixed.emplace_back("group.protocol", "consumer");
      // The assignor runs on the broker. Naming one matters to librdkafka 2.8: without
      // group.remote.assignor it derives the rebalance callback's protocol from
      // partition.assignment.strategy (default range,roundrobin: EAGER, and the remote assignor
      // "range"); with it, the callback is incremental, which is what Assign/Revoke use. "uniform"
      // is the broker's default (group.consumer.assignors = uniform,range); --kafka-properties
      // group.remote.assignor=range overrides it (appended below).
      fixed.emplace_back("group.remote.assignor", "uniform");
      break;
  }
  props.insert(props.end(), fixed.begin(), fixed.end());
  props.insert(props.end(), options.extra.begin(), options.extra.end());
  return props;
}

absl::StatusOr<std::unique_ptr<RdkafkaConsumer>> RdkafkaConsumer::Create(
    RdkafkaConsumerOptions options) {
  absl::StatusOr<kafka::RdkafkaProperties> props = Properties(options);
  if (!props.ok()) return props.status();
  std::unique_ptr<RdkafkaConsumer> consumer(new RdkafkaConsumer(std::move(options)));
  RdkafkaConsumer* self = consumer.get();
  absl::StatusOr<rdk::HandlePtr> handle =
      rdk::NewHandle(RD_KAFKA_CONSUMER, *props, [self](rd_kafka_conf_t* conf) {
        rd_kafka_conf_set_opaque(conf, self);
        rd_kafka_conf_set_rebalance_cb(conf, &RdkafkaConsumerCallbacks::Rebalance);
        rd_kafka_conf_set_error_cb(conf, &RdkafkaConsumerCallbacks::Error);
      });
  if (!handle.ok()) return handle.status();
  consumer->rk_ = handle->release();
  // Route every event (errors, rebalances) through the consumer queue served by Poll().
  rd_kafka_poll_set_consumer(consumer->rk_);
  return consumer;
}

RdkafkaConsumer::RdkafkaConsumer(RdkafkaConsumerOptions options) : options_(std::move(options)) {}

RdkafkaConsumer::~RdkafkaConsumer() {
  if (rk_ == nullptr) return;
  // A consumer not closed in time is destroyed without another (unbounded) close: the group
  // drops the member when its session times out.
  rd_kafka_destroy_flags(rk_, closed_ ? 0 : RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
}

std::string RdkafkaConsumer::Context() const { return absl::StrCat("group ", options_.group); }

void RdkafkaConsumer::NoteError(absl::Status status) {
  spdlog::error("{}", std::string(status.message()));
  if (error_.ok()) error_ = std::move(status);
}

absl::Status RdkafkaConsumer::Subscribe(const std::vector<std::string>& topics,
                                        RebalanceListener* listener) {
  listener_ = listener;
  spdlog::info("joining group {} with the {} group protocol", options_.group,
               GroupProtocolName(options_.group_protocol));
  rdk::PartitionListPtr list(rd_kafka_topic_partition_list_new(static_cast<int>(topics.size())));
  for (const std::string& t : topics) {
    rd_kafka_topic_partition_list_add(list.get(), t.c_str(), RD_KAFKA_PARTITION_UA);
  }
  return kafka::RdkafkaStatus(
      rd_kafka_subscribe(rk_, list.get()),
      absl::StrCat(Context(), ": subscribe to ", absl::StrJoin(topics, ",")));
}

absl::StatusOr<std::vector<AssignedPartition>> RdkafkaConsumer::ResolveStarts(
    rd_kafka_topic_partition_list_t* list) {
  const absl::Time deadline = absl::Now() + options_.kafka_timeout;
  rdk::PartitionListPtr committed = CopyList(list, RD_KAFKA_OFFSET_INVALID);
  rd_kafka_resp_err_t err = rd_kafka_committed(rk_, committed.get(), rdk::RemainingMs(deadline));
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return kafka::RdkafkaStatus(err, absl::StrCat(Context(), ": committed offsets at assignment"));
  }
  // offsets_for_times with the logical END/BEGINNING timestamps: one ListOffsets per leader,
  // honouring the timeout and the consumer's isolation.level (END is the last stable offset
  // under read_committed).
  rdk::PartitionListPtr ends = CopyList(list, RD_KAFKA_OFFSET_END);
  err = rd_kafka_offsets_for_times(rk_, ends.get(), rdk::RemainingMs(deadline));
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return kafka::RdkafkaStatus(err, absl::StrCat(Context(), ": end offsets at assignment"));
  }
  rdk::PartitionListPtr starts = CopyList(list, RD_KAFKA_OFFSET_BEGINNING);
  err = rd_kafka_offsets_for_times(rk_, starts.get(), rdk::RemainingMs(deadline));
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return kafka::RdkafkaStatus(err, absl::StrCat(Context(), ": log-start offsets at assignment"));
  }
  std::vector<AssignedPartition> out;
  for (int i = 0; i < list->cnt; ++i) {
    rd_kafka_topic_partition_t& p = list->elems[i];
    const std::string name = PartitionName(p.topic, p.partition);
    for (const rd_kafka_topic_partition_list_t* l : {committed.get(), ends.get(), starts.get()}) {
      if (l->elems[i].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        return kafka::RdkafkaStatus(l->elems[i].err,
                                    absl::StrCat(Context(), ": offsets of ", name));
      }
    }
    AssignedPartition a;
    a.partition = {p.topic, p.partition};
    a.end = ends->elems[i].offset;
    const int64_t log_start = starts->elems[i].offset;
    if (committed->elems[i].offset >= 0) a.committed = committed->elems[i].offset;
    if (a.committed.has_value() && *a.committed >= log_start) {
      a.start = *a.committed;
    } else {
      a.start = options_.reset == OffsetReset::kEarliest ? log_start : a.end;
    }
    p.offset = a.start;
    out.push_back(std::move(a));
  }
  return out;
}

void RdkafkaConsumer::Assign(rd_kafka_topic_partition_list_t* list) {
  if (list->cnt == 0) {
    // Cooperative rebalances that add nothing to this member still call back, with no
    // partitions (the offset queries would refuse an empty list).
    rdk::ErrorPtr error(rd_kafka_incremental_assign(rk_, list));
    if (error != nullptr) {
      NoteError(kafka::RdkafkaErrorStatus(error.get(), absl::StrCat(Context(), ": assign")));
    }
    return;
  }
  absl::StatusOr<std::vector<AssignedPartition>> assigned = ResolveStarts(list);
  if (!assigned.ok()) {
    // Assign anyway so the group's rebalance completes; the Job stops at the next Poll.
    for (int i = 0; i < list->cnt; ++i) list->elems[i].offset = RD_KAFKA_OFFSET_INVALID;
    NoteError(assigned.status());
  }
  rdk::ErrorPtr error(rd_kafka_incremental_assign(rk_, list));
  if (error != nullptr) {
    NoteError(kafka::RdkafkaErrorStatus(error.get(), absl::StrCat(Context(), ": assign")));
    return;
  }
  if (!assigned.ok()) return;
  brokers_down_since_.reset();  // the group coordinator answered
  for (const AssignedPartition& a : *assigned) {
    spdlog::info("assigned {}[{}]: start {}, end {}, committed {}", a.partition.topic,
                 a.partition.partition, a.start, a.end,
                 a.committed.has_value() ? absl::StrCat(*a.committed) : "none");
  }
  if (listener_ != nullptr) listener_->OnAssigned(*assigned);
}

void RdkafkaConsumer::Revoke(rd_kafka_topic_partition_list_t* list) {
  const bool lost = rd_kafka_assignment_lost(rk_) != 0;
  std::vector<kafka::TopicPartition> partitions;
  for (int i = 0; i < list->cnt; ++i) {
    partitions.push_back({list->elems[i].topic, list->elems[i].partition});
  }
  if (!partitions.empty()) {
    spdlog::info("{} {} partition(s)", lost ? "lost" : "revoked", partitions.size());
    if (listener_ != nullptr) listener_->OnRevoked(partitions, lost);
  }
  rdk::ErrorPtr error(rd_kafka_incremental_unassign(rk_, list));
  if (error != nullptr) {
    NoteError(kafka::RdkafkaErrorStatus(error.get(), absl::StrCat(Context(), ": unassign")));
  }
}

void RdkafkaConsumer::OnError(int err, const char* reason) {
  const auto code = static_cast<rd_kafka_resp_err_t>(err);
  if (code == RD_KAFKA_RESP_ERR__FATAL) {
    char fatal_reason[512];
    rd_kafka_resp_err_t fatal = rd_kafka_fatal_error(rk_, fatal_reason, sizeof(fatal_reason));
    NoteError(kafka::RdkafkaStatus(fatal, absl::StrCat(Context(), ": fatal"), fatal_reason));
    return;
  }
  if (code == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN && !brokers_down_since_.has_value()) {
    brokers_down_since_ = absl::Now();
  }
  // librdkafka already logged the details (log callback); keep the state, not a second line.
  (void)reason;
}

void RdkafkaConsumer::OnRebalance(int err, rd_kafka_topic_partition_list_t* list) {
  switch (err) {
    case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
      Assign(list);
      break;
    case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
      Revoke(list);
      break;
    default:
      NoteError(kafka::RdkafkaStatus(static_cast<rd_kafka_resp_err_t>(err),
                                     absl::StrCat(Context(), ": rebalance")));
      Revoke(list);
  }
}

absl::StatusOr<PollResult> RdkafkaConsumer::Poll(int max_records, absl::Duration timeout) {
  PollResult result;
  int timeout_ms = static_cast<int>(std::max<int64_t>(0, absl::ToInt64Milliseconds(timeout)));
  while (error_.ok() && static_cast<int>(result.records.size()) < max_records) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk_, timeout_ms);
    timeout_ms = 0;
    if (m == nullptr) break;
    std::unique_ptr<rd_kafka_message_t, void (*)(rd_kafka_message_t*)> owned(
        m, &rd_kafka_message_destroy);
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      brokers_down_since_.reset();
      result.records.push_back(RecordFrom(m));
      continue;
    }
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      brokers_down_since_.reset();
      result.ends.push_back({{rd_kafka_topic_name(m->rkt), m->partition}, m->offset});
      continue;
    }
    const std::string where =
        m->rkt != nullptr ? absl::StrCat(Context(), ": ",
                                         PartitionName(rd_kafka_topic_name(m->rkt), m->partition))
                          : Context();
    const char* detail = rd_kafka_message_errstr(m);
    absl::Status status = kafka::RdkafkaStatus(m->err, where, detail == nullptr ? "" : detail);
    switch (m->err) {
      case RD_KAFKA_RESP_ERR__FATAL: {
        char reason[512];
        rd_kafka_resp_err_t fatal = rd_kafka_fatal_error(rk_, reason, sizeof(reason));
        NoteError(kafka::RdkafkaStatus(fatal, absl::StrCat(Context(), ": fatal"), reason));
        break;
      }
      case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
      case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
      case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
      case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
      case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
      case RD_KAFKA_RESP_ERR__AUTHENTICATION:
      case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
        NoteError(status);
        break;
      case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
        if (!brokers_down_since_.has_value()) brokers_down_since_ = absl::Now();
        spdlog::warn("{}", std::string(status.message()));
        break;
      default:
        spdlog::warn("{}", std::string(status.message()));
    }
  }
  if (error_.ok() && brokers_down_since_.has_value() &&
      absl::Now() - *brokers_down_since_ > options_.kafka_timeout) {
    NoteError(absl::UnavailableError(
        absl::StrCat(Context(), ": no broker reachable for ",
                     absl::FormatDuration(absl::Now() - *brokers_down_since_), " (--kafka-timeout ",
                     absl::FormatDuration(options_.kafka_timeout), ")")));
  }
  if (!error_.ok()) return error_;
  return result;
}

absl::Status RdkafkaConsumer::Commit(const std::vector<CommitOffset>& offsets,
                                     absl::Time deadline) {
  if (offsets.empty()) return absl::OkStatus();
  rdk::PartitionListPtr list(rd_kafka_topic_partition_list_new(static_cast<int>(offsets.size())));
  for (const CommitOffset& c : offsets) {
    rd_kafka_topic_partition_list_add(list.get(), c.partition.topic.c_str(), c.partition.partition)
        ->offset = c.offset;
  }
  rdk::QueuePtr queue(rd_kafka_queue_new(rk_));
  const std::string context = absl::StrCat(Context(), ": commit");
  rd_kafka_resp_err_t err = rd_kafka_commit_queue(rk_, list.get(), queue.get(), nullptr, nullptr);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) return kafka::RdkafkaStatus(err, context);
  while (true) {
    rdk::EventPtr event(rd_kafka_queue_poll(queue.get(), rdk::RemainingMs(deadline)));
    if (event == nullptr) {
      return absl::DeadlineExceededError(absl::StrCat(context, ": no answer in time"));
    }
    if (rd_kafka_event_type(event.get()) != RD_KAFKA_EVENT_OFFSET_COMMIT) continue;
    if (rd_kafka_event_error(event.get()) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      const char* detail = rd_kafka_event_error_string(event.get());
      return kafka::RdkafkaStatus(rd_kafka_event_error(event.get()), context,
                                  detail == nullptr ? "" : detail);
    }
    const rd_kafka_topic_partition_list_t* result =
        rd_kafka_event_topic_partition_list(event.get());
    for (int i = 0; result != nullptr && i < result->cnt; ++i) {
      if (result->elems[i].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        return kafka::RdkafkaStatus(
            result->elems[i].err,
            absl::StrCat(context, " ",
                         PartitionName(result->elems[i].topic, result->elems[i].partition)));
      }
    }
    return absl::OkStatus();
  }
}

absl::Status RdkafkaConsumer::Pause(const std::vector<kafka::TopicPartition>& partitions) {
  if (partitions.empty()) return absl::OkStatus();
  rdk::PartitionListPtr list = ToList(partitions);
  return kafka::RdkafkaStatus(rd_kafka_pause_partitions(rk_, list.get()),
                              absl::StrCat(Context(), ": pause"));
}

absl::Status RdkafkaConsumer::Close(absl::Time deadline) {
  if (closed_) return absl::OkStatus();
  rdk::QueuePtr queue(rd_kafka_queue_new(rk_));
  rdk::ErrorPtr error(rd_kafka_consumer_close_queue(rk_, queue.get()));
  if (error != nullptr) {
    return kafka::RdkafkaErrorStatus(error.get(), absl::StrCat(Context(), ": close"));
  }
  // Revocation during the close arrives on `queue`: as a callback, or as an event we handle the
  // same way.
  while (!rd_kafka_consumer_closed(rk_)) {
    const int wait_ms = std::min(100, rdk::RemainingMs(deadline));
    if (wait_ms <= 0) {
      return absl::DeadlineExceededError(
          absl::StrCat(Context(),
                       ": leaving the group did not complete in time; the broker drops the "
                       "member when its session times out"));
    }
    rdk::EventPtr event(rd_kafka_queue_poll(queue.get(), wait_ms));
    if (event != nullptr && rd_kafka_event_type(event.get()) == RD_KAFKA_EVENT_REBALANCE) {
      OnRebalance(rd_kafka_event_error(event.get()),
                  rd_kafka_event_topic_partition_list(event.get()));
    }
  }
  closed_ = true;
  return absl::OkStatus();
}

}  // namespace klag::job
