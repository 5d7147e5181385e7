#include "job/summary.h"

#include <gtest/gtest.h>

#include "nlohmann/json.hpp"

namespace klag::job {
namespace {

TEST(SummaryJsonTest, OneLineWithTotalsAndPerPartitionOffsets) {
  DrainReport r;
  r.reason = ExitReason::kSignal;
  r.records = 12;
  r.bytes = 340;
  r.dead_lettered = 1;
  r.batches = 3;
  r.commits = 2;
  r.duration = absl::Milliseconds(1500);
  r.partitions = {{.partition = {"t", 0},
                   .start = 5,
                   .end = 20,
                   .committed_before = 5,
                   .committed = 17,
                   .records = 12,
                   .assigned = true},
                  {.partition = {"t", 1}, .start = 0, .end = 0}};
  const std::string line = SummaryJson(r, "g");
  EXPECT_EQ(line.find('\n'), std::string::npos);
  nlohmann::json j = nlohmann::json::parse(line);
  EXPECT_EQ(j["exit_reason"], "signal");
  EXPECT_EQ(j["exit_code"], 3);
  EXPECT_EQ(j["group"], "g");
  EXPECT_EQ(j["records"], 12);
  EXPECT_EQ(j["bytes"], 340);
  EXPECT_EQ(j["dead_lettered"], 1);
  EXPECT_EQ(j["batches"], 3);
  EXPECT_EQ(j["commits"], 2);
  EXPECT_DOUBLE_EQ(j["duration_s"].get<double>(), 1.5);
  EXPECT_FALSE(j.contains("error"));
  ASSERT_EQ(j["partitions"].size(), 2u);
  EXPECT_EQ(j["partitions"][0]["start"], 5);
  EXPECT_EQ(j["partitions"][0]["end"], 20);
  EXPECT_EQ(j["partitions"][0]["committed_before"], 5);
  EXPECT_EQ(j["partitions"][0]["committed"], 17);
  EXPECT_TRUE(j["partitions"][1]["committed"].is_null());
  EXPECT_TRUE(j["partitions"][1]["committed_before"].is_null());
}

TEST(SummaryJsonTest, FailureCarriesTheError) {
  DrainReport r;
  r.reason = ExitReason::kFailed;
  r.error = absl::UnavailableError("no broker");
  nlohmann::json j = nlohmann::json::parse(SummaryJson(r, "g"));
  EXPECT_EQ(j["exit_code"], 1);
  EXPECT_EQ(j["error"], "UNAVAILABLE: no broker");
}

}  // namespace
}  // namespace klag::job
