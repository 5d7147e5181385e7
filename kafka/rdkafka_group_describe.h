// Describes one consumer group (Kafka's DescribeGroups through librdkafka's admin
// DescribeConsumerGroups) with a short-lived client of its own. For `klag-scaler check`, a
// debugging tool: never on the scaler's serving path, which reads offsets only.
//
// librdkafka 2.8 describes only classic groups: DescribeGroups answers a group of the KIP-848
// consumer protocol (Kafka >= 4.0) as "Dead" with no members, like a group that does not exist.
// A "Dead" answer is therefore checked with ListGroups filtered by group type (KIP-1043): a
// consumer-protocol group is reported with type kConsumer and ListGroups' state, members unknown.
//
//   absl::StatusOr<kafka::GroupDescription> g =
//       kafka::DescribeGroup(connection, "python_data_load", absl::Now() + absl::Seconds(5));
//   if (g.ok()) std::cout << g->state << " " << g->members.size() << " members\n";
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "kafka/connection_config.h"
#include "kafka/group_description.h"

namespace klag::kafka {

// Describes `group` on the cluster `connection` names, waiting until `deadline`. A group the
// coordinator does not know is not an error: Kafka answers it as state "Dead" with no members
// (type kUnknown).
// Errors: kInvalidArgument for connection settings librdkafka refuses; kPermissionDenied without
// DESCRIBE on the group; kDeadlineExceeded/kUnavailable when the coordinator does not answer in
// time; otherwise the mapped librdkafka error (kafka/rdkafka_status.h). Messages name the cluster
// and the group, never a credential. Thread-safe (each call has its own client).
absl::StatusOr<GroupDescription> DescribeGroup(const ConnectionConfig& connection,
                                               const std::string& group, absl::Time deadline);

}  // namespace klag::kafka
