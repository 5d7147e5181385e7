// kafka/rdkafka_client: what the statistics callback reads from librdkafka's statistics JSON
// (SummarizeStatistics). Label unit.
#include <gtest/gtest.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "kafka/rdkafka_client.h"

namespace klag::kafka::rdkafka {
namespace {

// The shape of librdkafka 2.8's statistics (STATISTICS.md), cut down: top-level counters, then
// "brokers" (each with nested objects), then "topics".
std::string Statistics(const std::string& brokers, const std::string& topics) {
  return absl::StrCat(R"({"name":"rdkafka#consumer-1","type":"consumer","ts":123,"replyq":0,)",
                      R"("brokers":)", brokers, R"(,"topics":)", topics, R"(,"tx":999,"rx":999})");
}

constexpr char kBrokers[] = R"({
  "GroupCoordinator": {"name":"GroupCoordinator","nodeid":-1,"source":"logical","state":"UP",
                       "tx":500,"int_latency":{"min":0,"max":0},"toppars":{}},
  ":0/internal": {"name":":0/internal","nodeid":-1,"source":"internal","state":"UP","tx":700},
  "127.0.0.1:9092/1": {"name":"127.0.0.1:9092/1","nodeid":1,"source":"learned","state":"UP",
                       "tx":40,"rtt":{"min":1,"max":2,"p99":1.5},"req":{"Fetch":3,"tx":12345},
                       "toppars":{"t-0":{"topic":"t","partition":0}}},
  "127.0.0.1:9093/bootstrap": {"name":"127.0.0.1:9093/bootstrap","nodeid":-1,
                               "source":"configured","state":"DOWN","tx":2,
                               "req":{"ApiVersion":2}}
})";

TEST(SummarizeStatisticsTest, CountsRealBrokersOnly) {
  const auto stats = SummarizeStatistics(Statistics(kBrokers, R"({"t":{"partitions":{}}})"));
  ASSERT_TRUE(stats.has_value());
  EXPECT_TRUE(stats->any_real);
  EXPECT_TRUE(stats->any_up);
  // 40 + 2: not the logical or internal brokers' requests, not a nested "tx" field, not the
  // top-level total.
  EXPECT_EQ(stats->requests, 42);
}

TEST(SummarizeStatisticsTest, NoRealBrokerUpIsDown) {
  const auto stats = SummarizeStatistics(
      Statistics(R"({"b/1":{"source":"learned","state":"CONNECT","tx":0},)"
                 R"("b/2":{"source":"configured","state":"DOWN","tx":1},)"
                 R"("GroupCoordinator":{"source":"logical","state":"UP","tx":5}})",
                 "{}"));
  ASSERT_TRUE(stats.has_value());
  EXPECT_TRUE(stats->any_real);
  EXPECT_FALSE(stats->any_up);
  EXPECT_EQ(stats->requests, 1);

  const auto none = SummarizeStatistics(Statistics("{}", "{}"));
  ASSERT_TRUE(none.has_value());
  EXPECT_FALSE(none->any_real);
}

TEST(SummarizeStatisticsTest, StopsAtTheEndOfBrokers) {
  // Whatever follows "brokers" is not read: here it is not even JSON.
  const std::string text =
      absl::StrCat(R"({"type":"consumer","brokers":)", kBrokers, R"(,"topics":{not json at all)");
  const auto stats = SummarizeStatistics(text);
  ASSERT_TRUE(stats.has_value());
  EXPECT_EQ(stats->requests, 42);
}

TEST(SummarizeStatisticsTest, TextWithoutBrokersIsNothing) {
  EXPECT_FALSE(SummarizeStatistics("").has_value());
  EXPECT_FALSE(SummarizeStatistics("not json").has_value());
  EXPECT_FALSE(SummarizeStatistics(R"({"type":"consumer","topics":{}})").has_value());
  // Cut off inside "brokers".
  EXPECT_FALSE(
      SummarizeStatistics(R"({"brokers":{"b/1":{"source":"learned","state":"UP")").has_value());
  // A "brokers" key that is not at the top level.
  EXPECT_FALSE(
      SummarizeStatistics(R"({"cgrp":{"brokers":{"b/1":{"state":"UP","tx":3}}}})").has_value());
}

}  // namespace
}  // namespace klag::kafka::rdkafka
