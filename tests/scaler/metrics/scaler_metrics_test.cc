#include "scaler/metrics/scaler_metrics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>

#include <memory>
#include <sstream>
#include <string>

namespace klag::scaler {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// The text a scrape returns.
std::string Scrape(const ScalerMetrics& metrics) {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, metrics.Collect());
  return out.str();
}

struct Clock {
  absl::Time now = absl::FromUnixSeconds(1'700'000'000);
};

ScalerMetricsOptions Options(Clock* clock, int64_t max_series = 10000) {
  return ScalerMetricsOptions{.max_series = max_series,
                              .series_ttl = absl::Minutes(10),
                              .now = [clock] { return clock->now; }};
}

TriggerRef Ref(std::string ns, std::string name) {
  return TriggerRef{.name = std::move(name),
                    .namespace_ = std::move(ns),
                    .metadata = {{"bootstrapServers", "kafka:9092"},
                                 {"sasl", "plaintext"},
                                 {"password", "hunter2-secret"}}};
}

TriggerSpec Spec(std::string group, std::vector<std::string> topics) {
  TriggerSpec spec;
  spec.connection.bootstrap_servers = "kafka:9092";
  spec.consumer_group = std::move(group);
  spec.topics = std::move(topics);
  spec.lag_threshold = 10;
  return spec;
}

// An evaluation of topic "orders" partitions 0 (committed 5, end 12) and 1 (no commit, end 3).
std::shared_ptr<const Evaluation> OrdersEvaluation(absl::Time at) {
  auto e = std::make_shared<Evaluation>();
  e->report.partitions = {
      PartitionLag{.topic = "orders",
                   .partition = 0,
                   .committed = 5,
                   .log_start = 0,
                   .end = 12,
                   .lag = 7,
                   .lag_seconds = 42.5},
      PartitionLag{.topic = "orders",
                   .partition = 1,
                   .committed = std::nullopt,
                   .log_start = 1,
                   .end = 3,
                   .lag = 0,
                   .lag_seconds = std::nullopt},  // as if unknown: no series
  };
  e->report.max_lag_seconds = 42.5;
  e->report.total_lag = 7;
  e->report.total_lag_with_persistent = 7;
  e->report.partitions_with_lag = 1;
  e->report.metric_value = 7;
  e->report.active = true;
  e->evaluated_at = at;
  return e;
}

TEST(ScalerMetricsTest, ExportsTriggerAndPartitionValuesUnderPrometheusNames) {
  Clock clock;
  ScalerMetrics metrics(Options(&clock), BuildInfo{"0.1.0", "abc123", "2.8.0"});
  metrics.Evaluated(Ref("team-a", "loader"), Spec("g1", {"orders"}), OrdersEvaluation(clock.now),
                    clock.now);
  const std::string text = Scrape(metrics);
  const std::string t = R"({namespace="team-a",scaledjob="loader",group="g1",topic="orders"})";
  EXPECT_THAT(
      text, HasSubstr(R"(klag_build_info{version="0.1.0",commit="abc123",librdkafka="2.8.0"} 1)"));
  EXPECT_THAT(text, HasSubstr("klag_trigger_metric_value" + t + " 7\n"));
  EXPECT_THAT(text, HasSubstr("klag_trigger_target" + t + " 10\n"));
  EXPECT_THAT(text, HasSubstr("klag_trigger_active" + t + " 1\n"));
  EXPECT_THAT(text, HasSubstr("klag_trigger_lag_records" + t + " 7\n"));
  EXPECT_THAT(text, HasSubstr("klag_trigger_partitions_with_lag" + t + " 1\n"));
  EXPECT_THAT(text, HasSubstr("klag_trigger_lag_seconds" + t + " 42.5\n"));
  EXPECT_THAT(text,
              HasSubstr("klag_trigger_last_evaluation_timestamp_seconds" + t + " 1700000000\n"));
  EXPECT_THAT(text, HasSubstr("klag_trigger_last_result_code" + t + " 0\n"));
  const std::string p0 = R"({cluster="kafka:9092",group="g1",topic="orders",partition="0"})";
  const std::string p1 = R"({cluster="kafka:9092",group="g1",topic="orders",partition="1"})";
  EXPECT_THAT(text, HasSubstr("klag_partition_committed_offset" + p0 + " 5\n"));
  EXPECT_THAT(text, HasSubstr("klag_partition_end_offset" + p0 + " 12\n"));
  EXPECT_THAT(text, HasSubstr("klag_partition_log_start_offset" + p0 + " 0\n"));
  EXPECT_THAT(text, HasSubstr("klag_partition_lag_records" + p0 + " 7\n"));
  EXPECT_THAT(text, HasSubstr("klag_partition_lag_seconds" + p0 + " 42.5\n"));
  // Unknown age: no lag-seconds series (not a made-up 0).
  EXPECT_THAT(text, Not(HasSubstr("klag_partition_lag_seconds" + p1)));
  // No committed offset: no committed series (not a made-up -1 or 0).
  EXPECT_THAT(text, Not(HasSubstr("klag_partition_committed_offset" + p1)));
  EXPECT_THAT(text, HasSubstr("klag_partition_end_offset" + p1 + " 3\n"));
  EXPECT_THAT(text, HasSubstr("klag_partition_log_start_offset" + p1 + " 1\n"));
  EXPECT_THAT(text, HasSubstr("klag_metrics_series " +
                              std::to_string(ScalerMetrics::kSeriesPerTrigger +
                                             2 * ScalerMetrics::kSeriesPerPartition) +
                              "\n"));
}

// Labels hold namespace, name, group, topic and the bootstrap servers (the cluster), never
// another metadata value such as a password.
TEST(ScalerMetricsTest, NoSecretEverReachesALabel) {
  Clock clock;
  ScalerMetrics metrics(Options(&clock), BuildInfo{});
  metrics.Evaluated(Ref("ns", "sj"), Spec("g", {"orders"}), OrdersEvaluation(clock.now), clock.now);
  const std::string text = Scrape(metrics);
  EXPECT_THAT(text, Not(HasSubstr("hunter2")));
  EXPECT_THAT(text, Not(HasSubstr("plaintext")));
}

// The same group and topic on two clusters are two partition series; a long bootstrap list is
// cut in the label.
TEST(ScalerMetricsTest, PartitionSeriesAreKeptApartByCluster) {
  Clock clock;
  ScalerMetrics metrics(Options(&clock), BuildInfo{});
  TriggerSpec a = Spec("g", {"orders"});
  TriggerSpec b = Spec("g", {"orders"});
  b.connection.bootstrap_servers = std::string(300, 'b') + ":9092";
  metrics.Evaluated(Ref("ns", "a"), a, OrdersEvaluation(clock.now), clock.now);
  metrics.Evaluated(Ref("ns", "b"), b, OrdersEvaluation(clock.now), clock.now);
  const std::string text = Scrape(metrics);
  EXPECT_THAT(text, HasSubstr(R"(klag_partition_end_offset{cluster="kafka:9092",group="g")"));
  EXPECT_THAT(text,
              HasSubstr("klag_partition_end_offset{cluster=\"" +
                        std::string(ScalerMetrics::kMaxClusterLabel, 'b') + "\",group=\"g\""));
  EXPECT_THAT(text, Not(HasSubstr(std::string(ScalerMetrics::kMaxClusterLabel + 1, 'b'))));
  EXPECT_EQ(metrics.series(),
            2 * ScalerMetrics::kSeriesPerTrigger + 4 * ScalerMetrics::kSeriesPerPartition);
}

TEST(ScalerMetricsTest, RpcsCountByMethodAndCodeAndTimeUnaryCallsOnly) {
  Clock clock;
  ScalerMetrics metrics(Options(&clock), BuildInfo{});
  metrics.RpcFinished("GetMetrics", grpc::StatusCode::OK, absl::Milliseconds(3));
  metrics.RpcFinished("GetMetrics", grpc::StatusCode::OK, absl::Milliseconds(30));
  metrics.RpcFinished("GetMetrics", grpc::StatusCode::NOT_FOUND, absl::Milliseconds(2));
  metrics.RpcFinished("StreamIsActive", grpc::StatusCode::OK, absl::Minutes(5));
  metrics.StreamOpened();
  metrics.StreamOpened();
  metrics.StreamClosed();
  const std::string text = Scrape(metrics);
  EXPECT_THAT(text, HasSubstr(R"(klag_scaler_rpcs_total{code="OK",method="GetMetrics"} 2)"));
  EXPECT_THAT(text, HasSubstr(R"(klag_scaler_rpcs_total{code="NOT_FOUND",method="GetMetrics"} 1)"));
  EXPECT_THAT(text, HasSubstr(R"(klag_scaler_rpcs_total{code="OK",method="StreamIsActive"} 1)"));
  EXPECT_THAT(text, HasSubstr(R"(klag_scaler_rpc_duration_seconds_count{method="GetMetrics"} 3)"));
  EXPECT_THAT(
      text,
      HasSubstr(R"(klag_scaler_rpc_duration_seconds_bucket{method="GetMetrics",le="0.005"} 2)"));
  EXPECT_THAT(text,
              Not(HasSubstr(R"(klag_scaler_rpc_duration_seconds_count{method="StreamIsActive"})")));
  EXPECT_THAT(text, HasSubstr("klag_scaler_open_streams 1\n"));
}

TEST(ScalerMetricsTest, EvaluatorAndKafkaSourcesAreReadAtScrape) {
  Clock clock;
  ScalerMetrics metrics(Options(&clock), BuildInfo{});
  metrics.SetSources(
      MetricsSources{.evaluator =
                         [] {
                           return EvaluatorStats{.evaluations = 4,
                                                 .reused = 9,
                                                 .reused_under_load = 5,
                                                 .immediate = 14,
                                                 .joined = 2,
                                                 .failures = 1,
                                                 .triggers = 3,
                                                 .rejected = 6,
                                                 .expired = 7,
                                                 .queued = 11,
                                                 .running = 12,
                                                 .clusters = 13,
                                                 .over_bound = 8};
                         },
                     .kafka_clients = [] { return int64_t{2}; },
                     .kafka_requests =
                         [] {
                           return KafkaRequestCounts{{"Metadata", 5}, {"OffsetFetch", 4}};
                         },
                     .offsets_topic =
                         [] {
                           return std::map<std::string, int64_t>{
                               {"answered", 40}, {"fallback", 3}, {"commits", 120}};
                         }});
  const std::string text = Scrape(metrics);
  EXPECT_THAT(text, HasSubstr(R"(klag_scaler_evaluations_total{outcome="fresh"} 4)"));
  EXPECT_THAT(text, HasSubstr(R"(klag_scaler_evaluations_total{outcome="reused"} 9)"));
  EXPECT_THAT(text, HasSubstr(R"(klag_scaler_evaluations_total{outcome="joined"} 2)"));
  EXPECT_THAT(text, HasSubstr(R"(klag_scaler_evaluations_total{outcome="reused_under_load"} 5)"));
  EXPECT_THAT(text, HasSubstr(R"(klag_scaler_evaluations_total{outcome="immediate"} 14)"));
  EXPECT_THAT(text, HasSubstr("klag_scaler_triggers 3\n"));
  EXPECT_THAT(text, HasSubstr("klag_scaler_clusters 13\n"));
  EXPECT_THAT(text, HasSubstr(R"(klag_scaler_kafka_work{state="queued"} 11)"));
  EXPECT_THAT(text, HasSubstr(R"(klag_scaler_kafka_work{state="running"} 12)"));
  EXPECT_THAT(text, HasSubstr(R"(klag_scaler_refused_total{reason="queue_full"} 6)"));
  EXPECT_THAT(text, HasSubstr(R"(klag_scaler_refused_total{reason="expired"} 7)"));
  EXPECT_THAT(text, HasSubstr(R"(klag_scaler_refused_total{reason="over_bound"} 8)"));
  EXPECT_THAT(text, HasSubstr("klag_scaler_kafka_clients 2\n"));
  EXPECT_THAT(text, HasSubstr(R"(klag_scaler_kafka_requests_total{api="Metadata"} 5)"));
  EXPECT_THAT(text, HasSubstr(R"(klag_scaler_offsets_topic_reads_total{result="answered"} 40)"));
  EXPECT_THAT(text, HasSubstr(R"(klag_scaler_offsets_topic_reads_total{result="fallback"} 3)"));
  EXPECT_THAT(text, HasSubstr("klag_scaler_offsets_topic_commits 120\n"));
}

TEST(ScalerMetricsTest, AFailedEvaluationKeepsTheLastValuesAndSetsTheCode) {
  Clock clock;
  ScalerMetrics metrics(Options(&clock), BuildInfo{});
  metrics.Evaluated(Ref("ns", "sj"), Spec("g", {"orders"}), OrdersEvaluation(clock.now), clock.now);
  clock.now += absl::Seconds(30);
  metrics.Evaluated(Ref("ns", "sj"), Spec("g", {"orders"}), absl::UnavailableError("broker down"),
                    clock.now);
  const std::string text = Scrape(metrics);
  const std::string t = R"({namespace="ns",scaledjob="sj",group="g",topic="orders"})";
  EXPECT_THAT(text, HasSubstr("klag_trigger_last_result_code" + t + " 14\n"));
  EXPECT_THAT(text, HasSubstr(R"(klag_scaler_evaluation_failures_total{code="UNAVAILABLE"} 1)"));
  EXPECT_THAT(text,
              HasSubstr("klag_trigger_last_evaluation_timestamp_seconds" + t + " 1700000030\n"));
  EXPECT_THAT(text, HasSubstr("klag_trigger_metric_value" + t + " 7\n"));
}

TEST(ScalerMetricsTest, CapsSeriesAndCountsWhatWasDropped) {
  Clock clock;
  // Room for one trigger and one partition.
  ScalerMetrics metrics(
      Options(&clock, ScalerMetrics::kSeriesPerTrigger + ScalerMetrics::kSeriesPerPartition),
      BuildInfo{});
  metrics.Evaluated(Ref("ns", "a"), Spec("g", {"orders"}), OrdersEvaluation(clock.now), clock.now);
  metrics.Evaluated(Ref("ns", "b"), Spec("g", {"orders"}), OrdersEvaluation(clock.now), clock.now);
  EXPECT_EQ(metrics.series(),
            ScalerMetrics::kSeriesPerTrigger + ScalerMetrics::kSeriesPerPartition);
  const std::string text = Scrape(metrics);
  EXPECT_THAT(text, HasSubstr(R"(klag_metrics_series_dropped_total{kind="partition"} 1)"));
  EXPECT_THAT(text, HasSubstr(R"(klag_metrics_series_dropped_total{kind="trigger"} 1)"));
  EXPECT_THAT(text, HasSubstr(R"(scaledjob="a")"));
  EXPECT_THAT(text, Not(HasSubstr(R"(scaledjob="b")")));
  EXPECT_THAT(text, HasSubstr(R"(partition="0")"));
  EXPECT_THAT(text, Not(HasSubstr(R"(partition="1")")));
  // Existing series still update at the cap.
  auto later = std::make_shared<Evaluation>(*OrdersEvaluation(clock.now));
  later->report.metric_value = 99;
  metrics.Evaluated(Ref("ns", "a"), Spec("g", {"orders"}), later, clock.now);
  EXPECT_THAT(
      Scrape(metrics),
      HasSubstr(
          R"(klag_trigger_metric_value{namespace="ns",scaledjob="a",group="g",topic="orders"} 99)"));
}

TEST(ScalerMetricsTest, IdleSeriesAreRemovedAfterTheTtl) {
  Clock clock;
  ScalerMetrics metrics(Options(&clock), BuildInfo{});
  metrics.Evaluated(Ref("ns", "old"), Spec("g", {"orders"}), OrdersEvaluation(clock.now),
                    clock.now);
  clock.now += absl::Minutes(6);
  metrics.Evaluated(Ref("ns", "new"), Spec("g2", {"other"}), absl::NotFoundError("no group"),
                    clock.now);
  clock.now += absl::Minutes(5);  // "old" idle 11 min, "new" 5 min
  const std::string text = Scrape(metrics);
  EXPECT_THAT(text, Not(HasSubstr(R"(scaledjob="old")")));
  EXPECT_THAT(text, Not(HasSubstr("klag_partition_end_offset{")));
  EXPECT_THAT(text, HasSubstr(R"(scaledjob="new")"));
  EXPECT_EQ(metrics.series(), ScalerMetrics::kSeriesPerTrigger);
  clock.now += absl::Minutes(6);
  EXPECT_EQ(metrics.series(), 0);
}

TEST(ScalerMetricsTest, TopicsOfOneTriggerJoinWithCommasAndNoneMeansEmpty) {
  Clock clock;
  ScalerMetrics metrics(Options(&clock), BuildInfo{});
  metrics.Evaluated(Ref("ns", "multi"), Spec("g", {"a", "b"}), absl::NotFoundError("x"), clock.now);
  metrics.Evaluated(Ref("ns", "all"), Spec("g", {}), absl::NotFoundError("x"), clock.now);
  const std::string text = Scrape(metrics);
  EXPECT_THAT(text, HasSubstr(R"(scaledjob="multi",group="g",topic="a,b")"));
  EXPECT_THAT(text, HasSubstr(R"(scaledjob="all",group="g",topic="")"));
}

}  // namespace
}  // namespace klag::scaler
