#include "scaler/service/check_report.h"

#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>

#include "nlohmann/json.hpp"

namespace klag::scaler {
namespace {

// committed 40, end 42 -> lag 2; no commit under latest -> 1; commit 3 below log start 5 -> 4.
Evaluation ThreePartitions() {
  absl::StatusOr<TriggerSpec> spec = ParseTriggerSpec({{"bootstrapServers", "k:9092"},
                                                       {"consumerGroup", "python_data_load"},
                                                       {"topic", "ListedStockPrice"},
                                                       {"lagThreshold", "1"}});
  EXPECT_TRUE(spec.ok()) << spec.status();
  kafka::GroupOffsets offsets{{
      {.topic = "ListedStockPrice", .partition = 0, .committed = 40, .log_start = 0, .end = 42},
      {.topic = "ListedStockPrice", .partition = 1, .committed = std::nullopt, .end = 7},
      {.topic = "ListedStockPrice", .partition = 2, .committed = 3, .log_start = 5, .end = 9},
  }};
  Evaluation e;
  e.trigger.spec = std::make_shared<const TriggerSpec>(*spec);
  e.trigger.metric_name = MetricName(*spec);
  e.report = ComputeLag(*spec, offsets, nullptr);
  return e;
}

TEST(CheckReportTest, ShowsEveryPartitionAndWhatKedaWouldReceive) {
  const Evaluation e = ThreePartitions();

  const std::string text = FormatCheckReport(e);
  EXPECT_NE(text.find("consumer group python_data_load, topics ListedStockPrice"),
            std::string::npos)
      << text;
  // committed 40, end 42 -> lag 2; no commit under latest -> 1; commit 3 below log start 5 -> 4.
  EXPECT_NE(text.find("ListedStockPrice          0         40          0   42    2"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("no commit"), std::string::npos) << text;
  EXPECT_NE(text.find("commit below log start"), std::string::npos) << text;
  EXPECT_NE(text.find("metric name  kafka-ListedStockPrice"), std::string::npos) << text;
  EXPECT_NE(text.find("metric value 3"), std::string::npos) << text;  // 2+1+4=7, capped 3 x 1
  EXPECT_NE(text.find("target       1"), std::string::npos) << text;
  EXPECT_NE(text.find("active       true   (lag 7 > 0"), std::string::npos) << text;
}

TEST(CheckReportTest, JsonHoldsTheSameFacts) {
  const std::string text = FormatCheckReportJson(ThreePartitions());
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
  const nlohmann::json j = nlohmann::json::parse(text);
  EXPECT_EQ(j["consumer_group"], "python_data_load");
  EXPECT_EQ(j["topics"], nlohmann::json::array({"ListedStockPrice"}));
  ASSERT_EQ(j["partitions"].size(), 3u);
  EXPECT_EQ(j["partitions"][0]["committed"], 40);
  EXPECT_EQ(j["partitions"][0]["end"], 42);
  EXPECT_EQ(j["partitions"][0]["lag"], 2);
  EXPECT_TRUE(j["partitions"][1]["committed"].is_null());
  EXPECT_EQ(j["partitions"][1]["lag"], 1);
  EXPECT_EQ(j["partitions"][2]["log_start"], 5);
  EXPECT_EQ(j["partitions"][2]["lag"], 4);
  EXPECT_EQ(j["total_lag"], 7);
  EXPECT_EQ(j["partitions_with_lag"], 3);
  EXPECT_EQ(j["keda"]["metric_name"], "kafka-ListedStockPrice");
  EXPECT_EQ(j["keda"]["metric_value"], 3);
  EXPECT_EQ(j["keda"]["target"], 1);
  EXPECT_EQ(j["keda"]["active"], true);
  EXPECT_EQ(j["keda"]["activation_lag_threshold"], 0);
  // The fixture's reader has no end-offset history: ages unknown, never a made-up 0.
  EXPECT_TRUE(j["partitions"][0]["lag_seconds"].is_null());
  EXPECT_TRUE(j["max_lag_seconds"].is_null());
  EXPECT_TRUE(j["keda"]["activation_lag_seconds"].is_null());
}

TEST(CheckReportTest, ShowsLagInSecondsAndActivationBySeconds) {
  absl::StatusOr<TriggerSpec> spec = ParseTriggerSpec({{"bootstrapServers", "k:9092"},
                                                       {"consumerGroup", "g"},
                                                       {"topic", "t"},
                                                       {"activationLagThreshold", "100"},
                                                       {"activationLagSeconds", "30"}});
  ASSERT_TRUE(spec.ok()) << spec.status();
  const absl::Time read_at = absl::FromUnixSeconds(1'800'000'000);
  kafka::GroupOffsets offsets{{{.topic = "t",
                                .partition = 0,
                                .committed = 40,
                                .end = 42,
                                .unconsumed_since = read_at - absl::Milliseconds(95'250)},
                               {.topic = "t", .partition = 1, .committed = 7, .end = 7}}};
  offsets.committed_read_at = read_at;
  Evaluation e;
  e.trigger.spec = std::make_shared<const TriggerSpec>(*spec);
  e.trigger.metric_name = MetricName(*spec);
  e.report = ComputeLag(*spec, offsets, nullptr);

  const std::string text = FormatCheckReport(e);
  EXPECT_NE(text.find("LAG-SECONDS"), std::string::npos) << text;
  EXPECT_NE(text.find("t              0         40          0   42    2         95.2"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("oldest unconsumed record 95.2 s old"), std::string::npos) << text;
  EXPECT_NE(text.find("active       true   (lag 2 <= 100 activationLagThreshold or 95.2 s > 30.0 s "
                      "activationLagSeconds)"),
            std::string::npos)
      << text;
  const nlohmann::json j = nlohmann::json::parse(FormatCheckReportJson(e));
  EXPECT_DOUBLE_EQ(j["partitions"][0]["lag_seconds"].get<double>(), 95.25);
  EXPECT_DOUBLE_EQ(j["partitions"][1]["lag_seconds"].get<double>(), 0.0);
  EXPECT_DOUBLE_EQ(j["max_lag_seconds"].get<double>(), 95.25);
  EXPECT_DOUBLE_EQ(j["keda"]["activation_lag_seconds"].get<double>(), 30.0);
  EXPECT_EQ(j["keda"]["active"], true);
}

TEST(CheckReportTest, RecordsReadGiveTheExactAgeOfTheOldestUnconsumedRecord) {
  const Evaluation e = ThreePartitions();
  CheckContext context;
  context.records_read_at = absl::FromUnixSeconds(1'800'000'000);
  // Partition 0's record at offset 40 is 120.5 s old, partition 2's (from its log start 5) 7 s;
  // partition 1 has no readable record.
  context.oldest_records = std::map<kafka::TopicPartition, kafka::RecordTimestamp>{
      {{"ListedStockPrice", 0},
       {.offset = 40, .time = context.records_read_at - absl::Milliseconds(120'500)}},
      {{"ListedStockPrice", 2},
       {.offset = 5, .time = context.records_read_at - absl::Seconds(7), .log_append_time = true}},
  };

  const std::string text = FormatCheckReport(e, context);
  EXPECT_NE(text.find("ListedStockPrice          0         40          0   42    2        120.5"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("oldest unconsumed record 120.5 s old (its timestamp)"), std::string::npos)
      << text;
  const nlohmann::json j = nlohmann::json::parse(FormatCheckReportJson(e, context));
  EXPECT_EQ(j["partitions"][0]["oldest_unconsumed"]["offset"], 40);
  EXPECT_EQ(j["partitions"][0]["oldest_unconsumed"]["timestamp"], "2027-01-15T07:57:59.5+00:00");
  EXPECT_EQ(j["partitions"][0]["oldest_unconsumed"]["timestamp_type"], "CreateTime");
  EXPECT_DOUBLE_EQ(j["partitions"][0]["oldest_unconsumed"]["age_seconds"].get<double>(), 120.5);
  EXPECT_TRUE(j["partitions"][1]["oldest_unconsumed"].is_null());
  EXPECT_EQ(j["partitions"][2]["oldest_unconsumed"]["timestamp_type"], "LogAppendTime");
  EXPECT_DOUBLE_EQ(j["oldest_unconsumed_age_seconds"].get<double>(), 120.5);
  // The scaler's estimate stays what the evaluation said (unknown here).
  EXPECT_TRUE(j["partitions"][0]["lag_seconds"].is_null());

  // A failed read is shown, not fatal.
  context.oldest_records = absl::UnavailableError("cluster k:9092: reading record timestamps");
  EXPECT_NE(FormatCheckReport(e, context).find("reading the oldest unconsumed records failed"),
            std::string::npos);
  EXPECT_EQ(nlohmann::json::parse(FormatCheckReportJson(e, context))["oldest_unconsumed_error"],
            "cluster k:9092: reading record timestamps");
}

TEST(CheckReportTest, FromEnvKeysTakeTheValueOfTheVariableTheyName) {
  const std::map<std::string, std::string> vars = {{"KAFKA_PASSWORD", "s3cret"},
                                                   {"GROUP", "python_data_load"}};
  EnvLookup env = [&](absl::string_view name) -> std::optional<std::string> {
    auto it = vars.find(std::string(name));
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
  Metadata metadata = {{"passwordFromEnv", "KAFKA_PASSWORD"},
                       {"consumerGroupFromEnv", "GROUP"},
                       {"topic", "KAFKA_PASSWORD"}};
  ASSERT_TRUE(ResolveFromEnv(env, &metadata).ok());
  EXPECT_EQ(metadata["passwordFromEnv"], "s3cret");
  EXPECT_EQ(metadata["consumerGroupFromEnv"], "python_data_load");
  EXPECT_EQ(metadata["topic"], "KAFKA_PASSWORD");  // not a FromEnv key: taken as written

  Metadata unset = {{"usernameFromEnv", "NOT_SET_ANYWHERE"}};
  absl::Status s = ResolveFromEnv(env, &unset);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("usernameFromEnv"), absl::string_view::npos) << s;
  EXPECT_NE(s.message().find("NOT_SET_ANYWHERE"), absl::string_view::npos) << s;
}

kafka::GroupDescription StableGroup() {
  kafka::GroupDescription g;
  g.group_id = "python_data_load";
  g.state = "Stable";
  g.partition_assignor = "range";
  g.coordinator = "broker-0:9092 (broker 0)";
  g.members = {{.member_id = "job-1-5f3a",
                .client_id = "job-1",
                .host = "/10.0.0.7",
                .assignment = {{"ListedStockPrice", 0}, {"ListedStockPrice", 1}, {"other", 4}}},
               {.member_id = "job-2-9c1e",
                .group_instance_id = "pod-2",
                .client_id = "job-2",
                .host = "/10.0.0.8",
                .assignment = {{"ListedStockPrice", 2}}}};
  return g;
}

TEST(CheckReportTest, ShowsTheGroupStateAndMembersWithTheTriggersPartitions) {
  const Evaluation e = ThreePartitions();
  const CheckContext context{.source = "ScaledJob sj, trigger 0 (external) in sj.yaml",
                             .notes = {"saslFromEnv: KLAG_SASL taken from this environment"},
                             .group = StableGroup()};
  const std::string text = FormatCheckReport(e, context);
  EXPECT_EQ(text.rfind("trigger: ScaledJob sj, trigger 0 (external) in sj.yaml\n"
                       "note: saslFromEnv: KLAG_SASL taken from this environment\n\n"
                       "consumer group python_data_load, topics ListedStockPrice\n",
                       0),
            0u)
      << text;
  EXPECT_NE(text.find("consumer group python_data_load: state Stable, assignor range, coordinator "
                      "broker-0:9092 (broker 0), 2 members\n"
                      "  CLIENT-ID  HOST       INSTANCE-ID  PARTITIONS\n"
                      "  job-1      /10.0.0.7  -            ListedStockPrice:0,1 (+1 of other "
                      "topics)\n"
                      "  job-2      /10.0.0.8  pod-2        ListedStockPrice:2\n"),
            std::string::npos)
      << text;

  const nlohmann::json j = nlohmann::json::parse(FormatCheckReportJson(e, context));
  EXPECT_EQ(j["source"], "ScaledJob sj, trigger 0 (external) in sj.yaml");
  EXPECT_EQ(j["notes"].size(), 1u);
  EXPECT_EQ(j["group"]["state"], "Stable");
  EXPECT_EQ(j["group"]["partition_assignor"], "range");
  ASSERT_EQ(j["group"]["members"].size(), 2u);
  const nlohmann::json& m = j["group"]["members"][0];
  EXPECT_EQ(m["client_id"], "job-1");
  EXPECT_EQ(m["member_id"], "job-1-5f3a");
  EXPECT_TRUE(m["group_instance_id"].is_null());
  EXPECT_EQ(m["host"], "/10.0.0.7");
  EXPECT_EQ(m["partitions"], nlohmann::json::parse(R"([{"topic":"ListedStockPrice","partition":0},
                                                     {"topic":"ListedStockPrice","partition":1}])"));
  EXPECT_EQ(m["other_partitions"], 1);
  EXPECT_EQ(j["group"]["members"][1]["group_instance_id"], "pod-2");
}

TEST(CheckReportTest, AGroupWithoutMembersOrThatCannotBeDescribedIsANoteNotAFailure) {
  const Evaluation e = ThreePartitions();
  kafka::GroupDescription empty{.group_id = "python_data_load", .state = "Empty"};
  const std::string text = FormatCheckReport(e, {.group = empty});
  EXPECT_NE(text.find("consumer group python_data_load: state Empty, 0 members\n"
                      "  no live consumer: nothing consumes the lag until a Job starts\n"),
            std::string::npos)
      << text;
  EXPECT_EQ(nlohmann::json::parse(FormatCheckReportJson(e, {.group = empty}))["group"]["members"],
            nlohmann::json::array());

  kafka::GroupDescription dead{
      .group_id = "python_data_load", .type = kafka::GroupType::kUnknown, .state = "Dead"};
  EXPECT_NE(FormatCheckReport(e, {.group = dead})
                .find("consumer group python_data_load: state Dead (the coordinator knows no such "
                      "group), 0 members\n"),
            std::string::npos);
  EXPECT_EQ(nlohmann::json::parse(FormatCheckReportJson(e, {.group = dead}))["group"]["type"],
            "unknown");

  const CheckContext denied{.group = absl::PermissionDeniedError(
                                "cluster k:9092: group python_data_load: DescribeGroups: denied")};
  EXPECT_NE(FormatCheckReport(e, denied).find(
                "consumer group python_data_load: not described (PERMISSION_DENIED: "
                "cluster k:9092: group python_data_load: DescribeGroups: denied)"),
            std::string::npos);
  const nlohmann::json j = nlohmann::json::parse(FormatCheckReportJson(e, denied));
  EXPECT_EQ(j["group"]["error"],
            "PERMISSION_DENIED: cluster k:9092: group python_data_load: DescribeGroups: denied");
  EXPECT_EQ(j["keda"]["metric_value"], 3);  // the evaluation is reported all the same

  // Without a context: no group section at all (not asked).
  EXPECT_EQ(FormatCheckReport(e).find("state "), std::string::npos);
  EXPECT_FALSE(nlohmann::json::parse(FormatCheckReportJson(e)).contains("group"));
}

TEST(CheckReportTest, AConsumerProtocolGroupShowsItsStateAndSaysItsMembersAreNotDescribed) {
  // What DescribeGroup makes of a KIP-848 group (kafka/rdkafka_group_describe.h): ListGroups'
  // state, no members because none could be described, not because there are none.
  const Evaluation e = ThreePartitions();
  const kafka::GroupDescription group{
      .group_id = "python_data_load", .type = kafka::GroupType::kConsumer, .state = "Stable"};
  const std::string text = FormatCheckReport(e, {.group = group});
  EXPECT_NE(text.find("consumer group python_data_load: consumer protocol (KIP-848), state "
                      "Stable; members not described (librdkafka 2.8 describes classic groups "
                      "only)\n"),
            std::string::npos)
      << text;
  // Lag with "0 members" would otherwise claim that nothing consumes it.
  EXPECT_EQ(text.find("no live consumer"), std::string::npos) << text;
  EXPECT_EQ(text.find("0 members"), std::string::npos) << text;

  const nlohmann::json j = nlohmann::json::parse(FormatCheckReportJson(e, {.group = group}));
  EXPECT_EQ(j["group"]["type"], "consumer");
  EXPECT_EQ(j["group"]["state"], "Stable");
  EXPECT_TRUE(j["group"]["members"].is_null());
  EXPECT_EQ(
      nlohmann::json::parse(FormatCheckReportJson(e, {.group = StableGroup()}))["group"]["type"],
      "classic");
}

}  // namespace
}  // namespace klag::scaler
