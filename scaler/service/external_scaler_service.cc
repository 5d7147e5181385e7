#include "scaler/service/external_scaler_service.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <optional>

#include "scaler/service/grpc_status.h"

namespace klag::scaler {
namespace {

void LogFailure(const char* rpc, const TriggerRef& ref, const absl::Status& status) {
  // Bad metadata is the user's to fix and comes back to KEDA as INVALID_ARGUMENT; Kafka trouble
  // is ours to see.
  if (status.code() == absl::StatusCode::kInvalidArgument) {
    spdlog::info("{} {}/{}: {}", rpc, ref.namespace_, ref.name, status.ToString());
  } else {
    spdlog::warn("{} {}/{}: {}", rpc, ref.namespace_, ref.name, status.ToString());
  }
}

// Reports one RPC's code and latency to the observer (if any) when it returns.
class RpcScope {
 public:
  RpcScope(RpcObserver* observer, absl::string_view method)
      : observer_(observer), method_(method), start_(absl::Now()) {}
  grpc::Status Done(grpc::Status status) {
    if (observer_ != nullptr) {
      observer_->RpcFinished(method_, status.error_code(), absl::Now() - start_);
    }
    return status;
  }

 private:
  RpcObserver* const observer_;
  const absl::string_view method_;
  const absl::Time start_;
};

}  // namespace

TriggerRef ToTriggerRef(const externalscaler::ScaledObjectRef& ref) {
  TriggerRef out;
  out.name = ref.name();
  out.namespace_ = ref.namespace_();
  out.metadata.insert(ref.scalermetadata().begin(), ref.scalermetadata().end());
  return out;
}

ExternalScalerService::ExternalScalerService(Evaluator* evaluator, ServiceOptions options)
    : options_(options), evaluator_(evaluator) {}

void ExternalScalerService::Shutdown() {
  if (!shutdown_.HasBeenNotified()) shutdown_.Notify();
}

grpc::Status ExternalScalerService::GetMetricSpec(grpc::ServerContext*,
                                                  const externalscaler::ScaledObjectRef* ref,
                                                  externalscaler::GetMetricSpecResponse* response) {
  RpcScope rpc(options_.observer, "GetMetricSpec");
  TriggerRef trigger = ToTriggerRef(*ref);
  absl::StatusOr<ParsedTrigger> parsed = evaluator_->Parse(trigger);
  if (!parsed.ok()) {
    LogFailure("GetMetricSpec", trigger, parsed.status());
    return rpc.Done(ToGrpcStatus(parsed.status()));
  }
  externalscaler::MetricSpec* spec = response->add_metricspecs();
  spec->set_metricname(parsed->metric_name);
  // KEDA reads the float field when it is > 0 and the int field otherwise: fill both.
  spec->set_targetsize(parsed->spec->lag_threshold);
  spec->set_targetsizefloat(static_cast<double>(parsed->spec->lag_threshold));
  return rpc.Done(grpc::Status::OK);
}

grpc::Status ExternalScalerService::GetMetrics(grpc::ServerContext*,
                                               const externalscaler::GetMetricsRequest* request,
                                               externalscaler::GetMetricsResponse* response) {
  RpcScope rpc(options_.observer, "GetMetrics");
  TriggerRef trigger = ToTriggerRef(request->scaledobjectref());
  absl::StatusOr<std::shared_ptr<const Evaluation>> evaluation = evaluator_->Evaluate(trigger);
  if (!evaluation.ok()) {
    LogFailure("GetMetrics", trigger, evaluation.status());
    return rpc.Done(ToGrpcStatus(evaluation.status()));
  }
  const Evaluation& e = **evaluation;
  if (!request->metricname().empty() && request->metricname() != e.trigger.metric_name) {
    spdlog::debug("GetMetrics {}/{}: asked for metric {}, this trigger's metric is {}",
                  trigger.namespace_, trigger.name, request->metricname(), e.trigger.metric_name);
  }
  externalscaler::MetricValue* value = response->add_metricvalues();
  value->set_metricname(e.trigger.metric_name);
  value->set_metricvalue(e.report.metric_value);
  value->set_metricvaluefloat(static_cast<double>(e.report.metric_value));
  spdlog::debug("GetMetrics {}/{}: {}={} (lag {}, active {})", trigger.namespace_, trigger.name,
                e.trigger.metric_name, e.report.metric_value, e.report.total_lag_with_persistent,
                e.report.active);
  return rpc.Done(grpc::Status::OK);
}

grpc::Status ExternalScalerService::IsActive(grpc::ServerContext*,
                                             const externalscaler::ScaledObjectRef* ref,
                                             externalscaler::IsActiveResponse* response) {
  RpcScope rpc(options_.observer, "IsActive");
  TriggerRef trigger = ToTriggerRef(*ref);
  absl::StatusOr<std::shared_ptr<const Evaluation>> evaluation = evaluator_->Evaluate(trigger);
  if (!evaluation.ok()) {
    LogFailure("IsActive", trigger, evaluation.status());
    return rpc.Done(ToGrpcStatus(evaluation.status()));
  }
  response->set_result((*evaluation)->report.active);
  return rpc.Done(grpc::Status::OK);
}

grpc::Status ExternalScalerService::StreamIsActive(
    grpc::ServerContext* context, const externalscaler::ScaledObjectRef* ref,
    grpc::ServerWriter<externalscaler::IsActiveResponse>* writer) {
  RpcScope rpc(options_.observer, "StreamIsActive");
  TriggerRef trigger = ToTriggerRef(*ref);
  // Bad metadata never gets better: fail the stream at once.
  if (absl::StatusOr<ParsedTrigger> parsed = evaluator_->Parse(trigger); !parsed.ok()) {
    LogFailure("StreamIsActive", trigger, parsed.status());
    return rpc.Done(ToGrpcStatus(parsed.status()));
  }
  if (options_.observer != nullptr) options_.observer->StreamOpened();
  std::optional<bool> sent;
  while (!context->IsCancelled() && !shutdown_.HasBeenNotified()) {
    absl::StatusOr<std::shared_ptr<const Evaluation>> evaluation = evaluator_->Evaluate(trigger);
    if (!evaluation.ok()) {
      // A transient Kafka error keeps the stream open; KEDA only acts on `true` anyway.
      LogFailure("StreamIsActive", trigger, evaluation.status());
    } else if (bool active = (*evaluation)->report.active; sent != active) {
      externalscaler::IsActiveResponse response;
      response.set_result(active);
      if (!writer->Write(response)) break;  // client went away
      sent = active;
    }
    // Sleep in short slices so a cancelled stream frees its thread promptly.
    const absl::Time wake = absl::Now() + options_.stream_poll_interval;
    while (!context->IsCancelled() && absl::Now() < wake &&
           !shutdown_.WaitForNotificationWithTimeout(
               std::min(absl::Milliseconds(200), wake - absl::Now()))) {
    }
  }
  if (options_.observer != nullptr) options_.observer->StreamClosed();
  return rpc.Done(grpc::Status::OK);
}

}  // namespace klag::scaler
