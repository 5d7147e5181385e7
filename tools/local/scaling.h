// KEDA's ScaledJob arithmetic (v2.20.2 pkg/scaling/scaledjob/metrics.go and
// pkg/scaling/executor/scale_jobs.go, as summarised in the reference's section 3): per-trigger
// samples + job counts -> how many Jobs to create this poll. Pure and table-tested.
//
//   ScaleInput in{.min_replica_count = 0, .max_replica_count = 10, .running = 3, .pending = 1,
//                 .triggers = {{.active = true, .queue_length = 6, .target = 1}}};
//   in.strategy.strategy = Strategy::kAccurate;
//   ScaleDecision d = DecideScale(in);   // d.jobs_to_create == 5
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "tools/local/scaled_job.h"

namespace klag::local {

// One trigger's answers in one poll: IsActive, the summed GetMetrics values, and the average of
// its MetricSpec targets. A trigger whose GetMetricSpec failed or was empty, or whose
// GetMetrics/IsActive failed, is left out (KEDA skips it).
struct TriggerSample {
  bool active = false;
  double queue_length = 0;
  double target = 0;
};

struct ScaleInput {
  int64_t min_replica_count = 0;
  std::optional<int64_t> max_replica_count;  // unset: 100
  ScalingStrategy strategy;
  int64_t running = 0;  // unfinished Jobs of this ScaledJob
  int64_t pending = 0;  // unfinished Jobs whose pods are not running yet
  std::vector<TriggerSample> triggers;
};

struct ScaleDecision {
  bool active = false;        // some trigger active (or minReplicaCount > 0)
  int64_t queue_length = 0;   // ceil of the chosen queue length
  int64_t max_scale = 0;      // ceil(min(queueLength / target, MaxRC))
  int64_t scale_to = 0;       // what KEDA wants: ceil(queueLength), MaxRC for eager, min gap
  int64_t effective_max = 0;  // what the strategy allows (>= 0)
  int64_t max_rc = 0;         // max - min (100 when max is unset)
  Strategy strategy_used = Strategy::kDefault;  // custom falls back to default, see below
  bool below_min = false;  // running < min: min - running Jobs, the queue ignored
  int64_t jobs_to_create = 0;
};

// KEDA's decision. Details that matter:
//  - multipleScalersCalculation picks among ACTIVE triggers only (max: the largest queue
//    length; min: the smallest non-zero; avg; sum); the chosen maxValue is queueLength / target
//    capped at MaxRC per trigger, then again after combining.
//  - custom with a missing or unparsable customScalingRunningJobPercentage is `default`; a
//    missing deduction counts 0.
//  - running < min creates min - running Jobs whatever the queue says.
//  - Jobs created = min(scale_to, effective_max) when active, none when that is <= 0.
ScaleDecision DecideScale(const ScaleInput& in);

// "active=true queueLength=6 target=1 ..." for logs.
std::string DescribeDecision(const ScaleInput& in, const ScaleDecision& d);

}  // namespace klag::local
