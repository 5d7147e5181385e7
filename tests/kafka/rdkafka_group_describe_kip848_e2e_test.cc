// DescribeGroup and a group of the KIP-848 consumer protocol (label kafka4; needs a Kafka >= 4.0
// broker: KLAG_TEST_BOOTSTRAP and KLAG_KAFKA_STATE). librdkafka 2.8 describes such a group with
// the classic DescribeGroups, which answers "Dead" with no members; DescribeGroup must tell it
// apart from a group that does not exist (ListGroups by type) and say that its members are not
// described, not that it has none.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "kafka/rdkafka_group_describe.h"
#include "tests/testing/kafka_admin.h"
#include "tests/testing/kafka_tools.h"
#include "tests/testing/live_consumer.h"
#include "tests/testing/test_env.h"

namespace klag::kafka {
namespace {

using ::testing::IsEmpty;

ConnectionConfig Plain(const std::string& bootstrap) {
  ConnectionConfig c;
  c.bootstrap_servers = bootstrap;
  return c;
}

// Describes `group` until `done` holds of the answer or 60 s pass; returns the last answer.
template <typename Done>
absl::StatusOr<GroupDescription> DescribeUntil(const std::string& bootstrap,
                                               const std::string& group, Done done) {
  absl::StatusOr<GroupDescription> g;
  const absl::Time give_up = absl::Now() + absl::Seconds(60);
  do {
    g = DescribeGroup(Plain(bootstrap), group, absl::Now() + absl::Seconds(10));
    if (!g.ok() || done(*g)) break;
    absl::SleepFor(absl::Milliseconds(200));
  } while (absl::Now() < give_up);
  return g;
}

TEST(RdkafkaGroupDescribeKip848E2eTest, AConsumerProtocolGroupIsReportedAsSuchNotAsDead) {
  KLAG_REQUIRE_KAFKA4(bootstrap, state);
  const std::string topic = testing::UniqueName("describe848-topic");
  const std::string group = testing::UniqueName("describe848-group");
  ASSERT_TRUE(testing::CreateTopic(bootstrap, topic, 2).ok());
  {
    testing::LiveConsumer consumer(bootstrap, group, {topic}, "describe848-consumer",
                                   {{"group.protocol", "consumer"}});
    ASSERT_TRUE(consumer.status().ok()) << consumer.status();

    absl::StatusOr<GroupDescription> g = DescribeUntil(
        bootstrap, group, [](const GroupDescription& d) { return d.state == "Stable"; });
    ASSERT_TRUE(g.ok()) << g.status();
    EXPECT_EQ(g->group_id, group);
    EXPECT_EQ(g->type, GroupType::kConsumer);
    EXPECT_EQ(g->state, "Stable");
    EXPECT_FALSE(g->simple);
    // Not described (see kafka/group_description.h), although the group has a member.
    EXPECT_THAT(g->members, IsEmpty());
  }
  // The member left: the group stays, Empty, until its offsets expire.
  absl::StatusOr<GroupDescription> g =
      DescribeUntil(bootstrap, group, [](const GroupDescription& d) { return d.state == "Empty"; });
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->type, GroupType::kConsumer);
  EXPECT_EQ(g->state, "Empty");
}

TEST(RdkafkaGroupDescribeKip848E2eTest,
     AClassicGroupBesideConsumerProtocolGroupsIsDescribedInFull) {
  KLAG_REQUIRE_KAFKA4(bootstrap, state);
  const std::string topic = testing::UniqueName("describe848-topic");
  const std::string classic = testing::UniqueName("describe848-classic");
  const std::string modern = testing::UniqueName("describe848-modern");
  ASSERT_TRUE(testing::CreateTopic(bootstrap, topic, 2).ok());
  testing::LiveConsumer modern_member(bootstrap, modern, {topic}, "modern",
                                      {{"group.protocol", "consumer"}});
  testing::LiveConsumer classic_member(bootstrap, classic, {topic}, "classic");
  ASSERT_TRUE(modern_member.status().ok()) << modern_member.status();
  ASSERT_TRUE(classic_member.status().ok()) << classic_member.status();

  absl::StatusOr<GroupDescription> g =
      DescribeUntil(bootstrap, classic, [](const GroupDescription& d) {
        return d.state == "Stable" && d.members.size() == 1 && !d.members[0].assignment.empty();
      });
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->type, GroupType::kClassic);
  ASSERT_EQ(g->members.size(), 1u);
  EXPECT_EQ(g->members[0].client_id, "classic");
  EXPECT_EQ(g->members[0].assignment.size(), 2u);

  // A group id nobody uses is still unknown, with consumer-protocol groups on the cluster.
  absl::StatusOr<GroupDescription> unused = DescribeGroup(
      Plain(bootstrap), testing::UniqueName("describe848-unused"), absl::Now() + absl::Seconds(30));
  ASSERT_TRUE(unused.ok()) << unused.status();
  EXPECT_EQ(unused->type, GroupType::kUnknown);
  EXPECT_EQ(unused->state, "Dead");
}

}  // namespace
}  // namespace klag::kafka
