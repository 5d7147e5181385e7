#include "scaler/service/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>

#include "absl/strings/str_cat.h"
#include "scaler/service/tls_credentials.h"

namespace klag::scaler {
namespace {

constexpr char kServiceName[] = "externalscaler.ExternalScaler";

}  // namespace

absl::StatusOr<std::unique_ptr<ScalerServer>> ScalerServer::Start(const ServerOptions& options,
                                                                  ExternalScalerService* service) {
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      MakeServerCredentials({.cert_file = options.tls_cert_file,
                             .key_file = options.tls_key_file,
                             .client_ca_file = options.tls_client_ca_file},
                            options.tls_reload_interval);
  if (!credentials.ok()) return credentials.status();

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(options.listen, *credentials, &port);
  builder.RegisterService(service);
  // gRPC sets SO_REUSEPORT by default, which lets a second server bind a port already in use and
  // silently share its traffic; a busy port must be an error instead.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  // gRPC 1.51 enforces the quota's thread limit in the synchronous server's ThreadManager only.
  // ExternalScaler (callback API) and the default health service (a callback service in 1.51,
  // DefaultHealthCheckService::HealthCheckServiceImpl::WatchReactor) never take one of those
  // threads; server reflection (ProtoServerReflection, synchronous) still does, so the limit
  // stays to bound it.
  grpc::ResourceQuota quota("klag-scaler");
  quota.SetMaxThreads(options.max_threads);
  builder.SetResourceQuota(quota);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options.listen));
  }
  grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService();
  health->SetServingStatus(true);
  health->SetServingStatus(kServiceName, true);
  return std::unique_ptr<ScalerServer>(new ScalerServer(std::move(server), service, port));
}

void ScalerServer::Shutdown(absl::Duration grace) {
  if (shut_down_.exchange(true)) return;
  server_->GetHealthCheckService()->SetServingStatus(false);
  service_->Shutdown();
  server_->Shutdown(absl::ToChronoTime(absl::Now() + grace));
}

void ScalerServer::Wait() { server_->Wait(); }

ScalerServer::~ScalerServer() { Shutdown(absl::ZeroDuration()); }

}  // namespace klag::scaler
