#include "tools/local/scaling.h"

#include <string>

#include "gtest/gtest.h"

namespace klag::local {
namespace {

struct Case {
  std::string name;
  ScaleInput in;
  int64_t want_create;
  bool want_active;
};

ScaleInput Input(int64_t min, std::optional<int64_t> max, int64_t running, int64_t pending,
                 std::vector<TriggerSample> triggers, Strategy strategy = Strategy::kDefault) {
  ScaleInput in;
  in.min_replica_count = min;
  in.max_replica_count = max;
  in.running = running;
  in.pending = pending;
  in.triggers = std::move(triggers);
  in.strategy.strategy = strategy;
  return in;
}

ScaleInput Custom(ScaleInput in, std::optional<int64_t> deduction,
                  std::optional<std::string> percentage) {
  in.strategy.strategy = Strategy::kCustom;
  in.strategy.custom_queue_length_deduction = deduction;
  in.strategy.custom_running_job_percentage = std::move(percentage);
  return in;
}

ScaleInput Calc(ScaleInput in, MultipleScalersCalculation c) {
  in.strategy.multiple_scalers_calculation = c;
  return in;
}

// The reference's worked example: min=0, max=10, target=1, queueLength=6, running=3, pending=1.
ScaleInput Worked(Strategy s) { return Input(0, 10, 3, 1, {{true, 6, 1}}, s); }

TEST(DecideScaleTest, ReproducesTheReferenceWorkedExample) {
  EXPECT_EQ(DecideScale(Worked(Strategy::kDefault)).jobs_to_create, 3);
  EXPECT_EQ(DecideScale(Custom(Worked(Strategy::kCustom), 1, "0.5")).jobs_to_create, 4);
  EXPECT_EQ(DecideScale(Worked(Strategy::kAccurate)).jobs_to_create, 5);
  ScaleDecision eager = DecideScale(Worked(Strategy::kEager));
  EXPECT_EQ(eager.jobs_to_create, 6);
  EXPECT_EQ(eager.scale_to, 10);  // eager asks for MaxRC, the strategy allows 6
}

TEST(DecideScaleTest, Table) {
  using MSC = MultipleScalersCalculation;
  const std::vector<Case> cases = {
      // The seed: min 0, max 1, lagThreshold 1.
      {"seed: lag 5, nothing running -> one Job", Input(0, 1, 0, 0, {{true, 5, 1}}), 1, true},
      {"seed: lag 5, one running -> none", Input(0, 1, 1, 0, {{true, 5, 1}}), 0, true},
      {"seed: lag 0, inactive -> none", Input(0, 1, 0, 0, {{false, 0, 1}}), 0, false},
      {"inactive trigger with lag -> none (activity comes from IsActive only)",
       Input(0, 10, 0, 0, {{false, 7, 1}}), 0, false},
      {"active trigger with queue length 0 does not activate in max mode",
       Input(0, 10, 0, 0, {{true, 0, 1}}), 0, false},
      {"queue / target, ceil: 7 over target 3 -> 3", Input(0, 10, 0, 0, {{true, 7, 3}}), 3, true},
      {"capped at MaxRC = max - min", Input(2, 5, 2, 0, {{true, 50, 1}}), 3, true},
      {"max unset -> MaxRC 100", Input(0, std::nullopt, 0, 0, {{true, 500, 1}}), 100, true},
      {"below min: min - running, the queue ignored", Input(3, 10, 1, 0, {{false, 0, 1}}), 2, true},
      {"min > 0 makes it active; running == min, no queue -> none",
       Input(2, 10, 2, 0, {{false, 0, 1}}), 0, true},
      {"running beyond maxScale -> negative -> none", Input(0, 10, 8, 0, {{true, 3, 1}}), 0, true},
      {"fractional queue length rounds up", Input(0, 10, 0, 0, {{true, 2.2, 1}}), 3, true},
      {"target 0: maxValue 0 -> nothing allowed", Input(0, 10, 0, 0, {{true, 5, 0}}), 0, true},
      {"accurate: over MaxRC -> MaxRC - r", Input(0, 10, 8, 0, {{true, 6, 1}}, Strategy::kAccurate),
       2, true},
      {"accurate: pending subtracted", Input(0, 10, 2, 2, {{true, 6, 1}}, Strategy::kAccurate), 4,
       true},
      {"eager: MaxRC - r - pending", Input(0, 10, 5, 1, {{true, 6, 1}}, Strategy::kEager), 4, true},
      {"custom without percentage falls back to default",
       Custom(Input(0, 10, 3, 0, {{true, 6, 1}}), 1, std::nullopt), 3, true},
      {"custom with unparsable percentage falls back to default",
       Custom(Input(0, 10, 3, 0, {{true, 6, 1}}), 1, "half"), 3, true},
      {"custom without deduction counts 0",
       Custom(Input(0, 10, 2, 0, {{true, 6, 1}}), std::nullopt, "1"), 4, true},
      {"max: the largest active queue",
       Calc(Input(0, 10, 0, 0, {{true, 2, 1}, {true, 5, 1}, {false, 9, 1}}), MSC::kMax), 5, true},
      {"min: the smallest active queue",
       Calc(Input(0, 10, 0, 0, {{true, 4, 1}, {true, 2, 1}, {false, 1, 1}}), MSC::kMin), 2, true},
      {"sum of active queues", Calc(Input(0, 10, 0, 0, {{true, 2, 1}, {true, 3, 1}}), MSC::kSum), 5,
       true},
      {"avg of active queues", Calc(Input(0, 10, 0, 0, {{true, 2, 1}, {true, 5, 1}}), MSC::kAvg), 4,
       true},
      {"no triggers answered -> inactive", Input(0, 10, 0, 0, {}), 0, false},
  };
  for (const Case& c : cases) {
    ScaleDecision d = DecideScale(c.in);
    EXPECT_EQ(d.jobs_to_create, c.want_create) << c.name << ": " << DescribeDecision(c.in, d);
    EXPECT_EQ(d.active, c.want_active) << c.name << ": " << DescribeDecision(c.in, d);
  }
}

TEST(DecideScaleTest, CustomFallbackIsReported) {
  ScaleDecision d = DecideScale(Custom(Worked(Strategy::kCustom), 1, std::nullopt));
  EXPECT_EQ(d.strategy_used, Strategy::kDefault);
  d = DecideScale(Custom(Worked(Strategy::kCustom), 1, "0.5"));
  EXPECT_EQ(d.strategy_used, Strategy::kCustom);
}

TEST(DecideScaleTest, DescriptionNamesEveryInput) {
  ScaleInput in = Worked(Strategy::kAccurate);
  const std::string s = DescribeDecision(in, DecideScale(in));
  for (const char* want : {"queueLength=6", "running=3", "pending=1", "maxRC=10",
                           "strategy=accurate", "-> create 5", "calc=max", "target=1"}) {
    EXPECT_NE(s.find(want), std::string::npos) << want << " not in " << s;
  }
}

}  // namespace
}  // namespace klag::local
