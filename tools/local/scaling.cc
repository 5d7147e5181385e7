#include "tools/local/scaling.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace klag::local {
namespace {

constexpr int64_t kDefaultMaxReplicaCount = 100;

int64_t CeilToInt64(double x) { return static_cast<int64_t>(std::ceil(x)); }

// Go's strconv.ParseFloat accepts what strtod does for plain decimal text; absl::SimpleAtod
// is the same for the values a manifest holds ("0.5", "1", ".25").
std::optional<double> ParsePercentage(const std::optional<std::string>& text) {
  double out = 0;
  if (!text.has_value() || !absl::SimpleAtod(*text, &out)) return std::nullopt;
  return out;
}

}  // namespace

ScaleDecision DecideScale(const ScaleInput& in) {
  ScaleDecision d;
  const int64_t min = in.min_replica_count;
  d.max_rc =
      in.max_replica_count.has_value() ? *in.max_replica_count - min : kDefaultMaxReplicaCount;

  // Per trigger: maxValue = min(queueLength / target, MaxRC); 0 without a target.
  double queue_length = 0;
  double max_value = 0;
  const MultipleScalersCalculation calc = in.strategy.multiple_scalers_calculation;
  double queue_sum = 0, max_sum = 0;
  int active_count = 0;
  for (const TriggerSample& t : in.triggers) {
    double value = 0;
    if (t.target != 0) value = std::min(t.queue_length / t.target, static_cast<double>(d.max_rc));
    if (!t.active) continue;
    switch (calc) {
      case MultipleScalersCalculation::kMin:
        if (queue_length == 0 || t.queue_length < queue_length) {
          queue_length = t.queue_length;
          max_value = value;
          d.active = true;
        }
        break;
      case MultipleScalersCalculation::kAvg:
      case MultipleScalersCalculation::kSum:
        queue_sum += t.queue_length;
        max_sum += value;
        ++active_count;
        d.active = true;
        break;
      case MultipleScalersCalculation::kMax:
        // Strictly greater: an active trigger with queue length 0 does not activate.
        if (t.queue_length > queue_length) {
          queue_length = t.queue_length;
          max_value = value;
          d.active = true;
        }
        break;
    }
  }
  if (calc == MultipleScalersCalculation::kSum) {
    queue_length = queue_sum;
    max_value = max_sum;
  } else if (calc == MultipleScalersCalculation::kAvg && active_count > 0) {
    queue_length = queue_sum / active_count;
    max_value = max_sum / active_count;
  }
  if (min > 0) d.active = true;
  max_value = std::min(max_value, static_cast<double>(d.max_rc));
  d.queue_length = CeilToInt64(queue_length);
  d.max_scale = CeilToInt64(max_value);
  d.scale_to = d.queue_length;

  // The executor: below min, fill up to min; otherwise the strategy.
  const int64_t r = in.running - min;
  int64_t effective = 0;
  d.strategy_used = in.strategy.strategy;
  if (in.running < min) {
    d.below_min = true;
    d.scale_to = min - in.running;
    effective = min - in.running;
  } else {
    std::optional<double> percentage;
    if (d.strategy_used == Strategy::kCustom) {
      percentage = ParsePercentage(in.strategy.custom_running_job_percentage);
      if (!percentage.has_value()) d.strategy_used = Strategy::kDefault;
    }
    switch (d.strategy_used) {
      case Strategy::kDefault:
        effective = d.max_scale - r;
        break;
      case Strategy::kCustom:
        effective = std::min(d.max_scale - in.strategy.custom_queue_length_deduction.value_or(0) -
                                 static_cast<int64_t>(static_cast<double>(r) * *percentage),
                             d.max_rc);
        break;
      case Strategy::kAccurate:
        effective =
            d.max_scale + r - in.pending > d.max_rc ? d.max_rc - r : d.max_scale - in.pending;
        break;
      case Strategy::kEager:
        effective = std::min(d.max_rc - r - in.pending, d.max_scale);
        d.scale_to = d.max_rc;
        break;
    }
  }
  d.effective_max = std::max<int64_t>(effective, 0);
  if (d.active && d.effective_max > 0) d.jobs_to_create = std::min(d.scale_to, d.effective_max);
  return d;
}

std::string DescribeDecision(const ScaleInput& in, const ScaleDecision& d) {
  std::vector<std::string> triggers;
  for (const TriggerSample& t : in.triggers) {
    triggers.push_back(absl::StrCat("{active=", t.active, " queueLength=", t.queue_length,
                                    " target=", t.target, "}"));
  }
  return absl::StrCat(
      "triggers=[", absl::StrJoin(triggers, " "),
      "] calc=", CalculationName(in.strategy.multiple_scalers_calculation), " active=", d.active,
      " queueLength=", d.queue_length, " maxScale=", d.max_scale, " min=", in.min_replica_count,
      " maxRC=", d.max_rc, " running=", in.running, " pending=", in.pending,
      " strategy=", StrategyName(d.strategy_used), d.below_min ? " (below min)" : "",
      " scaleTo=", d.scale_to, " effectiveMax=", d.effective_max, " -> create ", d.jobs_to_create);
}

}  // namespace klag::local
