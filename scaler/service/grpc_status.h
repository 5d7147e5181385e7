// absl::Status -> grpc::Status, in one place. The canonical codes are the same numbers in both.
//
//   return ToGrpcStatus(evaluation.status());
#pragma once

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace klag::scaler {

// Same code, same message. OK maps to grpc::Status::OK.
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace klag::scaler
