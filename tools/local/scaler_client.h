// One poll of one ScaledJob trigger, made exactly as KEDA makes it against an external scaler:
// GetMetricSpec(ref), then for each returned MetricSpec GetMetrics({ref, metricName}) followed
// immediately by IsActive(ref). On an error in either of the pair, KEDA rebuilds the scaler and
// repeats the pair once; so does this client.
//
//   auto client = GrpcScalerClient::Create("127.0.0.1:6000", absl::Seconds(30));
//   absl::StatusOr<TriggerPoll> p = (*client)->Poll(ScalerRef{...});
//   p->sample.queue_length;   // summed metric values
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tools/local/scaled_job.h"
#include "tools/local/scaling.h"

namespace klag::local {

// What KEDA sends as ScaledObjectRef.
struct ScalerRef {
  std::string name;
  std::string namespace_;
  StringMap metadata;  // scalerMetadata, FromEnv keys resolved
};

struct TriggerPoll {
  TriggerSample sample;
  std::vector<std::string> metric_names;  // from GetMetricSpec
};

// The calls of a poll, behind an interface so the loop is testable without a server.
class ScalerClient {
 public:
  virtual ~ScalerClient() = default;
  // Errors: the gRPC status of the failing call (as absl::Status, same code); kNotFound when
  // GetMetricSpec returned no spec (KEDA then ignores the trigger silently).
  virtual absl::StatusOr<TriggerPoll> Poll(const ScalerRef& ref) = 0;
};

// Over a real gRPC channel (plaintext; KEDA's TLS parameters are out of scope locally).
class GrpcScalerClient : public ScalerClient {
 public:
  // `address` is host:port. `rpc_timeout` bounds each call (KEDA sets none for ScaledJobs; a
  // local tool should not hang forever). Errors: kInvalidArgument for an empty address.
  static absl::StatusOr<std::unique_ptr<GrpcScalerClient>> Create(const std::string& address,
                                                                  absl::Duration rpc_timeout);
  ~GrpcScalerClient() override;

  absl::StatusOr<TriggerPoll> Poll(const ScalerRef& ref) override;

 private:
  struct Impl;
  explicit GrpcScalerClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace klag::local
