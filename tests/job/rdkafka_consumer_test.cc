// RdkafkaConsumer's configuration per group protocol (no broker: librdkafka validates the
// properties when the handle is created, before it connects anywhere).
#include "job/rdkafka_consumer.h"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <optional>
#include <string>

namespace klag::job {
namespace {

RdkafkaConsumerOptions Options(GroupProtocol protocol, kafka::RdkafkaProperties extra = {}) {
  return {.connection = {{"bootstrap.servers", "127.0.0.1:1"}},
          .group = "g",
          .session_timeout = absl::Seconds(7),
          .group_protocol = protocol,
          .extra = std::move(extra)};
}

// The value librdkafka ends up with: the last entry of `name` wins.
std::optional<std::string> Value(const kafka::RdkafkaProperties& props, const std::string& name) {
  std::optional<std::string> out;
  for (const auto& [key, value] : props) {
    if (key == name) out = value;
  }
  return out;
}

TEST(RdkafkaConsumerTest, ClassicUsesCooperativeStickyAndTheSessionTimeout) {
  absl::StatusOr<kafka::RdkafkaProperties> props =
      RdkafkaConsumer::Properties(Options(GroupProtocol::kClassic));
  ASSERT_TRUE(props.ok()) << props.status();
  EXPECT_EQ(Value(*props, "group.protocol"), "classic");
  EXPECT_EQ(Value(*props, "partition.assignment.strategy"), "cooperative-sticky");
  EXPECT_EQ(Value(*props, "session.timeout.ms"), "7000");
  EXPECT_EQ(Value(*props, "group.remote.assignor"), std::nullopt);
  EXPECT_EQ(Value(*props, "enable.auto.commit"), "false");
  EXPECT_EQ(Value(*props, "max.poll.interval.ms"), "300000");
}

TEST(RdkafkaConsumerTest, MaxPollIntervalIsTheOneRunComputes) {
  RdkafkaConsumerOptions options = Options(GroupProtocol::kConsumer);
  options.max_poll_interval = absl::Minutes(17);
  absl::StatusOr<kafka::RdkafkaProperties> props = RdkafkaConsumer::Properties(options);
  ASSERT_TRUE(props.ok()) << props.status();
  EXPECT_EQ(Value(*props, "max.poll.interval.ms"), "1020000");
}

TEST(RdkafkaConsumerTest, ConsumerProtocolLeavesClassicOnlySettingsUnset) {
  absl::StatusOr<kafka::RdkafkaProperties> props =
      RdkafkaConsumer::Properties(Options(GroupProtocol::kConsumer));
  ASSERT_TRUE(props.ok()) << props.status();
  EXPECT_EQ(Value(*props, "group.protocol"), "consumer");
  // The broker's default assignor; naming it makes librdkafka 2.8's rebalance callback
  // incremental, which Assign/Revoke rely on.
  EXPECT_EQ(Value(*props, "group.remote.assignor"), "uniform");
  for (const char* classic_only : {"session.timeout.ms", "heartbeat.interval.ms",
                                   "partition.assignment.strategy", "group.protocol.type"}) {
    EXPECT_EQ(Value(*props, classic_only), std::nullopt) << classic_only;
  }
  // The Job's own guarantees do not depend on the protocol.
  EXPECT_EQ(Value(*props, "enable.auto.commit"), "false");
  EXPECT_EQ(Value(*props, "enable.auto.offset.store"), "false");
  EXPECT_EQ(Value(*props, "enable.partition.eof"), "true");
  EXPECT_EQ(Value(*props, "isolation.level"), "read_committed");
}

TEST(RdkafkaConsumerTest, ConsumerProtocolTakesAnotherServerSideAssignor) {
  absl::StatusOr<kafka::RdkafkaProperties> props = RdkafkaConsumer::Properties(
      Options(GroupProtocol::kConsumer, {{"group.remote.assignor", "range"}}));
  ASSERT_TRUE(props.ok()) << props.status();
  EXPECT_EQ(Value(*props, "group.remote.assignor"), "range");
}

TEST(RdkafkaConsumerTest, RefusesPropertiesTheProtocolDoesNotUse) {
  struct Case {
    GroupProtocol protocol;
    kafka::RdkafkaProperties extra;
    std::string message;  // part of the error
  };
  const Case cases[] = {
      {GroupProtocol::kConsumer, {{"session.timeout.ms", "6000"}}, "group.consumer.session"},
      {GroupProtocol::kConsumer, {{"heartbeat.interval.ms", "1000"}}, "heartbeat"},
      {GroupProtocol::kConsumer, {{"partition.assignment.strategy", "range"}}, "set by klag-job"},
      {GroupProtocol::kConsumer, {{"group.protocol.type", "consumer"}}, "set by klag-job"},
      {GroupProtocol::kClassic, {{"group.protocol", "consumer"}}, "--group-protocol"},
      {GroupProtocol::kClassic, {{"group.remote.assignor", "uniform"}}, "--group-protocol"},
  };
  for (const Case& c : cases) {
    const std::string name = c.extra.front().first;
    absl::StatusOr<kafka::RdkafkaProperties> props =
        RdkafkaConsumer::Properties(Options(c.protocol, c.extra));
    ASSERT_FALSE(props.ok()) << name;
    EXPECT_EQ(props.status().code(), absl::StatusCode::kInvalidArgument) << name;
    EXPECT_NE(props.status().message().find(c.message), absl::string_view::npos)
        << "expected \"" << c.message << "\" in: " << props.status().message();
    EXPECT_EQ(RdkafkaConsumer::Create(Options(c.protocol, c.extra)).status().code(),
              absl::StatusCode::kInvalidArgument)
        << name;
  }
  // The classic protocol keeps accepting a session timeout override, as before.
  EXPECT_TRUE(RdkafkaConsumer::Properties(
                  Options(GroupProtocol::kClassic, {{"session.timeout.ms", "6000"}}))
                  .ok());
}

TEST(RdkafkaConsumerTest, LibrdkafkaAcceptsBothConfigurations) {
  for (GroupProtocol protocol : {GroupProtocol::kClassic, GroupProtocol::kConsumer}) {
    absl::StatusOr<std::unique_ptr<RdkafkaConsumer>> consumer =
        RdkafkaConsumer::Create(Options(protocol));
    EXPECT_TRUE(consumer.ok()) << GroupProtocolName(protocol) << ": " << consumer.status();
  }
}

}  // namespace
}  // namespace klag::job
