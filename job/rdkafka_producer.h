// RdkafkaProducer: Producer on librdkafka (acks=all, idempotent), optionally transactional.
//
//   ASSIGN_OR_RETURN(auto producer, RdkafkaProducer::Create({.connection = props}));
//   producer->Produce({.topic = "t", .value = "v"}, deadline);
//   RETURN_IF_ERROR(producer->Flush(deadline));
//
//   // transactional (klag-produce --transactional):
//   RdkafkaProducerOptions o{.connection = props, .transactional_id = "klag-produce-1"};
//   ASSIGN_OR_RETURN(auto tx, RdkafkaProducer::Create(o));   // initialises transactions
//   RETURN_IF_ERROR(tx->BeginTransaction());
//   tx->Produce(...); RETURN_IF_ERROR(tx->CommitTransaction(deadline));
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "job/producer.h"
#include "kafka/connection_config.h"

struct rd_kafka_s;

namespace klag::job {

struct RdkafkaProducerOptions {
  kafka::RdkafkaProperties connection;
  std::string client_id = "klag-job";
  std::string transactional_id;                      // empty: not transactional
  absl::Duration kafka_timeout = absl::Seconds(10);  // transaction initialisation
  kafka::RdkafkaProperties extra;  // tuning (linger.ms, batch.size, compression.type, ...)
};

class RdkafkaProducer final : public Producer {
 public:
  // Errors: kInvalidArgument for a bad property; transaction initialisation errors.
  static absl::StatusOr<std::unique_ptr<RdkafkaProducer>> Create(RdkafkaProducerOptions options);
  ~RdkafkaProducer() override;

  absl::Status Produce(const OutgoingRecord& record, absl::Time deadline) override;
  absl::Status Flush(absl::Time deadline) override;

  // Transactional producers only.
  absl::Status BeginTransaction();
  absl::Status CommitTransaction(absl::Time deadline);

  struct State;  // delivery-report bookkeeping shared with librdkafka's callback

 private:
  RdkafkaProducer();
  rd_kafka_s* rk_ = nullptr;
  std::unique_ptr<State> state_;
};

}  // namespace klag::job
