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
#include <optional>
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

// Sets `properties` on a new configuration. A `sasl.oauthbearer.config` made by
// FormatOauthbearerConfig (kafka/oidc_config.h) also installs klag's OIDC token refresh
// callback (kafka/rdkafka_oauth.h). Errors: kInvalidArgument naming the property (never its
// value, which may be a secret) and librdkafka's reason.
absl::StatusOr<ConfPtr> NewConf(const RdkafkaProperties& properties);

// Creates a client of `type` from `properties`; `customize` may register callbacks or an opaque
// on the configuration before the client takes it. librdkafka logs go to spdlog unless
// `customize` sets its own log callback. With klag's OIDC settings (see NewConf), the client's
// token refreshes run on librdkafka's background thread. Errors: kInvalidArgument (bad property
// or a client librdkafka refuses to create; the message never holds a property value).
absl::StatusOr<HandlePtr> NewHandle(rd_kafka_type_t type, const RdkafkaProperties& properties,
                                    const std::function<void(rd_kafka_conf_t*)>& customize = {});

// The spdlog sink for librdkafka's log callback (thread-safe; librdkafka calls it from its own
// threads).
void LogToSpdlog(const rd_kafka_t* rk, int level, const char* facility, const char* message);

// One admin request in flight: its private result queue. Destroying it abandons the request;
// librdkafka then drops the late result (the queue is disabled on destruction), so nothing leaks.
struct AdminCall {
  QueuePtr queue;
  rd_kafka_event_type_t type = RD_KAFKA_EVENT_NONE;
};

// What an admin request ended with: its result event (top-level error already checked), or the
// error code and librdkafka's message. A request that got no result by the deadline ends with
// RD_KAFKA_RESP_ERR__TIMED_OUT.
struct AdminOutcome {
  EventPtr event;
  rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
  std::string detail;
};

// Starts one admin request whose result event is of type `type`. `start` receives admin options
// (request timeout set; it may set the call's own options, e.g. a ListConsumerGroups filter) and
// the call's result queue, and must issue exactly one admin call with them. The request
// timeout librdkafka applies is the time left until `deadline`, or `request_timeout` when given
// (see kMaxAdminRequestTimeout). Never blocks.
AdminCall StartAdmin(rd_kafka_t* rk, absl::Time deadline, rd_kafka_event_type_t type,
                     absl::FunctionRef<void(rd_kafka_AdminOptions_t*, rd_kafka_queue_t*)> start,
                     std::optional<absl::Duration> request_timeout = std::nullopt);

// The longest request timeout librdkafka accepts for admin requests. Long-lived clients use it
// for coordinator-routed requests (ListConsumerGroupOffsets, AlterConsumerGroupOffsets, ...):
// librdkafka (2.0.2, and still 2.8.0: tests/kafka/librdkafka_4605_test.cc) aborts the process
// (rd_kafka_enq_once_del_source_return: Assertion `eonce->refcnt > 0') when such a request times
// out inside librdkafka while its coordinator is unreachable and the coordinator comes back later
// (librdkafka issue #4605). Waiting on our side
// only until the deadline and abandoning the queue is safe; librdkafka timing it out is not.
inline constexpr absl::Duration kMaxAdminRequestTimeout = absl::Hours(1);

// Waits for `call`'s result until `deadline`.
AdminOutcome AwaitAdmin(AdminCall& call, absl::Time deadline);

// StartAdmin + AwaitAdmin, with errors mapped by RdkafkaStatus (`context` prefixes every
// message; a timeout is kDeadlineExceeded). On a long-lived client, pass
// kMaxAdminRequestTimeout as `request_timeout` for coordinator-routed requests.
absl::StatusOr<EventPtr> AwaitAdminResult(
    rd_kafka_t* rk, absl::Time deadline, rd_kafka_event_type_t type, absl::string_view context,
    absl::FunctionRef<void(rd_kafka_AdminOptions_t*, rd_kafka_queue_t*)> start,
    std::optional<absl::Duration> request_timeout = std::nullopt);

}  // namespace klag::kafka::rdkafka
