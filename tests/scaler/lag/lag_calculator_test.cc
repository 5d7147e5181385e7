// Table tests for scaler/lag/lag_calculator: one row per lag rule, KEDA's own behaviour (v2.20.2,
// pkg/scalers/kafka_scaler.go getLagForPartition/getTotalLag) and each klag fix. Every row states
// the exact numbers; the comment gives KEDA's number where klag differs.
#include "scaler/lag/lag_calculator.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <ostream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/time/time.h"

namespace klag::scaler {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
constexpr std::nullopt_t kNoCommit = std::nullopt;

kafka::PartitionOffsets P(std::string topic, int32_t partition, std::optional<int64_t> committed,
                          int64_t log_start, int64_t end) {
  return {.topic = std::move(topic),
          .partition = partition,
          .committed = committed,
          .log_start = log_start,
          .end = end};
}

// Partitions 0..n-1 of topic "t", each with the given lag (commit at 0, log start 0).
std::vector<kafka::PartitionOffsets> Lags(const std::vector<int64_t>& lags) {
  std::vector<kafka::PartitionOffsets> out;
  for (size_t i = 0; i < lags.size(); ++i) {
    out.push_back(P("t", static_cast<int32_t>(i), 0, 0, lags[i]));
  }
  return out;
}

LagSnapshot Snap(const std::vector<std::tuple<std::string, int32_t, std::optional<int64_t>>>& c) {
  LagSnapshot s;
  for (const auto& [topic, partition, committed] : c) s.committed[{topic, partition}] = committed;
  return s;
}

// Topic "t", lagThreshold 10, everything else KEDA's default.
TriggerSpec BaseSpec() {
  TriggerSpec spec;
  spec.consumer_group = "g";
  spec.topics = {"t"};
  return spec;
}

struct Want {
  int64_t metric_value;
  int64_t total_lag;
  int64_t total_lag_with_persistent;
  int64_t partitions_with_lag;
  bool active;
  std::vector<int64_t> lags;  // per counted partition, in (topic, partition) order
};

struct LagRow {
  std::string name;
  std::function<void(TriggerSpec&)> spec;
  std::vector<kafka::PartitionOffsets> offsets;
  std::optional<LagSnapshot> previous;
  Want want;
};

void PrintTo(const LagRow& row, std::ostream* os) { *os << row.name; }

auto Default = [](TriggerSpec&) {};
// lagThreshold 100, so that the one-partition cap (1 x lagThreshold) does not hide the lag.
auto T100 = [](TriggerSpec& s) { s.lag_threshold = 100; };

std::vector<LagRow> Rows() {
  return {
      // --- KEDA's behaviour, kept -------------------------------------------------------------
      {"OnePartition", Default, {P("t", 0, 5, 0, 12)}, {}, {7, 7, 7, 1, true, {7}}},
      {"SumsPartitions",
       Default,
       {P("t", 0, 0, 0, 3), P("t", 1, 10, 0, 15), P("t", 2, 7, 0, 7)},
       {},
       {8, 8, 8, 2, true, {3, 5, 0}}},
      {"CaughtUpIsInactive",
       Default,
       {P("t", 0, 12, 0, 12), P("t", 1, 3, 0, 3)},
       {},
       {0, 0, 0, 0, false, {0, 0}}},
      {"NoPartitions", Default, {}, {}, {0, 0, 0, 0, false, {}}},
      {"ActivationEqualIsInactive",
       [](TriggerSpec& s) { s.activation_lag_threshold = 5; },
       {P("t", 0, 0, 0, 5)},
       {},
       {5, 5, 5, 1, false, {5}}},
      {"ActivationAboveIsActive",
       [](TriggerSpec& s) { s.activation_lag_threshold = 5; },
       {P("t", 0, 0, 0, 6)},
       {},
       {6, 6, 6, 1, true, {6}}},
      {"LatestNoCommitCountsOne",
       Default,
       {P("t", 0, kNoCommit, 0, 100), P("t", 1, 4, 0, 9)},
       {},
       {6, 6, 6, 2, true, {1, 5}}},
      // KEDA returns 1 before it even looks at the end offset: an empty partition counts too.
      {"LatestNoCommitEmptyPartitionCountsOne",
       Default,
       {P("t", 0, kNoCommit, 0, 0)},
       {},
       {1, 1, 1, 1, true, {1}}},
      {"LatestNoCommitScaleToZero",
       [](TriggerSpec& s) { s.scale_to_zero_on_invalid_offset = true; },
       {P("t", 0, kNoCommit, 0, 100)},
       {},
       {0, 0, 0, 0, false, {0}}},
      // KEDA >= 2.14 (kedacore/keda#5689): scaleToZeroOnInvalidOffset applies to earliest too.
      {"EarliestNoCommitScaleToZero",
       [](TriggerSpec& s) {
         s.offset_reset_policy = OffsetResetPolicy::kEarliest;
         s.scale_to_zero_on_invalid_offset = true;
       },
       {P("t", 0, kNoCommit, 40, 100)},
       {},
       {0, 0, 0, 0, false, {0}}},
      // --- klag's fixes ----------------------------------------------------------------------
      // KEDA: 100 (the end offset, retention-deleted records included; keda#7936, fixed in 2.21).
      {"EarliestNoCommitCountsRetainedLog",
       [](TriggerSpec& s) {
         s.offset_reset_policy = OffsetResetPolicy::kEarliest;
         s.lag_threshold = 100;
       },
       {P("t", 0, kNoCommit, 40, 100)},
       {},
       {60, 60, 60, 1, true, {60}}},
      // KEDA: 100.
      {"EarliestNoCommitEmptyRetainedLogIsZero",
       [](TriggerSpec& s) { s.offset_reset_policy = OffsetResetPolicy::kEarliest; },
       {P("t", 0, kNoCommit, 100, 100)},
       {},
       {0, 0, 0, 0, false, {0}}},
      // KEDA: -20 + 15 = -5, metric -5 (KEDA's client turns it into 0), inactive.
      {"NegativeLagClamped",
       Default,
       {P("t", 0, 120, 0, 100), P("t", 1, 0, 0, 15)},
       {},
       {15, 15, 15, 1, true, {0, 15}}},
      // KEDA: 70.
      {"CommitBelowLogStart", T100, {P("t", 0, 10, 50, 80)}, {}, {30, 30, 30, 1, true, {30}}},
      // --- the cap: upper * lagThreshold, exact ----------------------------------------------
      {"CapBelow", Default, Lags({10, 9}), {}, {19, 19, 19, 2, true, {10, 9}}},
      {"CapExactlyPT", Default, Lags({10, 10}), {}, {20, 20, 20, 2, true, {10, 10}}},
      // KEDA: 21 (21 / 10 = 2 is not > 2): ceil(21/10) = 3 Jobs for 2 partitions (keda#4483).
      {"CapPTPlusOne", Default, Lags({11, 10}), {}, {20, 21, 21, 2, true, {11, 10}}},
      // KEDA: 29, the largest value its integer-division check lets through.
      {"CapPTPlusTMinusOne", Default, Lags({15, 14}), {}, {20, 29, 29, 2, true, {15, 14}}},
      {"CapWellAbove", Default, Lags({1000, 5}), {}, {20, 1005, 1005, 2, true, {1000, 5}}},
      {"AllowIdleConsumersNoCap",
       [](TriggerSpec& s) { s.allow_idle_consumers = true; },
       Lags({15, 14}),
       {},
       {29, 29, 29, 2, true, {15, 14}}},
      {"AllowIdleConsumersNoCapFarAbove",
       [](TriggerSpec& s) { s.allow_idle_consumers = true; },
       Lags({1000, 5}),
       {},
       {1005, 1005, 1005, 2, true, {1000, 5}}},
      // KEDA: 15 (15 / 10 = 1 is not > 1).
      {"LimitToPartitionsWithLagOneBusyPartition",
       [](TriggerSpec& s) { s.limit_to_partitions_with_lag = true; },
       Lags({15, 0, 0, 0}),
       {},
       {10, 15, 15, 1, true, {15, 0, 0, 0}}},
      {"LimitToPartitionsWithLagUnderCap",
       [](TriggerSpec& s) { s.limit_to_partitions_with_lag = true; },
       Lags({3, 4, 0, 0}),
       {},
       {7, 7, 7, 2, true, {3, 4, 0, 0}}},
      {"LimitToPartitionsWithLagNoLag",
       [](TriggerSpec& s) { s.limit_to_partitions_with_lag = true; },
       Lags({0, 0}),
       {},
       {0, 0, 0, 0, false, {0, 0}}},
      // A partition without a commit counts 1, so it is a partition with lag (as in KEDA).
      {"LimitToPartitionsWithLagCountsNoCommit",
       [](TriggerSpec& s) { s.limit_to_partitions_with_lag = true; },
       {P("t", 0, kNoCommit, 0, 0), P("t", 1, 0, 0, 50), P("t", 2, 0, 0, 0)},
       {},
       {20, 51, 51, 2, true, {1, 50, 0}}},
      // --- ensureEvenDistributionOfPartitions: P = 12 (factors 1 2 3 4 6 12), T = 10 ----------
      {"EvenP12Lag1",
       [](TriggerSpec& s) { s.ensure_even_distribution_of_partitions = true; },
       Lags({1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}),
       {},
       {10, 1, 1, 1, true, {1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}}},
      {"EvenP12Lag10",
       [](TriggerSpec& s) { s.ensure_even_distribution_of_partitions = true; },
       Lags({10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}),
       {},
       {10, 10, 10, 1, true, {10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}}},
      {"EvenP12Lag11",
       [](TriggerSpec& s) { s.ensure_even_distribution_of_partitions = true; },
       Lags({11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}),
       {},
       {20, 11, 11, 1, true, {11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}}},
      {"EvenP12Lag25",
       [](TriggerSpec& s) { s.ensure_even_distribution_of_partitions = true; },
       Lags({20, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}),
       {},
       {30, 25, 25, 2, true, {20, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}}},
      {"EvenP12Lag31",
       [](TriggerSpec& s) { s.ensure_even_distribution_of_partitions = true; },
       Lags({31, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}),
       {},
       {40, 31, 31, 1, true, {31, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}}},
      // 41..60 -> 6 (5 does not divide 12).
      {"EvenP12Lag41",
       [](TriggerSpec& s) { s.ensure_even_distribution_of_partitions = true; },
       Lags({41, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}),
       {},
       {60, 41, 41, 1, true, {41, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}}},
      {"EvenP12Lag61",
       [](TriggerSpec& s) { s.ensure_even_distribution_of_partitions = true; },
       Lags({61, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}),
       {},
       {120, 61, 61, 1, true, {61, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}}},
      {"EvenP12Lag500",
       [](TriggerSpec& s) { s.ensure_even_distribution_of_partitions = true; },
       Lags({500, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}),
       {},
       {120, 500, 500, 1, true, {500, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}}},
      // KEDA: 10 (factor 1, since 1 * 10 >= 0); klag keeps no lag at 0.
      {"EvenP12NoLagStaysZero",
       [](TriggerSpec& s) { s.ensure_even_distribution_of_partitions = true; },
       Lags({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}),
       {},
       {0, 0, 0, 0, false, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}}},
      {"EvenPrimeP7",
       [](TriggerSpec& s) { s.ensure_even_distribution_of_partitions = true; },
       Lags({11, 0, 0, 0, 0, 0, 0}),
       {},
       {70, 11, 11, 1, true, {11, 0, 0, 0, 0, 0, 0}}},
      // allowIdleConsumers does not switch the even distribution (or its cap) off, as in KEDA.
      {"EvenWithAllowIdleConsumers",
       [](TriggerSpec& s) {
         s.ensure_even_distribution_of_partitions = true;
         s.allow_idle_consumers = true;
       },
       Lags({500, 0, 0, 0}),
       {},
       {40, 500, 500, 1, true, {500, 0, 0, 0}}},
      // --- excludePersistentLag ----------------------------------------------------------------
      {"PersistentNoPreviousCounts",
       [](TriggerSpec& s) {
         s.exclude_persistent_lag = true;
         s.lag_threshold = 100;
       },
       {P("t", 0, 5, 0, 20)},
       {},
       {15, 15, 15, 1, true, {15}}},
      {"PersistentUnmovedCommitExcludedFromMetricOnly",
       [](TriggerSpec& s) { s.exclude_persistent_lag = true; },
       {P("t", 0, 5, 0, 25), P("t", 1, 8, 0, 10)},
       Snap({{"t", 0, 5}, {"t", 1, 3}}),
       {2, 2, 22, 1, true, {20, 2}}},
      {"PersistentMovedCommitCounts",
       [](TriggerSpec& s) {
         s.exclude_persistent_lag = true;
         s.lag_threshold = 100;
       },
       {P("t", 0, 8, 0, 25)},
       Snap({{"t", 0, 5}}),
       {17, 17, 17, 1, true, {17}}},
      {"PersistentOffIgnoresPrevious",
       T100,
       {P("t", 0, 5, 0, 25)},
       Snap({{"t", 0, 5}}),
       {20, 20, 20, 1, true, {20}}},
      {"PersistentPartitionMissingFromPreviousCounts",
       [](TriggerSpec& s) {
         s.exclude_persistent_lag = true;
         s.lag_threshold = 100;
       },
       {P("t", 1, 5, 0, 25)},
       Snap({{"t", 0, 5}}),
       {20, 20, 20, 1, true, {20}}},
      // KEDA handles "no commit" before the persistence check: such partitions always count.
      {"PersistentNoCommitNeverPersistent",
       [](TriggerSpec& s) { s.exclude_persistent_lag = true; },
       {P("t", 0, kNoCommit, 0, 25)},
       Snap({{"t", 0, kNoCommit}}),
       {1, 1, 1, 1, true, {1}}},
      // Activity still sees persistent lag above the activation threshold.
      {"PersistentLagActivatesButMetricZero",
       [](TriggerSpec& s) {
         s.exclude_persistent_lag = true;
         s.activation_lag_threshold = 3;
       },
       {P("t", 0, 5, 0, 9)},
       Snap({{"t", 0, 5}}),
       {0, 0, 4, 0, true, {4}}},
      // --- topics and partitionLimitation
      // ---------------------------------------------------------
      {"TopicListSumsAndCapsOverAllPartitions",
       [](TriggerSpec& s) {
         s.topics = {"a", "b"};
       },
       {P("a", 0, 0, 0, 30), P("a", 1, 0, 0, 0), P("b", 0, 0, 0, 5)},
       {},
       {30, 35, 35, 2, true, {30, 0, 5}}},
      {"PartitionLimitationFiltersAndShrinksTheCap",
       [](TriggerSpec& s) {
         s.partition_limitation = {{0, 0}, {2, 2}};
       },
       {P("t", 0, 0, 0, 50), P("t", 1, 0, 0, 1000), P("t", 2, 0, 0, 1), P("t", 3, 0, 0, 1000)},
       {},
       {20, 51, 51, 2, true, {50, 1}}},
      {"PartitionLimitationUnsortedOverlappingAndAdjacentRanges",
       [](TriggerSpec& s) {
         s.partition_limitation = {{5, 9}, {0, 2}, {3, 3}, {8, 12}};
       },
       // Partitions 0..14, lag 100 + id: 0-3 and 5-12 count; 4, 13 and 14 do not.
       Lags({100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, 112, 113, 114}),
       {},
       {120, 1274, 1274, 12, true, {100, 101, 102, 103, 105, 106, 107, 108, 109, 110, 111, 112}}},
      {"PartitionLimitationRangeAcrossTopics",
       [](TriggerSpec& s) {
         s.topics = {"a", "b"};
         s.partition_limitation = {{1, 2}};
       },
       {P("a", 0, 0, 0, 7), P("a", 1, 0, 0, 1), P("b", 2, 0, 0, 2), P("b", 3, 0, 0, 9)},
       {},
       {3, 3, 3, 2, true, {1, 2}}},
      {"PartitionLimitationIgnoredWithoutTopics",
       [](TriggerSpec& s) {
         s.topics = {};
         s.partition_limitation = {{0, 0}};
       },
       {P("x", 0, 0, 0, 2), P("y", 5, 0, 0, 3)},
       {},
       {5, 5, 5, 2, true, {2, 3}}},
      // --- saturation instead of overflow ------------------------------------------------------
      {"HugeThresholdCapSaturates",
       [](TriggerSpec& s) { s.lag_threshold = kMax; },
       Lags({100, 5, 0}),
       {},
       {105, 105, 105, 2, true, {100, 5, 0}}},
      {"HugeLagsSumSaturates",
       Default,
       {P("t", 0, 0, 0, kMax), P("t", 1, 0, 0, kMax)},
       {},
       {20, kMax, kMax, 2, true, {kMax, kMax}}},
  };
}

class ComputeLagTest : public ::testing::TestWithParam<LagRow> {};

TEST_P(ComputeLagTest, GivesTheExactReport) {
  const LagRow& row = GetParam();
  TriggerSpec spec = BaseSpec();
  row.spec(spec);
  kafka::GroupOffsets offsets{.partitions = row.offsets};
  const LagReport report =
      ComputeLag(spec, offsets, row.previous.has_value() ? &*row.previous : nullptr);
  EXPECT_EQ(report.metric_value, row.want.metric_value);
  EXPECT_EQ(report.total_lag, row.want.total_lag);
  EXPECT_EQ(report.total_lag_with_persistent, row.want.total_lag_with_persistent);
  EXPECT_EQ(report.partitions_with_lag, row.want.partitions_with_lag);
  EXPECT_EQ(report.active, row.want.active);
  std::vector<int64_t> lags;
  for (const PartitionLag& p : report.partitions) lags.push_back(p.lag);
  EXPECT_EQ(lags, row.want.lags);
}

INSTANTIATE_TEST_SUITE_P(Rules, ComputeLagTest, ::testing::ValuesIn(Rows()),
                         [](const auto& info) { return info.param.name; });

// KEDA's own TestGetNextFactor vectors (pkg/scalers/kafka_scaler_test.go): 100 partitions,
// lagThreshold 10; total lag -> factor. Here through ComputeLag: metric = factor * 10.
struct FactorRow {
  int64_t total_lag;
  int64_t factor;
};

void PrintTo(const FactorRow& row, std::ostream* os) { *os << "lag " << row.total_lag; }

class EvenDistributionTest : public ::testing::TestWithParam<FactorRow> {};

TEST_P(EvenDistributionTest, UsesKedasFactorSearch) {
  TriggerSpec spec = BaseSpec();
  spec.ensure_even_distribution_of_partitions = true;
  std::vector<int64_t> lags(100, 0);
  lags[0] = GetParam().total_lag;
  const LagReport report = ComputeLag(spec, {.partitions = Lags(lags)}, nullptr);
  EXPECT_EQ(report.metric_value, GetParam().factor * 10);
}

INSTANTIATE_TEST_SUITE_P(KedaVectors, EvenDistributionTest,
                         ::testing::Values(FactorRow{10, 1}, FactorRow{20, 2}, FactorRow{40, 4},
                                           FactorRow{50, 5}, FactorRow{99, 10}, FactorRow{100, 10},
                                           FactorRow{101, 20}));

TEST(ComputeLagTest, ExcludePersistentLagOverTwoEvaluations) {
  TriggerSpec spec = BaseSpec();
  spec.exclude_persistent_lag = true;

  // Poll 1: nothing to compare with, both partitions count.
  const LagReport first = ComputeLag(
      spec, {.partitions = {P("t", 0, 5, 0, 20), P("t", 1, 7, 0, 9)}}, /*previous=*/nullptr);
  EXPECT_EQ(first.metric_value, 17);
  EXPECT_THAT(first.snapshot.committed,
              UnorderedElementsAre(Pair(kafka::TopicPartition{"t", 0}, 5),
                                   Pair(kafka::TopicPartition{"t", 1}, 7)));

  // Poll 2: partition 0 is stuck at 5 (lag 25 now), partition 1 moved to 8.
  const LagReport second =
      ComputeLag(spec, {.partitions = {P("t", 0, 5, 0, 30), P("t", 1, 8, 0, 12)}}, &first.snapshot);
  EXPECT_EQ(second.metric_value, 4);
  EXPECT_EQ(second.total_lag_with_persistent, 29);
  EXPECT_TRUE(second.active);
  ASSERT_EQ(second.partitions.size(), 2u);
  EXPECT_TRUE(second.partitions[0].persistent);
  EXPECT_FALSE(second.partitions[1].persistent);

  // Poll 3: partition 0 finally moves: it counts again.
  const LagReport third = ComputeLag(
      spec, {.partitions = {P("t", 0, 6, 0, 30), P("t", 1, 8, 0, 12)}}, &second.snapshot);
  EXPECT_EQ(third.total_lag, 24);
  EXPECT_EQ(third.total_lag_with_persistent, 28);
  EXPECT_EQ(third.metric_value, 20);  // capped at 2 partitions x 10
  EXPECT_FALSE(third.partitions[0].persistent);
  // Partition 1 did not move between poll 2 and 3: now it is the persistent one.
  EXPECT_TRUE(third.partitions[1].persistent);
}

TEST(ComputeLagTest, ReportsPartitionsSortedWithTheirOffsets) {
  TriggerSpec spec = BaseSpec();
  spec.topics = {"b", "a"};
  const LagReport report =
      ComputeLag(spec,
                 {.partitions = {P("b", 1, 3, 0, 4), P("a", 10, kNoCommit, 2, 9),
                                 P("a", 0, 1, 0, 1), P("a", 2, 5, 6, 8)}},
                 nullptr);
  std::vector<std::pair<std::string, int32_t>> order;
  for (const PartitionLag& p : report.partitions) order.emplace_back(p.topic, p.partition);
  EXPECT_THAT(order, ElementsAre(Pair("a", 0), Pair("a", 2), Pair("a", 10), Pair("b", 1)));
  const PartitionLag& a2 = report.partitions[1];
  EXPECT_EQ(a2.committed, 5);
  EXPECT_EQ(a2.log_start, 6);
  EXPECT_EQ(a2.end, 8);
  EXPECT_EQ(a2.lag, 2);
  EXPECT_EQ(report.partitions[2].committed, std::nullopt);
  EXPECT_EQ(report.snapshot.committed.size(), 4u);
}

// ---------------------------------------------------------------------------------------------
// partitionLimitation that selects no existing partition: an error naming the key, the ranges
// and the partitions that exist (KEDA fails such a trigger; a silent 0 would hold it at zero).

struct LimitationRow {
  std::string name;
  std::vector<std::string> topics;
  std::vector<PartitionRange> limitation;
  std::vector<kafka::PartitionOffsets> offsets;
  std::optional<std::string> error;  // nullopt: OK
};

void PrintTo(const LimitationRow& row, std::ostream* os) { *os << row.name; }

class CheckPartitionLimitationTest : public ::testing::TestWithParam<LimitationRow> {};

TEST_P(CheckPartitionLimitationTest, RefusesALimitationThatSelectsNothing) {
  const LimitationRow& row = GetParam();
  TriggerSpec spec = BaseSpec();
  spec.topics = row.topics;
  spec.partition_limitation = row.limitation;
  const kafka::GroupOffsets offsets{.partitions = row.offsets};
  const absl::Status status = CheckPartitionLimitation(spec, offsets);
  if (!row.error.has_value()) {
    EXPECT_TRUE(status.ok()) << status;
    return;
  }
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(status.message()), *row.error);
}

INSTANTIATE_TEST_SUITE_P(
    Rows, CheckPartitionLimitationTest,
    ::testing::Values(
        LimitationRow{"NoLimitation", {"t"}, {}, Lags({1, 2}), std::nullopt},
        LimitationRow{"IgnoredWithoutTopics", {}, {{7, 9}}, Lags({1, 2}), std::nullopt},
        LimitationRow{"OnePartitionSelected", {"t"}, {{1, 1}, {9, 12}}, Lags({1, 2}), std::nullopt},
        LimitationRow{"SelectsNothing",
                      {"t"},
                      {{5, 7}},
                      Lags({1, 2, 3}),
                      "partitionLimitation \"5-7\" selects no existing partition (t: 0-2)"},
        LimitationRow{"SeveralRangesMergedInTheMessage",
                      {"t"},
                      {{9, 9}, {3, 4}, {5, 6}},
                      Lags({1, 2, 3}),
                      "partitionLimitation \"3-6,9\" selects no existing partition (t: 0-2)"},
        LimitationRow{"EveryTopicListedWithItsPartitions",
                      {"a", "b"},
                      {{10, 20}},
                      {P("a", 0, 0, 0, 1), P("a", 1, 0, 0, 1), P("b", 0, 0, 0, 1),
                       P("b", 2, 0, 0, 1), P("b", 3, 0, 0, 1)},
                      "partitionLimitation \"10-20\" selects no existing partition (a: 0-1; b: "
                      "0,2-3)"},
        LimitationRow{"SelectedInAnyTopicIsEnough",
                      {"a", "b"},
                      {{2, 2}},
                      {P("a", 0, 0, 0, 1), P("b", 2, 0, 0, 1)},
                      std::nullopt},
        LimitationRow{"NoPartitionsAtAll",
                      {"t"},
                      {{0, 0}},
                      {},
                      "partitionLimitation \"0\" selects no existing partition (the topics have "
                      "no partitions)"}),
    [](const auto& info) { return info.param.name; });

TEST(CheckPartitionLimitationTest, LongListsAreCut) {
  TriggerSpec spec = BaseSpec();
  spec.topics.clear();
  for (int i = 0; i < 20; ++i) spec.topics.push_back("topic-" + std::to_string(i));
  for (int32_t id = 1000; id < 100000; id += 2) spec.partition_limitation.push_back({id, id});
  std::vector<kafka::PartitionOffsets> offsets;
  for (const std::string& topic : spec.topics) offsets.push_back(P(topic, 0, 0, 0, 1));
  const absl::Status status = CheckPartitionLimitation(spec, {.partitions = offsets});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_LT(status.message().size(), 400u) << status.message();
  EXPECT_THAT(std::string(status.message()), ::testing::HasSubstr("bytes)"));
  EXPECT_THAT(std::string(status.message()), ::testing::HasSubstr("... (20 topics)"));
}

// ComputeLag alone still answers 0 for such a limitation: callers must check first.
TEST(CheckPartitionLimitationTest, ComputeLagAloneWouldAnswerZero) {
  TriggerSpec spec = BaseSpec();
  spec.partition_limitation = {{5, 7}};
  const kafka::GroupOffsets offsets{.partitions = Lags({100, 200})};
  EXPECT_FALSE(CheckPartitionLimitation(spec, offsets).ok());
  const LagReport report = ComputeLag(spec, offsets, nullptr);
  EXPECT_EQ(report.metric_value, 0);
  EXPECT_FALSE(report.active);
}

// Lag in seconds: committed_read_at minus each partition's unconsumed_since, and
// activationLagSeconds as a second way to be active (klag extension).
class LagSecondsTest : public ::testing::Test {
 protected:
  const absl::Time read_at_ = absl::FromUnixSeconds(1'800'000'000);

  kafka::GroupOffsets Offsets(std::vector<kafka::PartitionOffsets> partitions) const {
    kafka::GroupOffsets offsets;
    offsets.partitions = std::move(partitions);
    offsets.committed_read_at = read_at_;
    return offsets;
  }
  kafka::PartitionOffsets Aged(int32_t partition, int64_t committed, int64_t end,
                               std::optional<absl::Duration> age) const {
    kafka::PartitionOffsets p = P("t", partition, committed, 0, end);
    if (age.has_value()) p.unconsumed_since = read_at_ - *age;
    return p;
  }
};

TEST_F(LagSecondsTest, PerPartitionAgeAndTheLargestOfThePartitionsWithLag) {
  TriggerSpec spec = BaseSpec();
  const LagReport report =
      ComputeLag(spec,
                 Offsets({Aged(0, 5, 9, absl::Seconds(42)), Aged(1, 3, 4, absl::Milliseconds(1500)),
                          Aged(2, 7, 7, std::nullopt)}),
                 nullptr);
  ASSERT_EQ(report.partitions.size(), 3u);
  EXPECT_EQ(report.partitions[0].lag_seconds, 42.0);
  EXPECT_EQ(report.partitions[1].lag_seconds, 1.5);
  EXPECT_EQ(report.partitions[2].lag_seconds, 0.0);  // no lag: 0, estimate or not
  EXPECT_EQ(report.max_lag_seconds, 42.0);
}

TEST_F(LagSecondsTest, UnknownAgesAreNulloptAndNoLagIsZero) {
  TriggerSpec spec = BaseSpec();
  LagReport report = ComputeLag(spec, Offsets({Aged(0, 5, 9, std::nullopt)}), nullptr);
  EXPECT_EQ(report.partitions[0].lag_seconds, std::nullopt);
  EXPECT_EQ(report.max_lag_seconds, std::nullopt);
  // One known, one unknown: the known one is a lower bound.
  report = ComputeLag(spec, Offsets({Aged(0, 5, 9, std::nullopt), Aged(1, 0, 1, absl::Seconds(3))}),
                      nullptr);
  EXPECT_EQ(report.max_lag_seconds, 3.0);
  report = ComputeLag(spec, Offsets({Aged(0, 9, 9, std::nullopt)}), nullptr);
  EXPECT_EQ(report.max_lag_seconds, 0.0);
  // A reader without read times (fake) gives no ages.
  kafka::GroupOffsets no_time = Offsets({Aged(0, 5, 9, absl::Seconds(42))});
  no_time.committed_read_at = absl::InfinitePast();
  EXPECT_EQ(ComputeLag(spec, no_time, nullptr).max_lag_seconds, std::nullopt);
  // An estimate after the read (clocks) is an age of 0, never negative.
  report = ComputeLag(spec, Offsets({Aged(0, 5, 9, absl::Seconds(-2))}), nullptr);
  EXPECT_EQ(report.max_lag_seconds, 0.0);
}

TEST_F(LagSecondsTest, ActivationLagSecondsActivatesBelowTheCountThreshold) {
  TriggerSpec spec = BaseSpec();
  spec.activation_lag_threshold = 1000;  // 4 records never activate by count
  const kafka::GroupOffsets offsets = Offsets({Aged(0, 5, 9, absl::Seconds(42))});
  EXPECT_FALSE(ComputeLag(spec, offsets, nullptr).active);  // count only (KEDA's rule)
  spec.activation_lag_seconds = 30;
  LagReport report = ComputeLag(spec, offsets, nullptr);
  EXPECT_TRUE(report.active);
  EXPECT_EQ(report.metric_value, 4);  // the metric is still the count
  spec.activation_lag_seconds = 42;   // strictly older, like activationLagThreshold
  EXPECT_FALSE(ComputeLag(spec, offsets, nullptr).active);
  spec.activation_lag_seconds = 60;
  EXPECT_FALSE(ComputeLag(spec, offsets, nullptr).active);
  // Unknown age: the count decides.
  spec.activation_lag_seconds = 0;
  EXPECT_FALSE(ComputeLag(spec, Offsets({Aged(0, 5, 9, std::nullopt)}), nullptr).active);
  // The count still activates on its own.
  spec.activation_lag_seconds = 60;
  spec.activation_lag_threshold = 3;
  EXPECT_TRUE(ComputeLag(spec, offsets, nullptr).active);
}

TEST_F(LagSecondsTest, PersistentLagAgesCountForActivityNotForTheMetric) {
  TriggerSpec spec = BaseSpec();
  spec.exclude_persistent_lag = true;
  spec.activation_lag_threshold = 1000;
  spec.activation_lag_seconds = 30;
  const LagSnapshot previous = Snap({{"t", 0, 5}});
  const LagReport report = ComputeLag(spec, Offsets({Aged(0, 5, 9, absl::Seconds(42))}), &previous);
  EXPECT_TRUE(report.partitions[0].persistent);
  EXPECT_EQ(report.metric_value, 0);
  EXPECT_EQ(report.max_lag_seconds, 42.0);
  EXPECT_TRUE(report.active);  // as the count rule: total_lag_with_persistent counts too
}

}  // namespace
}  // namespace klag::scaler
