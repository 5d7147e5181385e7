#include "scaler/service/health_service.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"

namespace klag::scaler {

using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

// One Watch stream. At most one operation (the request, a write or the finish) is outstanding;
// the done tag comes once the call is over. Every step runs under the service's mutex, which is
// safe with completion queues (starting an operation never runs a tag inline), and the call is
// deleted under it once it is over and nothing is outstanding.
class HealthService::WatchCall {
 public:
  static void Post(HealthService* health, grpc::ServerCompletionQueue* cq) {
    auto* call = new WatchCall(health, cq);
    call->context_.AsyncNotifyWhenDone(&call->done_tag_);
    health->async_.RequestWatch(&call->context_, &call->request_, &call->writer_, cq, cq,
                                &call->op_tag_);
  }

  // Writes the service's status if it changed, or finishes once asked to and idle.
  void PumpLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(health_->mu_) {
    if (op_ != Op::kNone || done_ || finished_) return;
    if (finish_) {
      op_ = Op::kFinish;
      finished_ = true;
      writer_.Finish(finish_status_, &op_tag_);
      return;
    }
    const Status now = health_->StatusLocked(request_.service());
    if (sent_ == now) return;
    sent_ = now;
    response_.set_status(now);
    op_ = Op::kWrite;
    writer_.Write(response_, &op_tag_);
  }

  void FinishLocked(grpc::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(health_->mu_) {
    if (finish_) return;
    finish_ = true;
    finish_status_ = std::move(status);
    PumpLocked();
  }

 private:
  enum class Op { kNone, kRequest, kWrite, kFinish };

  struct Tag final : QueueTag {
    Tag(WatchCall* call, bool done) : call(call), done(done) {}
    void Proceed(bool ok) override { call->Proceed(done, ok); }
    WatchCall* const call;
    const bool done;
  };

  WatchCall(HealthService* health, grpc::ServerCompletionQueue* cq)
      : health_(health), cq_(cq), writer_(&context_) {}

  void Proceed(bool done, bool ok) {
    HealthService* const health = health_;
    absl::MutexLock lock(&health->mu_);
    if (done) {
      done_ = true;
    } else {
      const Op op = op_;
      op_ = Op::kNone;
      if (op == Op::kRequest) {
        if (!ok) {  // never matched: no done tag will come
          delete this;
          return;
        }
        Matched();
      } else if (op == Op::kWrite && !ok) {
        finished_ = true;  // the client went away: the done tag follows
      }
      PumpLocked();
    }
    if (done_ && op_ == Op::kNone) {
      const bool matched = matched_;
      if (matched) health->watches_.erase(this);
      delete this;
      if (matched) health->live_.Release();
    }
  }

  void Matched() ABSL_EXCLUSIVE_LOCKS_REQUIRED(health_->mu_) {
    matched_ = true;
    health_->live_.Add();
    Post(health_, cq_);
    if (health_->shutting_down_) {
      finish_ = true;  // ends at once, with OK
    } else if (static_cast<int64_t>(health_->watches_.size()) >= health_->max_watches_) {
      FinishLocked(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                absl::StrCat("klag-scaler serves at most ", health_->max_watches_,
                                             " health Watch streams")));
    }
    health_->watches_.insert(this);
  }

  HealthService* const health_;
  grpc::ServerCompletionQueue* const cq_;
  Tag op_tag_{this, false};
  Tag done_tag_{this, true};
  grpc::ServerContext context_;
  HealthCheckRequest request_;
  HealthCheckResponse response_;
  grpc::ServerAsyncWriter<HealthCheckResponse> writer_;
  Op op_ = Op::kRequest;
  bool matched_ = false;
  bool done_ = false;      // the call is over
  bool finish_ = false;    // to be finished with finish_status_ once idle
  bool finished_ = false;  // finish started, or the client is gone: nothing more is written
  grpc::Status finish_status_;
  std::optional<Status> sent_;
};

HealthService::HealthService(std::vector<std::string> services, int64_t max_watches)
    : services_(std::move(services)),
      max_watches_(max_watches),
      check_method_{&async_, &grpc::health::v1::Health::AsyncService::RequestCheck,
                    [this](CheckCall* call) { Check(call); }, &live_} {}

HealthService::~HealthService() = default;

void HealthService::Serve(grpc::ServerCompletionQueue* cq) {
  for (int i = 0; i < 2; ++i) {
    CheckCall::Post(&check_method_, cq);
    WatchCall::Post(this, cq);
  }
}

void HealthService::SetServing(bool serving) {
  absl::MutexLock lock(&mu_);
  serving_ = serving;
  for (WatchCall* watch : watches_) watch->PumpLocked();
}

void HealthService::Shutdown() {
  absl::MutexLock lock(&mu_);
  shutting_down_ = true;
  for (WatchCall* watch : watches_) watch->FinishLocked(grpc::Status::OK);
}

int HealthService::open_watches() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(watches_.size());
}

HealthService::Status HealthService::StatusLocked(const std::string& service) const {
  if (!service.empty() &&
      std::find(services_.begin(), services_.end(), service) == services_.end()) {
    return HealthCheckResponse::SERVICE_UNKNOWN;
  }
  return serving_ ? HealthCheckResponse::SERVING : HealthCheckResponse::NOT_SERVING;
}

void HealthService::Check(CheckCall* call) {
  Status status;
  {
    absl::MutexLock lock(&mu_);
    status = StatusLocked(call->request().service());
  }
  if (status == HealthCheckResponse::SERVICE_UNKNOWN) {
    // Names are the caller's; only their length is repeated.
    call->Finish(grpc::Status(
        grpc::StatusCode::NOT_FOUND,
        absl::StrCat("unknown service name (", call->request().service().size(), " bytes)")));
    return;
  }
  call->response()->set_status(status);
  call->Finish(grpc::Status::OK);
}

}  // namespace klag::scaler
