// klag-scaler's /metrics end to end: the real klag-scaler binary (KLAG_SCALER_BINARY) against
// the real broker from scripts/kafka.sh, polled over gRPC the way KEDA polls, then scraped over
// HTTP; every value is checked against offsets the test wrote.
#include <curl/curl.h>
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "proto/externalscaler.grpc.pb.h"
#include "tests/testing/kafka_admin.h"
#include "tests/testing/test_env.h"

extern char** environ;

namespace klag::scaler {
namespace {

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// klag-scaler serving gRPC and metrics on ports it picks; stderr goes to a file the test reads
// the ports from.
class ScalerProcess {
 public:
  // `flags`: more klag-scaler flags.
  explicit ScalerProcess(const std::vector<std::string>& flags = {"--evaluation-window", "1m"}) {
    log_path_ = absl::StrCat(::testing::TempDir(), "/metrics_e2e_scaler_", getpid(), ".log");
    std::vector<std::string> args = {
        KLAG_SCALER_BINARY, "--listen",    "127.0.0.1:0", "--metrics-listen",
        "127.0.0.1:0",      "--log-level", "info"};
    args.insert(args.end(), flags.begin(), flags.end());
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, log_path_.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int rc = posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    EXPECT_EQ(rc, 0) << "posix_spawn " << args[0];
    // The two "serving ... (port N)" lines.
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    while (absl::Now() < deadline && (grpc_port_ == 0 || metrics_port_ == 0)) {
      const std::string log = ReadAll(log_path_);
      std::smatch m;
      if (std::regex_search(log, m, std::regex(R"(Prometheus metrics on \S+ \(port (\d+)\))"))) {
        metrics_port_ = std::stoi(m[1]);
      }
      if (std::regex_search(log, m, std::regex(R"(ExternalScaler on \S+ \(port (\d+)\))"))) {
        grpc_port_ = std::stoi(m[1]);
      }
      absl::SleepFor(absl::Milliseconds(50));
    }
    EXPECT_NE(grpc_port_, 0) << ReadAll(log_path_);
    EXPECT_NE(metrics_port_, 0) << ReadAll(log_path_);
  }

  // SIGTERM and the exit status (0 expected).
  int Stop() {
    if (pid_ <= 0) return -1;
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

  ~ScalerProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }

  int grpc_port() const { return grpc_port_; }
  int metrics_port() const { return metrics_port_; }
  std::string log() const { return ReadAll(log_path_); }

 private:
  std::string log_path_;
  pid_t pid_ = 0;
  int grpc_port_ = 0;
  int metrics_port_ = 0;
};

size_t AppendToString(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

// GET http://127.0.0.1:<port><path>: {HTTP status, body}.
std::pair<long, std::string> HttpGet(int port, const std::string& path) {
  std::string body;
  long code = 0;
  CURL* curl = curl_easy_init();
  const std::string url = absl::StrCat("http://127.0.0.1:", port, path);
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, AppendToString);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, 10L);
  if (curl_easy_perform(curl) == CURLE_OK) curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
  curl_easy_cleanup(curl);
  return {code, body};
}

// The sample lines of a scrape, "name{labels}" -> value.
std::map<std::string, std::string> Samples(const std::string& text) {
  std::map<std::string, std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    const size_t space = line.rfind(' ');
    out[line.substr(0, space)] = line.substr(space + 1);
  }
  return out;
}

TEST(MetricsE2eTest, ScrapeShowsTheOffsetsLagAndRpcsOfARealTrigger) {
  const std::string bootstrap = testing::BrokerBootstrap();
  const std::string topic = testing::UniqueName("metrics");
  const std::string group = testing::UniqueName("metrics-group");
  // Partition 0: 5 records, committed 2, records before offset 1 deleted (log start 1): lag 3.
  // Partition 1: 12 records, committed 12: lag 0. Partition 2: empty, no commit: no committed
  // series, and lag 1 (KEDA's rule for a partition without a commit under offsetResetPolicy
  // latest, unless scaleToZeroOnInvalidOffset). Total 4.
  ASSERT_TRUE(testing::CreateTopic(bootstrap, topic, 3).ok());
  ASSERT_TRUE(testing::Produce(bootstrap, topic, 0, 5).ok());
  ASSERT_TRUE(testing::Produce(bootstrap, topic, 1, 12).ok());
  ASSERT_TRUE(testing::DeleteRecordsBefore(bootstrap, topic, 0, 1).ok());
  absl::Status commit = testing::CommitOffsets(bootstrap, group, {{topic, 0, 2}, {topic, 1, 12}});
  ASSERT_TRUE(commit.ok()) << commit;

  ScalerProcess scaler;
  ASSERT_NE(scaler.metrics_port(), 0);
  auto stub = externalscaler::ExternalScaler::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", scaler.grpc_port()), grpc::InsecureChannelCredentials()));
  externalscaler::ScaledObjectRef ref;
  ref.set_name("orders-job");
  ref.set_namespace_("team-a");
  ref.mutable_scalermetadata()->insert({{"bootstrapServers", bootstrap},
                                        {"consumerGroup", group},
                                        {"topic", topic},
                                        {"lagThreshold", "10"}});
  // One KEDA poll: GetMetricSpec, GetMetrics, IsActive (reused from the 1m window).
  {
    grpc::ClientContext ctx;
    externalscaler::GetMetricSpecResponse spec;
    ASSERT_TRUE(stub->GetMetricSpec(&ctx, ref, &spec).ok());
  }
  {
    grpc::ClientContext ctx;
    externalscaler::GetMetricsRequest request;
    *request.mutable_scaledobjectref() = ref;
    externalscaler::GetMetricsResponse response;
    grpc::Status s = stub->GetMetrics(&ctx, request, &response);
    ASSERT_TRUE(s.ok()) << s.error_message();
    ASSERT_EQ(response.metricvalues_size(), 1);
    EXPECT_EQ(response.metricvalues(0).metricvalue(), 4);
  }
  {
    grpc::ClientContext ctx;
    externalscaler::IsActiveResponse response;
    ASSERT_TRUE(stub->IsActive(&ctx, ref, &response).ok());
    EXPECT_TRUE(response.result());
  }
  // A request with bad metadata: counted by code, no trigger series (it never reached Kafka).
  {
    externalscaler::ScaledObjectRef bad = ref;
    (*bad.mutable_scalermetadata())["lagThreshold"] = "ten";
    bad.set_name("bad-job");
    grpc::ClientContext ctx;
    externalscaler::GetMetricsRequest request;
    *request.mutable_scaledobjectref() = bad;
    externalscaler::GetMetricsResponse response;
    EXPECT_EQ(stub->GetMetrics(&ctx, request, &response).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }

  auto [http_status, text] = HttpGet(scaler.metrics_port(), "/metrics");
  ASSERT_EQ(http_status, 200) << text;
  const std::map<std::string, std::string> samples = Samples(text);
  auto expect = [&](const std::string& series, const std::string& value) {
    auto it = samples.find(series);
    if (it == samples.end()) {
      ADD_FAILURE() << "no sample " << series << " in:\n" << text;
    } else {
      EXPECT_EQ(it->second, value) << series;
    }
  };
  auto partition = [&](int p) {
    return absl::StrCat("{cluster=\"", bootstrap, "\",group=\"", group, "\",topic=\"", topic,
                        "\",partition=\"", p, "\"}");
  };
  expect("klag_partition_committed_offset" + partition(0), "2");
  expect("klag_partition_end_offset" + partition(0), "5");
  expect("klag_partition_log_start_offset" + partition(0), "1");
  expect("klag_partition_lag_records" + partition(0), "3");
  expect("klag_partition_committed_offset" + partition(1), "12");
  expect("klag_partition_end_offset" + partition(1), "12");
  expect("klag_partition_log_start_offset" + partition(1), "0");
  expect("klag_partition_lag_records" + partition(1), "0");
  EXPECT_EQ(samples.count("klag_partition_committed_offset" + partition(2)), 0u);
  expect("klag_partition_end_offset" + partition(2), "0");
  expect("klag_partition_lag_records" + partition(2), "1");

  const std::string trigger =
      absl::StrCat("{namespace=\"team-a\",scaledjob=\"orders-job\",group=\"", group, "\",topic=\"",
                   topic, "\"}");
  expect("klag_trigger_metric_value" + trigger, "4");
  expect("klag_trigger_target" + trigger, "10");
  expect("klag_trigger_active" + trigger, "1");
  expect("klag_trigger_lag_records" + trigger, "4");
  expect("klag_trigger_partitions_with_lag" + trigger, "2");
  expect("klag_trigger_last_result_code" + trigger, "0");
  ASSERT_EQ(samples.count("klag_trigger_last_evaluation_timestamp_seconds" + trigger), 1u);
  const double evaluated_at =
      std::stod(samples.at("klag_trigger_last_evaluation_timestamp_seconds" + trigger));
  EXPECT_NEAR(evaluated_at, absl::ToUnixSeconds(absl::Now()), 60);
  EXPECT_EQ(text.find("bad-job"), std::string::npos);

  expect(R"(klag_scaler_rpcs_total{code="OK",method="GetMetricSpec"})", "1");
  expect(R"(klag_scaler_rpcs_total{code="OK",method="GetMetrics"})", "1");
  expect(R"(klag_scaler_rpcs_total{code="OK",method="IsActive"})", "1");
  expect(R"(klag_scaler_rpcs_total{code="INVALID_ARGUMENT",method="GetMetrics"})", "1");
  expect(R"(klag_scaler_rpc_duration_seconds_count{method="GetMetrics"})", "2");
  expect(R"(klag_scaler_evaluations_total{outcome="fresh"})", "1");
  expect(R"(klag_scaler_evaluations_total{outcome="reused"})", "1");
  expect(R"(klag_scaler_evaluations_total{outcome="joined"})", "0");
  EXPECT_EQ(text.find("klag_scaler_evaluation_failures_total{"), std::string::npos) << text;
  expect("klag_scaler_triggers", "1");
  expect("klag_scaler_kafka_clients", "1");
  expect("klag_scaler_clusters", "1");
  // Nothing waits for or holds a Kafka worker once the answers are in; nothing was refused.
  expect(R"(klag_scaler_kafka_work{state="queued"})", "0");
  expect(R"(klag_scaler_kafka_work{state="running"})", "0");
  expect(R"(klag_scaler_refused_total{reason="queue_full"})", "0");
  expect(R"(klag_scaler_refused_total{reason="expired"})", "0");
  expect(R"(klag_scaler_refused_total{reason="over_bound"})", "0");
  // One fresh evaluation: one ListConsumerGroupOffsets (OffsetFetch) call.
  expect(R"(klag_scaler_kafka_requests_total{api="OffsetFetch"})", "1");
  expect("klag_scaler_open_streams", "0");
  expect(R"(klag_metrics_series_dropped_total{kind="trigger"})", "0");
  expect("klag_metrics_series", "23");  // 1 trigger x 8 + 3 partitions x 5
  bool build_info = false;
  for (const auto& [series, value] : samples) {
    if (series.rfind("klag_build_info{", 0) == 0) {
      build_info = true;
      EXPECT_EQ(value, "1");
      EXPECT_NE(series.find("version=\""), std::string::npos) << series;
      EXPECT_NE(series.find("librdkafka=\"2."), std::string::npos) << series;
    }
  }
  EXPECT_TRUE(build_info) << text;

  EXPECT_EQ(scaler.Stop(), 0) << scaler.log();
}

// activationLagSeconds over gRPC against the real broker: five records stay below
// activationLagThreshold 1000 by count, and the trigger turns active once the oldest of them is
// older than 3 s (estimated from the end offsets the scaler saw move); the lag-seconds metrics
// show the same age.
TEST(MetricsE2eTest, ActivationLagSecondsActivatesOldRecordsBelowTheCountThreshold) {
  const std::string bootstrap = testing::BrokerBootstrap();
  const std::string topic = testing::UniqueName("lag-seconds");
  const std::string group = testing::UniqueName("lag-seconds-group");
  ASSERT_TRUE(testing::CreateTopic(bootstrap, topic, 1).ok());
  ASSERT_TRUE(testing::CommitOffsets(bootstrap, group, {{topic, 0, 0}}).ok());

  // Evaluations and end-offset reads are not reused past 100 ms, so the end offsets the scaler
  // samples while the test polls bracket the produce closely.
  ScalerProcess scaler({"--evaluation-window", "100ms", "--end-offsets-max-age", "100ms"});
  ASSERT_NE(scaler.grpc_port(), 0);
  auto stub = externalscaler::ExternalScaler::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", scaler.grpc_port()), grpc::InsecureChannelCredentials()));
  externalscaler::ScaledObjectRef ref;
  ref.set_name("batch-job");
  ref.set_namespace_("team-b");
  ref.mutable_scalermetadata()->insert({{"bootstrapServers", bootstrap},
                                        {"consumerGroup", group},
                                        {"topic", topic},
                                        {"activationLagThreshold", "1000"},
                                        {"activationLagSeconds", "3"}});
  auto is_active = [&]() -> bool {
    grpc::ClientContext ctx;
    externalscaler::IsActiveResponse response;
    const grpc::Status status = stub->IsActive(&ctx, ref, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.result();
  };
  EXPECT_FALSE(is_active());  // no lag; the scaler sees the end offset at 0
  // KEDA-like polling every 100 ms from before the produce until activation.
  std::atomic<bool> stop{false};
  std::atomic<int64_t> active_at_nanos{0};
  std::thread poller([&] {
    while (!stop.load()) {
      if (is_active() && active_at_nanos.load() == 0) active_at_nanos = absl::GetCurrentTimeNanos();
      absl::SleepFor(absl::Milliseconds(100));
    }
  });
  absl::SleepFor(absl::Milliseconds(300));
  const absl::Time produce_start = absl::Now();
  const bool produced_ok = testing::Produce(bootstrap, topic, 0, 5).ok();
  const absl::Time produced = absl::Now();
  while (produced_ok && absl::Now() < produced + absl::Seconds(15) && active_at_nanos.load() == 0) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  stop = true;
  poller.join();
  ASSERT_TRUE(produced_ok);
  ASSERT_NE(active_at_nanos.load(), 0) << "never active by age";
  const absl::Time active_at = absl::FromUnixNanos(active_at_nanos.load());
  std::printf(
      "active %.2f s after the produce started, %.2f s after it returned (activationLagSeconds "
      "3)\n",
      absl::ToDoubleSeconds(active_at - produce_start),
      absl::ToDoubleSeconds(active_at - produced));
  // The records were appended between produce_start and produced; the estimate places them
  // within one end-offset sampling gap (~100-200 ms here, 1 s allowed for a loaded machine), and
  // activation comes at the first poll after the estimated age passes 3 s.
  EXPECT_GE(active_at - produce_start, absl::Seconds(2)) << "active too early: age overestimated";
  EXPECT_LE(active_at - produced, absl::Seconds(5)) << "active too late: age underestimated";

  auto [http_status, text] = HttpGet(scaler.metrics_port(), "/metrics");
  ASSERT_EQ(http_status, 200) << text;
  const std::map<std::string, std::string> samples = Samples(text);
  const std::string t = absl::StrCat("{namespace=\"team-b\",scaledjob=\"batch-job\",group=\"",
                                     group, "\",topic=\"", topic, "\"}");
  ASSERT_EQ(samples.count("klag_trigger_lag_seconds" + t), 1u) << text;
  EXPECT_GE(std::stod(samples.at("klag_trigger_lag_seconds" + t)), 3.0);
  EXPECT_EQ(samples.at("klag_trigger_lag_records" + t), "5");
  EXPECT_EQ(samples.at("klag_trigger_active" + t), "1");
  const std::string p0 = absl::StrCat("{cluster=\"", bootstrap, "\",group=\"", group, "\",topic=\"",
                                      topic, "\",partition=\"0\"}");
  ASSERT_EQ(samples.count("klag_partition_lag_seconds" + p0), 1u) << text;
  EXPECT_EQ(scaler.Stop(), 0) << scaler.log();
}

}  // namespace
}  // namespace klag::scaler
