// klag-scaler under load while its Kafka broker restarts again and again (label e2e). The scaler
// is wired as klag-scaler's main() wires it (ClusterRegistry -> RdkafkaOffsetReader ->
// Evaluator -> ExternalScalerService -> gRPC server on 127.0.0.1:0) and polled over gRPC the way
// KEDA polls a ScaledJob (GetMetrics, then IsActive) for 1,000 triggers, each its own ScaledJob
// and consumer group with known commits, by threads that never pause. Meanwhile the test's own
// broker (scripts/kafka.sh --state <tmp>, version from KLAG_KAFKA_VERSION as kafka.sh reads it)
// is restarted on the same port 10 times at random moments. Required: the process survives
// (librdkafka #5040 killed it here), every answer is exact or UNAVAILABLE / DEADLINE_EXCEEDED
// (never NOT_FOUND, never a wrong number), and after each restart every trigger answers exactly
// again.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "kafka/cluster_registry.h"
#include "kafka/rdkafka_offset_reader.h"
#include "proto/externalscaler.grpc.pb.h"
#include "scaler/service/evaluator.h"
#include "scaler/service/external_scaler_service.h"
#include "scaler/service/server.h"
#include "tests/kafka/commit_many.h"
#include "tests/testing/kafka_admin.h"
#include "tests/testing/test_env.h"

namespace klag::scaler {
namespace {

using externalscaler::ExternalScaler;

constexpr int kTriggers = 1000;
constexpr int kTopics = 20;
constexpr int kRestarts = 10;
constexpr int kPollers = 8;
constexpr absl::Duration kKafkaTimeout = absl::Seconds(3);
// A gRPC call that takes this long means the scaler hangs (every evaluation is bounded by
// kKafkaTimeout).
constexpr absl::Duration kRpcDeadline = absl::Seconds(20);
// After a restart, how long every trigger may take to answer exactly again.
constexpr absl::Duration kRecoveryLimit = absl::Seconds(60);

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return std::string(absl::StripAsciiWhitespace(text));
}

// Runs scripts/kafka.sh --state `state` `args`; false (with its output in `output`) on failure.
bool KafkaSh(const std::string& state, const std::string& args, std::string* output) {
  const std::string command =
      absl::StrCat(KLAG_SOURCE_DIR, "/scripts/kafka.sh --state '", state, "' ", args, " 2>&1");
  output->clear();
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return false;
  char buffer[4096];
  while (fgets(buffer, sizeof buffer, pipe) != nullptr) *output += buffer;
  return pclose(pipe) == 0;
}

// One trigger: its ScaledJob, group, topic and the answer KEDA must get.
struct Trigger {
  externalscaler::ScaledObjectRef ref;
  std::string metric_name;
  int64_t lag = 0;
};

// What the pollers saw.
struct Tally {
  int64_t exact = 0;
  int64_t unavailable = 0;
  int64_t deadline_exceeded = 0;
  int64_t wrong = 0;
  int64_t not_found = 0;
  int64_t other = 0;
  std::vector<std::string> bad;  // the first few wrong / NOT_FOUND / other answers
};

class Scaler {
 public:
  Scaler()
      : registry_(
            [](const kafka::ConnectionConfig& config)
                -> absl::StatusOr<std::shared_ptr<kafka::OffsetReader>> {
              auto reader = kafka::RdkafkaOffsetReader::Create(
                  config, {.metadata_max_age = absl::Seconds(30)});
              if (!reader.ok()) return reader.status();
              return std::shared_ptr<kafka::OffsetReader>(*std::move(reader));
            },
            absl::Minutes(10)),
        evaluator_([this](const kafka::ConnectionConfig& c) { return registry_.For(c); }, nullptr,
                   EvaluatorOptions{.kafka_timeout = kKafkaTimeout}),
        service_(&evaluator_, ServiceOptions{}) {
    auto server = ScalerServer::Start(ServerOptions{.listen = "127.0.0.1:0"}, &service_);
    EXPECT_TRUE(server.ok()) << server.status();
    if (server.ok()) server_ = *std::move(server);
  }
  ~Scaler() {
    if (server_ != nullptr) server_->Shutdown(absl::Seconds(1));
  }
  bool ok() const { return server_ != nullptr; }

  std::unique_ptr<ExternalScaler::Stub> NewStub() const {
    return ExternalScaler::NewStub(grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                                       grpc::InsecureChannelCredentials()));
  }

 private:
  kafka::ClusterRegistry registry_;
  Evaluator evaluator_;
  ExternalScalerService service_;
  std::unique_ptr<ScalerServer> server_;
};

// One KEDA poll of a ScaledJob trigger: GetMetrics, then IsActive. Returns the first failure,
// or OK; `exact` says whether both answers were the expected ones.
grpc::Status Poll(ExternalScaler::Stub& stub, const Trigger& trigger, bool* exact,
                  std::string* got) {
  externalscaler::GetMetricsRequest request;
  *request.mutable_scaledobjectref() = trigger.ref;
  request.set_metricname(trigger.metric_name);
  externalscaler::GetMetricsResponse metrics;
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + kRpcDeadline));
    grpc::Status status = stub.GetMetrics(&ctx, request, &metrics);
    if (!status.ok()) return status;
  }
  externalscaler::IsActiveResponse active;
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + kRpcDeadline));
    grpc::Status status = stub.IsActive(&ctx, trigger.ref, &active);
    if (!status.ok()) return status;
  }
  const int64_t value =
      metrics.metricvalues_size() == 1 ? metrics.metricvalues(0).metricvaluefloat() : -1;
  *exact = value == trigger.lag && active.result() == (trigger.lag > 0);
  *got = absl::StrCat("metric ", value, " active ", active.result(), ", want ", trigger.lag);
  return grpc::Status::OK;
}

TEST(ScalerRestartUnderLoadTest, ThousandTriggersSurviveTenBrokerRestartsAndAnswerExactly) {
  KLAG_REQUIRE_BROKER(shared_bootstrap);  // e2e runs are enabled; this test runs its own broker
  const absl::Time test_start = absl::Now();
  const char* version = std::getenv("KLAG_KAFKA_VERSION");
  const std::string state = absl::StrCat(::testing::TempDir(), testing::UniqueName("restarts"));
  std::string out;
  ASSERT_TRUE(KafkaSh(state, "start --fresh", &out)) << out;
  struct Cleanup {
    std::string state;
    ~Cleanup() {
      std::string ignored;
      KafkaSh(state, "clean", &ignored);
    }
  } cleanup{state};
  const std::string bootstrap = ReadFile(state + "/bootstrap");
  ASSERT_FALSE(bootstrap.empty()) << out;
  std::printf("Kafka %s at %s (state %s), started in %.1f s\n",
              version != nullptr ? version : "(kafka.sh default)", bootstrap.c_str(), state.c_str(),
              absl::ToDoubleSeconds(absl::Now() - test_start));

  // Topic t has 2 partitions with t + 1 and 2t + 3 records; trigger i reads topic i % kTopics
  // with its own group, committed at i % (t + 2) and i % (2t + 4) (never past the end).
  absl::Time setup = absl::Now();
  std::vector<std::string> topics;
  for (int t = 0; t < kTopics; ++t) {
    topics.push_back(testing::UniqueName("restart-load"));
    ASSERT_TRUE(testing::CreateTopic(bootstrap, topics.back(), 2).ok());
    ASSERT_TRUE(testing::Produce(bootstrap, topics.back(), 0, t + 1).ok());
    ASSERT_TRUE(testing::Produce(bootstrap, topics.back(), 1, 2 * t + 3).ok());
  }
  std::vector<Trigger> triggers(kTriggers);
  std::vector<testing::GroupCommit> commits;
  const std::string prefix = testing::UniqueName("restart-load");
  for (int i = 0; i < kTriggers; ++i) {
    const int t = i % kTopics;
    const std::string group = absl::StrCat(prefix, "-group-", i);
    const int64_t c0 = i % (t + 2);
    const int64_t c1 = i % (2 * t + 4);
    commits.push_back({group, {{topics[t], 0, c0}, {topics[t], 1, c1}}});
    Trigger& trigger = triggers[i];
    trigger.ref.set_name(absl::StrCat("job-", i));
    trigger.ref.set_namespace_("restarts");
    auto& md = *trigger.ref.mutable_scalermetadata();
    md["scalerAddress"] = "klag-scaler:6000";
    md["bootstrapServers"] = bootstrap;
    md["consumerGroup"] = group;
    md["topic"] = topics[t];
    md["lagThreshold"] = "100";  // the cap (2 x 100) stays above every lag here
    trigger.lag = (t + 1 - c0) + (2 * t + 3 - c1);
  }
  ASSERT_TRUE(testing::CommitMany(bootstrap, commits).ok());
  std::printf("set-up: %d topics, %d groups committed in %.1f s\n", kTopics, kTriggers,
              absl::ToDoubleSeconds(absl::Now() - setup));

  Scaler scaler;
  ASSERT_TRUE(scaler.ok());
  {
    auto stub = scaler.NewStub();
    for (Trigger& trigger : triggers) {
      grpc::ClientContext ctx;
      externalscaler::GetMetricSpecResponse spec;
      ASSERT_TRUE(stub->GetMetricSpec(&ctx, trigger.ref, &spec).ok());
      ASSERT_EQ(spec.metricspecs_size(), 1);
      trigger.metric_name = spec.metricspecs(0).metricname();
    }
  }

  // Every trigger answers exactly, each failure on the way being UNAVAILABLE or
  // DEADLINE_EXCEEDED; returns how long it took, or nothing after kRecoveryLimit.
  auto sweep = [&](ExternalScaler::Stub& stub, Tally& tally) -> std::optional<absl::Duration> {
    const absl::Time start = absl::Now();
    for (const Trigger& trigger : triggers) {
      while (true) {
        bool exact = false;
        std::string got;
        grpc::Status status = Poll(stub, trigger, &exact, &got);
        if (status.ok() && exact) {
          ++tally.exact;
          break;
        }
        if (status.ok()) {
          ++tally.wrong;
          tally.bad.push_back(absl::StrCat(trigger.ref.name(), ": ", got));
        } else if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
          ++tally.unavailable;
        } else if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
          ++tally.deadline_exceeded;
        } else {
          ++(status.error_code() == grpc::StatusCode::NOT_FOUND ? tally.not_found : tally.other);
          tally.bad.push_back(absl::StrCat(trigger.ref.name(), ": ", status.error_code(), " ",
                                           status.error_message()));
        }
        if (absl::Now() - start > kRecoveryLimit) return std::nullopt;
        absl::SleepFor(absl::Milliseconds(200));
      }
    }
    return absl::Now() - start;
  };
  auto main_stub = scaler.NewStub();
  Tally checks;
  std::optional<absl::Duration> first = sweep(*main_stub, checks);
  ASSERT_TRUE(first.has_value());
  std::printf("before: all %d triggers exact in %.1f s\n", kTriggers,
              absl::ToDoubleSeconds(*first));

  // Pollers: KEDA's polls of every trigger, without pause, for the whole test.
  absl::Mutex mu;
  Tally polled;
  std::atomic<bool> stop{false};
  std::atomic<int64_t> polls{0};
  std::vector<std::thread> pollers;
  for (int p = 0; p < kPollers; ++p) {
    pollers.emplace_back([&, p] {
      auto stub = scaler.NewStub();
      for (int i = p; !stop.load(); i = (i + kPollers) % kTriggers) {
        bool exact = false;
        std::string got;
        grpc::Status status = Poll(*stub, triggers[i], &exact, &got);
        ++polls;
        absl::MutexLock lock(&mu);
        if (status.ok() && exact) {
          ++polled.exact;
        } else if (status.ok()) {
          ++polled.wrong;
          if (polled.bad.size() < 20) {
            polled.bad.push_back(absl::StrCat(triggers[i].ref.name(), ": ", got));
          }
        } else if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
          ++polled.unavailable;
        } else if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED &&
                   status.error_message() != "Deadline Exceeded") {  // not our kRpcDeadline
          ++polled.deadline_exceeded;
        } else {
          ++(status.error_code() == grpc::StatusCode::NOT_FOUND ? polled.not_found : polled.other);
          if (polled.bad.size() < 20) {
            polled.bad.push_back(absl::StrCat(triggers[i].ref.name(), ": ", status.error_code(),
                                              " ", status.error_message()));
          }
        }
      }
    });
  }

  std::mt19937 random(static_cast<uint32_t>(absl::ToUnixNanos(absl::Now())));
  std::uniform_int_distribution<int> pause_ms(500, 5000);
  int restarts = 0;
  for (; restarts < kRestarts; ++restarts) {
    const int pause = pause_ms(random);
    absl::SleepFor(absl::Milliseconds(pause));
    const absl::Time begin = absl::Now();
    const bool restarted = KafkaSh(state, "restart", &out);
    const absl::Duration restart_took = absl::Now() - begin;
    EXPECT_TRUE(restarted) << out;
    if (!restarted) break;
    EXPECT_EQ(ReadFile(state + "/bootstrap"), bootstrap);
    std::optional<absl::Duration> recovered = sweep(*main_stub, checks);
    std::printf(
        "restart %d (after %d ms of polling): kafka.sh restart %.1f s, then all %d triggers exact "
        "after %s; %lld polls so far\n",
        restarts + 1, pause, absl::ToDoubleSeconds(restart_took), kTriggers,
        recovered.has_value() ? absl::FormatDuration(*recovered).c_str() : "NEVER",
        static_cast<long long>(polls.load()));
    EXPECT_TRUE(recovered.has_value()) << "restart " << restarts + 1;
    if (!recovered.has_value()) break;
  }
  stop.store(true);
  for (std::thread& t : pollers) t.join();

  for (const auto& [name, t] :
       std::map<std::string, const Tally*>{{"pollers", &polled}, {"recovery sweeps", &checks}}) {
    std::printf(
        "%s: %lld exact, %lld UNAVAILABLE, %lld DEADLINE_EXCEEDED, %lld wrong, %lld NOT_FOUND, "
        "%lld other\n",
        name.c_str(), static_cast<long long>(t->exact), static_cast<long long>(t->unavailable),
        static_cast<long long>(t->deadline_exceeded), static_cast<long long>(t->wrong),
        static_cast<long long>(t->not_found), static_cast<long long>(t->other));
    for (const std::string& bad : t->bad) std::printf("  %s\n", bad.c_str());
    EXPECT_EQ(t->wrong, 0) << name;
    EXPECT_EQ(t->not_found, 0) << name;
    EXPECT_EQ(t->other, 0) << name;
  }
  EXPECT_EQ(restarts, kRestarts);
  EXPECT_GT(polled.unavailable + polled.deadline_exceeded, 0) << "no restart was noticed";
  EXPECT_GT(polled.exact, kTriggers);
  std::printf("%d restarts, %lld polls, %.1f s in all\n", restarts,
              static_cast<long long>(polls.load()),
              absl::ToDoubleSeconds(absl::Now() - test_start));
}

}  // namespace
}  // namespace klag::scaler
