#include "scaler/service/external_scaler_service.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/thread_name.h"
#include "scaler/service/grpc_status.h"

namespace klag::scaler {
namespace {

void LogFailure(const char* rpc, absl::string_view name, absl::string_view ns,
                const absl::Status& status) {
  // Bad metadata is the user's to fix and comes back to KEDA as INVALID_ARGUMENT; Kafka trouble
  // is ours to see. Names are cut to Kubernetes' limits (longer ones are refused anyway).
  const ScopedLogFields fields({{"namespace", ns.substr(0, kMaxNamespaceBytes)},
                                {"scaledjob", name.substr(0, kMaxNameBytes)}});
  if (status.code() == absl::StatusCode::kInvalidArgument) {
    spdlog::info("{}: {}", rpc, status.ToString());
  } else {
    spdlog::warn("{}: {}", rpc, status.ToString());
  }
}

void LogFailure(const char* rpc, const TriggerRef& ref, const absl::Status& status) {
  LogFailure(rpc, ref.name, ref.namespace_, status);
}

void LogFailure(const char* rpc, const externalscaler::ScaledObjectRef& ref,
                const absl::Status& status) {
  LogFailure(rpc, ref.name(), ref.namespace_(), status);
}

// Reports one RPC's code and latency to the observer (if any), then finishes it. The call may be
// gone as soon as this returns.
template <typename Call>
void FinishRpc(RpcObserver* observer, absl::string_view method, Call* call, grpc::Status status) {
  if (observer != nullptr) {
    observer->RpcFinished(method, status.error_code(), absl::Now() - call->start());
  }
  call->Finish(status);
}

}  // namespace

// One StreamIsActive call, from its request on a queue until gRPC is done with it. Owned by
// itself (self_) while gRPC holds one of its tags, and shared with the evaluation in flight and
// the timer while they use it. At most one operation (the request, a write or the finish) is
// outstanding; the done tag comes once the call is over (finished, cancelled or broken). Steps
// run under mu_: starting an operation on a completion queue never runs a tag inline.
class ExternalScalerService::IsActiveStream : public std::enable_shared_from_this<IsActiveStream> {
 public:
  IsActiveStream(ExternalScalerService* service, grpc::ServerCompletionQueue* cq)
      : service_(service), cq_(cq), rpc_(std::make_unique<Rpc>()) {}

  static void Post(ExternalScalerService* service, grpc::ServerCompletionQueue* cq) {
    auto stream = std::make_shared<IsActiveStream>(service, cq);
    stream->self_ = stream;
    Rpc& rpc = *stream->rpc_;
    rpc.context.AsyncNotifyWhenDone(&stream->done_tag_);
    service->async_.RequestStreamIsActive(&rpc.context, &rpc.request, &rpc.writer, cq, cq,
                                          &stream->op_tag_);
  }

  // Starts an evaluation unless one is running or the stream is finishing.
  void Poll() {
    {
      absl::MutexLock lock(&mu_);
      if (finish_called_ || finish_pending_ || evaluating_) return;
      evaluating_ = true;
    }
    service_->evaluator_->EvaluateAsync(
        trigger_,
        [self = shared_from_this()](absl::StatusOr<std::shared_ptr<const Evaluation>> evaluation) {
          self->OnEvaluated(std::move(evaluation));
        });
  }

  // Finishes with OK now, or when the write in flight completes.
  void RequestFinish() {
    absl::MutexLock lock(&mu_);
    if (finish_called_) return;
    if (op_ == Op::kWrite) {
      finish_pending_ = true;
      return;
    }
    FinishLocked(grpc::Status::OK);
  }

 private:
  enum class Op { kNone, kRequest, kWrite, kFinish };

  // What gRPC reads and writes; released as soon as the call is over, so that an evaluation
  // still holding the stream holds no gRPC call.
  struct Rpc {
    Rpc() : writer(&context) {}
    grpc::ServerContext context;
    externalscaler::ScaledObjectRef request;
    externalscaler::IsActiveResponse response;
    grpc::ServerAsyncWriter<externalscaler::IsActiveResponse> writer;
  };

  struct Tag final : QueueTag {
    Tag(IsActiveStream* stream, bool done) : stream(stream), done(done) {}
    void Proceed(bool ok) override {
      if (done) {
        stream->OnDone();
      } else {
        stream->OnOperation(ok);
      }
    }
    IsActiveStream* const stream;
    const bool done;
  };

  void OnOperation(bool ok) {
    Op op;
    {
      absl::MutexLock lock(&mu_);
      op = op_;
      op_ = Op::kNone;
      if (op == Op::kWrite) OnWriteDoneLocked(ok);
    }
    if (op == Op::kRequest) {
      if (!ok) {  // never matched (shutting down): no done tag will come
        self_.reset();
        return;
      }
      OnMatched();
    }
    MaybeRelease();
  }

  // On the queue's thread, right after the call arrived: fails the stream on bad metadata, else
  // registers it with the timer and starts the first evaluation.
  void OnMatched() {
    service_->live_.Add();
    matched_ = true;
    start_ = absl::Now();
    Post(service_, cq_);
    trigger_ = ToTriggerRef(rpc_->request);
    rpc_->request.Clear();  // the metadata may hold secrets: one copy is enough
    // Names and then the bound first: a refused stream keeps no state.
    absl::Status s = CheckRefNames(trigger_);
    if (s.ok()) s = service_->ReserveStream(trigger_.namespace_);
    if (!s.ok()) {
      LogFailure("StreamIsActive", trigger_, s);
      Finish(ToGrpcStatus(s));
      return;
    }
    reserved_ = true;
    if (absl::StatusOr<ParsedTrigger> parsed = service_->evaluator_->ParseCached(trigger_);
        !parsed.ok()) {
      // Bad metadata never gets better: fail the stream at once.
      LogFailure("StreamIsActive", trigger_, parsed.status());
      Finish(ToGrpcStatus(parsed.status()));
      return;
    }
    opened_ = true;
    if (service_->options_.observer != nullptr) service_->options_.observer->StreamOpened();
    registered_ = service_->Register(self_, &id_);
    if (!registered_) {
      RequestFinish();  // shutting down
      return;
    }
    Poll();
  }

  void OnWriteDoneLocked(bool ok) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!ok || finish_pending_) {
      // The client went away (the done tag follows), or Shutdown waited for this write.
      FinishLocked(grpc::Status::OK);
    } else if (pending_.has_value() && pending_ != sent_) {
      WriteLocked(*pending_);
    }
    pending_.reset();
  }

  void OnDone() {
    {
      absl::MutexLock lock(&mu_);
      done_ = true;
      // Over without a finish: cancelled by the client (KEDA ends the streams it no longer
      // needs: their normal end, counted OK in klag_scaler_rpcs_total) or by the shutdown's
      // deadline. No more operations either way.
      finish_called_ = true;
    }
    MaybeRelease();
  }

  // Once the call is over and nothing is outstanding: frees the gRPC call, the stream slot and
  // the timer entry, and lets go of itself.
  void MaybeRelease() {
    grpc::StatusCode code;
    {
      absl::MutexLock lock(&mu_);
      if (!done_ || op_ != Op::kNone || released_) return;
      released_ = true;
      code = code_;
      rpc_.reset();
    }
    if (registered_) service_->Unregister(id_);
    if (reserved_) service_->ReleaseStream(trigger_.namespace_);
    RpcObserver* const observer = service_->options_.observer;
    if (observer != nullptr) {
      if (opened_) observer->StreamClosed();
      observer->RpcFinished("StreamIsActive", code, absl::Now() - start_);
    }
    LiveCalls* const live = &service_->live_;
    self_.reset();  // may delete this
    live->Release();
  }

  void OnEvaluated(absl::StatusOr<std::shared_ptr<const Evaluation>> evaluation) {
    {
      absl::MutexLock lock(&mu_);
      evaluating_ = false;
      // Finished: the service may be gone already (this may run when the Evaluator is destroyed).
      if (finish_called_ || finish_pending_) return;
      if (evaluation.ok()) {
        const bool active = (*evaluation)->report.active;
        if (op_ == Op::kWrite) {
          pending_ = active;  // compared with what was sent when the write completes
        } else if (sent_ != active) {
          WriteLocked(active);
        }
      }
    }
    // A transient Kafka error keeps the stream open; KEDA only acts on `true` anyway.
    if (!evaluation.ok()) LogFailure("StreamIsActive", trigger_, evaluation.status());
  }

  void WriteLocked(bool active) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    sent_ = active;
    rpc_->response.set_result(active);
    op_ = Op::kWrite;
    rpc_->writer.Write(rpc_->response, &op_tag_);
  }

  void Finish(grpc::Status status) {
    absl::MutexLock lock(&mu_);
    FinishLocked(std::move(status));
  }

  void FinishLocked(grpc::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finish_called_) return;
    finish_called_ = true;
    code_ = status.error_code();
    op_ = Op::kFinish;
    rpc_->writer.Finish(status, &op_tag_);
  }

  ExternalScalerService* const service_;
  grpc::ServerCompletionQueue* const cq_;
  Tag op_tag_{this, false};
  Tag done_tag_{this, true};
  std::shared_ptr<IsActiveStream> self_;
  // Set on the queue's thread when the call arrives, before any other thread sees the stream.
  TriggerRef trigger_;
  absl::Time start_;
  bool matched_ = false;
  bool reserved_ = false;  // holds a stream slot
  bool opened_ = false;
  bool registered_ = false;  // with the timer, under id_
  uint64_t id_ = 0;

  absl::Mutex mu_;
  std::unique_ptr<Rpc> rpc_ ABSL_GUARDED_BY(mu_);
  Op op_ ABSL_GUARDED_BY(mu_) = Op::kRequest;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  bool released_ ABSL_GUARDED_BY(mu_) = false;
  bool finish_called_ ABSL_GUARDED_BY(mu_) = false;
  bool finish_pending_ ABSL_GUARDED_BY(mu_) = false;
  bool evaluating_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<bool> sent_ ABSL_GUARDED_BY(mu_);     // the last value written (or being written)
  std::optional<bool> pending_ ABSL_GUARDED_BY(mu_);  // seen while writing
  grpc::StatusCode code_ ABSL_GUARDED_BY(mu_) = grpc::StatusCode::OK;
};

// StreamMetricSpec: answered UNIMPLEMENTED (KEDA's proto has it; KEDA never calls it). A method of
// the async service that nobody requested would leave its callers waiting forever.
class ExternalScalerService::UnimplementedStream final : public QueueTag {
 public:
  static void Post(ExternalScalerService* service, grpc::ServerCompletionQueue* cq) {
    auto* call = new UnimplementedStream(service, cq);
    service->async_.RequestStreamMetricSpec(&call->context_, &call->request_, &call->writer_, cq,
                                            cq, call);
  }

  void Proceed(bool ok) override {
    if (!matched_ && ok) {
      matched_ = true;
      service_->live_.Add();
      Post(service_, cq_);
      writer_.Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                                  "StreamMetricSpec is not implemented; KEDA uses GetMetricSpec"),
                     this);
      return;
    }
    LiveCalls* live = matched_ ? &service_->live_ : nullptr;
    delete this;
    if (live != nullptr) live->Release();
  }

 private:
  UnimplementedStream(ExternalScalerService* service, grpc::ServerCompletionQueue* cq)
      : service_(service), cq_(cq), writer_(&context_) {}

  ExternalScalerService* const service_;
  grpc::ServerCompletionQueue* const cq_;
  grpc::ServerContext context_;
  externalscaler::ScaledObjectRef request_;
  grpc::ServerAsyncWriter<externalscaler::GetMetricSpecResponse> writer_;
  bool matched_ = false;
};

TriggerRef ToTriggerRef(const externalscaler::ScaledObjectRef& ref) {
  TriggerRef out;
  out.name = ref.name();
  out.namespace_ = ref.namespace_();
  out.metadata.insert(ref.scalermetadata().begin(), ref.scalermetadata().end());
  return out;
}

TriggerView ToTriggerView(const externalscaler::ScaledObjectRef& ref) {
  TriggerView out{.name = ref.name(), .namespace_ = ref.namespace_()};
  out.metadata.reserve(ref.scalermetadata().size());
  for (const auto& [key, value] : ref.scalermetadata()) out.metadata.emplace_back(key, value);
  // A protobuf map iterates in no set order; its keys are distinct.
  std::sort(out.metadata.begin(), out.metadata.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  return out;
}

ExternalScalerService::ExternalScalerService(Evaluator* evaluator, ServiceOptions options)
    : options_(options),
      evaluator_(evaluator),
      spec_method_{&async_, &AsyncService::RequestGetMetricSpec,
                   [this](SpecCall* call) { GetMetricSpec(call); }, &live_},
      metrics_method_{&async_, &AsyncService::RequestGetMetrics,
                      [this](MetricsCall* call) { GetMetrics(call); }, &live_},
      is_active_method_{&async_, &AsyncService::RequestIsActive,
                        [this](IsActiveCall* call) { IsActive(call); }, &live_},
      timer_([this] {
        NameThisThread("klag-streams");
        TimerLoop();
      }) {}

void ExternalScalerService::Serve(grpc::ServerCompletionQueue* cq) {
  // A few requests of each unary method outstanding per queue, so that a burst of calls finds
  // one posted (a call that finds none waits in gRPC until the next is posted).
  for (int i = 0; i < 8; ++i) {
    SpecCall::Post(&spec_method_, cq);
    MetricsCall::Post(&metrics_method_, cq);
    IsActiveCall::Post(&is_active_method_, cq);
  }
  for (int i = 0; i < 2; ++i) {
    IsActiveStream::Post(this, cq);
    UnimplementedStream::Post(this, cq);
  }
}

ExternalScalerService::~ExternalScalerService() {
  Shutdown();
  if (timer_.joinable()) timer_.join();
}

void ExternalScalerService::Shutdown() {
  std::vector<std::shared_ptr<IsActiveStream>> open;
  {
    absl::MutexLock lock(&mu_);
    shutting_down_ = true;
    for (const auto& [id, weak] : streams_) {
      if (std::shared_ptr<IsActiveStream> stream = weak.lock()) open.push_back(std::move(stream));
    }
  }
  for (const std::shared_ptr<IsActiveStream>& stream : open) stream->RequestFinish();
}

int ExternalScalerService::open_streams() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(streams_.size());
}

absl::Status ExternalScalerService::ReserveStream(const std::string& ns) {
  absl::MutexLock lock(&mu_);
  if (reserved_streams_ >= options_.max_streams) {
    return absl::ResourceExhaustedError(
        absl::StrCat("klag-scaler has ", reserved_streams_,
                     " open StreamIsActive streams (--max-streams=", options_.max_streams, ")"));
  }
  int64_t& in_namespace = namespace_streams_[ns];
  if (in_namespace >= options_.max_streams_per_namespace) {
    return absl::ResourceExhaustedError(
        absl::StrCat("namespace ", ForMessage(ns), " has ", in_namespace,
                     " open StreamIsActive streams (--max-streams-per-namespace=",
                     options_.max_streams_per_namespace, ")"));
  }
  ++in_namespace;
  ++reserved_streams_;
  return absl::OkStatus();
}

void ExternalScalerService::ReleaseStream(const std::string& ns) {
  absl::MutexLock lock(&mu_);
  --reserved_streams_;
  if (auto it = namespace_streams_.find(ns); it != namespace_streams_.end() && --it->second == 0) {
    namespace_streams_.erase(it);
  }
}

bool ExternalScalerService::Register(const std::shared_ptr<IsActiveStream>& stream, uint64_t* id) {
  absl::MutexLock lock(&mu_);
  if (shutting_down_) return false;
  *id = next_id_++;
  streams_.emplace(*id, stream);
  schedule_.emplace(absl::Now() + options_.stream_poll_interval, *id);
  return true;
}

void ExternalScalerService::Unregister(uint64_t id) {
  absl::MutexLock lock(&mu_);
  streams_.erase(id);
}

void ExternalScalerService::TimerLoop() {
  std::vector<std::shared_ptr<IsActiveStream>> due;
  mu_.Lock();
  while (!shutting_down_) {
    const absl::Time now = absl::Now();
    while (!schedule_.empty() && schedule_.top().first <= now) {
      const uint64_t id = schedule_.top().second;
      schedule_.pop();
      auto it = streams_.find(id);
      if (it == streams_.end()) continue;  // closed
      if (std::shared_ptr<IsActiveStream> stream = it->second.lock()) {
        due.push_back(std::move(stream));
        schedule_.emplace(now + options_.stream_poll_interval, id);
      }
    }
    if (!due.empty()) {
      mu_.Unlock();
      // EvaluateAsync never blocks: a blackholed cluster's streams only queue work.
      for (const std::shared_ptr<IsActiveStream>& stream : due) stream->Poll();
      due.clear();
      mu_.Lock();
      continue;
    }
    const absl::Time wake = schedule_.empty() ? absl::InfiniteFuture() : schedule_.top().first;
    const uint64_t seen = next_id_;
    auto changed = [this, seen]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return shutting_down_ || next_id_ != seen;
    };
    mu_.AwaitWithDeadline(absl::Condition(&changed), wake);
  }
  mu_.Unlock();
}

void ExternalScalerService::GetMetricSpec(SpecCall* call) {
  absl::StatusOr<ParsedTrigger> parsed = evaluator_->ParseCached(ToTriggerView(call->request()));
  if (!parsed.ok()) {
    LogFailure("GetMetricSpec", call->request(), parsed.status());
    FinishRpc(options_.observer, "GetMetricSpec", call, ToGrpcStatus(parsed.status()));
    return;
  }
  externalscaler::MetricSpec* spec = call->response()->add_metricspecs();
  spec->set_metricname(parsed->metric_name);
  // KEDA reads the float field when it is > 0 and the int field otherwise: fill both.
  spec->set_targetsize(parsed->spec->lag_threshold);
  spec->set_targetsizefloat(static_cast<double>(parsed->spec->lag_threshold));
  FinishRpc(options_.observer, "GetMetricSpec", call, grpc::Status::OK);
}

void ExternalScalerService::GetMetrics(MetricsCall* call) {
  // `call`, and the request the view borrows from, stay valid until the call is finished.
  evaluator_->EvaluateAsync(
      ToTriggerView(call->request().scaledobjectref()),
      [this, call](absl::StatusOr<std::shared_ptr<const Evaluation>> evaluation) {
        if (!evaluation.ok()) {
          LogFailure("GetMetrics", call->request().scaledobjectref(), evaluation.status());
          FinishRpc(options_.observer, "GetMetrics", call, ToGrpcStatus(evaluation.status()));
          return;
        }
        const Evaluation& e = **evaluation;
        externalscaler::MetricValue* value = call->response()->add_metricvalues();
        value->set_metricname(e.trigger.metric_name);
        value->set_metricvalue(e.report.metric_value);
        value->set_metricvaluefloat(static_cast<double>(e.report.metric_value));
        // The fields are copies: made only when the lines will be written (not per poll).
        if (spdlog::should_log(spdlog::level::debug)) {
          const externalscaler::ScaledObjectRef& ref = call->request().scaledobjectref();
          const ScopedLogFields fields({{"namespace", ref.namespace_()},
                                        {"scaledjob", ref.name()},
                                        {"metric", e.trigger.metric_name}});
          const std::string& asked = call->request().metricname();
          if (!asked.empty() && asked != e.trigger.metric_name) {
            spdlog::debug("GetMetrics: asked for metric {}, not this trigger's", asked);
          }
          spdlog::debug("GetMetrics: value {} (lag {}, active {})", e.report.metric_value,
                        e.report.total_lag_with_persistent, e.report.active);
        }
        FinishRpc(options_.observer, "GetMetrics", call, grpc::Status::OK);
      });
}

void ExternalScalerService::IsActive(IsActiveCall* call) {
  evaluator_->EvaluateAsync(
      ToTriggerView(call->request()),
      [this, call](absl::StatusOr<std::shared_ptr<const Evaluation>> evaluation) {
        if (!evaluation.ok()) {
          LogFailure("IsActive", call->request(), evaluation.status());
          FinishRpc(options_.observer, "IsActive", call, ToGrpcStatus(evaluation.status()));
          return;
        }
        call->response()->set_result((*evaluation)->report.active);
        FinishRpc(options_.observer, "IsActive", call, grpc::Status::OK);
      });
}

}  // namespace klag::scaler
