#include "scaler/service/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/security/server_credentials.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/thread_name.h"
#include "scaler/service/tls_credentials.h"

namespace klag::scaler {
namespace {

// Leaves a plugin out of a ServerBuilder (ServerBuilderOption::UpdatePlugins, the builder's hook
// for it). libgrpc++_reflection registers its plugin for every ServerBuilder from a static
// initializer as soon as the library is loaded (and linking InitProtoReflectionServerBuilderPlugin
// loads it), so without this every server would serve reflection, a synchronous service.
class DropPlugin final : public grpc::ServerBuilderOption {
 public:
  explicit DropPlugin(std::string name) : name_(std::move(name)) {}
  void UpdateArguments(grpc::ChannelArguments*) override {}
  void UpdatePlugins(std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>* plugins) override {
    std::erase_if(*plugins, [this](const std::unique_ptr<grpc::ServerBuilderPlugin>& plugin) {
      return plugin->name() == name_;
    });
  }

 private:
  const std::string name_;
};

// ProtoServerReflectionPlugin::name() in gRPC.
constexpr char kReflectionPlugin[] = "proto_server_reflection";

}  // namespace

absl::StatusOr<std::unique_ptr<ScalerServer>> ScalerServer::Start(const ServerOptions& options,
                                                                  ExternalScalerService* service) {
  if (options.threads < 1 || options.threads > ServerOptions::kMaxThreads) {
    return absl::InvalidArgumentError(absl::StrCat("the gRPC thread count must be between 1 and ",
                                                   ServerOptions::kMaxThreads, ", got ",
                                                   options.threads));
  }
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      MakeServerCredentials({.cert_file = options.tls_cert_file,
                             .key_file = options.tls_key_file,
                             .client_ca_file = options.tls_client_ca_file},
                            options.tls_reload_interval);
  if (!credentials.ok()) return credentials.status();

  std::unique_ptr<ScalerServer> self(new ScalerServer(service));
  // gRPC's default health service is a callback service in 1.51: ours is on the queues.
  grpc::EnableDefaultHealthCheckService(false);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  if (!options.reflection) builder.SetOption(std::make_unique<DropPlugin>(kReflectionPlugin));
  builder.AddListeningPort(options.listen, *credentials, &self->port_);
  builder.RegisterService(service->grpc_service());
  builder.RegisterService(self->health_.grpc_service());
  // gRPC sets SO_REUSEPORT by default, which lets a second server bind a port already in use and
  // silently share its traffic; a busy port must be an error instead.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  // gRPC 1.51 enforces the quota's thread limit in the synchronous server's ThreadManager only:
  // with reflection on, that is reflection's threads; the queues' threads are ours.
  grpc::ResourceQuota quota("klag-scaler");
  quota.SetMaxThreads(options.max_threads);
  builder.SetResourceQuota(quota);
  for (int i = 0; i < options.threads; ++i) self->queues_.push_back(builder.AddCompletionQueue());
  self->server_ = builder.BuildAndStart();
  if (self->server_ == nullptr || self->port_ == 0) {
    // Nothing was posted on the queues: they can be shut down and drained at once.
    self->server_.reset();
    for (auto& cq : self->queues_) {
      cq->Shutdown();
      RunQueue(cq.get());
    }
    self->shut_down_ = true;
    self->stopped_.Notify();
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options.listen));
  }
  for (auto& cq : self->queues_) {
    service->Serve(cq.get());
    self->health_.Serve(cq.get());
    self->pollers_.emplace_back([queue = cq.get()] {
      NameThisThread("klag-grpc-cq");
      RunQueue(queue);
    });
  }
  self->health_.SetServing(true);
  return self;
}

void ScalerServer::Shutdown(absl::Duration grace) {
  if (shut_down_.exchange(true)) {
    stopped_.WaitForNotification();
    return;
  }
  health_.SetServing(false);
  service_->Shutdown();
  health_.Shutdown();
  server_->Shutdown(absl::ToChronoTime(absl::Now() + grace));
  // A call may still finish (an evaluation past the deadline, a stream's last write): its
  // operation needs the queue, so the queues are shut down only when no call is left.
  service_->WaitForCalls();
  health_.WaitForCalls();
  for (auto& cq : queues_) cq->Shutdown();
  for (std::thread& poller : pollers_) poller.join();
  stopped_.Notify();
}

void ScalerServer::Wait() { stopped_.WaitForNotification(); }

ScalerServer::~ScalerServer() { Shutdown(absl::ZeroDuration()); }

}  // namespace klag::scaler
