// klag-health: asks a gRPC server's grpc.health.v1.Health/Check and exits 0 when it answers
// SERVING. An exec probe for Kubernetes when the scaler serves TLS (kubelet's own gRPC probe
// cannot), and the check of the image test (tests/image).
//
//   klag-health --address 127.0.0.1:6000                    # plaintext
//   klag-health --address 127.0.0.1:6000 --tls-ca ca.crt --tls-cert tls.crt --tls-key tls.key
//               --tls-server-name klag-scaler-headless.klag.svc.cluster.local
//   klag-health --address 127.0.0.1:6000 --wait 10s         # retry until serving or 10s passed
//
// Exit codes: 0 SERVING, 1 not serving or unreachable, 2 bad options.
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "common/flags.h"
#include "common/version.h"
#include "proto/grpc/health/v1/health.grpc.pb.h"

namespace klag::health {
namespace {

struct Options {
  std::string address = "127.0.0.1:6000";
  std::string service;  // "": the server's overall status
  absl::Duration timeout = absl::Seconds(2);
  absl::Duration wait = absl::ZeroDuration();
  std::string tls_ca;
  std::string tls_cert;
  std::string tls_key;
  std::string tls_server_name;
  bool version = false;
};

bool ReadFile(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream text;
  text << in.rdbuf();
  *out = text.str();
  return true;
}

int Main(int argc, char** argv) {
  Options o;
  FlagSet flags("klag-health",
                "klag-health: grpc.health.v1 check; exit 0 when the server answers SERVING");
  flags.String("address", "KLAG_HEALTH_ADDRESS", "host:port of the gRPC server", &o.address);
  flags.String("service", "KLAG_HEALTH_SERVICE", "service name to check (empty: overall)",
               &o.service);
  flags.Duration("timeout", "KLAG_HEALTH_TIMEOUT", "deadline of one check", &o.timeout);
  flags.Duration("wait", "KLAG_HEALTH_WAIT", "retry until SERVING or this much time passed",
                 &o.wait);
  flags.String("tls-ca", "KLAG_HEALTH_TLS_CA", "PEM CA file: connect with TLS", &o.tls_ca);
  flags.String("tls-cert", "KLAG_HEALTH_TLS_CERT", "PEM client certificate (mutual TLS)",
               &o.tls_cert);
  flags.String("tls-key", "KLAG_HEALTH_TLS_KEY", "PEM client key (mutual TLS)", &o.tls_key);
  flags.String("tls-server-name", "KLAG_HEALTH_TLS_SERVER_NAME",
               "name to verify the server certificate against", &o.tls_server_name);
  flags.Bool("version", "", "print the version, git commit and gRPC version and exit", &o.version);
  absl::StatusOr<std::vector<std::string>> args = flags.Parse(argc, argv, ProcessEnv());
  if (!args.ok()) {
    std::cerr << "klag-health: " << args.status().message() << "\n";
    return 2;
  }
  if (flags.help_requested()) {
    std::cout << flags.Usage();
    return 0;
  }
  if (o.version) {
    // klag-health does not load librdkafka.
    std::cout << VersionText("klag-health", {{"gRPC", grpc::Version()}});
    return 0;
  }
  if (!args->empty()) {
    std::cerr << "klag-health: unexpected argument \"" << (*args)[0] << "\"\n";
    return 2;
  }

  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  grpc::ChannelArguments channel_args;
  if (!o.tls_ca.empty()) {
    grpc::SslCredentialsOptions ssl;
    if (!ReadFile(o.tls_ca, &ssl.pem_root_certs) ||
        (!o.tls_cert.empty() && !ReadFile(o.tls_cert, &ssl.pem_cert_chain)) ||
        (!o.tls_key.empty() && !ReadFile(o.tls_key, &ssl.pem_private_key))) {
      std::cerr << "klag-health: cannot read a --tls-* file\n";
      return 2;
    }
    credentials = grpc::SslCredentials(ssl);
    if (!o.tls_server_name.empty()) {
      channel_args.SetSslTargetNameOverride(o.tls_server_name);
    }
  }
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateCustomChannel(o.address, credentials, channel_args);
  std::unique_ptr<grpc::health::v1::Health::Stub> stub = grpc::health::v1::Health::NewStub(channel);

  const absl::Time give_up = absl::Now() + o.wait;
  std::string last;
  do {
    grpc::health::v1::HealthCheckRequest request;
    request.set_service(o.service);
    grpc::health::v1::HealthCheckResponse response;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(o.timeout));
    grpc::Status s = stub->Check(&ctx, request, &response);
    if (s.ok() && response.status() == grpc::health::v1::HealthCheckResponse::SERVING) {
      std::cout << o.address << ": SERVING\n";
      return 0;
    }
    last = s.ok() ? grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status())
                  : s.error_message();
    if (absl::Now() < give_up) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  } while (absl::Now() < give_up);
  std::cerr << "klag-health: " << o.address << ": " << last << "\n";
  return 1;
}

}  // namespace
}  // namespace klag::health

int main(int argc, char** argv) { return klag::health::Main(argc, argv); }
