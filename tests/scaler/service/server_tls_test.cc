// TLS and mutual TLS on the gRPC port (what KEDA's caCert / tlsClientCert / tlsClientKey
// expect), with certificates made by the openssl command line for each run.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "scaler/service/server.h"
#include "tests/testing/fake_offset_reader.h"
#include "tests/testing/test_env.h"

namespace klag::scaler {
namespace {

namespace fs = std::filesystem;

std::string Slurp(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

class ServerTlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::temp_directory_path() / testing::UniqueName("klag-tls"));
    fs::create_directories(*dir_);
    // A CA, a server certificate for 127.0.0.1, and a client certificate, all signed by the CA.
    const std::string script = absl::StrCat(
        "set -e; cd ", dir_->string(),
        "; openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 1 "
        "-subj /CN=klag-test-ca 2>/dev/null"
        "; openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr "
        "-subj /CN=127.0.0.1 2>/dev/null"
        "; printf 'subjectAltName=IP:127.0.0.1,DNS:localhost' > san.ext"
        "; openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
        "-out server.pem -days 1 -extfile san.ext 2>/dev/null"
        "; openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr "
        "-subj /CN=keda-operator 2>/dev/null"
        "; openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
        "-out client.pem -days 1 2>/dev/null");
    ASSERT_EQ(std::system(script.c_str()), 0) << "openssl failed";
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
  }

  void Start(bool mutual) {
    reader_ = std::make_shared<testing::FakeOffsetReader>();
    evaluator_ = std::make_unique<Evaluator>(
        [this](const kafka::ConnectionConfig&)
            -> absl::StatusOr<std::shared_ptr<kafka::OffsetReader>> { return reader_; },
        nullptr, EvaluatorOptions{});
    service_ = std::make_unique<ExternalScalerService>(evaluator_.get(), ServiceOptions{});
    ServerOptions options{.listen = "127.0.0.1:0",
                          .tls_cert_file = (*dir_ / "server.pem").string(),
                          .tls_key_file = (*dir_ / "server.key").string()};
    if (mutual) options.tls_client_ca_file = (*dir_ / "ca.pem").string();
    auto server = ScalerServer::Start(options, service_.get());
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }
  void TearDown() override {
    if (server_) server_->Shutdown(absl::Seconds(1));
  }

  grpc::StatusCode CallSpec(std::shared_ptr<grpc::ChannelCredentials> credentials) {
    auto stub = externalscaler::ExternalScaler::NewStub(
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()), std::move(credentials)));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    externalscaler::ScaledObjectRef ref;
    (*ref.mutable_scalermetadata())["bootstrapServers"] = "kafka:9092";
    (*ref.mutable_scalermetadata())["consumerGroup"] = "g";
    (*ref.mutable_scalermetadata())["topic"] = "t";
    externalscaler::GetMetricSpecResponse response;
    return stub->GetMetricSpec(&ctx, ref, &response).error_code();
  }

  grpc::SslCredentialsOptions Trusting(bool with_client_cert) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = Slurp(*dir_ / "ca.pem");
    if (with_client_cert) {
      ssl.pem_cert_chain = Slurp(*dir_ / "client.pem");
      ssl.pem_private_key = Slurp(*dir_ / "client.key");
    }
    return ssl;
  }

  static fs::path* dir_;
  std::shared_ptr<testing::FakeOffsetReader> reader_;
  std::unique_ptr<Evaluator> evaluator_;
  std::unique_ptr<ExternalScalerService> service_;
  std::unique_ptr<ScalerServer> server_;
};

fs::path* ServerTlsTest::dir_ = nullptr;

TEST_F(ServerTlsTest, TlsServesClientsThatTrustTheCaAndRefusesPlaintext) {
  Start(/*mutual=*/false);
  EXPECT_EQ(CallSpec(grpc::SslCredentials(Trusting(false))), grpc::StatusCode::OK);
  EXPECT_EQ(CallSpec(grpc::InsecureChannelCredentials()), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(ServerTlsTest, MutualTlsRequiresAClientCertificate) {
  Start(/*mutual=*/true);
  EXPECT_EQ(CallSpec(grpc::SslCredentials(Trusting(true))), grpc::StatusCode::OK);
  EXPECT_EQ(CallSpec(grpc::SslCredentials(Trusting(false))), grpc::StatusCode::UNAVAILABLE);
}

TEST(ServerOptionsTest, InconsistentTlsOptionsAreErrors) {
  ExternalScalerService* no_service = nullptr;
  auto only_cert =
      ScalerServer::Start({.listen = "127.0.0.1:0", .tls_cert_file = "/x.pem"}, no_service);
  EXPECT_EQ(only_cert.status().code(), absl::StatusCode::kInvalidArgument);
  auto only_ca =
      ScalerServer::Start({.listen = "127.0.0.1:0", .tls_client_ca_file = "/ca.pem"}, no_service);
  EXPECT_EQ(only_ca.status().code(), absl::StatusCode::kInvalidArgument);
  auto missing = ScalerServer::Start(
      {.listen = "127.0.0.1:0", .tls_cert_file = "/nonexistent.pem", .tls_key_file = "/k.pem"},
      no_service);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(missing.status().message().find("/nonexistent.pem"), absl::string_view::npos);
}

TEST(ServerOptionsTest, AnAddressThatCannotBeBoundIsUnavailable) {
  Evaluator evaluator(nullptr, nullptr, EvaluatorOptions{});
  ExternalScalerService service(&evaluator, ServiceOptions{});
  auto first = ScalerServer::Start({.listen = "127.0.0.1:0"}, &service);
  ASSERT_TRUE(first.ok());
  ExternalScalerService service2(&evaluator, ServiceOptions{});
  auto second =
      ScalerServer::Start({.listen = absl::StrCat("127.0.0.1:", (*first)->port())}, &service2);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
}

TEST(ServerOptionsTest, AThreadCountOutOfRangeIsInvalidArgument) {
  Evaluator evaluator(nullptr, nullptr, EvaluatorOptions{});
  ExternalScalerService service(&evaluator, ServiceOptions{});
  for (int threads : {0, 65}) {
    auto server = ScalerServer::Start({.listen = "127.0.0.1:0", .threads = threads}, &service);
    EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument) << threads;
  }
}

// Calls server reflection's one method through a generic stub (no reflection client in Debian's
// gRPC) with a list_services request (field 7, an empty string): its status, and the first
// response's bytes in `reply`.
grpc::StatusCode ListServices(int port, std::string* reply) {
  grpc::GenericStub stub(
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
  grpc::CompletionQueue cq;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  auto call =
      stub.PrepareCall(&ctx, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
  void* tag = nullptr;
  bool ok = false;
  auto next = [&] { EXPECT_TRUE(cq.Next(&tag, &ok)); };
  call->StartCall(nullptr);
  next();
  const char request[] = {0x3a, 0x00};
  grpc::Slice slice(request, sizeof(request));
  call->Write(grpc::ByteBuffer(&slice, 1), nullptr);
  next();
  call->WritesDone(nullptr);
  next();
  grpc::ByteBuffer response;
  call->Read(&response, nullptr);
  next();
  if (ok) {
    std::vector<grpc::Slice> slices;
    EXPECT_TRUE(response.Dump(&slices).ok());
    for (const grpc::Slice& s : slices)
      reply->append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  grpc::Status status;
  call->Finish(&status, nullptr);
  next();
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  return status.error_code();
}

// Reflection is off unless asked for (it runs gRPC's synchronous thread pool). gRPC's reflection
// plugin, once enabled, applies to every server built later in the process: off comes first.
TEST(ServerOptionsTest, ReflectionIsServedOnlyWhenAskedFor) {
  Evaluator evaluator(nullptr, nullptr, EvaluatorOptions{});
  {
    ExternalScalerService service(&evaluator, ServiceOptions{});
    auto server = ScalerServer::Start({.listen = "127.0.0.1:0"}, &service);
    ASSERT_TRUE(server.ok()) << server.status();
    std::string reply;
    EXPECT_EQ(ListServices((*server)->port(), &reply), grpc::StatusCode::UNIMPLEMENTED);
    (*server)->Shutdown(absl::Seconds(1));
  }
  ExternalScalerService service(&evaluator, ServiceOptions{});
  auto server = ScalerServer::Start({.listen = "127.0.0.1:0", .reflection = true}, &service);
  ASSERT_TRUE(server.ok()) << server.status();
  std::string reply;
  EXPECT_EQ(ListServices((*server)->port(), &reply), grpc::StatusCode::OK);
  EXPECT_NE(reply.find("externalscaler.ExternalScaler"), std::string::npos) << reply;
  EXPECT_NE(reply.find("grpc.health.v1.Health"), std::string::npos) << reply;
  (*server)->Shutdown(absl::Seconds(1));
}

}  // namespace
}  // namespace klag::scaler
