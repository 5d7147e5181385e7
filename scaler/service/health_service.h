// The standard gRPC health service (grpc.health.v1.Health: Check for Kubernetes' gRPC probes and
// grpc-health-probe, Watch for clients that follow it) on completion queues. gRPC's own default
// health service is a callback service in gRPC 1.51, and registering any callback service starts
// gRPC's callback threads, which poll the connections too and cost klag-scaler about 0.25x
// KEDA's CPU per poll (bench/README.md, "The RPCs alone"); this one answers on ScalerServer's
// queue threads.
//
//   HealthService health({"externalscaler.ExternalScaler"});
//   builder.RegisterService(health.grpc_service());
//   ... BuildAndStart ...
//   health.Serve(cq);            // per queue
//   health.SetServing(true);
//   ...
//   health.SetServing(false);    // Check answers NOT_SERVING, Watch streams are told
//   health.Shutdown();           // Watch streams end with OK once told
//   server->Shutdown(...); health.WaitForCalls(); cq->Shutdown();
//
// Known names: "" (the whole server) and those given; all share one status, NOT_SERVING until
// SetServing(true). Check of another name: NOT_FOUND (the protocol's rule); Watch of another
// name: SERVICE_UNKNOWN, kept open. Watch streams are bounded (`max_watches`, a caller cannot
// hold the server's memory with them): one more ends at once with RESOURCE_EXHAUSTED.
#pragma once

#include <grpcpp/completion_queue.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "proto/grpc/health/v1/health.grpc.pb.h"
#include "scaler/service/completion_queue.h"

namespace klag::scaler {

class HealthService {
 public:
  explicit HealthService(std::vector<std::string> services, int64_t max_watches = 100);
  // The server must have been shut down and WaitForCalls returned.
  ~HealthService();

  grpc::Service* grpc_service() { return &async_; }
  // Posts the first requests of Check and Watch on `cq`; each arriving call posts the next.
  void Serve(grpc::ServerCompletionQueue* cq);

  void SetServing(bool serving);
  // Ends every Watch stream with OK after its last status was written; later ones end at once.
  void Shutdown();
  // Blocks until every matched call has ended (after grpc::Server::Shutdown).
  void WaitForCalls() const { live_.WaitForNone(); }

  int open_watches() const;

 private:
  class WatchCall;
  using Status = grpc::health::v1::HealthCheckResponse::ServingStatus;
  using CheckCall =
      UnaryCall<grpc::health::v1::Health::AsyncService, grpc::health::v1::HealthCheckRequest,
                grpc::health::v1::HealthCheckResponse>;

  void Check(CheckCall* call);
  // The status of `service` for Watch (SERVICE_UNKNOWN for unknown names).
  Status StatusLocked(const std::string& service) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::vector<std::string> services_;
  const int64_t max_watches_;
  grpc::health::v1::Health::AsyncService async_;
  LiveCalls live_;
  CheckCall::Method check_method_;

  mutable absl::Mutex mu_;
  bool serving_ ABSL_GUARDED_BY(mu_) = false;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  // Matched Watch calls not yet released; they are deleted under mu_.
  absl::flat_hash_set<WatchCall*> watches_ ABSL_GUARDED_BY(mu_);
};

}  // namespace klag::scaler
