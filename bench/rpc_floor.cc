// klag_rpc_floor: the cost of serving KEDA's three RPCs per ScaledJob poll with the gRPC library
// klag-scaler ships with, and nothing else. It answers GetMetricSpec, GetMetrics and IsActive
// from the trigger metadata alone, with the values the bench's data set holds (bench/fanout's
// layout: group "<prefix>g<G>" has lag partitions * (records - 10 - G % 50)), so bench/fanout
// polls it exactly as it polls klag-scaler and checks every value. No Kafka, no evaluation, no
// metrics: what it spends per poll is the floor under klag-scaler's figure for the same serving
// model (bench/run.sh runs it beside klag-scaler and KEDA's code; bench/README.md).
//
//   klag_rpc_floor --listen 127.0.0.1:PORT [--model callback|async] [--threads N]
//                  [--health on|off] [--prefix fan-] [--partitions 12] [--records 100]
//                  [--arg NAME=VALUE]...
//
// --model callback: gRPC's callback API (gRPC's own threads; klag-scaler's model until 2026-12-04).
// --model async:    the completion-queue API (klag-scaler's model), N threads each polling its
//                   own queue and answering on the thread that received the request.
// --health on:      also serve gRPC's default health service (as klag-scaler did; in gRPC 1.51
//                   a callback service, whose callback threads then poll the connections too).
// --arg NAME=VALUE: a gRPC channel argument for the server (an integer value is set as one),
//                   for A/B runs of server settings (bench/README.md).
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <charconv>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "proto/externalscaler.grpc.pb.h"

namespace {

struct Layout {
  std::string prefix = "fan-";
  int64_t partitions = 12;
  int64_t records = 100;
};

std::string_view Lookup(const externalscaler::ScaledObjectRef& ref, const std::string& key) {
  const auto& md = ref.scalermetadata();
  const auto it = md.find(key);
  return it == md.end() ? std::string_view() : std::string_view(it->second);
}

// Parses "<prefix>g<G>"; false when the name has another shape.
bool GroupIndex(const Layout& layout, std::string_view group, int64_t* index) {
  const std::string head = layout.prefix + "g";
  if (group.substr(0, head.size()) != head) return false;
  const std::string_view digits = group.substr(head.size());
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), *index);
  return ec == std::errc() && end == digits.data() + digits.size() && *index >= 0;
}

grpc::Status Spec(const Layout& /*layout*/, const externalscaler::ScaledObjectRef& ref,
                  externalscaler::GetMetricSpecResponse* out) {
  const std::string_view topic = Lookup(ref, "topic");
  int64_t threshold = 0;
  const std::string_view t = Lookup(ref, "lagThreshold");
  if (topic.empty() ||
      std::from_chars(t.data(), t.data() + t.size(), threshold).ec != std::errc()) {
    return {grpc::StatusCode::INVALID_ARGUMENT, "topic and lagThreshold are required"};
  }
  externalscaler::MetricSpec* spec = out->add_metricspecs();
  spec->set_metricname("s0-kafka-" + std::string(topic));
  spec->set_targetsize(threshold);
  spec->set_targetsizefloat(static_cast<double>(threshold));
  return grpc::Status::OK;
}

grpc::Status Metrics(const Layout& layout, const externalscaler::GetMetricsRequest& request,
                     externalscaler::GetMetricsResponse* out) {
  int64_t g = 0;
  if (!GroupIndex(layout, Lookup(request.scaledobjectref(), "consumerGroup"), &g)) {
    return {grpc::StatusCode::INVALID_ARGUMENT, "consumerGroup is not one of the bench's groups"};
  }
  const int64_t lag = layout.partitions * (layout.records - 10 - g % 50);
  externalscaler::MetricValue* value = out->add_metricvalues();
  value->set_metricname(request.metricname());
  value->set_metricvalue(lag);
  value->set_metricvaluefloat(static_cast<double>(lag));
  return grpc::Status::OK;
}

grpc::Status Active(const Layout& layout, const externalscaler::ScaledObjectRef& ref,
                    externalscaler::IsActiveResponse* out) {
  int64_t g = 0;
  if (!GroupIndex(layout, Lookup(ref, "consumerGroup"), &g)) {
    return {grpc::StatusCode::INVALID_ARGUMENT, "consumerGroup is not one of the bench's groups"};
  }
  out->set_result(true);
  return grpc::Status::OK;
}

// ---- callback API ----------------------------------------------------------------------------

class CallbackFloor final : public externalscaler::ExternalScaler::CallbackService {
 public:
  explicit CallbackFloor(Layout layout) : layout_(std::move(layout)) {}

  grpc::ServerUnaryReactor* IsActive(grpc::CallbackServerContext* context,
                                     const externalscaler::ScaledObjectRef* request,
                                     externalscaler::IsActiveResponse* response) override {
    return Finish(context, Active(layout_, *request, response));
  }
  grpc::ServerUnaryReactor* GetMetricSpec(
      grpc::CallbackServerContext* context, const externalscaler::ScaledObjectRef* request,
      externalscaler::GetMetricSpecResponse* response) override {
    return Finish(context, Spec(layout_, *request, response));
  }
  grpc::ServerUnaryReactor* GetMetrics(grpc::CallbackServerContext* context,
                                       const externalscaler::GetMetricsRequest* request,
                                       externalscaler::GetMetricsResponse* response) override {
    return Finish(context, Metrics(layout_, *request, response));
  }

 private:
  static grpc::ServerUnaryReactor* Finish(grpc::CallbackServerContext* context,
                                          const grpc::Status& status) {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(status);
    return reactor;
  }

  const Layout layout_;
};

// ---- completion-queue API --------------------------------------------------------------------

using AsyncService = externalscaler::ExternalScaler::AsyncService;

class Tag {
 public:
  virtual ~Tag() = default;
  virtual void Proceed(bool ok) = 0;
};

// One call of one unary method: requested, answered on the queue's thread, finished, deleted.
// A new request of the same method is posted when this one arrives.
template <typename Request, typename Response,
          void (*RequestMethod)(AsyncService*, grpc::ServerContext*, Request*,
                                grpc::ServerAsyncResponseWriter<Response>*,
                                grpc::ServerCompletionQueue*, void*),
          grpc::Status (*Handle)(const Layout&, const Request&, Response*)>
class UnaryCall final : public Tag {
 public:
  static void Post(AsyncService* service, grpc::ServerCompletionQueue* cq, const Layout* layout) {
    auto* call = new UnaryCall(service, cq, layout);
    RequestMethod(service, &call->context_, &call->request_, &call->writer_, cq, call);
  }

  void Proceed(bool ok) override {
    if (!ok || finishing_) {  // shutdown, or the answer is on its way
      delete this;
      return;
    }
    Post(service_, cq_, layout_);
    finishing_ = true;
    const grpc::Status status = Handle(*layout_, request_, &response_);
    if (status.ok()) {
      writer_.Finish(response_, status, this);
    } else {
      writer_.FinishWithError(status, this);
    }
  }

 private:
  UnaryCall(AsyncService* service, grpc::ServerCompletionQueue* cq, const Layout* layout)
      : service_(service), cq_(cq), layout_(layout), writer_(&context_) {}

  AsyncService* const service_;
  grpc::ServerCompletionQueue* const cq_;
  const Layout* const layout_;
  grpc::ServerContext context_;
  Request request_;
  Response response_;
  grpc::ServerAsyncResponseWriter<Response> writer_;
  bool finishing_ = false;
};

// The generated Request* methods live on AsyncService's base classes; these name them.
void RequestIsActive(AsyncService* service, grpc::ServerContext* context,
                     externalscaler::ScaledObjectRef* request,
                     grpc::ServerAsyncResponseWriter<externalscaler::IsActiveResponse>* writer,
                     grpc::ServerCompletionQueue* cq, void* tag) {
  service->RequestIsActive(context, request, writer, cq, cq, tag);
}
void RequestSpec(AsyncService* service, grpc::ServerContext* context,
                 externalscaler::ScaledObjectRef* request,
                 grpc::ServerAsyncResponseWriter<externalscaler::GetMetricSpecResponse>* writer,
                 grpc::ServerCompletionQueue* cq, void* tag) {
  service->RequestGetMetricSpec(context, request, writer, cq, cq, tag);
}
void RequestMetrics(AsyncService* service, grpc::ServerContext* context,
                    externalscaler::GetMetricsRequest* request,
                    grpc::ServerAsyncResponseWriter<externalscaler::GetMetricsResponse>* writer,
                    grpc::ServerCompletionQueue* cq, void* tag) {
  service->RequestGetMetrics(context, request, writer, cq, cq, tag);
}

using IsActiveCall = UnaryCall<externalscaler::ScaledObjectRef, externalscaler::IsActiveResponse,
                               &RequestIsActive, &Active>;
using SpecCall = UnaryCall<externalscaler::ScaledObjectRef, externalscaler::GetMetricSpecResponse,
                           &RequestSpec, &Spec>;
using MetricsCall = UnaryCall<externalscaler::GetMetricsRequest, externalscaler::GetMetricsResponse,
                              &RequestMetrics, &Metrics>;

void ServeQueue(AsyncService* service, grpc::ServerCompletionQueue* cq, const Layout* layout) {
  // A few requests of each method outstanding per queue, so a burst finds one posted.
  for (int i = 0; i < 8; ++i) {
    IsActiveCall::Post(service, cq, layout);
    SpecCall::Post(service, cq, layout);
    MetricsCall::Post(service, cq, layout);
  }
  void* tag = nullptr;
  bool ok = false;
  while (cq->Next(&tag, &ok)) static_cast<Tag*>(tag)->Proceed(ok);
}

// ---- main ------------------------------------------------------------------------------------

int Usage(const char* error) {
  std::fprintf(stderr,
               "klag_rpc_floor: %s\nusage: klag_rpc_floor --listen HOST:PORT [--model "
               "callback|async] [--threads N] [--health on|off] [--prefix P] [--partitions N] "
               "[--records N] [--arg NAME=VALUE]...\n",
               error);
  return 2;
}

bool ParseInt(std::string_view text, int64_t min, int64_t* out) {
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return ec == std::errc() && end == text.data() + text.size() && *out >= min;
}

std::unique_ptr<grpc::Server> g_server;

}  // namespace

int main(int argc, char** argv) {
  Layout layout;
  std::string listen;
  std::string model = "callback";
  int64_t threads = std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::pair<std::string, std::string>> args;
  bool health = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if (i + 1 >= argc) return Usage(("missing value of " + std::string(flag)).c_str());
    const std::string_view value = argv[++i];
    if (flag == "--listen") {
      listen = value;
    } else if (flag == "--model") {
      model = value;
      if (model != "callback" && model != "async") return Usage("--model: callback or async");
    } else if (flag == "--threads") {
      if (!ParseInt(value, 1, &threads) || threads > 64) return Usage("--threads: 1 to 64");
    } else if (flag == "--arg") {
      const size_t eq = value.find('=');
      if (eq == std::string_view::npos || eq == 0) return Usage("--arg: NAME=VALUE");
      args.emplace_back(value.substr(0, eq), value.substr(eq + 1));
    } else if (flag == "--health") {
      if (value != "on" && value != "off") return Usage("--health: on or off");
      health = value == "on";
    } else if (flag == "--prefix") {
      layout.prefix = value;
    } else if (flag == "--partitions") {
      if (!ParseInt(value, 1, &layout.partitions)) return Usage("--partitions: a positive integer");
    } else if (flag == "--records") {
      if (!ParseInt(value, 1, &layout.records)) return Usage("--records: a positive integer");
    } else {
      return Usage(("unknown flag " + std::string(flag)).c_str());
    }
  }
  if (listen.empty()) return Usage("--listen is required");

  // SIGTERM / SIGINT are taken by a thread of ours (blocked before gRPC starts its threads).
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  grpc::EnableDefaultHealthCheckService(health);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  for (const auto& [name, value] : args) {
    int64_t number = 0;
    if (ParseInt(value, INT32_MIN, &number) && number <= INT32_MAX) {
      builder.AddChannelArgument(name, static_cast<int>(number));
    } else {
      builder.AddChannelArgument(name, value);
    }
  }
  CallbackFloor callback(layout);
  AsyncService async;
  std::vector<std::unique_ptr<grpc::ServerCompletionQueue>> queues;
  if (model == "callback") {
    builder.RegisterService(&callback);
  } else {
    builder.RegisterService(&async);
    for (int64_t i = 0; i < threads; ++i) queues.push_back(builder.AddCompletionQueue());
  }
  g_server = builder.BuildAndStart();
  if (g_server == nullptr || port == 0) {
    std::fprintf(stderr, "klag_rpc_floor: cannot listen on %s\n", listen.c_str());
    return 1;
  }
  std::fprintf(stderr, "klag_rpc_floor: %s model listening on %s\n", model.c_str(), listen.c_str());

  std::thread stopper([&signals] {
    int signal = 0;
    sigwait(&signals, &signal);
    g_server->Shutdown();
  });

  std::vector<std::thread> pollers;
  for (auto& cq : queues) {
    pollers.emplace_back(ServeQueue, &async, cq.get(), &layout);
  }
  g_server->Wait();
  for (auto& cq : queues) cq->Shutdown();
  for (auto& t : pollers) t.join();
  stopper.join();
  return 0;
}
