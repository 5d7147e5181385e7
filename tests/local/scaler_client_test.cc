#include "tools/local/scaler_client.h"

#include <grpcpp/grpcpp.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/externalscaler.grpc.pb.h"

namespace klag::local {
namespace {

using ::testing::ElementsAre;

// Records every call; answers from its fields.
class FakeScaler final : public externalscaler::ExternalScaler::Service {
 public:
  grpc::Status IsActive(grpc::ServerContext*, const externalscaler::ScaledObjectRef* ref,
                        externalscaler::IsActiveResponse* out) override {
    Record("IsActive", *ref);
    out->set_result(active);
    return grpc::Status::OK;
  }
  grpc::Status GetMetricSpec(grpc::ServerContext*, const externalscaler::ScaledObjectRef* ref,
                             externalscaler::GetMetricSpecResponse* out) override {
    Record("GetMetricSpec", *ref);
    for (const std::string& name : spec_names) {
      externalscaler::MetricSpec* spec = out->add_metricspecs();
      spec->set_metricname(name);
      spec->set_targetsize(target_int);
      spec->set_targetsizefloat(target_float);
    }
    return grpc::Status::OK;
  }
  grpc::Status GetMetrics(grpc::ServerContext*, const externalscaler::GetMetricsRequest* req,
                          externalscaler::GetMetricsResponse* out) override {
    Record("GetMetrics:" + req->metricname(), req->scaledobjectref());
    std::lock_guard<std::mutex> lock(mu);
    if (metrics_failures > 0) {
      --metrics_failures;
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "broker down");
    }
    externalscaler::MetricValue* v = out->add_metricvalues();
    v->set_metricname(req->metricname());
    v->set_metricvalue(value_int);
    v->set_metricvaluefloat(value_float);
    return grpc::Status::OK;
  }

  void Record(const std::string& call, const externalscaler::ScaledObjectRef& ref) {
    std::lock_guard<std::mutex> lock(mu);
    calls.push_back(call);
    last_ref = ref;
  }

  std::mutex mu;
  std::vector<std::string> calls;
  externalscaler::ScaledObjectRef last_ref;
  std::vector<std::string> spec_names = {"kafka-ListedStockPrice"};
  int64_t target_int = 1;
  double target_float = 1;
  int64_t value_int = 6;
  double value_float = 6;
  bool active = true;
  int metrics_failures = 0;
};

class ScalerClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&fake_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    absl::StatusOr<std::unique_ptr<GrpcScalerClient>> client =
        GrpcScalerClient::Create("127.0.0.1:" + std::to_string(port), absl::Seconds(5));
    ASSERT_TRUE(client.ok());
    client_ = *std::move(client);
  }
  void TearDown() override { server_->Shutdown(); }

  ScalerRef Ref() {
    return ScalerRef{.name = "listed-stock-price",
                     .namespace_ = "data-load",
                     .metadata = {{"topic", "ListedStockPrice"}, {"scalerAddress", "x:6000"}}};
  }

  FakeScaler fake_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<GrpcScalerClient> client_;
};

TEST_F(ScalerClientTest, PollsInKedasOrderWithTheScaledJobsRef) {
  absl::StatusOr<TriggerPoll> poll = client_->Poll(Ref());
  ASSERT_TRUE(poll.ok()) << poll.status();
  EXPECT_THAT(fake_.calls,
              ElementsAre("GetMetricSpec", "GetMetrics:kafka-ListedStockPrice", "IsActive"));
  EXPECT_EQ(fake_.last_ref.name(), "listed-stock-price");
  EXPECT_EQ(fake_.last_ref.namespace_(), "data-load");
  EXPECT_EQ(fake_.last_ref.scalermetadata().at("topic"), "ListedStockPrice");
  EXPECT_EQ(poll->sample.queue_length, 6);
  EXPECT_EQ(poll->sample.target, 1);
  EXPECT_TRUE(poll->sample.active);
}

TEST_F(ScalerClientTest, EachSpecGetsItsPairAndValuesAreSummedTargetsAveraged) {
  fake_.spec_names = {"a", "b"};
  fake_.target_float = 4;
  absl::StatusOr<TriggerPoll> poll = client_->Poll(Ref());
  ASSERT_TRUE(poll.ok()) << poll.status();
  EXPECT_THAT(fake_.calls,
              ElementsAre("GetMetricSpec", "GetMetrics:a", "IsActive", "GetMetrics:b", "IsActive"));
  EXPECT_EQ(poll->sample.queue_length, 12);
  EXPECT_EQ(poll->sample.target, 4);
}

TEST_F(ScalerClientTest, FloatFieldsWinOnlyWhenPositiveAndAreRoundedToThreeDecimals) {
  fake_.target_float = 0;
  fake_.target_int = 3;
  fake_.value_float = 2.00049;
  absl::StatusOr<TriggerPoll> poll = client_->Poll(Ref());
  ASSERT_TRUE(poll.ok()) << poll.status();
  EXPECT_EQ(poll->sample.target, 3);
  EXPECT_DOUBLE_EQ(poll->sample.queue_length, 2.0);
}

TEST_F(ScalerClientTest, AFailedPairIsRepeatedOnceAsKedaDoes) {
  fake_.metrics_failures = 1;
  absl::StatusOr<TriggerPoll> poll = client_->Poll(Ref());
  ASSERT_TRUE(poll.ok()) << poll.status();
  EXPECT_THAT(fake_.calls, ElementsAre("GetMetricSpec", "GetMetrics:kafka-ListedStockPrice",
                                       "GetMetrics:kafka-ListedStockPrice", "IsActive"));
  fake_.calls.clear();
  fake_.metrics_failures = 2;
  poll = client_->Poll(Ref());
  EXPECT_EQ(poll.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(poll.status().message(), ::testing::HasSubstr("broker down"));
}

TEST_F(ScalerClientTest, NoMetricSpecMeansTheTriggerIsIgnored) {
  fake_.spec_names.clear();
  absl::StatusOr<TriggerPoll> poll = client_->Poll(Ref());
  EXPECT_EQ(poll.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(fake_.calls, ElementsAre("GetMetricSpec"));
}

TEST(GrpcScalerClientTest, UnreachableScalerIsAnErrorWithinTheDeadline) {
  absl::StatusOr<std::unique_ptr<GrpcScalerClient>> client =
      GrpcScalerClient::Create("127.0.0.1:1", absl::Milliseconds(500));
  ASSERT_TRUE(client.ok());
  const absl::Time start = absl::Now();
  absl::StatusOr<TriggerPoll> poll = (*client)->Poll(ScalerRef{.name = "x"});
  EXPECT_FALSE(poll.ok());
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
}

}  // namespace
}  // namespace klag::local
