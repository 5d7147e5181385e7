#include "scaler/service/completion_queue.h"

#include <spdlog/spdlog.h>

#include "absl/time/time.h"

namespace klag::scaler {

void LiveCalls::Add() {
  absl::MutexLock lock(&mu_);
  ++count_;
}

void LiveCalls::Release() {
  absl::MutexLock lock(&mu_);
  --count_;
}

void LiveCalls::WaitForNone() const {
  absl::MutexLock lock(&mu_);
  auto none = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return count_ == 0; };
  // Every call ends: evaluations are bounded by --kafka-timeout, writes by the cancellation that
  // grpc::Server::Shutdown sends at its deadline.
  while (!mu_.AwaitWithTimeout(absl::Condition(&none), absl::Seconds(10))) {
    spdlog::info("shutting down: waiting for {} calls to end", count_);
  }
}

void RunQueue(grpc::ServerCompletionQueue* cq) {
  void* tag = nullptr;
  bool ok = false;
  while (cq->Next(&tag, &ok)) static_cast<QueueTag*>(tag)->Proceed(ok);
}

}  // namespace klag::scaler
