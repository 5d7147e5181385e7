#include "job/rdkafka_producer.h"

#include <librdkafka/rdkafka.h>

#include <mutex>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "kafka/rdkafka_handle.h"
#include "kafka/rdkafka_status.h"

namespace klag::job {

namespace rdk = kafka::rdkafka;

// First delivery failure since the last Flush. Delivery reports run on the thread that calls
// rd_kafka_poll/flush (ours), but a mutex keeps that an implementation detail.
struct RdkafkaProducer::State {
  std::mutex mu;
  absl::Status first_error;
};

namespace {

void OnDelivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
  if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) return;
  auto* state = static_cast<RdkafkaProducer::State*>(opaque);
  std::lock_guard<std::mutex> lock(state->mu);
  if (state->first_error.ok()) {
    state->first_error = kafka::RdkafkaStatus(
        m->err, absl::StrCat("produce to ", m->rkt != nullptr ? rd_kafka_topic_name(m->rkt) : "?"),
        rd_kafka_err2str(m->err));
  }
}

}  // namespace

RdkafkaProducer::RdkafkaProducer() : state_(std::make_unique<State>()) {}

RdkafkaProducer::~RdkafkaProducer() {
  if (rk_ != nullptr) rd_kafka_destroy(rk_);
}

absl::StatusOr<std::unique_ptr<RdkafkaProducer>> RdkafkaProducer::Create(
    RdkafkaProducerOptions options) {
  std::unique_ptr<RdkafkaProducer> producer(new RdkafkaProducer());
  kafka::RdkafkaProperties props = options.connection;
  props.emplace_back("client.id", options.client_id);
  props.emplace_back("acks", "all");
  props.emplace_back("enable.idempotence", "true");
  if (!options.transactional_id.empty()) {
    props.emplace_back("transactional.id", options.transactional_id);
  }
  props.insert(props.end(), options.extra.begin(), options.extra.end());
  State* state = producer->state_.get();
  absl::StatusOr<rdk::HandlePtr> handle =
      rdk::NewHandle(RD_KAFKA_PRODUCER, props, [state](rd_kafka_conf_t* conf) {
        rd_kafka_conf_set_opaque(conf, state);
        rd_kafka_conf_set_dr_msg_cb(conf, &OnDelivery);
      });
  if (!handle.ok()) return handle.status();
  producer->rk_ = handle->release();
  if (!options.transactional_id.empty()) {
    rdk::ErrorPtr error(rd_kafka_init_transactions(
        producer->rk_, static_cast<int>(absl::ToInt64Milliseconds(options.kafka_timeout))));
    if (error != nullptr) {
      return kafka::RdkafkaErrorStatus(error.get(), "init transactions");
    }
  }
  return producer;
}

absl::Status RdkafkaProducer::Produce(const OutgoingRecord& record, absl::Time deadline) {
  rd_kafka_headers_t* headers = rd_kafka_headers_new(record.headers.size());
  for (const RecordHeader& h : record.headers) {
    rd_kafka_header_add(headers, h.key.data(), static_cast<ssize_t>(h.key.size()),
                        h.value.has_value() ? h.value->data() : nullptr,
                        h.value.has_value() ? static_cast<ssize_t>(h.value->size()) : 0);
  }
  while (true) {
    rd_kafka_resp_err_t err = rd_kafka_producev(
        rk_, RD_KAFKA_V_TOPIC(record.topic.c_str()),
        RD_KAFKA_V_PARTITION(record.partition.value_or(RD_KAFKA_PARTITION_UA)),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_KEY(record.key.has_value() ? record.key->data() : nullptr,
                       record.key.has_value() ? record.key->size() : 0),
        RD_KAFKA_V_VALUE(
            record.value.has_value() ? const_cast<char*>(record.value->data()) : nullptr,
            record.value.has_value() ? record.value->size() : 0),
        RD_KAFKA_V_HEADERS(headers), RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return absl::OkStatus();  // headers now owned
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL && absl::Now() < deadline) {
      rd_kafka_poll(rk_, 10);  // serve delivery reports to make room
      continue;
    }
    rd_kafka_headers_destroy(headers);
    return kafka::RdkafkaStatus(err, absl::StrCat("produce to ", record.topic));
  }
}

absl::Status RdkafkaProducer::Flush(absl::Time deadline) {
  rd_kafka_resp_err_t err = rd_kafka_flush(rk_, rdk::RemainingMs(deadline));
  std::lock_guard<std::mutex> lock(state_->mu);
  absl::Status first = std::exchange(state_->first_error, absl::OkStatus());
  if (!first.ok()) return first;
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) return kafka::RdkafkaStatus(err, "flush");
  return absl::OkStatus();
}

absl::Status RdkafkaProducer::BeginTransaction() {
  rdk::ErrorPtr error(rd_kafka_begin_transaction(rk_));
  return error == nullptr ? absl::OkStatus()
                          : kafka::RdkafkaErrorStatus(error.get(), "begin transaction");
}

absl::Status RdkafkaProducer::CommitTransaction(absl::Time deadline) {
  rdk::ErrorPtr error(rd_kafka_commit_transaction(rk_, rdk::RemainingMs(deadline)));
  return error == nullptr ? absl::OkStatus()
                          : kafka::RdkafkaErrorStatus(error.get(), "commit transaction");
}

}  // namespace klag::job
