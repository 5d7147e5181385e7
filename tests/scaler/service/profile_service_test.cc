// Credentials profiles over gRPC (docs/security.md): the real server in-process on 127.0.0.1:0
// with a ProfileStore on a temporary directory and a fake Kafka reader that records which
// cluster the scaler was asked to connect to. A namespace the profile does not allow gets
// PERMISSION_DENIED; a trigger cannot send a profile's credentials to a cluster of its choosing.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "scaler/service/external_scaler_service.h"
#include "scaler/service/profile_store.h"
#include "scaler/service/server.h"
#include "tests/testing/fake_offset_reader.h"
#include "tests/testing/test_env.h"

namespace klag::scaler {
namespace {

namespace fs = std::filesystem;
using externalscaler::ExternalScaler;

constexpr char kPassword[] = "pr0file-pa55word";

class ProfileServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / testing::UniqueName("klag-profile-service");
    fs::create_directories(dir_ / "kafka");
    Write("kafka/bootstrapServers", "kafka.kafka.svc:9092");
    Write("kafka/sasl", "scram_sha512");
    Write("kafka/username", "svc-klag");
    Write("kafka/password", kPassword);
    Write("kafka/allowedNamespaces", "data-load");
    profiles_ = std::make_unique<ProfileStore>(dir_.string());

    reader_ = std::make_shared<testing::FakeOffsetReader>();
    reader_->SetOffsets("g", {{.topic = "t", .partition = 0, .committed = 3, .end = 10}});
    evaluator_ = std::make_unique<Evaluator>(
        [this](const kafka::ConnectionConfig& c)
            -> absl::StatusOr<std::shared_ptr<kafka::OffsetReader>> {
          absl::MutexLock lock(&mu_);
          connections_.push_back(c);
          return reader_;
        },
        profiles_.get(),
        EvaluatorOptions{.kafka_timeout = absl::Seconds(2), .window = absl::Milliseconds(20)});
    service_ = std::make_unique<ExternalScalerService>(
        evaluator_.get(), ServiceOptions{.stream_poll_interval = absl::Milliseconds(50)});
    auto server = ScalerServer::Start(ServerOptions{.listen = "127.0.0.1:0"}, service_.get());
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    stub_ = ExternalScaler::NewStub(grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                                        grpc::InsecureChannelCredentials()));
  }

  void TearDown() override {
    if (server_) server_->Shutdown(absl::Seconds(1));
    fs::remove_all(dir_);
  }

  void Write(const std::string& rel, const std::string& text) { std::ofstream(dir_ / rel) << text; }

  static externalscaler::ScaledObjectRef Ref(const std::string& ns,
                                             std::map<std::string, std::string> extra = {}) {
    externalscaler::ScaledObjectRef ref;
    ref.set_name("consumer");
    ref.set_namespace_(ns);
    auto& md = *ref.mutable_scalermetadata();
    md["scalerAddress"] = "klag-scaler.klag:6000";
    md["consumerGroup"] = "g";
    md["topic"] = "t";
    md["lagThreshold"] = "1";
    md["authProfile"] = "kafka";
    for (auto& [k, v] : extra) md[k] = v;
    return ref;
  }

  grpc::Status GetMetrics(const externalscaler::ScaledObjectRef& ref,
                          externalscaler::GetMetricsResponse* response) {
    grpc::ClientContext ctx;
    externalscaler::GetMetricsRequest request;
    *request.mutable_scaledobjectref() = ref;
    request.set_metricname("kafka-t");
    return stub_->GetMetrics(&ctx, request, response);
  }

  std::vector<kafka::ConnectionConfig> Connections() {
    absl::MutexLock lock(&mu_);
    return connections_;
  }

  fs::path dir_;
  std::unique_ptr<ProfileStore> profiles_;
  std::shared_ptr<testing::FakeOffsetReader> reader_;
  std::unique_ptr<Evaluator> evaluator_;
  std::unique_ptr<ExternalScalerService> service_;
  std::unique_ptr<ScalerServer> server_;
  std::unique_ptr<ExternalScaler::Stub> stub_;
  absl::Mutex mu_;
  std::vector<kafka::ConnectionConfig> connections_ ABSL_GUARDED_BY(mu_);
};

TEST_F(ProfileServiceTest, AllowedNamespaceIsServedWithTheProfilesCluster) {
  externalscaler::GetMetricsResponse response;
  // allowIdleConsumers: the metric is the lag (7), not capped at the 1 partition.
  grpc::Status status = GetMetrics(Ref("data-load", {{"allowIdleConsumers", "true"}}), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.metricvalues_size(), 1);
  EXPECT_EQ(response.metricvalues(0).metricvalue(), 7);
  std::vector<kafka::ConnectionConfig> connections = Connections();
  ASSERT_EQ(connections.size(), 1u);
  EXPECT_EQ(connections[0].bootstrap_servers, "kafka.kafka.svc:9092");
}

TEST_F(ProfileServiceTest, DisallowedNamespaceIsPermissionDeniedOnEveryRpc) {
  const externalscaler::ScaledObjectRef ref = Ref("tenant-b");
  std::vector<grpc::Status> statuses;
  {
    grpc::ClientContext ctx;
    externalscaler::GetMetricSpecResponse r;
    statuses.push_back(stub_->GetMetricSpec(&ctx, ref, &r));
  }
  {
    externalscaler::GetMetricsResponse r;
    statuses.push_back(GetMetrics(ref, &r));
  }
  {
    grpc::ClientContext ctx;
    externalscaler::IsActiveResponse r;
    statuses.push_back(stub_->IsActive(&ctx, ref, &r));
  }
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    auto stream = stub_->StreamIsActive(&ctx, ref);
    externalscaler::IsActiveResponse r;
    while (stream->Read(&r)) {
    }
    statuses.push_back(stream->Finish());
  }
  for (const grpc::Status& status : statuses) {
    EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED) << status.error_message();
    EXPECT_NE(status.error_message().find("authProfile \"kafka\""), std::string::npos)
        << status.error_message();
    EXPECT_NE(status.error_message().find("\"tenant-b\""), std::string::npos)
        << status.error_message();
    EXPECT_EQ(status.error_message().find(kPassword), std::string::npos);
  }
  EXPECT_TRUE(Connections().empty()) << "no Kafka client for a refused trigger";
}

TEST_F(ProfileServiceTest, TriggerCannotRedirectTheProfilesCredentials) {
  // An allowed namespace tries to send the profile's password to its own broker, or to weaken
  // how it is sent (its own CA, no certificate check, plaintext SASL, its own token endpoint).
  const std::vector<std::map<std::string, std::string>> attempts = {
      {{"bootstrapServers", "attacker.example:9092"}},
      {{"bootstrapServersFromEnv", "attacker.example:9092"}},
      {{"tls", "enable"}, {"ca", "-----BEGIN CERTIFICATE-----"}},
      {{"unsafeSsl", "true"}},
      {{"sasl", "plaintext"}},
      {{"oauthTokenEndpointUri", "https://attacker.example/token"}},
  };
  for (const auto& extra : attempts) {
    externalscaler::GetMetricsResponse response;
    grpc::Status status = GetMetrics(Ref("data-load", extra), &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << extra.begin()->first;
    EXPECT_EQ(status.error_message().rfind(extra.begin()->first + ":", 0), 0u)
        << status.error_message();
    EXPECT_EQ(status.error_message().find(kPassword), std::string::npos);
  }
  EXPECT_TRUE(Connections().empty()) << "the scaler connected somewhere for a refused trigger";
}

}  // namespace
}  // namespace klag::scaler
