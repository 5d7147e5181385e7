// KEDA's ExternalScaler gRPC service over an Evaluator. Thin: requests become TriggerRefs,
// evaluations become responses, absl::Status becomes grpc::Status (grpc_status.h).
//
//   ExternalScalerService service(&evaluator, ServiceOptions{});
//   builder.RegisterService(&service);
//   ...
//   service.Shutdown();  // ends StreamIsActive streams with OK
//
// GetMetricSpec parses only (no Kafka I/O), so a broker outage never makes KEDA silently drop a
// ScaledJob trigger (it does that when GetMetricSpec fails). GetMetrics and IsActive of one poll
// share one evaluation. StreamMetricSpec answers UNIMPLEMENTED.
#pragma once

#include "absl/strings/string_view.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "proto/externalscaler.grpc.pb.h"
#include "scaler/service/evaluator.h"

namespace klag::scaler {

// Told about every finished RPC and every StreamIsActive stream opening and closing, e.g. by the
// Prometheus metrics (scaler/metrics). Called from RPC threads, concurrently; must not block.
class RpcObserver {
 public:
  virtual ~RpcObserver() = default;
  // `method` is one of the four ExternalScaler methods; `latency` for StreamIsActive is the
  // stream's lifetime.
  virtual void RpcFinished(absl::string_view method, grpc::StatusCode code,
                           absl::Duration latency) = 0;
  virtual void StreamOpened() = 0;
  virtual void StreamClosed() = 0;
};

struct ServiceOptions {
  // How often an open StreamIsActive re-evaluates its trigger.
  absl::Duration stream_poll_interval = absl::Seconds(10);
  // Null: none. Must outlive the service.
  RpcObserver* observer = nullptr;
};

class ExternalScalerService final : public externalscaler::ExternalScaler::Service {
 public:
  // `evaluator` must outlive the service. Thread-safe.
  ExternalScalerService(Evaluator* evaluator, ServiceOptions options);

  grpc::Status IsActive(grpc::ServerContext* context, const externalscaler::ScaledObjectRef* ref,
                        externalscaler::IsActiveResponse* response) override;
  grpc::Status StreamIsActive(
      grpc::ServerContext* context, const externalscaler::ScaledObjectRef* ref,
      grpc::ServerWriter<externalscaler::IsActiveResponse>* writer) override;
  grpc::Status GetMetricSpec(grpc::ServerContext* context,
                             const externalscaler::ScaledObjectRef* ref,
                             externalscaler::GetMetricSpecResponse* response) override;
  grpc::Status GetMetrics(grpc::ServerContext* context,
                          const externalscaler::GetMetricsRequest* request,
                          externalscaler::GetMetricsResponse* response) override;

  // Ends open streams with OK (KEDA then reconnects without back-off). Call before
  // grpc::Server::Shutdown. Idempotent.
  void Shutdown();

 private:
  const ServiceOptions options_;
  Evaluator* const evaluator_;
  absl::Notification shutdown_;
};

// The request's reference as the evaluator wants it.
TriggerRef ToTriggerRef(const externalscaler::ScaledObjectRef& ref);

}  // namespace klag::scaler
