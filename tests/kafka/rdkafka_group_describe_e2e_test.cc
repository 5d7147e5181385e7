// DescribeGroup against the real broker: a group with a live consumer (a librdkafka consumer
// subscribed and polling in this test, testing::LiveConsumer) and a group nobody uses.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "kafka/rdkafka_group_describe.h"
#include "tests/testing/kafka_admin.h"
#include "tests/testing/live_consumer.h"
#include "tests/testing/test_env.h"

namespace klag::kafka {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

ConnectionConfig Plain(const std::string& bootstrap) {
  ConnectionConfig c;
  c.bootstrap_servers = bootstrap;
  return c;
}

TEST(RdkafkaGroupDescribeE2eTest, GroupWithLiveConsumerIsStableWithItsAssignment) {
  KLAG_REQUIRE_BROKER(bootstrap);
  const std::string topic = testing::UniqueName("describe-topic");
  const std::string group = testing::UniqueName("describe-group");
  ASSERT_TRUE(testing::CreateTopic(bootstrap, topic, 2).ok());
  testing::LiveConsumer consumer(bootstrap, group, {topic}, "describe-test-consumer");
  ASSERT_TRUE(consumer.status().ok()) << consumer.status();

  // The group settles after the join and sync rounds; ask until it is Stable with an assignment.
  absl::StatusOr<GroupDescription> g;
  const absl::Time give_up = absl::Now() + absl::Seconds(60);
  do {
    g = DescribeGroup(Plain(bootstrap), group, absl::Now() + absl::Seconds(10));
    ASSERT_TRUE(g.ok()) << g.status();
    if (g->state == "Stable" && g->members.size() == 1 && !g->members[0].assignment.empty()) break;
    absl::SleepFor(absl::Milliseconds(200));
  } while (absl::Now() < give_up);

  EXPECT_EQ(g->group_id, group);
  EXPECT_EQ(g->type, GroupType::kClassic);
  EXPECT_EQ(g->state, "Stable");
  EXPECT_FALSE(g->simple);
  EXPECT_FALSE(g->partition_assignor.empty());
  EXPECT_TRUE(g->coordinator.has_value());
  ASSERT_EQ(g->members.size(), 1u);
  EXPECT_EQ(g->members[0].client_id, "describe-test-consumer");
  EXPECT_FALSE(g->members[0].member_id.empty());
  EXPECT_FALSE(g->members[0].host.empty());
  EXPECT_EQ(g->members[0].group_instance_id, std::nullopt);
  EXPECT_THAT(g->members[0].assignment,
              ElementsAre(TopicPartition{topic, 0}, TopicPartition{topic, 1}));
}

TEST(RdkafkaGroupDescribeE2eTest, UnusedGroupHasNoMembers) {
  KLAG_REQUIRE_BROKER(bootstrap);
  const std::string group = testing::UniqueName("describe-unused");
  absl::StatusOr<GroupDescription> g =
      DescribeGroup(Plain(bootstrap), group, absl::Now() + absl::Seconds(30));
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->group_id, group);
  EXPECT_EQ(g->state, "Dead");
  // Not a consumer-protocol group either (the ListGroups check behind a "Dead" answer).
  EXPECT_EQ(g->type, GroupType::kUnknown);
  EXPECT_THAT(g->members, IsEmpty());
}

TEST(RdkafkaGroupDescribeE2eTest, GroupWithOnlyCommitsIsEmptyWithNoMembers) {
  KLAG_REQUIRE_BROKER(bootstrap);
  const std::string topic = testing::UniqueName("describe-topic");
  const std::string group = testing::UniqueName("describe-committed");
  ASSERT_TRUE(testing::CreateTopic(bootstrap, topic, 1).ok());
  ASSERT_TRUE(testing::CommitOffsets(bootstrap, group, {{topic, 0, 0}}).ok());
  absl::StatusOr<GroupDescription> g =
      DescribeGroup(Plain(bootstrap), group, absl::Now() + absl::Seconds(30));
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->state, "Empty");
  EXPECT_EQ(g->type, GroupType::kClassic);
  EXPECT_THAT(g->members, IsEmpty());
}

TEST(RdkafkaGroupDescribeE2eTest, UnreachableClusterIsAnErrorByTheDeadline) {
  // Port 1 on loopback: nothing listens, so no coordinator can be found.
  const absl::Time start = absl::Now();
  absl::StatusOr<GroupDescription> g =
      DescribeGroup(Plain("127.0.0.1:1"), "any", absl::Now() + absl::Seconds(2));
  ASSERT_FALSE(g.ok());
  EXPECT_THAT(g.status().code(), ::testing::AnyOf(absl::StatusCode::kDeadlineExceeded,
                                                  absl::StatusCode::kUnavailable));
  EXPECT_THAT(std::string(g.status().message()), ::testing::HasSubstr("group any"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(20));
}

}  // namespace
}  // namespace klag::kafka
