#include "scaler/service/external_scaler_service.h"

#include <spdlog/spdlog.h>

#include <optional>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "scaler/service/grpc_status.h"

namespace klag::scaler {
namespace {

void LogFailure(const char* rpc, const TriggerRef& ref, const absl::Status& status) {
  // Bad metadata is the user's to fix and comes back to KEDA as INVALID_ARGUMENT; Kafka trouble
  // is ours to see. Names are cut to Kubernetes' limits (longer ones are refused anyway).
  const absl::string_view ns = absl::string_view(ref.namespace_).substr(0, kMaxNamespaceBytes);
  const absl::string_view name = absl::string_view(ref.name).substr(0, kMaxNameBytes);
  const ScopedLogFields fields({{"namespace", ns}, {"scaledjob", name}});
  if (status.code() == absl::StatusCode::kInvalidArgument) {
    spdlog::info("{}: {}", rpc, status.ToString());
  } else {
    spdlog::warn("{}: {}", rpc, status.ToString());
  }
}

// Who asked, for logs: the reference without its metadata (which may hold secrets and is not
// needed once the evaluation has started).
TriggerRef Who(const TriggerRef& ref) {
  // Cut for the logs: a request refused for over-long names is still logged (CheckRefNames).
  return TriggerRef{.name = ref.name.substr(0, kMaxNameBytes),
                    .namespace_ = ref.namespace_.substr(0, kMaxNamespaceBytes)};
}

// Reports one RPC's code and latency to the observer (if any), then finishes it.
void FinishRpc(RpcObserver* observer, absl::string_view method, absl::Time start,
               grpc::ServerUnaryReactor* reactor, grpc::Status status) {
  if (observer != nullptr) observer->RpcFinished(method, status.error_code(), absl::Now() - start);
  reactor->Finish(std::move(status));
}

}  // namespace

// One open StreamIsActive. Owned by itself (self_) from creation until OnDone, and shared with
// the evaluation in flight and the timer while they use it; gRPC's calls (StartWrite, Finish)
// are never made under mu_, as gRPC may run a reaction inline.
class ExternalScalerService::IsActiveStream
    : public grpc::ServerWriteReactor<externalscaler::IsActiveResponse>,
      public std::enable_shared_from_this<IsActiveStream> {
 public:
  IsActiveStream(ExternalScalerService* service, TriggerRef trigger)
      : service_(service), trigger_(std::move(trigger)), start_(absl::Now()) {}

  // On the handler's thread, right after construction: fails the stream on bad metadata, else
  // registers it with the timer and starts the first evaluation.
  void Start() {
    self_ = shared_from_this();
    // Names and then the bound first: a refused stream keeps no state.
    absl::Status s = CheckRefNames(trigger_);
    if (s.ok()) s = service_->ReserveStream(trigger_.namespace_);
    if (!s.ok()) {
      LogFailure("StreamIsActive", trigger_, s);
      FinishOnce(ToGrpcStatus(s));
      return;
    }
    reserved_ = true;
    if (absl::StatusOr<ParsedTrigger> parsed = service_->evaluator_->ParseCached(trigger_);
        !parsed.ok()) {
      // Bad metadata never gets better: fail the stream at once.
      LogFailure("StreamIsActive", trigger_, parsed.status());
      FinishOnce(ToGrpcStatus(parsed.status()));
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
    {
      absl::MutexLock lock(&mu_);
      if (finish_called_) return;
      if (writing_) {
        finish_pending_ = true;
        return;
      }
    }
    FinishOnce(grpc::Status::OK);
  }

  void OnWriteDone(bool ok) override {
    bool write = false;
    bool finish = false;
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      if (!ok || finish_pending_) {
        finish = true;  // the client went away, or Shutdown waited for this write
      } else if (pending_.has_value() && pending_ != sent_) {
        sent_ = pending_;
        response_.set_result(*sent_);
        writing_ = true;
        write = true;
      }
      pending_.reset();
    }
    if (write) StartWrite(&response_);
    if (finish) FinishOnce(grpc::Status::OK);
  }

  void OnCancel() override { RequestFinish(); }

  void OnDone() override {
    std::shared_ptr<IsActiveStream> keep = std::move(self_);  // deleted when this returns
    if (registered_) service_->Unregister(id_);
    if (reserved_) service_->ReleaseStream(trigger_.namespace_);
    if (opened_) {
      if (service_->options_.observer != nullptr) service_->options_.observer->StreamClosed();
    }
    if (service_->options_.observer != nullptr) {
      grpc::StatusCode code;
      {
        absl::MutexLock lock(&mu_);
        code = code_;
      }
      service_->options_.observer->RpcFinished("StreamIsActive", code, absl::Now() - start_);
    }
  }

 private:
  void OnEvaluated(absl::StatusOr<std::shared_ptr<const Evaluation>> evaluation) {
    bool write = false;
    {
      absl::MutexLock lock(&mu_);
      evaluating_ = false;
      // Finished: the service may be gone already (this may run when the Evaluator is destroyed).
      if (finish_called_ || finish_pending_) return;
      if (evaluation.ok()) {
        const bool active = (*evaluation)->report.active;
        if (writing_) {
          pending_ = active;  // compared with what was sent when the write completes
        } else if (sent_ != active) {
          sent_ = active;
          response_.set_result(active);
          writing_ = true;
          write = true;
        }
      }
    }
    // A transient Kafka error keeps the stream open; KEDA only acts on `true` anyway.
    if (!evaluation.ok()) LogFailure("StreamIsActive", trigger_, evaluation.status());
    if (write) StartWrite(&response_);
  }

  void FinishOnce(grpc::Status status) {
    {
      absl::MutexLock lock(&mu_);
      if (finish_called_) return;
      finish_called_ = true;
      code_ = status.error_code();
    }
    Finish(std::move(status));
  }

  ExternalScalerService* const service_;
  const TriggerRef trigger_;
  const absl::Time start_;
  std::shared_ptr<IsActiveStream> self_;
  // Set in Start, before any other thread sees the stream.
  bool reserved_ = false;  // holds a stream slot
  bool opened_ = false;
  bool registered_ = false;  // with the timer, under id_
  uint64_t id_ = 0;

  absl::Mutex mu_;
  bool finish_called_ ABSL_GUARDED_BY(mu_) = false;
  bool finish_pending_ ABSL_GUARDED_BY(mu_) = false;
  bool evaluating_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<bool> sent_ ABSL_GUARDED_BY(mu_);     // the last value written (or being written)
  std::optional<bool> pending_ ABSL_GUARDED_BY(mu_);  // seen while writing
  grpc::StatusCode code_ ABSL_GUARDED_BY(mu_) = grpc::StatusCode::OK;
  // Only changed while no write is outstanding.
  externalscaler::IsActiveResponse response_;
};

TriggerRef ToTriggerRef(const externalscaler::ScaledObjectRef& ref) {
  TriggerRef out;
  out.name = ref.name();
  out.namespace_ = ref.namespace_();
  out.metadata.insert(ref.scalermetadata().begin(), ref.scalermetadata().end());
  return out;
}

ExternalScalerService::ExternalScalerService(Evaluator* evaluator, ServiceOptions options)
    : options_(options), evaluator_(evaluator), timer_([this] { TimerLoop(); }) {}

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

grpc::ServerUnaryReactor* ExternalScalerService::GetMetricSpec(
    grpc::CallbackServerContext* context, const externalscaler::ScaledObjectRef* ref,
    externalscaler::GetMetricSpecResponse* response) {
  const absl::Time start = absl::Now();
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  TriggerRef trigger = ToTriggerRef(*ref);
  absl::StatusOr<ParsedTrigger> parsed = evaluator_->ParseCached(trigger);
  if (!parsed.ok()) {
    LogFailure("GetMetricSpec", trigger, parsed.status());
    FinishRpc(options_.observer, "GetMetricSpec", start, reactor, ToGrpcStatus(parsed.status()));
    return reactor;
  }
  externalscaler::MetricSpec* spec = response->add_metricspecs();
  spec->set_metricname(parsed->metric_name);
  // KEDA reads the float field when it is > 0 and the int field otherwise: fill both.
  spec->set_targetsize(parsed->spec->lag_threshold);
  spec->set_targetsizefloat(static_cast<double>(parsed->spec->lag_threshold));
  FinishRpc(options_.observer, "GetMetricSpec", start, reactor, grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* ExternalScalerService::GetMetrics(
    grpc::CallbackServerContext* context, const externalscaler::GetMetricsRequest* request,
    externalscaler::GetMetricsResponse* response) {
  const absl::Time start = absl::Now();
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  TriggerRef trigger = ToTriggerRef(request->scaledobjectref());
  // `request` and `response` stay valid until the reactor is finished.
  evaluator_->EvaluateAsync(
      trigger, [this, start, reactor, request, response,
                who = Who(trigger)](absl::StatusOr<std::shared_ptr<const Evaluation>> evaluation) {
        if (!evaluation.ok()) {
          LogFailure("GetMetrics", who, evaluation.status());
          FinishRpc(options_.observer, "GetMetrics", start, reactor,
                    ToGrpcStatus(evaluation.status()));
          return;
        }
        const Evaluation& e = **evaluation;
        externalscaler::MetricValue* value = response->add_metricvalues();
        value->set_metricname(e.trigger.metric_name);
        value->set_metricvalue(e.report.metric_value);
        value->set_metricvaluefloat(static_cast<double>(e.report.metric_value));
        // The fields are copies: made only when the lines will be written (not per poll).
        if (spdlog::should_log(spdlog::level::debug)) {
          const ScopedLogFields fields({{"namespace", who.namespace_},
                                        {"scaledjob", who.name},
                                        {"metric", e.trigger.metric_name}});
          if (!request->metricname().empty() && request->metricname() != e.trigger.metric_name) {
            spdlog::debug("GetMetrics: asked for metric {}, not this trigger's",
                          request->metricname());
          }
          spdlog::debug("GetMetrics: value {} (lag {}, active {})", e.report.metric_value,
                        e.report.total_lag_with_persistent, e.report.active);
        }
        FinishRpc(options_.observer, "GetMetrics", start, reactor, grpc::Status::OK);
      });
  return reactor;
}

grpc::ServerUnaryReactor* ExternalScalerService::IsActive(
    grpc::CallbackServerContext* context, const externalscaler::ScaledObjectRef* ref,
    externalscaler::IsActiveResponse* response) {
  const absl::Time start = absl::Now();
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  TriggerRef trigger = ToTriggerRef(*ref);
  evaluator_->EvaluateAsync(
      trigger, [this, start, reactor, response,
                who = Who(trigger)](absl::StatusOr<std::shared_ptr<const Evaluation>> evaluation) {
        if (!evaluation.ok()) {
          LogFailure("IsActive", who, evaluation.status());
          FinishRpc(options_.observer, "IsActive", start, reactor,
                    ToGrpcStatus(evaluation.status()));
          return;
        }
        response->set_result((*evaluation)->report.active);
        FinishRpc(options_.observer, "IsActive", start, reactor, grpc::Status::OK);
      });
  return reactor;
}

grpc::ServerWriteReactor<externalscaler::IsActiveResponse>* ExternalScalerService::StreamIsActive(
    grpc::CallbackServerContext*, const externalscaler::ScaledObjectRef* ref) {
  auto stream = std::make_shared<IsActiveStream>(this, ToTriggerRef(*ref));
  stream->Start();  // the stream now owns itself until OnDone
  return stream.get();
}

}  // namespace klag::scaler
