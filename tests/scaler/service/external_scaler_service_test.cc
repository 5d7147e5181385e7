// Service tests: the real gRPC server in-process on 127.0.0.1:0, called through the generated
// stub, with a fake Kafka reader behind it.
#include "scaler/service/external_scaler_service.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <thread>

#include "absl/strings/str_cat.h"
#include "proto/grpc/health/v1/health.grpc.pb.h"
#include "scaler/service/health_service.h"
#include "scaler/service/server.h"
#include "tests/testing/fake_offset_reader.h"

namespace klag::scaler {
namespace {

using externalscaler::ExternalScaler;

class ServiceTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(ServiceOptions{.stream_poll_interval = absl::Milliseconds(50)}); }

  void Start(ServiceOptions service_options) {
    reader_ = std::make_shared<testing::FakeOffsetReader>();
    evaluator_ = std::make_unique<Evaluator>(
        [this](const kafka::ConnectionConfig&)
            -> absl::StatusOr<std::shared_ptr<kafka::OffsetReader>> { return reader_; },
        nullptr,
        EvaluatorOptions{.kafka_timeout = absl::Seconds(2), .window = absl::Milliseconds(20)});
    service_ = std::make_unique<ExternalScalerService>(evaluator_.get(), service_options);
    auto server = ScalerServer::Start(ServerOptions{.listen = "127.0.0.1:0"}, service_.get());
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                   grpc::InsecureChannelCredentials());
    stub_ = ExternalScaler::NewStub(channel_);
  }

  void TearDown() override {
    if (server_) server_->Shutdown(absl::Seconds(1));
  }

  static externalscaler::ScaledObjectRef Ref(std::map<std::string, std::string> extra = {}) {
    externalscaler::ScaledObjectRef ref;
    ref.set_name("stock-job");
    ref.set_namespace_("data");
    auto& md = *ref.mutable_scalermetadata();
    md["scalerAddress"] = "klag-scaler.klag:6000";
    md["bootstrapServers"] = "kafka:9092";
    md["consumerGroup"] = "python_data_load";
    md["topic"] = "ListedStockPrice";
    md["lagThreshold"] = "10";
    for (auto& [k, v] : extra) md[k] = v;
    return ref;
  }

  void SetLag(int64_t committed0, int64_t committed1, int64_t end) {
    reader_->SetOffsets(
        "python_data_load",
        {{.topic = "ListedStockPrice", .partition = 0, .committed = committed0, .end = end},
         {.topic = "ListedStockPrice", .partition = 1, .committed = committed1, .end = end}});
  }

  std::shared_ptr<testing::FakeOffsetReader> reader_;
  std::unique_ptr<Evaluator> evaluator_;
  std::unique_ptr<ExternalScalerService> service_;
  std::unique_ptr<ScalerServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<ExternalScaler::Stub> stub_;
};

TEST_F(ServiceTest, OnePollTheWayKedaDoesIt) {
  SetLag(/*committed0=*/100, /*committed1=*/95, /*end=*/107);  // lag 7 + 12 = 19

  grpc::ClientContext spec_ctx;
  externalscaler::GetMetricSpecResponse spec;
  ASSERT_TRUE(stub_->GetMetricSpec(&spec_ctx, Ref(), &spec).ok());
  ASSERT_EQ(spec.metricspecs_size(), 1);
  EXPECT_EQ(spec.metricspecs(0).metricname(), "kafka-ListedStockPrice");
  EXPECT_EQ(spec.metricspecs(0).targetsize(), 10);
  EXPECT_EQ(spec.metricspecs(0).targetsizefloat(), 10.0);
  EXPECT_EQ(reader_->calls(), 0) << "GetMetricSpec must not touch Kafka";

  grpc::ClientContext metrics_ctx;
  externalscaler::GetMetricsRequest request;
  *request.mutable_scaledobjectref() = Ref();
  request.set_metricname(spec.metricspecs(0).metricname());
  externalscaler::GetMetricsResponse metrics;
  ASSERT_TRUE(stub_->GetMetrics(&metrics_ctx, request, &metrics).ok());
  ASSERT_EQ(metrics.metricvalues_size(), 1);
  EXPECT_EQ(metrics.metricvalues(0).metricname(), "kafka-ListedStockPrice");
  EXPECT_EQ(metrics.metricvalues(0).metricvalue(), 19);
  EXPECT_EQ(metrics.metricvalues(0).metricvaluefloat(), 19.0);

  grpc::ClientContext active_ctx;
  externalscaler::IsActiveResponse active;
  ASSERT_TRUE(stub_->IsActive(&active_ctx, Ref(), &active).ok());
  EXPECT_TRUE(active.result());
  EXPECT_EQ(reader_->calls(), 1) << "GetMetrics and IsActive of one poll share one evaluation";
}

TEST_F(ServiceTest, InactiveWhenLagIsAtMostTheActivationThreshold) {
  SetLag(105, 105, 107);  // lag 4
  grpc::ClientContext ctx;
  externalscaler::IsActiveResponse active;
  ASSERT_TRUE(stub_->IsActive(&ctx, Ref({{"activationLagThreshold", "4"}}), &active).ok());
  EXPECT_FALSE(active.result());
}

TEST_F(ServiceTest, BadMetadataIsInvalidArgumentNamingTheKey) {
  for (const auto& rpc : {"GetMetricSpec", "GetMetrics", "IsActive"}) {
    grpc::ClientContext ctx;
    grpc::Status status;
    auto ref = Ref({{"offsetResetPolicy", "newest"}});
    if (std::string(rpc) == "GetMetricSpec") {
      externalscaler::GetMetricSpecResponse r;
      status = stub_->GetMetricSpec(&ctx, ref, &r);
    } else if (std::string(rpc) == "GetMetrics") {
      externalscaler::GetMetricsRequest req;
      *req.mutable_scaledobjectref() = ref;
      externalscaler::GetMetricsResponse r;
      status = stub_->GetMetrics(&ctx, req, &r);
    } else {
      externalscaler::IsActiveResponse r;
      status = stub_->IsActive(&ctx, ref, &r);
    }
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << rpc;
    EXPECT_NE(status.error_message().find("offsetResetPolicy"), std::string::npos)
        << rpc << ": " << status.error_message();
    EXPECT_NE(status.error_message().find("newest"), std::string::npos) << rpc;
  }
}

TEST_F(ServiceTest, KafkaErrorsKeepTheirCodesAndAreNeverAZero) {
  const std::pair<absl::Status, grpc::StatusCode> cases[] = {
      {absl::UnavailableError("all brokers down"), grpc::StatusCode::UNAVAILABLE},
      {absl::DeadlineExceededError("ListOffsets timed out"), grpc::StatusCode::DEADLINE_EXCEEDED},
      {absl::NotFoundError("topic ListedStockPrice not found"), grpc::StatusCode::NOT_FOUND},
      {absl::PermissionDeniedError("group authorization failed"),
       grpc::StatusCode::PERMISSION_DENIED},
  };
  for (const auto& [error, code] : cases) {
    reader_->SetError("python_data_load", error);
    absl::SleepFor(absl::Milliseconds(30));  // past the evaluation window
    grpc::ClientContext metrics_ctx;
    externalscaler::GetMetricsRequest request;
    *request.mutable_scaledobjectref() = Ref();
    externalscaler::GetMetricsResponse metrics;
    grpc::Status status = stub_->GetMetrics(&metrics_ctx, request, &metrics);
    EXPECT_EQ(status.error_code(), code) << error;
    EXPECT_EQ(status.error_message(), error.message());
    EXPECT_EQ(metrics.metricvalues_size(), 0);

    grpc::ClientContext active_ctx;
    externalscaler::IsActiveResponse active;
    EXPECT_EQ(stub_->IsActive(&active_ctx, Ref(), &active).error_code(), code) << error;
  }
}

TEST_F(ServiceTest, StreamIsActiveSendsCurrentStateThenChanges) {
  SetLag(107, 107, 107);  // no lag
  grpc::ClientContext ctx;
  std::unique_ptr<grpc::ClientReader<externalscaler::IsActiveResponse>> stream =
      stub_->StreamIsActive(&ctx, Ref());
  externalscaler::IsActiveResponse message;
  ASSERT_TRUE(stream->Read(&message));
  EXPECT_FALSE(message.result()) << "the current state comes first";

  SetLag(100, 107, 107);
  ASSERT_TRUE(stream->Read(&message));
  EXPECT_TRUE(message.result());

  SetLag(107, 107, 107);
  ASSERT_TRUE(stream->Read(&message));
  EXPECT_FALSE(message.result());

  // Shutdown ends the stream with OK, so KEDA reconnects without back-off.
  std::thread stopper([&] { server_->Shutdown(absl::Seconds(2)); });
  EXPECT_FALSE(stream->Read(&message));
  EXPECT_TRUE(stream->Finish().ok());
  stopper.join();
}

TEST_F(ServiceTest, StreamIsActiveWithBadMetadataFailsAtOnce) {
  grpc::ClientContext ctx;
  auto stream = stub_->StreamIsActive(&ctx, Ref({{"lagThreshold", "-3"}}));
  externalscaler::IsActiveResponse message;
  EXPECT_FALSE(stream->Read(&message));
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(ServiceTest, StreamMetricSpecIsUnimplemented) {
  grpc::ClientContext ctx;
  auto stream = stub_->StreamMetricSpec(&ctx, Ref());
  externalscaler::GetMetricSpecResponse message;
  EXPECT_FALSE(stream->Read(&message));
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::UNIMPLEMENTED);
}

TEST_F(ServiceTest, HealthServiceReportsServingThenNotServingOnShutdown) {
  using grpc::health::v1::HealthCheckRequest;
  using grpc::health::v1::HealthCheckResponse;
  auto health = grpc::health::v1::Health::NewStub(channel_);
  for (const std::string service : {"", "externalscaler.ExternalScaler"}) {
    grpc::ClientContext ctx;
    HealthCheckRequest request;
    request.set_service(service);
    HealthCheckResponse response;
    ASSERT_TRUE(health->Check(&ctx, request, &response).ok()) << service;
    EXPECT_EQ(response.status(), HealthCheckResponse::SERVING) << service;
  }
  {
    // The protocol's rule for a name the server does not know.
    grpc::ClientContext ctx;
    HealthCheckRequest request;
    request.set_service("no.such.Service");
    HealthCheckResponse response;
    EXPECT_EQ(health->Check(&ctx, request, &response).error_code(), grpc::StatusCode::NOT_FOUND);
  }

  // Watch: the current status at once, then the change; an unknown name is SERVICE_UNKNOWN and
  // stays open; shutdown ends both with OK.
  grpc::ClientContext watch_ctx;
  HealthCheckRequest watch_request;
  watch_request.set_service("externalscaler.ExternalScaler");
  auto watch = health->Watch(&watch_ctx, watch_request);
  grpc::ClientContext unknown_ctx;
  HealthCheckRequest unknown_request;
  unknown_request.set_service("no.such.Service");
  auto unknown = health->Watch(&unknown_ctx, unknown_request);
  HealthCheckResponse message;
  ASSERT_TRUE(watch->Read(&message));
  EXPECT_EQ(message.status(), HealthCheckResponse::SERVING);
  ASSERT_TRUE(unknown->Read(&message));
  EXPECT_EQ(message.status(), HealthCheckResponse::SERVICE_UNKNOWN);

  std::thread stopper([&] { server_->Shutdown(absl::Seconds(2)); });
  ASSERT_TRUE(watch->Read(&message));
  EXPECT_EQ(message.status(), HealthCheckResponse::NOT_SERVING);
  EXPECT_FALSE(watch->Read(&message));
  EXPECT_TRUE(watch->Finish().ok());
  EXPECT_FALSE(unknown->Read(&message));
  EXPECT_TRUE(unknown->Finish().ok());
  stopper.join();
}

TEST(HealthServiceTest, WatchStreamsOverTheBoundAreResourceExhausted) {
  HealthService health({"externalscaler.ExternalScaler"}, /*max_watches=*/2);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(health.grpc_service());
  std::unique_ptr<grpc::ServerCompletionQueue> cq = builder.AddCompletionQueue();
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  health.Serve(cq.get());
  health.SetServing(true);
  std::thread poller(RunQueue, cq.get());

  auto stub = grpc::health::v1::Health::NewStub(
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
  grpc::health::v1::HealthCheckRequest request;
  grpc::health::v1::HealthCheckResponse message;
  grpc::ClientContext ctx[3];
  auto first = stub->Watch(&ctx[0], request);
  auto second = stub->Watch(&ctx[1], request);
  ASSERT_TRUE(first->Read(&message));
  ASSERT_TRUE(second->Read(&message));
  EXPECT_EQ(health.open_watches(), 2);
  auto third = stub->Watch(&ctx[2], request);
  EXPECT_FALSE(third->Read(&message));
  const grpc::Status refused = third->Finish();
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(refused.error_message().find("at most 2"), std::string::npos)
      << refused.error_message();

  // A cancelled Watch frees its place.
  ctx[0].TryCancel();
  EXPECT_EQ(first->Finish().error_code(), grpc::StatusCode::CANCELLED);
  for (int i = 0; i < 600 && health.open_watches() != 1; ++i) absl::SleepFor(absl::Milliseconds(5));
  EXPECT_EQ(health.open_watches(), 1);

  health.SetServing(false);
  health.Shutdown();
  ASSERT_TRUE(second->Read(&message));
  EXPECT_EQ(message.status(), grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  EXPECT_FALSE(second->Read(&message));
  EXPECT_TRUE(second->Finish().ok());
  server->Shutdown();
  health.WaitForCalls();
  cq->Shutdown();
  poller.join();
}

TEST_F(ServiceTest, ConcurrentPollsOfManyTriggersEachGetTheirOwnAnswer) {
  constexpr int kTriggers = 40;
  for (int i = 0; i < kTriggers; ++i) {
    reader_->SetOffsets(absl::StrCat("group-", i),
                        {{.topic = "ListedStockPrice", .partition = 0, .committed = 0, .end = i}});
  }
  std::vector<std::thread> threads;
  std::atomic<int> correct{0};
  for (int i = 0; i < kTriggers; ++i) {
    threads.emplace_back([&, i] {
      grpc::ClientContext ctx;
      externalscaler::GetMetricsRequest request;
      *request.mutable_scaledobjectref() =
          Ref({{"consumerGroup", absl::StrCat("group-", i)}, {"lagThreshold", "1000"}});
      externalscaler::GetMetricsResponse response;
      if (stub_->GetMetrics(&ctx, request, &response).ok() &&
          response.metricvalues(0).metricvaluefloat() == i) {
        ++correct;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(correct.load(), kTriggers);
  EXPECT_EQ(reader_->calls(), kTriggers);
}

// The RPCs key a trigger from a view of the request; a stream from a copy. A protobuf map
// iterates in no set order: the view sorts it, so both give one key (one trigger state), and
// the copy the view makes for parsing is the request's metadata.
TEST(TriggerViewTest, ViewOfARequestKeysAsItsCopyWhateverTheMapOrder) {
  std::vector<std::pair<std::string, std::string>> entries;
  for (int i = 0; i < 40; ++i) {
    entries.emplace_back(absl::StrCat("key", (i * 7) % 40), absl::StrCat("value-", i));
  }
  externalscaler::ScaledObjectRef forward;
  externalscaler::ScaledObjectRef backward;
  for (auto* ref : {&forward, &backward}) {
    ref->set_name("job");
    ref->set_namespace_("team");
  }
  for (const auto& [key, value] : entries) (*forward.mutable_scalermetadata())[key] = value;
  for (auto it = entries.rbegin(); it != entries.rend(); ++it) {
    (*backward.mutable_scalermetadata())[it->first] = it->second;
  }
  const TriggerRef copy = ToTriggerRef(forward);
  const TriggerView view = ToTriggerView(backward);
  ASSERT_EQ(view.metadata.size(), 40u);
  for (size_t i = 1; i < view.metadata.size(); ++i) {
    EXPECT_LT(view.metadata[i - 1].first, view.metadata[i].first);
  }
  EXPECT_EQ(TriggerKey(view), TriggerKey(copy));
  EXPECT_EQ(TriggerKey(ToTriggerView(forward)), TriggerKey(copy));
  const TriggerRef back = view.ToRef();
  EXPECT_EQ(back.name, "job");
  EXPECT_EQ(back.namespace_, "team");
  EXPECT_EQ(back.metadata, copy.metadata);

  // One value changed: another key.
  (*backward.mutable_scalermetadata())["key3"] = "other";
  EXPECT_NE(TriggerKey(ToTriggerView(backward)), TriggerKey(copy));
}

}  // namespace
}  // namespace klag::scaler
