// What the group coordinator says about a consumer group right now: its protocol, state, partition
// assignor and live members with their assigned partitions (Kafka's DescribeGroups, and
// ListGroups for groups of the KIP-848 consumer protocol). Plain data, filled by
// kafka/rdkafka_group_describe.h; `klag-scaler check` prints it.
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

// A group's protocol (Kafka's group type, KIP-1043).
enum class GroupType {
  kUnknown,   // the coordinator knows no such group (state "Dead")
  kClassic,   // JoinGroup/SyncGroup: described in full by DescribeGroups
  kConsumer,  // KIP-848 (Kafka >= 4.0): state from ListGroups; members not described
};

struct GroupDescription {
  std::string group_id;
  GroupType type = GroupType::kClassic;
  // The coordinator's state as Kafka names it: "Stable", "Empty", "PreparingRebalance",
  // "CompletingRebalance", "Dead" (a group the coordinator does not know), "Unknown"; for a
  // kConsumer group ListGroups' state ("Stable", "Empty", ...; "Unknown" for the consumer
  // protocol's "Assigning" and "Reconciling", which librdkafka 2.8 does not name).
  std::string state;
  std::string partition_assignor;          // the protocol chosen, e.g. "range"; empty when none
  bool simple = false;                     // no members and no protocol type (commits only)
  std::optional<std::string> coordinator;  // "host:port (broker N)"
  // Sorted by client id, then member id. Always empty for a kConsumer group: librdkafka 2.8's
  // DescribeConsumerGroups sends only the classic DescribeGroups, which answers such a group as
  // "Dead" with no members (ConsumerGroupDescribe came with librdkafka 2.10).
  std::vector<GroupMember> members;
};

// "classic", "consumer", "unknown" (Kafka's names, lower case).
inline const char* GroupTypeName(GroupType type) {
  switch (type) {
    case GroupType::kClassic:
      return "classic";
    case GroupType::kConsumer:
      return "consumer";
    case GroupType::kUnknown:
      break;
  }
  return "unknown";
}

}  // namespace klag::kafka
