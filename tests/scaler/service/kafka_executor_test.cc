// KafkaExecutor: per-cluster worker limit, FIFO per cluster and round-robin between clusters,
// the queue bounds, and work whose deadline passes while queued.
#include "scaler/service/kafka_executor.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"

namespace klag::scaler {
namespace {

// Work that records how it was called and, when run, blocks until the test opens `gate`.
class Recorder {
 public:
  KafkaExecutor::Work Blocking(const std::string& cluster, const std::string& label,
                               absl::Duration timeout = absl::Seconds(60)) {
    return KafkaExecutor::Work{.cluster_key = "key-" + cluster,
                               .cluster_name = cluster,
                               .deadline = absl::Now() + timeout,
                               .run = [this, label](absl::Status status) {
                                 {
                                   absl::MutexLock lock(&mu_);
                                   if (status.ok()) {
                                     started_.push_back(label);
                                   } else {
                                     failed_.emplace_back(label, status);
                                   }
                                 }
                                 if (!status.ok()) return;
                                 absl::MutexLock lock(&mu_);
                                 mu_.Await(absl::Condition(&open_));
                                 finished_.push_back(label);
                               }};
  }
  void Open() {
    absl::MutexLock lock(&mu_);
    open_ = true;
  }
  // Waits until `n` pieces of work ran or failed, in all.
  bool AwaitDone(size_t n) {
    absl::MutexLock lock(&mu_);
    auto done = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return finished_.size() + failed_.size() >= n;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&done), absl::Seconds(30));
  }
  bool AwaitStarted(size_t n) {
    absl::MutexLock lock(&mu_);
    auto done = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return started_.size() >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&done), absl::Seconds(30));
  }
  std::vector<std::string> started() {
    absl::MutexLock lock(&mu_);
    return started_;
  }
  std::vector<std::pair<std::string, absl::Status>> failed() {
    absl::MutexLock lock(&mu_);
    return failed_;
  }
  bool AwaitFailed(size_t n) {
    absl::MutexLock lock(&mu_);
    auto done = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return failed_.size() >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&done), absl::Seconds(30));
  }

 private:
  absl::Mutex mu_;
  bool open_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::string> started_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> finished_ ABSL_GUARDED_BY(mu_);
  std::vector<std::pair<std::string, absl::Status>> failed_ ABSL_GUARDED_BY(mu_);
};

TEST(KafkaExecutorTest, ABlockedClusterHoldsAtMostItsShareAndOthersStillRun) {
  Recorder r;
  KafkaExecutor executor({.workers = 4, .workers_per_cluster = 2});
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(executor.Submit(r.Blocking("dead:9092", "dead-" + std::to_string(i))).ok());
  }
  ASSERT_TRUE(r.AwaitStarted(2));
  // A healthy cluster's work starts although the dead cluster's is still blocked and queued.
  ASSERT_TRUE(executor.Submit(r.Blocking("live:9092", "live-0")).ok());
  ASSERT_TRUE(r.AwaitStarted(3));
  std::vector<std::string> started = r.started();
  std::sort(started.begin(), started.end());  // concurrent workers record in any order
  EXPECT_EQ(started, (std::vector<std::string>{"dead-0", "dead-1", "live-0"}));
  const KafkaExecutorStats stats = executor.Stats();
  EXPECT_EQ(stats.running, 3);
  EXPECT_EQ(stats.queued, 3) << "dead-2..4 wait: the dead cluster has its 2 workers";
  r.Open();
  ASSERT_TRUE(r.AwaitDone(6));
  EXPECT_EQ(r.started().size(), 6u);
}

TEST(KafkaExecutorTest, FifoWithinAClusterRoundRobinBetweenClusters) {
  Recorder r;
  KafkaExecutor executor({.workers = 1, .workers_per_cluster = 1});
  ASSERT_TRUE(executor.Submit(r.Blocking("a:9092", "a0")).ok());
  ASSERT_TRUE(r.AwaitStarted(1));
  for (const char* label : {"a1", "a2", "a3"}) {
    ASSERT_TRUE(executor.Submit(r.Blocking("a:9092", label)).ok());
  }
  ASSERT_TRUE(executor.Submit(r.Blocking("b:9092", "b0")).ok());
  ASSERT_TRUE(executor.Submit(r.Blocking("b:9092", "b1")).ok());
  r.Open();
  ASSERT_TRUE(r.AwaitDone(6));
  // b0 was ready while a0 ran; then the two clusters take turns.
  EXPECT_EQ(r.started(), (std::vector<std::string>{"a0", "b0", "a1", "b1", "a2", "a3"}));
}

TEST(KafkaExecutorTest, FullQueuesAreResourceExhaustedNamingTheBound) {
  Recorder r;
  KafkaExecutor executor(
      {.workers = 1, .workers_per_cluster = 1, .max_queued = 3, .max_queued_per_cluster = 2});
  ASSERT_TRUE(executor.Submit(r.Blocking("a:9092", "a0")).ok());
  ASSERT_TRUE(r.AwaitStarted(1));
  ASSERT_TRUE(executor.Submit(r.Blocking("a:9092", "a1")).ok());
  ASSERT_TRUE(executor.Submit(r.Blocking("a:9092", "a2")).ok());
  absl::Status per_cluster = executor.Submit(r.Blocking("a:9092", "a3"));
  EXPECT_EQ(per_cluster.code(), absl::StatusCode::kResourceExhausted) << per_cluster;
  EXPECT_NE(per_cluster.message().find("--kafka-queue-per-cluster=2"), absl::string_view::npos)
      << per_cluster;
  EXPECT_NE(per_cluster.message().find("a:9092"), absl::string_view::npos) << per_cluster;

  ASSERT_TRUE(executor.Submit(r.Blocking("b:9092", "b0")).ok());  // 3 queued in all
  absl::Status total = executor.Submit(r.Blocking("c:9092", "c0"));
  EXPECT_EQ(total.code(), absl::StatusCode::kResourceExhausted) << total;
  EXPECT_NE(total.message().find("--kafka-queue=3"), absl::string_view::npos) << total;
  EXPECT_EQ(executor.Stats().rejected, 2);
  r.Open();
  ASSERT_TRUE(r.AwaitDone(4));
  EXPECT_TRUE(r.failed().empty()) << "rejected work is not called";
}

TEST(KafkaExecutorTest, WorkQueuedPastItsDeadlineIsAnsweredWithoutRunning) {
  Recorder r;
  KafkaExecutor executor({.workers = 1, .workers_per_cluster = 1});
  ASSERT_TRUE(executor.Submit(r.Blocking("dead:9092", "holder")).ok());
  ASSERT_TRUE(r.AwaitStarted(1));
  ASSERT_TRUE(
      executor.Submit(r.Blocking("dead:9092", "late", /*timeout=*/absl::Milliseconds(50))).ok());
  // Answered while the only worker is still held: by the timer, not by a worker.
  ASSERT_TRUE(r.AwaitFailed(1));
  const auto failed = r.failed();
  EXPECT_EQ(failed[0].first, "late");
  EXPECT_EQ(failed[0].second.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_NE(failed[0].second.message().find("dead:9092"), absl::string_view::npos);
  EXPECT_EQ(failed[0].second.message().find("key-"), absl::string_view::npos)
      << "never the cluster key";
  EXPECT_EQ(r.started(), std::vector<std::string>{"holder"});
  EXPECT_EQ(executor.Stats().expired, 1);
  r.Open();
  ASSERT_TRUE(r.AwaitDone(2));
  EXPECT_EQ(r.started(), std::vector<std::string>{"holder"});
}

TEST(KafkaExecutorTest, DestroyingCancelsQueuedWorkAndWaitsForRunningWork) {
  Recorder r;
  auto executor =
      std::make_unique<KafkaExecutor>(KafkaExecutorOptions{.workers = 1, .workers_per_cluster = 1});
  ASSERT_TRUE(executor->Submit(r.Blocking("a:9092", "a0")).ok());
  ASSERT_TRUE(r.AwaitStarted(1));
  ASSERT_TRUE(executor->Submit(r.Blocking("a:9092", "a1")).ok());
  // The destructor cancels a1 first, then waits for a0, which this thread lets finish.
  std::thread opener([&] {
    EXPECT_TRUE(r.AwaitFailed(1));
    r.Open();
  });
  executor.reset();
  opener.join();
  EXPECT_EQ(r.started(), std::vector<std::string>{"a0"});
  ASSERT_EQ(r.failed().size(), 1u);
  EXPECT_EQ(r.failed()[0].first, "a1");
  EXPECT_EQ(r.failed()[0].second.code(), absl::StatusCode::kCancelled);
}

}  // namespace
}  // namespace klag::scaler
