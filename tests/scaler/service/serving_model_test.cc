// The serving model (issue 9): no thread per waiting RPC. The real server in-process on
// 127.0.0.1:0, called through the generated stub; behind it, one fake reader per cluster
// (bootstrap servers "live:9092" and "dead:9092"), the dead one blocking.
#include <dirent.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "scaler/service/external_scaler_service.h"
#include "scaler/service/server.h"
#include "tests/testing/fake_offset_reader.h"

namespace klag::scaler {
namespace {

using externalscaler::ExternalScaler;

// Resident memory of this process now, in KiB (-1 if unknown).
long RssKib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

// Threads of this process now.
int ThreadCount() {
  int n = 0;
  if (DIR* dir = opendir("/proc/self/task")) {
    while (dirent* entry = readdir(dir)) {
      if (entry->d_name[0] != '.') ++n;
    }
    closedir(dir);
  }
  return n;
}

class CountingObserver : public RpcObserver {
 public:
  void RpcFinished(absl::string_view method, grpc::StatusCode code, absl::Duration) override {
    absl::MutexLock lock(&mu_);
    ++finished_[absl::StrCat(method, ":", code)];
  }
  void StreamOpened() override { ++opened; }
  void StreamClosed() override { ++closed; }
  int finished(const std::string& method, grpc::StatusCode code) {
    absl::MutexLock lock(&mu_);
    return finished_[absl::StrCat(method, ":", code)];
  }
  std::atomic<int> opened{0};
  std::atomic<int> closed{0};

 private:
  absl::Mutex mu_;
  std::map<std::string, int> finished_ ABSL_GUARDED_BY(mu_);
};

// Waits up to 30 s for `condition` (a liveness bound, not a timing assertion).
template <typename F>
bool Eventually(F condition) {
  const absl::Time give_up = absl::Now() + absl::Seconds(30);
  while (!condition()) {
    if (absl::Now() > give_up) return false;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return true;
}

class ServingModelTest : public ::testing::Test {
 protected:
  void Start(EvaluatorOptions evaluator_options, ServiceOptions service_options) {
    live_ = std::make_shared<testing::FakeOffsetReader>();
    dead_ = std::make_shared<testing::FakeOffsetReader>();
    live_->SetDefault(kafka::GroupOffsets{
        .partitions = {{.topic = "t", .partition = 0, .committed = 3, .end = 10}}});
    dead_->SetDefault(kafka::GroupOffsets{
        .partitions = {{.topic = "t", .partition = 0, .committed = 0, .end = 1}}});
    evaluator_ = std::make_unique<Evaluator>(
        [this](const kafka::ConnectionConfig& c)
            -> absl::StatusOr<std::shared_ptr<kafka::OffsetReader>> {
          if (c.bootstrap_servers == "dead:9092") return dead_;
          return live_;
        },
        nullptr, std::move(evaluator_options));
    service_options.observer = &observer_;
    service_ = std::make_unique<ExternalScalerService>(evaluator_.get(), service_options);
    auto server = ScalerServer::Start(ServerOptions{.listen = "127.0.0.1:0"}, service_.get());
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    stub_ = NewStub();
  }

  std::unique_ptr<ExternalScaler::Stub> NewStub() {
    // A channel of its own (not shared with other stubs): a separate connection.
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    return ExternalScaler::NewStub(grpc::CreateCustomChannel(
        absl::StrCat("127.0.0.1:", server_->port()), grpc::InsecureChannelCredentials(), args));
  }

  // Starts an asynchronous GetMetrics owned by the fixture (so that a failed assertion never
  // leaves a call in flight that points into a finished test body).
  void StartGetMetrics(externalscaler::ScaledObjectRef ref) {
    auto call = std::make_unique<AsyncCall>();
    call->request = MetricsRequest(std::move(ref));
    AsyncCall* raw = call.get();
    {
      absl::MutexLock lock(&calls_mu_);
      calls_.push_back(std::move(call));
    }
    stub_->async()->GetMetrics(&raw->context, &raw->request, &raw->response,
                               [this](grpc::Status status) {
                                 absl::MutexLock lock(&calls_mu_);
                                 ++async_done_;
                                 if (status.ok()) ++async_ok_;
                               });
  }
  int async_done() {
    absl::MutexLock lock(&calls_mu_);
    return async_done_;
  }
  int async_ok() {
    absl::MutexLock lock(&calls_mu_);
    return async_ok_;
  }

  void TearDown() override {
    if (dead_) dead_->ReleaseCalls();
    EXPECT_TRUE(Eventually([&] {
      absl::MutexLock lock(&calls_mu_);
      return async_done_ == static_cast<int>(calls_.size());
    }));
    if (server_) server_->Shutdown(absl::Seconds(5));
  }

  static externalscaler::ScaledObjectRef Ref(const std::string& ns, const std::string& name,
                                             const std::string& cluster = "live:9092") {
    externalscaler::ScaledObjectRef ref;
    ref.set_name(name);
    ref.set_namespace_(ns);
    auto& md = *ref.mutable_scalermetadata();
    md["bootstrapServers"] = cluster;
    md["consumerGroup"] = "g-" + name;
    md["topic"] = "t";
    md["lagThreshold"] = "100";
    return ref;
  }

  static externalscaler::GetMetricsRequest MetricsRequest(externalscaler::ScaledObjectRef ref) {
    externalscaler::GetMetricsRequest request;
    *request.mutable_scaledobjectref() = std::move(ref);
    return request;
  }

  struct AsyncCall {
    grpc::ClientContext context;
    externalscaler::GetMetricsRequest request;
    externalscaler::GetMetricsResponse response;
  };
  absl::Mutex calls_mu_;
  std::vector<std::unique_ptr<AsyncCall>> calls_ ABSL_GUARDED_BY(calls_mu_);
  int async_done_ ABSL_GUARDED_BY(calls_mu_) = 0;
  int async_ok_ ABSL_GUARDED_BY(calls_mu_) = 0;

  CountingObserver observer_;
  std::shared_ptr<testing::FakeOffsetReader> live_;
  std::shared_ptr<testing::FakeOffsetReader> dead_;
  std::unique_ptr<Evaluator> evaluator_;
  std::unique_ptr<ExternalScalerService> service_;
  std::unique_ptr<ScalerServer> server_;
  std::unique_ptr<ExternalScaler::Stub> stub_;
};

TEST_F(ServingModelTest, ElevenHundredOpenStreamsHoldNoThreadsAndOtherNamespacesAreServed) {
  constexpr int kStreams = 1100;
  // Above the default per-namespace bound (1,000), to show the serving model itself.
  Start(EvaluatorOptions{.kafka_timeout = absl::Seconds(5), .window = absl::Seconds(1)},
        ServiceOptions{.stream_poll_interval = absl::Milliseconds(500),
                       .max_streams_per_namespace = kStreams});
  const int threads_before = ThreadCount();
  const long rss_before = RssKib();
  struct Stream {
    grpc::ClientContext context;
    std::unique_ptr<grpc::ClientReader<externalscaler::IsActiveResponse>> reader;
  };
  std::vector<std::unique_ptr<Stream>> streams;
  for (int i = 0; i < kStreams; ++i) {
    auto s = std::make_unique<Stream>();
    s->reader = stub_->StreamIsActive(&s->context, Ref("tenant-a", absl::StrCat("so-", i)));
    streams.push_back(std::move(s));
  }
  // Every stream gets its first answer (the current state) while all are open.
  for (auto& s : streams) {
    externalscaler::IsActiveResponse message;
    ASSERT_TRUE(s->reader->Read(&message));
    EXPECT_TRUE(message.result());  // lag 7 > activation threshold 0
  }
  EXPECT_EQ(service_->open_streams(), kStreams);
  EXPECT_EQ(observer_.opened.load(), kStreams);
  const int threads_with_streams = ThreadCount();
  std::printf("threads: %d before the streams, %d with %d streams open\n", threads_before,
              threads_with_streams, kStreams);
  // Client and server side together (one process): an upper bound for the server's share.
  const long rss_with_streams = RssKib();
  std::printf("rss: %ld KiB before the streams, %ld KiB with %d streams open (%.1f KiB each)\n",
              rss_before, rss_with_streams, kStreams,
              static_cast<double>(rss_with_streams - rss_before) / kStreams);
  EXPECT_LT(threads_with_streams, 200) << "threads must not grow with open streams";

  // Another tenant, on another connection, is served: all three RPCs of a poll succeed.
  std::unique_ptr<ExternalScaler::Stub> other = NewStub();
  const externalscaler::ScaledObjectRef ref = Ref("tenant-b", "job");
  grpc::ClientContext spec_ctx;
  externalscaler::GetMetricSpecResponse spec;
  ASSERT_TRUE(other->GetMetricSpec(&spec_ctx, ref, &spec).ok());
  grpc::ClientContext metrics_ctx;
  externalscaler::GetMetricsResponse metrics;
  grpc::Status metrics_status = other->GetMetrics(&metrics_ctx, MetricsRequest(ref), &metrics);
  ASSERT_TRUE(metrics_status.ok()) << metrics_status.error_message();
  EXPECT_EQ(metrics.metricvalues(0).metricvalue(), 7);
  grpc::ClientContext active_ctx;
  externalscaler::IsActiveResponse active;
  ASSERT_TRUE(other->IsActive(&active_ctx, ref, &active).ok());
  EXPECT_TRUE(active.result());

  // Cancelled streams are closed and forgotten.
  for (auto& s : streams) s->context.TryCancel();
  ASSERT_TRUE(Eventually([&] { return observer_.closed.load() == kStreams; }))
      << observer_.closed.load();
  EXPECT_EQ(service_->open_streams(), 0);
  for (auto& s : streams) EXPECT_EQ(s->reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
}

TEST_F(ServingModelTest, ABlackholedClusterDoesNotDelayTriggersOfAHealthyOne) {
  Start(EvaluatorOptions{.kafka_timeout = absl::Seconds(60),
                         .window = absl::Seconds(1),
                         .executor = {.workers = 4, .workers_per_cluster = 2}},
        ServiceOptions{});
  dead_->BlockCalls();  // until the (60 s) deadline: a blackholed cluster
  constexpr int kDead = 40;
  for (int i = 0; i < kDead; ++i) {
    StartGetMetrics(Ref("tenant-a", absl::StrCat("dead-", i), "dead:9092"));
  }
  ASSERT_TRUE(dead_->AwaitBlockedCalls(2));
  ASSERT_TRUE(Eventually([&] { return evaluator_->Stats().queued == kDead - 2; }))
      << evaluator_->Stats().queued;

  // Healthy cluster: every trigger answered, while the dead cluster's calls all still wait.
  std::unique_ptr<ExternalScaler::Stub> other = NewStub();
  for (int i = 0; i < 10; ++i) {
    grpc::ClientContext ctx;
    externalscaler::GetMetricsResponse response;
    grpc::Status status = other->GetMetrics(
        &ctx, MetricsRequest(Ref("tenant-b", absl::StrCat("live-", i))), &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.metricvalues(0).metricvalue(), 7);
  }
  grpc::ClientContext spec_ctx;
  externalscaler::GetMetricSpecResponse spec;
  EXPECT_TRUE(other->GetMetricSpec(&spec_ctx, Ref("tenant-a", "dead-0", "dead:9092"), &spec).ok())
      << "GetMetricSpec never waits for Kafka";
  EXPECT_EQ(async_done(), 0) << "the blackholed cluster's calls are still waiting";
  EXPECT_EQ(dead_->calls(), 2) << "the dead cluster holds only its share of workers";
  EXPECT_EQ(live_->calls(), 10);

  dead_->ReleaseCalls();
  ASSERT_TRUE(Eventually([&] { return async_done() == kDead; }));
  EXPECT_EQ(async_ok(), kDead);
}

// Completion queues: a call still waiting for Kafka when the shutdown's grace ends is cancelled
// for its client, and the server waits for its evaluation before it shuts its queues down (an
// answer posted to a dead queue would abort the process); other polls were answered meanwhile.
TEST_F(ServingModelTest, ShutdownCancelsWaitingCallsAndWaitsForTheirEvaluations) {
  Start(EvaluatorOptions{.kafka_timeout = absl::Seconds(60),
                         .window = absl::Seconds(1),
                         .executor = {.workers = 2, .workers_per_cluster = 1}},
        ServiceOptions{});
  dead_->BlockCalls(/*honor_deadline=*/false);
  StartGetMetrics(Ref("tenant-a", "waiting", "dead:9092"));
  ASSERT_TRUE(dead_->AwaitBlockedCalls(1));
  grpc::ClientContext ctx;
  externalscaler::GetMetricsResponse response;
  ASSERT_TRUE(stub_->GetMetrics(&ctx, MetricsRequest(Ref("tenant-b", "live")), &response).ok());

  std::atomic<bool> stopped{false};
  std::thread stopper([&] {
    server_->Shutdown(absl::Milliseconds(100));
    stopped = true;
  });
  // The client sees its call end when the grace is over, although the evaluation still runs.
  ASSERT_TRUE(Eventually([&] { return async_done() == 1; }));
  EXPECT_EQ(async_ok(), 0);
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_FALSE(stopped) << "Shutdown returned while an evaluation could still answer its call";
  dead_->ReleaseCalls();
  stopper.join();
  EXPECT_TRUE(stopped);
  EXPECT_EQ(observer_.finished("GetMetrics", grpc::StatusCode::OK), 2)
      << "the late answer is counted, and dropped by gRPC";
}

TEST_F(ServingModelTest, AFullQueueIsResourceExhaustedNamingTheBound) {
  Start(
      EvaluatorOptions{
          .kafka_timeout = absl::Seconds(60),
          .window = absl::Seconds(1),
          .executor = {.workers = 2, .workers_per_cluster = 1, .max_queued_per_cluster = 3}},
      ServiceOptions{});
  dead_->BlockCalls();
  for (int i = 0; i < 4; ++i) {  // one runs, three wait
    StartGetMetrics(Ref("tenant-a", absl::StrCat("dead-", i), "dead:9092"));
    if (i == 0) {
      ASSERT_TRUE(dead_->AwaitBlockedCalls(1));
    }
  }
  ASSERT_TRUE(Eventually([&] { return evaluator_->Stats().queued == 3; }));
  grpc::ClientContext ctx;
  externalscaler::GetMetricsResponse response;
  grpc::Status status =
      stub_->GetMetrics(&ctx, MetricsRequest(Ref("tenant-a", "dead-4", "dead:9092")), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(status.error_message().find("--kafka-queue-per-cluster=3"), std::string::npos)
      << status.error_message();
  EXPECT_EQ(evaluator_->Stats().rejected, 1);
  EXPECT_EQ(observer_.finished("GetMetrics", grpc::StatusCode::RESOURCE_EXHAUSTED), 1);
  dead_->ReleaseCalls();
  ASSERT_TRUE(Eventually([&] { return async_done() == 4; }));
}

TEST_F(ServingModelTest, WaitingForAWorkerPastTheDeadlineIsDeadlineExceededWithoutKafka) {
  Start(EvaluatorOptions{.kafka_timeout = absl::Milliseconds(300),
                         .window = absl::Seconds(1),
                         .executor = {.workers = 2, .workers_per_cluster = 1}},
        ServiceOptions{});
  dead_->BlockCalls(/*honor_deadline=*/false);  // holds its worker until released
  StartGetMetrics(Ref("tenant-a", "holder", "dead:9092"));
  ASSERT_TRUE(dead_->AwaitBlockedCalls(1));

  grpc::ClientContext ctx;
  externalscaler::GetMetricsResponse response;
  grpc::Status status =
      stub_->GetMetrics(&ctx, MetricsRequest(Ref("tenant-a", "late", "dead:9092")), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_NE(status.error_message().find("dead:9092"), std::string::npos) << status.error_message();
  EXPECT_EQ(dead_->calls("g-late"), 0) << "never sent to Kafka";
  EXPECT_EQ(async_done(), 0) << "the holder still holds the cluster's only worker";
  EXPECT_EQ(evaluator_->Stats().expired, 1);
  dead_->ReleaseCalls();
  ASSERT_TRUE(Eventually([&] { return async_done() == 1; }));
}

TEST_F(ServingModelTest, StreamWritesOnlyChangesAndShutdownEndsItWithOk) {
  Start(EvaluatorOptions{.kafka_timeout = absl::Seconds(5), .window = absl::Milliseconds(1)},
        ServiceOptions{.stream_poll_interval = absl::Milliseconds(20)});
  live_->SetOffsets("g-so", {{.topic = "t", .partition = 0, .committed = 10, .end = 10}});
  grpc::ClientContext ctx;
  auto stream = stub_->StreamIsActive(&ctx, Ref("tenant-a", "so"));
  externalscaler::IsActiveResponse message;
  ASSERT_TRUE(stream->Read(&message));
  EXPECT_FALSE(message.result()) << "the first answer is always sent";
  // Several polls with the same answer ...
  const int64_t seen = live_->calls("g-so");
  ASSERT_TRUE(Eventually([&] { return live_->calls("g-so") >= seen + 5; }));
  // ... send nothing: the next message is the change.
  live_->SetOffsets("g-so", {{.topic = "t", .partition = 0, .committed = 5, .end = 10}});
  ASSERT_TRUE(stream->Read(&message));
  EXPECT_TRUE(message.result());

  service_->Shutdown();
  EXPECT_FALSE(stream->Read(&message));
  EXPECT_TRUE(stream->Finish().ok());
  ASSERT_TRUE(Eventually([&] { return observer_.closed.load() == 1; }));
  EXPECT_EQ(observer_.finished("StreamIsActive", grpc::StatusCode::OK), 1);
  EXPECT_EQ(service_->open_streams(), 0);

  // A stream opened after Shutdown ends at once, with OK.
  grpc::ClientContext late_ctx;
  auto late = stub_->StreamIsActive(&late_ctx, Ref("tenant-a", "late"));
  EXPECT_FALSE(late->Read(&message));
  EXPECT_TRUE(late->Finish().ok());
}

TEST_F(ServingModelTest, CancellingAStreamFreesIt) {
  Start(EvaluatorOptions{.kafka_timeout = absl::Seconds(5), .window = absl::Milliseconds(1)},
        ServiceOptions{.stream_poll_interval = absl::Milliseconds(20)});
  grpc::ClientContext ctx;
  auto stream = stub_->StreamIsActive(&ctx, Ref("tenant-a", "so"));
  externalscaler::IsActiveResponse message;
  ASSERT_TRUE(stream->Read(&message));
  EXPECT_EQ(service_->open_streams(), 1);
  ctx.TryCancel();
  ASSERT_TRUE(Eventually([&] { return observer_.closed.load() == 1; }));
  EXPECT_EQ(service_->open_streams(), 0);
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::CANCELLED);
  // Ended by its client: a stream's normal end, counted OK.
  EXPECT_EQ(observer_.finished("StreamIsActive", grpc::StatusCode::OK), 1);
  // No more evaluations for it.
  const int calls = live_->calls("g-so");
  absl::SleepFor(absl::Milliseconds(100));  // five poll intervals
  EXPECT_EQ(live_->calls("g-so"), calls);
}

// Issue 8: one namespace at a bound is refused with RESOURCE_EXHAUSTED naming the flag; other
// namespaces are served; a closed stream frees its slot.
TEST_F(ServingModelTest, StreamsOverTheirBoundsAreRefusedAndOtherNamespacesAreServed) {
  Start(EvaluatorOptions{.kafka_timeout = absl::Seconds(5), .window = absl::Seconds(1)},
        ServiceOptions{.stream_poll_interval = absl::Seconds(1),
                       .max_streams = 8,
                       .max_streams_per_namespace = 5});
  struct Stream {
    grpc::ClientContext context;
    std::unique_ptr<grpc::ClientReader<externalscaler::IsActiveResponse>> reader;
  };
  auto open = [&](const std::string& ns, const std::string& name) {
    auto s = std::make_unique<Stream>();
    s->reader = stub_->StreamIsActive(&s->context, Ref(ns, name));
    return s;
  };
  auto expect_refused = [](Stream& s, const std::string& text) {
    externalscaler::IsActiveResponse message;
    EXPECT_FALSE(s.reader->Read(&message));
    const grpc::Status status = s.reader->Finish();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    EXPECT_NE(status.error_message().find(text), std::string::npos) << status.error_message();
  };
  std::vector<std::unique_ptr<Stream>> a;
  for (int i = 0; i < 5; ++i) {
    a.push_back(open("tenant-a", absl::StrCat("so-", i)));
    externalscaler::IsActiveResponse message;
    ASSERT_TRUE(a.back()->reader->Read(&message));
  }
  // tenant-a's sixth stream (its per-namespace bound + 1) fails at once.
  std::unique_ptr<Stream> sixth = open("tenant-a", "so-5");
  expect_refused(*sixth,
                 "namespace tenant-a has 5 open StreamIsActive streams "
                 "(--max-streams-per-namespace=5)");
  EXPECT_EQ(live_->calls("g-so-5"), 0);

  // tenant-b opens streams (up to the total) and is answered.
  std::vector<std::unique_ptr<Stream>> b;
  for (int i = 0; i < 3; ++i) {
    b.push_back(open("tenant-b", absl::StrCat("so-", i)));
    externalscaler::IsActiveResponse message;
    ASSERT_TRUE(b.back()->reader->Read(&message));
    EXPECT_TRUE(message.result());
  }
  grpc::ClientContext metrics_ctx;
  externalscaler::GetMetricsResponse metrics;
  grpc::Status metrics_status =
      stub_->GetMetrics(&metrics_ctx, MetricsRequest(Ref("tenant-b", "job")), &metrics);
  ASSERT_TRUE(metrics_status.ok()) << metrics_status.error_message();
  EXPECT_EQ(metrics.metricvalues(0).metricvalue(), 7);
  EXPECT_EQ(service_->open_streams(), 8);

  // The total: a third namespace finds no slot.
  std::unique_ptr<Stream> c = open("tenant-c", "so-0");
  expect_refused(*c, "klag-scaler has 8 open StreamIsActive streams (--max-streams=8)");
  EXPECT_TRUE(Eventually([&] {  // OnDone may run after the client has seen the status
    return observer_.finished("StreamIsActive", grpc::StatusCode::RESOURCE_EXHAUSTED) == 2;
  }));

  // Closing one of tenant-a's streams frees its slot.
  a[0]->context.TryCancel();
  ASSERT_TRUE(Eventually([&] { return observer_.closed.load() == 1; }));
  EXPECT_EQ(a[0]->reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  std::unique_ptr<Stream> again = open("tenant-a", "so-5");
  externalscaler::IsActiveResponse message;
  ASSERT_TRUE(again->reader->Read(&message));
  EXPECT_TRUE(message.result());

  service_->Shutdown();
  for (auto* streams : {&a, &b}) {
    for (size_t i = (streams == &a ? 1 : 0); i < streams->size(); ++i) {
      EXPECT_TRUE((*streams)[i]->reader->Finish().ok());
    }
  }
  EXPECT_TRUE(again->reader->Finish().ok());
}

TEST_F(ServingModelTest, TriggersAndClustersOverTheirBoundsAreRefusedAndOtherNamespacesServed) {
  Start(EvaluatorOptions{.kafka_timeout = absl::Seconds(5),
                         .window = absl::Seconds(1),
                         .max_triggers_per_namespace = 3,
                         .max_clusters_per_namespace = 1},
        ServiceOptions{});
  auto get_metrics = [&](const externalscaler::ScaledObjectRef& ref) {
    grpc::ClientContext ctx;
    externalscaler::GetMetricsResponse response;
    return stub_->GetMetrics(&ctx, MetricsRequest(ref), &response);
  };
  auto expect_refused = [](const grpc::Status& status, const std::string& text) {
    EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
    EXPECT_NE(status.error_message().find(text), std::string::npos) << status.error_message();
  };
  ASSERT_TRUE(get_metrics(Ref("tenant-a", "j0")).ok());
  ASSERT_TRUE(get_metrics(Ref("tenant-a", "j1")).ok());
  // A second cluster for tenant-a: refused, nothing asked of it.
  expect_refused(get_metrics(Ref("tenant-a", "j2", "dead:9092")),
                 "namespace tenant-a already uses 1 Kafka clusters "
                 "(--max-clusters-per-namespace=1); cluster dead:9092 would be one more");
  EXPECT_EQ(dead_->calls(), 0);
  ASSERT_TRUE(get_metrics(Ref("tenant-a", "j2")).ok());
  // tenant-a's fourth trigger: refused by every RPC.
  const externalscaler::ScaledObjectRef fourth = Ref("tenant-a", "j3");
  const std::string bound =
      "namespace tenant-a has 3 tracked triggers "
      "(--max-triggers-per-namespace=3)";
  expect_refused(get_metrics(fourth), bound);
  {
    grpc::ClientContext ctx;
    externalscaler::GetMetricSpecResponse spec;
    expect_refused(stub_->GetMetricSpec(&ctx, fourth, &spec), bound);
  }
  {
    grpc::ClientContext ctx;
    externalscaler::IsActiveResponse active;
    expect_refused(stub_->IsActive(&ctx, fourth, &active), bound);
  }
  {
    grpc::ClientContext ctx;
    auto stream = stub_->StreamIsActive(&ctx, fourth);
    externalscaler::IsActiveResponse message;
    EXPECT_FALSE(stream->Read(&message));
    expect_refused(stream->Finish(), bound);
  }
  EXPECT_EQ(live_->calls("g-j3"), 0);
  EXPECT_EQ(service_->open_streams(), 0);

  // tenant-b: a new trigger on the cluster tenant-a may not add is served (a new client), its
  // other triggers too.
  grpc::ClientContext spec_ctx;
  externalscaler::GetMetricSpecResponse spec;
  ASSERT_TRUE(stub_->GetMetricSpec(&spec_ctx, Ref("tenant-b", "j0", "dead:9092"), &spec).ok());
  grpc::Status b_status = get_metrics(Ref("tenant-b", "j0", "dead:9092"));
  ASSERT_TRUE(b_status.ok()) << b_status.error_message();
  EXPECT_EQ(dead_->calls(), 1);
  ASSERT_TRUE(get_metrics(Ref("tenant-b", "j1", "dead:9092")).ok());
  ASSERT_TRUE(get_metrics(Ref("tenant-b", "j2", "dead:9092")).ok());
  EXPECT_EQ(evaluator_->Stats().clusters, 2);
}

}  // namespace
}  // namespace klag::scaler
