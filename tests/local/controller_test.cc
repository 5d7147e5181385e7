#include "tools/local/controller.h"

#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace klag::local {
namespace {

using ::testing::HasSubstr;

// Answers polls from a queue of results; records the refs it was given.
class FakeClient : public ScalerClient {
 public:
  absl::StatusOr<TriggerPoll> Poll(const ScalerRef& ref) override {
    refs.push_back(ref);
    if (answers.empty()) return absl::UnavailableError("no answer queued");
    absl::StatusOr<TriggerPoll> next = answers.front();
    answers.pop_front();
    return next;
  }
  static TriggerPoll Lag(double lag, bool active) {
    return TriggerPoll{.sample = {.active = active, .queue_length = lag, .target = 1}};
  }
  std::deque<absl::StatusOr<TriggerPoll>> answers;
  std::vector<ScalerRef> refs;
};

ScaledJob SeedLike() {
  ScaledJob sj;
  sj.name = "listed-stock-price";
  sj.namespace_ = "data-load";
  sj.min_replica_count = 0;
  sj.max_replica_count = 1;
  sj.successful_jobs_history_limit = 1;
  sj.failed_jobs_history_limit = 1;
  sj.triggers.push_back(Trigger{.type = "external"});
  return sj;
}

JobRunnerOptions Sleeper(const std::string& seconds) {
  JobRunnerOptions o;
  o.scaled_job_name = "listed-stock-price";
  o.argv = {"/bin/sh", "-c", "sleep " + seconds};
  return o;
}

TEST(ControllerTest, StartsAJobOnLagAndNoSecondOneWhileItRunsAsTheSeedsMaxOfOne) {
  FakeClient client;
  client.answers = {FakeClient::Lag(5, true), FakeClient::Lag(5, true)};
  JobRunner runner(Sleeper("5"));
  Controller controller(SeedLike(), {ScalerRef{.name = "listed-stock-price"}}, &client, &runner,
                        ControllerOptions{});
  PollResult first = controller.PollOnce(absl::Now());
  EXPECT_EQ(first.decision.jobs_to_create, 1);
  EXPECT_EQ(first.started.size(), 1u);
  PollResult second = controller.PollOnce(absl::Now());
  EXPECT_EQ(second.input.running, 1);
  EXPECT_EQ(second.decision.jobs_to_create, 0);
  EXPECT_EQ(runner.Running(), 1);
  runner.StopAll(absl::Seconds(2));
}

TEST(ControllerTest, AFailingTriggerIsSkippedAndNothingStarts) {
  FakeClient client;
  client.answers = {absl::UnavailableError("broker down")};
  JobRunner runner(Sleeper("0"));
  Controller controller(SeedLike(), {ScalerRef{}}, &client, &runner, ControllerOptions{});
  PollResult r = controller.PollOnce(absl::Now());
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_THAT(r.errors[0], HasSubstr("broker down"));
  EXPECT_FALSE(r.decision.active);
  EXPECT_EQ(runner.Running(), 0);
}

TEST(ControllerTest, RunPollsAtTheIntervalWritesEventsAndKeepsTheHistoryLimit) {
  const std::filesystem::path events_path =
      std::filesystem::temp_directory_path() / ("klag-local-events-" + RandomSuffix(8));
  std::FILE* events = std::fopen(events_path.c_str(), "w");
  ASSERT_NE(events, nullptr);
  FakeClient client;
  for (int i = 0; i < 100; ++i)
    client.answers.push_back(FakeClient::Lag(i % 2 ? 0 : 3, i % 2 == 0));
  JobRunner runner(Sleeper("0"));
  Controller controller(
      SeedLike(), {ScalerRef{.name = "listed-stock-price"}}, &client, &runner,
      ControllerOptions{.polling_interval = absl::Milliseconds(50), .events = events});
  std::atomic<bool> stop{false};
  std::thread loop([&] { controller.Run(&stop); });
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  stop = true;
  loop.join();
  std::fclose(events);
  // ~12 polls in 600 ms at 50 ms; allow a loaded machine half of them.
  EXPECT_GE(client.refs.size(), 6u);
  EXPECT_LE(client.refs.size(), 14u);
  EXPECT_LE(runner.Jobs().size(), 2u);  // history limit 1 succeeded (+1 possibly running)
  std::ifstream in(events_path);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_THAT(text.str(), HasSubstr("\"event\":\"poll\",\"queueLength\":3,\"active\":true"));
  EXPECT_THAT(text.str(), HasSubstr("\"event\":\"job\""));
  EXPECT_THAT(text.str(), HasSubstr("\"phase\":\"succeeded\""));
  std::filesystem::remove(events_path);
}

}  // namespace
}  // namespace klag::local
