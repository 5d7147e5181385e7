#include "scaler/service/check_report.h"

#include <gtest/gtest.h>

namespace klag::scaler {
namespace {

TEST(CheckReportTest, ShowsEveryPartitionAndWhatKedaWouldReceive) {
  absl::StatusOr<TriggerSpec> spec = ParseTriggerSpec({{"bootstrapServers", "k:9092"},
                                                       {"consumerGroup", "python_data_load"},
                                                       {"topic", "ListedStockPrice"},
                                                       {"lagThreshold", "1"}});
  ASSERT_TRUE(spec.ok()) << spec.status();
  kafka::GroupOffsets offsets{{
      {.topic = "ListedStockPrice", .partition = 0, .committed = 40, .log_start = 0, .end = 42},
      {.topic = "ListedStockPrice", .partition = 1, .committed = std::nullopt, .end = 7},
      {.topic = "ListedStockPrice", .partition = 2, .committed = 3, .log_start = 5, .end = 9},
  }};
  Evaluation e;
  e.trigger.spec = std::make_shared<const TriggerSpec>(*spec);
  e.trigger.metric_name = MetricName(*spec);
  e.report = ComputeLag(*spec, offsets, nullptr);

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

}  // namespace
}  // namespace klag::scaler
