#include "tools/local/scaler_client.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cmath>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "proto/externalscaler.grpc.pb.h"

namespace klag::local {
namespace {

absl::Status ToAbsl(const grpc::Status& s, absl::string_view rpc) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      absl::StrCat(rpc, ": ", s.error_message()));
}

// KEDA: the float field wins when > 0; values are rounded to 3 decimals; negative, NaN and Inf
// become 0.
double Value(double float_value, int64_t int_value) {
  double v = float_value > 0 ? float_value : static_cast<double>(int_value);
  if (!std::isfinite(v) || v < 0) return 0;
  return std::round(v * 1000) / 1000;
}

}  // namespace

struct GrpcScalerClient::Impl {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<externalscaler::ExternalScaler::Stub> stub;
  absl::Duration rpc_timeout;

  void Prepare(grpc::ClientContext* ctx) const {
    ctx->set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(rpc_timeout));
  }
};

GrpcScalerClient::GrpcScalerClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
GrpcScalerClient::~GrpcScalerClient() = default;

absl::StatusOr<std::unique_ptr<GrpcScalerClient>> GrpcScalerClient::Create(
    const std::string& address, absl::Duration rpc_timeout) {
  if (address.empty()) return absl::InvalidArgumentError("scaler address is empty");
  auto impl = std::make_unique<Impl>();
  impl->channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  impl->stub = externalscaler::ExternalScaler::NewStub(impl->channel);
  impl->rpc_timeout = rpc_timeout;
  return std::unique_ptr<GrpcScalerClient>(new GrpcScalerClient(std::move(impl)));
}

absl::StatusOr<TriggerPoll> GrpcScalerClient::Poll(const ScalerRef& ref) {
  externalscaler::ScaledObjectRef wire;
  wire.set_name(ref.name);
  wire.set_namespace_(ref.namespace_);
  for (const auto& [k, v] : ref.metadata) (*wire.mutable_scalermetadata())[k] = v;

  externalscaler::GetMetricSpecResponse specs;
  {
    grpc::ClientContext ctx;
    impl_->Prepare(&ctx);
    if (absl::Status s = ToAbsl(impl_->stub->GetMetricSpec(&ctx, wire, &specs), "GetMetricSpec");
        !s.ok()) {
      return s;
    }
  }
  if (specs.metricspecs_size() == 0) {
    return absl::NotFoundError("GetMetricSpec returned no MetricSpec: KEDA ignores the trigger");
  }

  TriggerPoll poll;
  double target_sum = 0;
  for (const externalscaler::MetricSpec& spec : specs.metricspecs()) {
    target_sum += Value(spec.targetsizefloat(), spec.targetsize());
    poll.metric_names.push_back(spec.metricname());

    // GetMetrics, then IsActive; on an error in either, the pair once more.
    absl::Status last;
    bool done = false;
    for (int attempt = 0; attempt < 2 && !done; ++attempt) {
      externalscaler::GetMetricsRequest request;
      *request.mutable_scaledobjectref() = wire;
      request.set_metricname(spec.metricname());
      externalscaler::GetMetricsResponse metrics;
      grpc::ClientContext metrics_ctx;
      impl_->Prepare(&metrics_ctx);
      last = ToAbsl(impl_->stub->GetMetrics(&metrics_ctx, request, &metrics), "GetMetrics");
      if (!last.ok()) continue;
      externalscaler::IsActiveResponse active;
      grpc::ClientContext active_ctx;
      impl_->Prepare(&active_ctx);
      last = ToAbsl(impl_->stub->IsActive(&active_ctx, wire, &active), "IsActive");
      if (!last.ok()) continue;
      for (const externalscaler::MetricValue& m : metrics.metricvalues()) {
        poll.sample.queue_length += Value(m.metricvaluefloat(), m.metricvalue());
      }
      poll.sample.active = poll.sample.active || active.result();
      done = true;
    }
    if (!done) return last;
  }
  poll.sample.target = target_sum / specs.metricspecs_size();
  return poll;
}

}  // namespace klag::local
