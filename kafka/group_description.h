// What the group coordinator says about a consumer group right now: its state, partition
// assignor and live members with their assigned partitions (Kafka's DescribeGroups). Plain data,
// filled by kafka/rdkafka_group_describe.h; `klag-scaler check` prints it.
//
//   kafka::GroupDescription g = ...;
//   g.state;                        // "Stable"
//   g.members[0].client_id;         // "rdkafka"
//   g.members[0].assignment[0];     // {"orders", 0}
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "kafka/offsets.h"

namespace klag::kafka {

struct GroupMember {
  std::string member_id;                         // the coordinator's id for the member
  std::optional<std::string> group_instance_id;  // static membership; none when dynamic
  std::string client_id;                         // the consumer's client.id
  std::string host;                              // as the coordinator saw it: "/10.0.0.7"
  std::vector<TopicPartition> assignment;        // sorted; every topic the member was given
};

struct GroupDescription {
  std::string group_id;
  // The coordinator's state as Kafka names it: "Stable", "Empty", "PreparingRebalance",
  // "CompletingRebalance", "Dead" (a group the coordinator does not know), "Unknown".
  std::string state;
  std::string partition_assignor;          // the protocol chosen, e.g. "range"; empty when none
  bool simple = false;                     // no members and no protocol type (commits only)
  std::optional<std::string> coordinator;  // "host:port (broker N)"
  std::vector<GroupMember> members;        // sorted by client id, then member id
};

}  // namespace klag::kafka
