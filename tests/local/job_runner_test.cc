#include "tools/local/job_runner.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace klag::local {
namespace {

namespace fs = std::filesystem;

class JobRunnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("klag-local-runner-" + RandomSuffix(8));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  JobRunnerOptions Sh(const std::string& script) {
    JobRunnerOptions o;
    o.scaled_job_name = "test";
    o.argv = {"/bin/sh", "-c", script};
    o.env = {{"DIR", dir_.string()}, {"PATH", "/usr/bin:/bin"}};
    o.retry_backoff = absl::Milliseconds(10);
    o.termination_grace = absl::Milliseconds(300);
    return o;
  }

  // Ticks until `done` or `limit` passes; returns whether `done` held.
  template <typename F>
  bool TickUntil(JobRunner& runner, F done, absl::Duration limit = absl::Seconds(10)) {
    const absl::Time end = absl::Now() + limit;
    while (absl::Now() < end) {
      runner.Tick(absl::Now());
      if (done()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return false;
  }

  std::string Read(const std::string& name) {
    std::ifstream in(dir_ / name);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
  }

  fs::path dir_;
};

TEST_F(JobRunnerTest, PodExitingZeroCompletesTheJobWithTheTemplatesEnvironment) {
  JobRunnerOptions o = Sh("echo \"$GREETING\" > \"$DIR/out\"");
  o.env["GREETING"] = "hello";
  JobRunner runner(o);
  runner.StartJob(absl::Now());
  EXPECT_EQ(runner.Running(), 1);
  ASSERT_TRUE(TickUntil(runner, [&] { return runner.Running() == 0; }));
  std::vector<JobStatus> jobs = runner.Jobs();
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].phase, JobPhase::kSucceeded);
  EXPECT_EQ(jobs[0].succeeded_pods, 1);
  EXPECT_THAT(jobs[0].name, ::testing::StartsWith("test-"));
  EXPECT_EQ(Read("out"), "hello\n");
}

TEST_F(JobRunnerTest, FailingPodIsRetriedUntilBackoffLimitThenTheJobFails) {
  JobRunnerOptions o = Sh("echo x >> \"$DIR/attempts\"; exit 3");
  o.backoff_limit = 2;
  JobRunner runner(o);
  runner.StartJob(absl::Now());
  ASSERT_TRUE(TickUntil(runner, [&] { return runner.Running() == 0; }));
  JobStatus job = runner.Jobs()[0];
  EXPECT_EQ(job.phase, JobPhase::kFailed);
  EXPECT_EQ(job.reason, "BackoffLimitExceeded");
  EXPECT_EQ(job.failed_pods, 3);  // the first pod and backoffLimit retries
  EXPECT_EQ(Read("attempts"), "x\nx\nx\n");
}

TEST_F(JobRunnerTest, RetryThatSucceedsCompletesAndCountsAsPendingDuringBackOff) {
  JobRunnerOptions o = Sh("if [ -e \"$DIR/once\" ]; then exit 0; fi; touch \"$DIR/once\"; exit 1");
  o.retry_backoff = absl::Milliseconds(300);
  JobRunner runner(o);
  runner.StartJob(absl::Now());
  ASSERT_TRUE(TickUntil(runner, [&] { return runner.Pending() == 1; }));
  EXPECT_EQ(runner.Running(), 1);  // a Job waiting for its retry is unfinished and pending
  ASSERT_TRUE(TickUntil(runner, [&] { return runner.Running() == 0; }));
  JobStatus job = runner.Jobs()[0];
  EXPECT_EQ(job.phase, JobPhase::kSucceeded);
  EXPECT_EQ(job.failed_pods, 1);
  EXPECT_EQ(job.succeeded_pods, 1);
}

TEST_F(JobRunnerTest, ActiveDeadlineSendsSigtermAndThePodCanFinishCleanly) {
  JobRunnerOptions o =
      Sh("trap 'echo term > \"$DIR/signal\"; exit 3' TERM; "
         "while :; do sleep 0.05; done");
  o.active_deadline = absl::Milliseconds(200);
  JobRunner runner(o);
  const absl::Time start = absl::Now();
  runner.StartJob(start);
  ASSERT_TRUE(TickUntil(runner, [&] { return runner.Running() == 0; }));
  JobStatus job = runner.Jobs()[0];
  EXPECT_EQ(job.phase, JobPhase::kFailed);
  EXPECT_EQ(job.reason, "DeadlineExceeded");
  EXPECT_EQ(Read("signal"), "term\n");
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
}

TEST_F(JobRunnerTest, PodIgnoringSigtermIsKilledAfterTheGracePeriod) {
  JobRunnerOptions o = Sh("trap '' TERM; echo started > \"$DIR/started\"; sleep 30");
  o.active_deadline = absl::Milliseconds(100);
  o.termination_grace = absl::Milliseconds(400);
  JobRunner runner(o);
  const absl::Time start = absl::Now();
  runner.StartJob(start);
  ASSERT_TRUE(TickUntil(runner, [&] { return runner.Running() == 0; }));
  const absl::Duration took = absl::Now() - start;
  EXPECT_GE(took, absl::Milliseconds(500));  // deadline + grace
  EXPECT_LT(took, absl::Seconds(5));         // not the 30 s sleep
  EXPECT_EQ(runner.Jobs()[0].reason, "DeadlineExceeded");
}

TEST_F(JobRunnerTest, ParallelismAndCompletions) {
  JobRunnerOptions o = Sh("echo x >> \"$DIR/runs\"; sleep 0.1");
  o.parallelism = 2;
  o.completions = 3;
  JobRunner runner(o);
  runner.StartJob(absl::Now());
  EXPECT_EQ(runner.Jobs()[0].active_pods, 2);
  ASSERT_TRUE(TickUntil(runner, [&] { return runner.Running() == 0; }));
  EXPECT_EQ(runner.Jobs()[0].succeeded_pods, 3);
  EXPECT_EQ(Read("runs"), "x\nx\nx\n");
}

TEST_F(JobRunnerTest, HistoryLimitsRemoveTheOldestFinishedJobsAndTheirLogs) {
  JobRunnerOptions ok = Sh("echo log line");
  ok.log_dir = (dir_ / "logs").string();
  JobRunner runner(ok);
  std::vector<std::string> names;
  for (int i = 0; i < 4; ++i) {
    names.push_back(runner.StartJob(absl::Now()));
    ASSERT_TRUE(TickUntil(runner, [&] { return runner.Running() == 0; }));
  }
  EXPECT_TRUE(fs::exists(dir_ / "logs" / names[0]));
  std::vector<std::string> removed = runner.CleanUp(/*successful_limit=*/2, /*failed_limit=*/0);
  EXPECT_THAT(removed, ::testing::ElementsAre(names[0], names[1]));
  EXPECT_EQ(runner.Jobs().size(), 2u);
  EXPECT_FALSE(fs::exists(dir_ / "logs" / names[0]));
  EXPECT_TRUE(fs::exists(dir_ / "logs" / names[3]));
}

TEST_F(JobRunnerTest, CommandThatCannotStartFailsTheJob) {
  JobRunnerOptions o = Sh("");
  o.argv = {"/nonexistent/klag-job"};
  JobRunner runner(o);
  runner.StartJob(absl::Now());
  runner.Tick(absl::Now());
  ASSERT_EQ(runner.Running(), 0);
  EXPECT_EQ(runner.Jobs()[0].phase, JobPhase::kFailed);
}

TEST_F(JobRunnerTest, StopAllTerminatesRunningPods) {
  JobRunner runner(Sh("trap 'exit 0' TERM; while :; do sleep 0.05; done"));
  runner.StartJob(absl::Now());
  const absl::Time start = absl::Now();
  runner.StopAll(absl::Seconds(5));
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  EXPECT_EQ(runner.Jobs()[0].active_pods, 0);
}

}  // namespace
}  // namespace klag::local
