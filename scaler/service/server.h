// The gRPC server: KEDA's ExternalScaler service, the standard health service (for Kubernetes
// gRPC probes) and server reflection (for grpcurl), optionally behind TLS or mutual TLS.
//
//   ServerOptions opts{.listen = "0.0.0.0:6000"};
//   absl::StatusOr<std::unique_ptr<ScalerServer>> server = ScalerServer::Start(opts, &service);
//   (*server)->port();          // the bound port (useful with "127.0.0.1:0")
//   (*server)->Shutdown(absl::Seconds(10));
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "scaler/service/external_scaler_service.h"

namespace klag::scaler {

struct ServerOptions {
  std::string listen = "0.0.0.0:6000";
  // PEM files. With cert and key the port serves TLS; with client_ca too, clients must present a
  // certificate signed by it (KEDA's tlsClientCert/tlsClientKey).
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_client_ca_file;
  // How often the three files are re-read: a rotated certificate (cert-manager renewing the
  // Secret) is served to new connections within this long, without a restart.
  absl::Duration tls_reload_interval = absl::Seconds(10);
  // Upper bound on gRPC's synchronous-server threads (grpc::ResourceQuota::SetMaxThreads). In
  // gRPC 1.51 only the synchronous server's thread manager counts against it: the
  // ExternalScaler and health services use the callback API and run on gRPC's own few threads
  // whatever this says, so it now bounds only server reflection (grpcurl), one thread per
  // reflection call in progress.
  int max_threads = 1024;
};

class ScalerServer {
 public:
  // Builds and starts the server. `service` must outlive it. Errors: kInvalidArgument for
  // unreadable or inconsistent TLS files, kUnavailable when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<ScalerServer>> Start(const ServerOptions& options,
                                                             ExternalScalerService* service);

  int port() const { return port_; }

  // Marks health NOT_SERVING, ends streams, stops accepting and waits up to `grace` for
  // running RPCs. Idempotent.
  void Shutdown(absl::Duration grace);

  // Blocks until the server has shut down.
  void Wait();

  ~ScalerServer();

 private:
  ScalerServer(std::unique_ptr<grpc::Server> server, ExternalScalerService* service, int port)
      : server_(std::move(server)), service_(service), port_(port) {}

  std::unique_ptr<grpc::Server> server_;
  ExternalScalerService* service_;
  int port_;
  std::atomic<bool> shut_down_{false};
};

}  // namespace klag::scaler
