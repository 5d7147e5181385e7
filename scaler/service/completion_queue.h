// What klag-scaler's services share to serve on gRPC's completion queues (the "async" API):
// every service answers on the queues' few threads, a call waiting for Kafka holds no thread, and
// no callback or synchronous service is registered (in gRPC 1.51 either one adds threads of
// gRPC's own that poll the connections too: bench/README.md, "The RPCs alone").
//
//   class MyCall final : public QueueTag {
//     void Proceed(bool ok) override { ... }  // the next step of this call
//   };
//   RunQueue(cq);  // on each queue's thread, until the queue is shut down and drained
//
// A queue may be shut down only when no matched call can start an operation on it any more
// (gRPC aborts the process otherwise): services count matched calls in a LiveCalls, and
// ScalerServer waits for it to reach zero before it shuts the queues down.
#pragma once

#include <grpcpp/completion_queue.h>
#include <grpcpp/server_context.h>
#include <grpcpp/support/async_unary_call.h>

#include <cstdint>
#include <functional>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace klag::scaler {

// A tag given to gRPC with an operation: the queue hands it back when the operation completes
// (`ok` false: the call was cancelled, the server is shutting down, or the client went away).
class QueueTag {
 public:
  virtual void Proceed(bool ok) = 0;

 protected:
  ~QueueTag() = default;
};

// Calls gRPC has matched to a request and that are not released yet. Thread-safe.
class LiveCalls {
 public:
  void Add();
  void Release();
  // Blocks until none is left (logging every 10 s while it waits).
  void WaitForNone() const;

 private:
  mutable absl::Mutex mu_;
  int64_t count_ ABSL_GUARDED_BY(mu_) = 0;
};

// One call of a unary method: posted on a queue, matched, handled, finished, deleted. When a call
// arrives, the next one of the same method is posted on the same queue.
//
//   using Call = UnaryCall<MyService::AsyncService, Request, Response>;
//   Call::Method method{&async, &MyService::AsyncService::RequestFoo, [](Call* c) { ... },
//                       &live};
//   Call::Post(&method, cq);
//
// The handler runs on the queue's thread and must end the call with Finish, at once or later
// from any thread; it must not touch the call after Finish.
template <typename Service, typename Request, typename Response>
class UnaryCall final : public QueueTag {
 public:
  using Writer = grpc::ServerAsyncResponseWriter<Response>;
  struct Method {
    Service* service;
    void (Service::*request)(grpc::ServerContext*, Request*, Writer*, grpc::CompletionQueue*,
                             grpc::ServerCompletionQueue*, void*);
    std::function<void(UnaryCall*)> handle;
    LiveCalls* live;
  };

  // `method` must outlive every call posted with it.
  static void Post(const Method* method, grpc::ServerCompletionQueue* cq) {
    auto* call = new UnaryCall(method, cq);
    (method->service->*method->request)(&call->context_, &call->request_, &call->writer_, cq, cq,
                                        call);
  }

  void Proceed(bool ok) override {
    if (!matched_ && ok) {
      matched_ = true;
      start_ = absl::Now();
      method_->live->Add();
      Post(method_, cq_);
      method_->handle(this);
      return;
    }
    // Not matched (the server is shutting down), or the answer went out (or could not).
    LiveCalls* live = matched_ ? method_->live : nullptr;
    delete this;
    if (live != nullptr) live->Release();
  }

  const Request& request() const { return request_; }
  Response* response() { return &response_; }
  // When the call was matched.
  absl::Time start() const { return start_; }

  // Sends the response (OK) or only the status; the call is deleted when it has gone out.
  void Finish(const grpc::Status& status) {
    if (status.ok()) {
      writer_.Finish(response_, status, this);
    } else {
      writer_.FinishWithError(status, this);
    }
  }

 private:
  UnaryCall(const Method* method, grpc::ServerCompletionQueue* cq)
      : method_(method), cq_(cq), writer_(&context_) {}

  const Method* const method_;
  grpc::ServerCompletionQueue* const cq_;
  grpc::ServerContext context_;
  Request request_;
  Response response_;
  Writer writer_;
  bool matched_ = false;
  absl::Time start_;
};

// Hands every completed tag of `cq` to its QueueTag until the queue is shut down and drained.
void RunQueue(grpc::ServerCompletionQueue* cq);

}  // namespace klag::scaler
