// The text `klag-scaler check` prints: one row per partition (committed, log start, end, lag)
// and what KEDA would receive (metric name, value, target, active).
//
//   std::cout << FormatCheckReport(**evaluation);
#pragma once

#include <string>

#include "scaler/service/evaluator.h"

namespace klag::scaler {

std::string FormatCheckReport(const Evaluation& evaluation);

}  // namespace klag::scaler
