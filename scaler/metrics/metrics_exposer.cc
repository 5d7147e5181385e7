#include "scaler/metrics/metrics_exposer.h"

#include <prometheus/exposer.h>

#include <exception>

#include "absl/strings/str_cat.h"

namespace klag::scaler {

MetricsExposer::MetricsExposer(std::unique_ptr<prometheus::Exposer> exposer, int port)
    : exposer_(std::move(exposer)), port_(port) {}

MetricsExposer::~MetricsExposer() = default;

absl::StatusOr<std::unique_ptr<MetricsExposer>> MetricsExposer::Start(
    const std::string& listen, const std::shared_ptr<ScalerMetrics>& metrics) {
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos || colon + 1 == listen.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--metrics-listen \"", listen, "\": expected HOST:PORT"));
  }
  std::unique_ptr<prometheus::Exposer> exposer;
  try {
    // One thread serves scrapes (Prometheus scrapes one at a time); Collect() takes a mutex the
    // evaluator's observer calls take too, for a copy of the maps.
    exposer = std::make_unique<prometheus::Exposer>(listen, /*num_threads=*/1);
  } catch (const std::exception& e) {
    // civetweb throws CivetException when the port cannot be bound.
    return absl::UnavailableError(
        absl::StrCat("--metrics-listen ", listen, ": cannot serve metrics: ", e.what()));
  }
  exposer->RegisterCollectable(metrics);
  const std::vector<int> ports = exposer->GetListeningPorts();
  const int port = ports.empty() ? 0 : ports.front();
  return std::unique_ptr<MetricsExposer>(new MetricsExposer(std::move(exposer), port));
}

}  // namespace klag::scaler
