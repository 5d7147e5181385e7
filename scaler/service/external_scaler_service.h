// KEDA's ExternalScaler gRPC service over an Evaluator, on completion queues (completion_queue.h):
// calls are read and answered on ScalerServer's queue threads and no RPC holds a thread while it
// waits. Thin: requests become TriggerRefs, evaluations become responses, absl::Status becomes
// grpc::Status (grpc_status.h).
//
//   ExternalScalerService service(&evaluator, ServiceOptions{});
//   builder.RegisterService(service.grpc_service());
//   ... BuildAndStart ...
//   service.Serve(cq);      // per queue, before its thread runs RunQueue(cq)
//   ...
//   service.Shutdown();     // ends StreamIsActive streams with OK
//   server->Shutdown(...); service.WaitForCalls(); cq->Shutdown();
//
// GetMetricSpec parses only (no Kafka I/O) and answers inline, so a broker outage never makes
// KEDA silently drop a ScaledJob trigger (it does that when GetMetricSpec fails). GetMetrics and
// IsActive of one poll share one evaluation (Evaluator::EvaluateAsync) and finish from its
// completion. Open StreamIsActive streams are re-evaluated by one timer thread for all of them.
// StreamMetricSpec answers UNIMPLEMENTED.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <queue>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "proto/externalscaler.grpc.pb.h"
#include "scaler/service/completion_queue.h"
#include "scaler/service/evaluator.h"

namespace klag::scaler {

// Told about every finished RPC and every StreamIsActive stream opening and closing, e.g. by the
// Prometheus metrics (scaler/metrics). Called from gRPC's threads, Kafka workers and the stream
// timer, concurrently; must not block.
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
  // How often an open StreamIsActive re-evaluates its trigger (an evaluation still running is
  // not started again).
  absl::Duration stream_poll_interval = absl::Seconds(10);
  // Open StreamIsActive streams allowed in total (--max-streams) and per namespace
  // (--max-streams-per-namespace); one more fails at once with RESOURCE_EXHAUSTED naming the
  // bound. A stream's slot is freed when gRPC is done with it (closed, cancelled or failed).
  int64_t max_streams = 10000;
  int64_t max_streams_per_namespace = 1000;
  // Null: none. Must outlive the service.
  RpcObserver* observer = nullptr;
};

class ExternalScalerService final {
 public:
  // `evaluator` must outlive the service. Starts the stream timer thread. Thread-safe.
  ExternalScalerService(Evaluator* evaluator, ServiceOptions options);
  // Shutdown(), then joins the timer thread. The gRPC server must have been shut down and
  // WaitForCalls returned first.
  ~ExternalScalerService();

  // The generated service to register with the server builder (one server at a time).
  grpc::Service* grpc_service() { return &async_; }
  // Posts the first requests of every method on `cq`; each arriving call posts the next.
  void Serve(grpc::ServerCompletionQueue* cq);

  // Ends open streams with OK (KEDA then reconnects without back-off), and streams opened later
  // at once; stops the stream timer. Call before grpc::Server::Shutdown. Idempotent.
  void Shutdown();
  // Blocks until every matched call has ended (after grpc::Server::Shutdown, whose deadline
  // cancels what still runs; an evaluation in flight still ends within --kafka-timeout).
  void WaitForCalls() const { live_.WaitForNone(); }

  // Streams open now. Thread-safe.
  int open_streams() const;

 private:
  // The methods:
  //   GetMetricSpec parses (cached) and answers on the queue's thread.
  //   GetMetrics and IsActive finish from their evaluation (Evaluator::EvaluateAsync).
  //   StreamIsActive (IsActiveStream): the current state first, then every change (at most one
  //     write outstanding; a change seen while writing is compared again when the write
  //     completes). Bad metadata fails the stream at once; a Kafka error keeps it open (logged).
  //     Over max_streams or max_streams_per_namespace, or over an Evaluator bound, it fails at
  //     once with RESOURCE_EXHAUSTED naming the bound.
  //   StreamMetricSpec: UNIMPLEMENTED.
  using AsyncService = externalscaler::ExternalScaler::AsyncService;
  using SpecCall = UnaryCall<AsyncService, externalscaler::ScaledObjectRef,
                             externalscaler::GetMetricSpecResponse>;
  using MetricsCall = UnaryCall<AsyncService, externalscaler::GetMetricsRequest,
                                externalscaler::GetMetricsResponse>;
  using IsActiveCall =
      UnaryCall<AsyncService, externalscaler::ScaledObjectRef, externalscaler::IsActiveResponse>;
  class IsActiveStream;
  class UnimplementedStream;

  void GetMetricSpec(SpecCall* call);
  void GetMetrics(MetricsCall* call);
  void IsActive(IsActiveCall* call);

  // Takes a stream slot for `ns`; kResourceExhausted naming the bound when none is left.
  absl::Status ReserveStream(const std::string& ns);
  void ReleaseStream(const std::string& ns);
  // Adds an opened stream to the timer's schedule; false after Shutdown.
  bool Register(const std::shared_ptr<IsActiveStream>& stream, uint64_t* id);
  void Unregister(uint64_t id);
  void TimerLoop();

  const ServiceOptions options_;
  Evaluator* const evaluator_;
  AsyncService async_;
  LiveCalls live_;
  const SpecCall::Method spec_method_;
  const MetricsCall::Method metrics_method_;
  const IsActiveCall::Method is_active_method_;

  mutable absl::Mutex mu_;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<uint64_t, std::weak_ptr<IsActiveStream>> streams_ ABSL_GUARDED_BY(mu_);
  // Stream slots taken, in total and per namespace (entries at zero erased).
  int64_t reserved_streams_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<std::string, int64_t> namespace_streams_ ABSL_GUARDED_BY(mu_);
  // (next poll, stream id), earliest first; ids of closed streams are skipped when they surface.
  using Due = std::pair<absl::Time, uint64_t>;
  std::priority_queue<Due, std::vector<Due>, std::greater<Due>> schedule_ ABSL_GUARDED_BY(mu_);
  std::thread timer_;
};

// The request's reference as the evaluator wants it: copied (a stream keeps it), or viewed
// (a unary call, valid while its request is).
TriggerRef ToTriggerRef(const externalscaler::ScaledObjectRef& ref);
TriggerView ToTriggerView(const externalscaler::ScaledObjectRef& ref);

}  // namespace klag::scaler
