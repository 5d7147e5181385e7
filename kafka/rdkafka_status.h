// The one place where librdkafka error codes become absl::Status. Every rdkafka_*.cc file and the
// test helpers report librdkafka failures through these functions, so a code means the same
// thing everywhere:
//
//   rd_kafka_resp_err_t err = rd_kafka_offsets_for_times(rk, list, timeout_ms);
//   if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
//     return kafka::RdkafkaStatus(err, "cluster 10.0.0.1:9092: topic orders: ListOffsets");
//   }
//   // -> DEADLINE_EXCEEDED "cluster 10.0.0.1:9092: topic orders: ListOffsets: Local: Timed out
//   //    (_TIMED_OUT)"
//
// Mapping (see RdkafkaStatusCode for the full table):
//   unknown topic/partition/group                      -> kNotFound (RdkafkaStatus), or
//                                                         kUnavailable for answers that cannot
//                                                         prove absence (RdkafkaTransientStatus)
//   topic/group/cluster/transactional-id authorization -> kPermissionDenied
//   SASL/TLS-client authentication failures            -> kUnauthenticated (the credentials are
//                                                         wrong, not the permissions)
//   timeouts                                           -> kDeadlineExceeded, or kUnavailable
//                                                         when no broker is reachable
//   transport, resolve, all brokers down, leader/coordinator moving -> kUnavailable
//   invalid arguments/requests/group ids               -> kInvalidArgument
//   protocol version or feature not supported          -> kUnimplemented
//   anything else                                      -> kUnknown (message has the name)
#pragma once

#include <librdkafka/rdkafka.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace klag::kafka {

// Whether any broker of the cluster could be reached when a request timed out. Only timeouts
// look at it: a timeout with no reachable broker is kUnavailable, otherwise kDeadlineExceeded.
enum class BrokerReachability { kReachable, kUnreachable };

// The status code for `err` (kOk for RD_KAFKA_RESP_ERR_NO_ERROR).
absl::StatusCode RdkafkaStatusCode(
    rd_kafka_resp_err_t err, BrokerReachability reachability = BrokerReachability::kReachable);

// A status for `err` whose message is "<context>: <librdkafka's error string> (<ERROR_NAME>)",
// or "<context>: <detail> (<ERROR_NAME>)" when `detail` (e.g. a per-request error string from
// librdkafka) is given. OkStatus for RD_KAFKA_RESP_ERR_NO_ERROR. `context` names the cluster and
// the group/topic and must hold no secret; librdkafka's strings hold none.
absl::Status RdkafkaStatus(rd_kafka_resp_err_t err, absl::string_view context,
                           absl::string_view detail = "",
                           BrokerReachability reachability = BrokerReachability::kReachable);

// Same for a rd_kafka_error_t (transactions, some admin calls). Does not take ownership.
absl::Status RdkafkaErrorStatus(const rd_kafka_error_t* error, absl::string_view context);

// Whether `err` says that a topic, partition or group is unknown (to a broker, or to
// librdkafka's metadata cache): UNKNOWN_TOPIC_OR_PART, UNKNOWN_TOPIC_ID, GROUP_ID_NOT_FOUND and
// librdkafka's local __UNKNOWN_TOPIC, __UNKNOWN_PARTITION, __UNKNOWN_GROUP.
bool IsUnknownTopicPartitionOrGroup(rd_kafka_resp_err_t err);

// As RdkafkaStatus, for the answer of a request that cannot prove that something does not
// exist (ListOffsets, OffsetFetch, a partition missing from a batch): "unknown topic, partition
// or group" there is kUnavailable, with a message saying it is transient. Kafka's own client
// treats UNKNOWN_TOPIC_OR_PARTITION as retriable, and a restarting broker answers it for
// partitions it has not loaded yet; only a Metadata answer about the topic says it does not
// exist. Every other error maps as in RdkafkaStatus.
//
//   RdkafkaTransientStatus(RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
//                          "cluster k:9092: topic orders partition 3: ListOffsets")
//   // -> UNAVAILABLE "cluster k:9092: topic orders partition 3: ListOffsets: Broker: Unknown
//   //    topic or partition (UNKNOWN_TOPIC_OR_PART); not confirmed by metadata: a broker that is
//   //    starting answers this for topics and groups it has not loaded yet (transient)"
absl::Status RdkafkaTransientStatus(
    rd_kafka_resp_err_t err, absl::string_view context, absl::string_view detail = "",
    BrokerReachability reachability = BrokerReachability::kReachable);

}  // namespace klag::kafka
