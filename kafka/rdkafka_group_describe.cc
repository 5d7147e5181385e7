#include "kafka/rdkafka_group_describe.h"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <optional>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "kafka/rdkafka_handle.h"
#include "kafka/rdkafka_status.h"

namespace klag::kafka {
namespace {

std::string Text(const char* s) { return s == nullptr ? "" : s; }

GroupMember ToMember(const rd_kafka_MemberDescription_t* m) {
  GroupMember member;
  member.member_id = Text(rd_kafka_MemberDescription_consumer_id(m));
  if (const char* instance = rd_kafka_MemberDescription_group_instance_id(m);
      instance != nullptr && *instance != '\0') {
    member.group_instance_id = instance;
  }
  member.client_id = Text(rd_kafka_MemberDescription_client_id(m));
  member.host = Text(rd_kafka_MemberDescription_host(m));
  const rd_kafka_MemberAssignment_t* assignment = rd_kafka_MemberDescription_assignment(m);
  const rd_kafka_topic_partition_list_t* partitions =
      assignment == nullptr ? nullptr : rd_kafka_MemberAssignment_partitions(assignment);
  if (partitions != nullptr) {
    for (int i = 0; i < partitions->cnt; ++i) {
      member.assignment.push_back(
          {Text(partitions->elems[i].topic), partitions->elems[i].partition});
    }
  }
  std::sort(member.assignment.begin(), member.assignment.end());
  return member;
}

// What ListGroups says of `group` when it is a group of the KIP-848 consumer protocol: its state
// name; nullopt when it is not one (or the broker cannot filter by type: Kafka < 4.0, whose
// groups are all classic). Errors only for the call itself (timeout, authorization).
absl::StatusOr<std::optional<std::string>> ConsumerProtocolGroupState(rd_kafka_t* rk,
                                                                      const std::string& group,
                                                                      absl::Time deadline,
                                                                      const std::string& context) {
  // ListGroups goes to every broker (there is no filter by name): filtering by type keeps the
  // answer to the consumer-protocol groups, few on a cluster that is still mostly classic.
  static constexpr rd_kafka_consumer_group_type_t kConsumer[] = {
      RD_KAFKA_CONSUMER_GROUP_TYPE_CONSUMER};
  absl::StatusOr<rdkafka::EventPtr> event = rdkafka::AwaitAdminResult(
      rk, deadline, RD_KAFKA_EVENT_LISTCONSUMERGROUPS_RESULT, absl::StrCat(context, ": ListGroups"),
      [&](rd_kafka_AdminOptions_t* options, rd_kafka_queue_t* queue) {
        if (rd_kafka_error_t* error =
                rd_kafka_AdminOptions_set_match_consumer_group_types(options, kConsumer, 1);
            error != nullptr) {
          rd_kafka_error_destroy(error);  // only for invalid arguments, which these are not
        }
        rd_kafka_ListConsumerGroups(rk, options, queue);
      });
  if (!event.ok()) return event.status();
  const rd_kafka_ListConsumerGroups_result_t* result =
      rd_kafka_event_ListConsumerGroups_result(event->get());
  size_t count = 0;
  const rd_kafka_ConsumerGroupListing_t** listings =
      rd_kafka_ListConsumerGroups_result_valid(result, &count);
  for (size_t i = 0; i < count; ++i) {
    if (Text(rd_kafka_ConsumerGroupListing_group_id(listings[i])) == group &&
        rd_kafka_ConsumerGroupListing_type(listings[i]) == RD_KAFKA_CONSUMER_GROUP_TYPE_CONSUMER) {
      return Text(
          rd_kafka_consumer_group_state_name(rd_kafka_ConsumerGroupListing_state(listings[i])));
    }
  }
  // Per-broker errors (result_errors) are left alone: a broker that cannot filter by type
  // (Kafka < 4.0) has no consumer-protocol group to list.
  return std::nullopt;
}

}  // namespace

absl::StatusOr<GroupDescription> DescribeGroup(const ConnectionConfig& connection,
                                               const std::string& group, absl::Time deadline) {
  const std::string context =
      absl::StrCat("cluster ", connection.bootstrap_servers, ": group ", group, ": DescribeGroups");
  absl::StatusOr<RdkafkaProperties> properties = ToRdkafkaProperties(connection);
  if (!properties.ok()) return properties.status();
  properties->push_back({"client.id", "klag-scaler-check"});
  // An admin client; the producer type starts no consumer-group machinery of its own.
  absl::StatusOr<rdkafka::HandlePtr> rk = rdkafka::NewHandle(RD_KAFKA_PRODUCER, *properties);
  if (!rk.ok()) return rk.status();

  const char* groups[] = {group.c_str()};
  // DescribeGroups goes to the group's coordinator: librdkafka must not time it out itself
  // (librdkafka #4605, see kMaxAdminRequestTimeout); we stop waiting at `deadline` instead.
  absl::StatusOr<rdkafka::EventPtr> event = rdkafka::AwaitAdminResult(
      rk->get(), deadline, RD_KAFKA_EVENT_DESCRIBECONSUMERGROUPS_RESULT, context,
      [&](rd_kafka_AdminOptions_t* options, rd_kafka_queue_t* queue) {
        rd_kafka_DescribeConsumerGroups(rk->get(), groups, 1, options, queue);
      },
      rdkafka::kMaxAdminRequestTimeout);
  if (!event.ok()) return event.status();

  size_t count = 0;
  const rd_kafka_ConsumerGroupDescription_t** descriptions =
      rd_kafka_DescribeConsumerGroups_result_groups(
          rd_kafka_event_DescribeConsumerGroups_result(event->get()), &count);
  if (count != 1) {
    return absl::InternalError(
        absl::StrCat(context, ": expected one group in the answer, got ", count));
  }
  const rd_kafka_ConsumerGroupDescription_t* d = descriptions[0];
  if (const rd_kafka_error_t* error = rd_kafka_ConsumerGroupDescription_error(d);
      error != nullptr) {
    return RdkafkaErrorStatus(error, context);
  }
  GroupDescription out;
  out.group_id = Text(rd_kafka_ConsumerGroupDescription_group_id(d));
  out.state = Text(rd_kafka_consumer_group_state_name(rd_kafka_ConsumerGroupDescription_state(d)));
  out.partition_assignor = Text(rd_kafka_ConsumerGroupDescription_partition_assignor(d));
  out.simple = rd_kafka_ConsumerGroupDescription_is_simple_consumer_group(d) != 0;
  if (const rd_kafka_Node_t* node = rd_kafka_ConsumerGroupDescription_coordinator(d);
      node != nullptr) {
    out.coordinator = absl::StrCat(Text(rd_kafka_Node_host(node)), ":", rd_kafka_Node_port(node),
                                   " (broker ", rd_kafka_Node_id(node), ")");
  }
  const size_t members = rd_kafka_ConsumerGroupDescription_member_count(d);
  for (size_t i = 0; i < members; ++i) {
    out.members.push_back(ToMember(rd_kafka_ConsumerGroupDescription_member(d, i)));
  }
  std::sort(out.members.begin(), out.members.end(), [](const GroupMember& a, const GroupMember& b) {
    return std::tie(a.client_id, a.member_id) < std::tie(b.client_id, b.member_id);
  });
  if (rd_kafka_ConsumerGroupDescription_state(d) != RD_KAFKA_CONSUMER_GROUP_STATE_DEAD ||
      !out.members.empty()) {
    return out;
  }
  // "Dead": either no group of that id, or a group of the KIP-848 consumer protocol, which the
  // classic DescribeGroups (all librdkafka 2.8 sends) does not know either. ListGroups tells.
  absl::StatusOr<std::optional<std::string>> consumer_state =
      ConsumerProtocolGroupState(rk->get(), group, deadline, context);
  if (!consumer_state.ok()) return consumer_state.status();
  if (!consumer_state->has_value()) {
    out.type = GroupType::kUnknown;
    return out;
  }
  out.type = GroupType::kConsumer;
  out.state = **consumer_state;
  out.simple = false;  // DescribeGroups' guess for a group it knows no protocol type of
  return out;
}

}  // namespace klag::kafka
