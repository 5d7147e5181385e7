// KEDA's ExternalScaler gRPC service over an Evaluator, on gRPC's callback API: no RPC holds a
// thread while it waits. Thin: requests become TriggerRefs, evaluations become responses,
// absl::Status becomes grpc::Status (grpc_status.h).
//
//   ExternalScalerService service(&evaluator, ServiceOptions{});
//   builder.RegisterService(&service);
//   ...
//   service.Shutdown();  // ends StreamIsActive streams with OK
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

class ExternalScalerService final : public externalscaler::ExternalScaler::CallbackService {
 public:
  // `evaluator` must outlive the service. Starts the stream timer thread. Thread-safe.
  ExternalScalerService(Evaluator* evaluator, ServiceOptions options);
  // Shutdown(), then joins the timer thread. The gRPC server must have been shut down first.
  ~ExternalScalerService() override;

  grpc::ServerUnaryReactor* IsActive(grpc::CallbackServerContext* context,
                                     const externalscaler::ScaledObjectRef* ref,
                                     externalscaler::IsActiveResponse* response) override;
  // The current state first, then every change (at most one write outstanding; a change seen
  // while writing is compared again when the write completes). Bad metadata fails the stream at
  // once; a Kafka error keeps it open (logged). Over max_streams or max_streams_per_namespace, or
  // over an Evaluator bound, it fails at once with RESOURCE_EXHAUSTED naming the bound.
  grpc::ServerWriteReactor<externalscaler::IsActiveResponse>* StreamIsActive(
      grpc::CallbackServerContext* context, const externalscaler::ScaledObjectRef* ref) override;
  grpc::ServerUnaryReactor* GetMetricSpec(grpc::CallbackServerContext* context,
                                          const externalscaler::ScaledObjectRef* ref,
                                          externalscaler::GetMetricSpecResponse* response) override;
  grpc::ServerUnaryReactor* GetMetrics(grpc::CallbackServerContext* context,
                                       const externalscaler::GetMetricsRequest* request,
                                       externalscaler::GetMetricsResponse* response) override;

  // Ends open streams with OK (KEDA then reconnects without back-off), and streams opened later
  // at once; stops the stream timer. Call before grpc::Server::Shutdown. Idempotent.
  void Shutdown();

  // Streams open now. Thread-safe.
  int open_streams() const;

 private:
  class IsActiveStream;

  // Takes a stream slot for `ns`; kResourceExhausted naming the bound when none is left.
  absl::Status ReserveStream(const std::string& ns);
  void ReleaseStream(const std::string& ns);
  // Adds an opened stream to the timer's schedule; false after Shutdown.
  bool Register(const std::shared_ptr<IsActiveStream>& stream, uint64_t* id);
  void Unregister(uint64_t id);
  void TimerLoop();

  const ServiceOptions options_;
  Evaluator* const evaluator_;

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

// The request's reference as the evaluator wants it.
TriggerRef ToTriggerRef(const externalscaler::ScaledObjectRef& ref);

}  // namespace klag::scaler
