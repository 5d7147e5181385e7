// Certificate rotation without a restart: MakeServerCredentials' server keeps serving while its
// certificate, key and client CA files are replaced on disk (as Kubernetes does when
// cert-manager renews the Secret: new files, then an atomic rename), and new connections get
// the new certificates. Certificates are made by the openssl command line for each run.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "proto/grpc/health/v1/health.grpc.pb.h"
#include "scaler/service/tls_credentials.h"
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

// Replaces `to` with `from`'s contents the way a Secret volume update does: write aside, rename.
void Replace(const fs::path& from, const fs::path& to) {
  const fs::path tmp = to.string() + ".new";
  fs::copy_file(from, tmp, fs::copy_options::overwrite_existing);
  fs::rename(tmp, to);
}

// grpc.health.v1 answering SERVING: something to call over the TLS port.
class Health final : public grpc::health::v1::Health::Service {
  grpc::Status Check(grpc::ServerContext*, const grpc::health::v1::HealthCheckRequest*,
                     grpc::health::v1::HealthCheckResponse* response) override {
    response->set_status(grpc::health::v1::HealthCheckResponse::SERVING);
    return grpc::Status::OK;
  }
};

class TlsReloadTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::temp_directory_path() / testing::UniqueName("klag-tls-reload"));
    fs::create_directories(*dir_);
    // Two independent CAs ("old" and "new"), each with a server certificate for 127.0.0.1 and a
    // client certificate.
    std::string script = absl::StrCat("set -e; cd ", dir_->string(),
                                      "; printf 'subjectAltName=IP:127.0.0.1' > san.ext");
    for (const char* ca : {"old", "new"}) {
      absl::StrAppend(&script, "; openssl req -x509 -newkey rsa:2048 -nodes -keyout ", ca,
                      "-ca.key -out ", ca, "-ca.pem -days 1 -subj /CN=klag-", ca, "-ca 2>/dev/null",
                      "; openssl req -newkey rsa:2048 -nodes -keyout ", ca, "-server.key -out ", ca,
                      "-server.csr -subj /CN=127.0.0.1 2>/dev/null", "; openssl x509 -req -in ", ca,
                      "-server.csr -CA ", ca, "-ca.pem -CAkey ", ca,
                      "-ca.key -CAcreateserial -out ", ca,
                      "-server.pem -days 1 -extfile san.ext 2>/dev/null",
                      "; openssl req -newkey rsa:2048 -nodes -keyout ", ca, "-client.key -out ", ca,
                      "-client.csr -subj /CN=keda-operator 2>/dev/null", "; openssl x509 -req -in ",
                      ca, "-client.csr -CA ", ca, "-ca.pem -CAkey ", ca,
                      "-ca.key -CAcreateserial -out ", ca, "-client.pem -days 1 2>/dev/null");
    }
    ASSERT_EQ(std::system(script.c_str()), 0) << "openssl failed";
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
  }

  void SetUp() override {
    // The served files start as the "old" set.
    Replace(*dir_ / "old-server.pem", *dir_ / "tls.crt");
    Replace(*dir_ / "old-server.key", *dir_ / "tls.key");
    Replace(*dir_ / "old-ca.pem", *dir_ / "ca.crt");
  }

  void Start(bool mutual, absl::Duration refresh) {
    TlsFiles files{.cert_file = (*dir_ / "tls.crt").string(),
                   .key_file = (*dir_ / "tls.key").string()};
    if (mutual) files.client_ca_file = (*dir_ / "ca.crt").string();
    absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> creds =
        MakeServerCredentials(files, refresh);
    ASSERT_TRUE(creds.ok()) << creds.status();
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", *creds, &port_);
    builder.RegisterService(&health_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_NE(port_, 0);
  }
  void TearDown() override {
    if (server_) server_->Shutdown(std::chrono::system_clock::now());
  }

  // A health check on a new connection, trusting `ca` ("old"/"new") and, when `client` is set,
  // presenting that CA's client certificate.
  grpc::StatusCode Check(const std::string& ca, const std::string& client = "") {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = Slurp(*dir_ / (ca + "-ca.pem"));
    if (!client.empty()) {
      ssl.pem_cert_chain = Slurp(*dir_ / (client + "-client.pem"));
      ssl.pem_private_key = Slurp(*dir_ / (client + "-client.key"));
    }
    grpc::ChannelArguments args;
    // A fresh connection per call: the point is which certificate a new handshake sees.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    auto channel = grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port_),
                                             grpc::SslCredentials(ssl), args);
    auto stub = grpc::health::v1::Health::NewStub(channel);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    grpc::health::v1::HealthCheckRequest request;
    grpc::health::v1::HealthCheckResponse response;
    return stub->Check(&ctx, request, &response).error_code();
  }

  // Calls Check until it answers `want` (the watcher re-reads every refresh interval), for up to
  // `limit`; returns the last code.
  grpc::StatusCode EventuallyCheck(grpc::StatusCode want, const std::string& ca,
                                   const std::string& client, absl::Duration limit) {
    const absl::Time until = absl::Now() + limit;
    grpc::StatusCode code = Check(ca, client);
    while (code != want && absl::Now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      code = Check(ca, client);
    }
    return code;
  }

  static fs::path* dir_;
  Health health_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

fs::path* TlsReloadTest::dir_ = nullptr;

TEST_F(TlsReloadTest, RotatedServerCertificateIsServedWithoutRestart) {
  Start(/*mutual=*/false, absl::Seconds(1));
  ASSERT_EQ(Check("old"), grpc::StatusCode::OK);
  ASSERT_NE(Check("new"), grpc::StatusCode::OK) << "the new CA must not verify the old cert";

  Replace(*dir_ / "new-server.pem", *dir_ / "tls.crt");
  Replace(*dir_ / "new-server.key", *dir_ / "tls.key");

  EXPECT_EQ(EventuallyCheck(grpc::StatusCode::OK, "new", "", absl::Seconds(15)),
            grpc::StatusCode::OK);
  EXPECT_NE(Check("old"), grpc::StatusCode::OK) << "still serving the old certificate";
}

TEST_F(TlsReloadTest, RotatedClientCaIsEnforcedWithoutRestart) {
  Start(/*mutual=*/true, absl::Seconds(1));
  ASSERT_EQ(Check("old", "old"), grpc::StatusCode::OK);
  ASSERT_NE(Check("old"), grpc::StatusCode::OK) << "mutual TLS must require a client certificate";

  // cert-manager renews everything under the new CA.
  Replace(*dir_ / "new-server.pem", *dir_ / "tls.crt");
  Replace(*dir_ / "new-server.key", *dir_ / "tls.key");
  Replace(*dir_ / "new-ca.pem", *dir_ / "ca.crt");

  EXPECT_EQ(EventuallyCheck(grpc::StatusCode::OK, "new", "new", absl::Seconds(15)),
            grpc::StatusCode::OK);
  // A client certificate of the old CA is no longer accepted, nor none.
  EXPECT_NE(Check("new", "old"), grpc::StatusCode::OK);
  EXPECT_NE(Check("new"), grpc::StatusCode::OK);
}

TEST_F(TlsReloadTest, BadFilesAreRefusedAtStart) {
  TlsFiles missing{.cert_file = (*dir_ / "nope.crt").string(),
                   .key_file = (*dir_ / "tls.key").string()};
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> creds = MakeServerCredentials(missing);
  ASSERT_FALSE(creds.ok());
  EXPECT_EQ(creds.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(creds.status().message().find("--tls-cert"), absl::string_view::npos);
  creds = MakeServerCredentials({.client_ca_file = (*dir_ / "ca.crt").string()});
  ASSERT_FALSE(creds.ok());
  EXPECT_NE(creds.status().message().find("--tls-client-ca needs"), absl::string_view::npos);
  creds = MakeServerCredentials({.key_file = (*dir_ / "tls.key").string()});
  ASSERT_FALSE(creds.ok());
  EXPECT_NE(creds.status().message().find("go together"), absl::string_view::npos);
  creds = MakeServerCredentials(
      {.cert_file = (*dir_ / "san.ext").string(), .key_file = (*dir_ / "tls.key").string()});
  ASSERT_FALSE(creds.ok());
  EXPECT_NE(creds.status().message().find("holds no PEM data"), absl::string_view::npos);
}

}  // namespace
}  // namespace klag::scaler
