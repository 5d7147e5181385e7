// RAII ownership for librdkafka objects and the few blocking patterns every librdkafka user in
// klag needs (creating a client from properties, waiting for an admin result, a deadline as a
// millisecond timeout). Included only by rdkafka_*.cc files and test helpers.
//
//   absl::StatusOr<rdkafka::HandlePtr> rk =
//       rdkafka::NewHandle(RD_KAFKA_CONSUMER, {{"bootstrap.servers", "127.0.0.1:9092"}});
//   absl::StatusOr<rdkafka::EventPtr> result = rdkafka::AwaitAdminResult(
//       rk->get(), deadline, RD_KAFKA_EVENT_DELETETOPICS_RESULT, "cluster x: DeleteTopics",
//       [&](const rd_kafka_AdminOptions_t* options, rd_kafka_queue_t* queue) {
//         rd_kafka_DeleteTopics(rk->get(), &topic, 1, options, queue);
//       });
#pragma once

#include <librdkafka/rdkafka.h>

#include <functional>
#include <memory>
#include <string>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "kafka/connection_config.h"

namespace klag::kafka::rdkafka {

struct HandleDeleter {
  void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
};
struct ConfDeleter {
  void operator()(rd_kafka_conf_t* conf) const { rd_kafka_conf_destroy(conf); }
};
struct PartitionListDeleter {
  void operator()(rd_kafka_topic_partition_list_t* list) const {
    rd_kafka_topic_partition_list_destroy(list);
  }
};
struct EventDeleter {
  void operator()(rd_kafka_event_t* event) const { rd_kafka_event_destroy(event); }
};
struct QueueDeleter {
  void operator()(rd_kafka_queue_t* queue) const { rd_kafka_queue_destroy(queue); }
};
struct AdminOptionsDeleter {
  void operator()(rd_kafka_AdminOptions_t* options) const {
    rd_kafka_AdminOptions_destroy(options);
  }
};
struct MetadataDeleter {
  void operator()(const rd_kafka_metadata_t* metadata) const {
    rd_kafka_metadata_destroy(metadata);
  }
};
struct ErrorDeleter {
  void operator()(rd_kafka_error_t* error) const { rd_kafka_error_destroy(error); }
};

using HandlePtr = std::unique_ptr<rd_kafka_t, HandleDeleter>;
using ConfPtr = std::unique_ptr<rd_kafka_conf_t, ConfDeleter>;
using PartitionListPtr = std::unique_ptr<rd_kafka_topic_partition_list_t, PartitionListDeleter>;
using EventPtr = std::unique_ptr<rd_kafka_event_t, EventDeleter>;
using QueuePtr = std::unique_ptr<rd_kafka_queue_t, QueueDeleter>;
using AdminOptionsPtr = std::unique_ptr<rd_kafka_AdminOptions_t, AdminOptionsDeleter>;
using MetadataPtr = std::unique_ptr<const rd_kafka_metadata_t, MetadataDeleter>;
using ErrorPtr = std::unique_ptr<rd_kafka_error_t, ErrorDeleter>;

// Milliseconds left until `deadline`, rounded up, clamped to [0, INT_MAX]: the timeout argument
// librdkafka's blocking calls take.
int RemainingMs(absl::Time deadline);

// Sets `properties` on a new configuration. Errors: kInvalidArgument naming the property (never
// its value, which may be a secret) and librdkafka's reason.
absl::StatusOr<ConfPtr> NewConf(const RdkafkaProperties& properties);

// Creates a client of `type` from `properties`; `customize` may register callbacks or an opaque
// on the configuration before the client takes it. librdkafka logs go to spdlog unless
// `customize` sets its own log callback. Errors: kInvalidArgument (bad property or a client
// librdkafka refuses to create; the message never holds a property value).
absl::StatusOr<HandlePtr> NewHandle(rd_kafka_type_t type, const RdkafkaProperties& properties,
                                    const std::function<void(rd_kafka_conf_t*)>& customize = {});

// The spdlog sink for librdkafka's log callback (thread-safe; librdkafka calls it from its own
// threads).
void LogToSpdlog(const rd_kafka_t* rk, int level, const char* facility, const char* message);

// Starts one admin request and waits for its result event until `deadline`. `start` receives
// admin options whose request timeout is the time left and a private result queue, and must
// issue exactly one admin call with them. Returns the result event (of type `type`, top-level
// error already checked), owned by the caller. Errors: the mapped top-level error, or
// kDeadlineExceeded/kUnavailable (per `reachability`) when no result came in time; `context`
// prefixes every message. An abandoned request's late result is dropped by librdkafka (the
// queue is disabled when destroyed), so nothing leaks.
absl::StatusOr<EventPtr> AwaitAdminResult(
    rd_kafka_t* rk, absl::Time deadline, rd_kafka_event_type_t type, absl::string_view context,
    absl::FunctionRef<void(const rd_kafka_AdminOptions_t*, rd_kafka_queue_t*)> start,
    absl::FunctionRef<bool()> brokers_unreachable = [] { return false; });

}  // namespace klag::kafka::rdkafka
