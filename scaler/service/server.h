// The gRPC server: KEDA's ExternalScaler service and the standard health service (for Kubernetes
// gRPC probes), both on completion queues polled by `threads` threads of the server's own, and
// optionally server reflection (for grpcurl), optionally behind TLS or mutual TLS.
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
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "scaler/service/external_scaler_service.h"
#include "scaler/service/health_service.h"

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
  // Threads polling the completion queues (one queue each) that read and answer every call.
  // One is cheapest on the few connections KEDA opens (bench/README.md, "The RPCs alone"); no
  // call holds one while it waits for Kafka.
  int threads = 1;
  static constexpr int kMaxThreads = 64;
  // Server reflection (grpcurl without -proto). Off by default: it is a synchronous service,
  // and gRPC 1.51 then runs a thread pool of its own that polls every connection too, which
  // costs every poll about a third more CPU (bench/README.md).
  bool reflection = false;
  // Upper bound on gRPC's synchronous-server threads (grpc::ResourceQuota::SetMaxThreads): with
  // `reflection`, one thread per reflection call in progress. Nothing else uses them.
  int max_threads = 1024;
};

class ScalerServer {
 public:
  // Builds and starts the server. `service` must outlive it. Errors: kInvalidArgument for
  // unreadable or inconsistent TLS files, kUnavailable when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<ScalerServer>> Start(const ServerOptions& options,
                                                             ExternalScalerService* service);

  int port() const { return port_; }

  // Marks health NOT_SERVING, ends streams, stops accepting, waits up to `grace` for running
  // RPCs (then cancels them), waits for the evaluations they started, and stops the queue
  // threads. A second call waits for the first.
  void Shutdown(absl::Duration grace);

  // Blocks until the server has shut down.
  void Wait();

  ~ScalerServer();

 private:
  ScalerServer(ExternalScalerService* service) : service_(service) {}

  ExternalScalerService* const service_;
  HealthService health_{{"externalscaler.ExternalScaler"}};
  std::unique_ptr<grpc::Server> server_;
  std::vector<std::unique_ptr<grpc::ServerCompletionQueue>> queues_;
  std::vector<std::thread> pollers_;
  int port_ = 0;
  std::atomic<bool> shut_down_{false};
  absl::Notification stopped_;
};

}  // namespace klag::scaler
