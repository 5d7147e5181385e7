// Serves ScalerMetrics at http://ADDR/metrics with prometheus-cpp's pull Exposer (civetweb
// inside; klag writes no HTTP server of its own).
//
//   absl::StatusOr<std::unique_ptr<MetricsExposer>> exposer =
//       MetricsExposer::Start("0.0.0.0:9022", metrics);   // metrics: shared_ptr<ScalerMetrics>
//   (*exposer)->port();   // the bound port (useful with "127.0.0.1:0")
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "scaler/metrics/scaler_metrics.h"

namespace prometheus {
class Exposer;
}  // namespace prometheus

namespace klag::scaler {

class MetricsExposer {
 public:
  // Binds `listen` ("host:port"; port 0 picks a free one) and serves `metrics` at /metrics.
  // The exposer holds `metrics` weakly: keep it alive while serving. Errors: kInvalidArgument
  // for an address that is not host:port, kUnavailable when it cannot be bound.
  static absl::StatusOr<std::unique_ptr<MetricsExposer>> Start(
      const std::string& listen, const std::shared_ptr<ScalerMetrics>& metrics);

  int port() const { return port_; }

  // Stops serving.
  ~MetricsExposer();

 private:
  MetricsExposer(std::unique_ptr<prometheus::Exposer> exposer, int port);

  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_;
};

}  // namespace klag::scaler
