#include "scaler/service/evaluator.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <optional>
#include <thread>
#include <vector>

#include "absl/hash/hash.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "tests/testing/fake_offset_reader.h"
#include "tests/testing/test_env.h"

namespace klag::scaler {
namespace {

using ::klag::kafka::PartitionOffsets;

Metadata BaseMetadata(const std::string& group = "g") {
  return {{"bootstrapServers", "kafka:9092"},
          {"consumerGroup", group},
          {"topic", "t"},
          {"lagThreshold", "5"}};
}

// A clock the test moves by hand.
struct FakeClock {
  std::atomic<int64_t> nanos{absl::ToUnixNanos(absl::FromUnixSeconds(1'800'000'000))};
  absl::Time Now() const { return absl::FromUnixNanos(nanos.load()); }
  void Advance(absl::Duration d) { nanos += absl::ToInt64Nanoseconds(d); }
};

class EvaluatorTest : public ::testing::Test {
 protected:
  EvaluatorTest()
      : reader_(std::make_shared<testing::FakeOffsetReader>()),
        evaluator_(
            [this](const kafka::ConnectionConfig& c)
                -> absl::StatusOr<std::shared_ptr<kafka::OffsetReader>> {
              connections_.push_back(c.bootstrap_servers);
              return std::shared_ptr<kafka::OffsetReader>(reader_);
            },
            nullptr,
            EvaluatorOptions{.kafka_timeout = absl::Seconds(2),
                             .window = absl::Seconds(2),
                             .idle_ttl = absl::Minutes(30),
                             .now = [this] { return clock_.Now(); }}) {}

  TriggerRef Ref(Metadata metadata, std::string name = "job") {
    return TriggerRef{.name = std::move(name), .namespace_ = "ns", .metadata = std::move(metadata)};
  }

  FakeClock clock_;
  std::shared_ptr<testing::FakeOffsetReader> reader_;
  std::vector<std::string> connections_;
  Evaluator evaluator_;
};

TEST_F(EvaluatorTest, ComputesLagFromTheReadersOffsets) {
  reader_->SetOffsets("g", {{.topic = "t", .partition = 0, .committed = 2, .end = 10},
                            {.topic = "t", .partition = 1, .committed = 7, .end = 10}});
  auto e = evaluator_.Evaluate(Ref(BaseMetadata()));
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ((*e)->report.total_lag, 8 + 3);
  EXPECT_EQ((*e)->report.metric_value, 10);  // capped at 2 partitions x lagThreshold 5
  EXPECT_TRUE((*e)->report.active);
  EXPECT_EQ((*e)->trigger.metric_name, "kafka-t");
  EXPECT_EQ(connections_, std::vector<std::string>{"kafka:9092"});
  ASSERT_EQ(reader_->queries().size(), 1u);
  EXPECT_EQ(reader_->queries()[0].group, "g");
  EXPECT_EQ(reader_->queries()[0].topics, std::vector<std::string>{"t"});
}

TEST_F(EvaluatorTest, CallsWithinTheWindowShareOneEvaluation) {
  reader_->SetOffsets("g", {{.topic = "t", .partition = 0, .committed = 2, .end = 10}});
  auto first = evaluator_.Evaluate(Ref(BaseMetadata()));
  clock_.Advance(absl::Milliseconds(1500));
  auto second = evaluator_.Evaluate(Ref(BaseMetadata()));
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(first->get(), second->get());
  EXPECT_EQ(reader_->calls(), 1);
  EXPECT_EQ(evaluator_.Stats().reused, 1);

  clock_.Advance(absl::Milliseconds(600));  // 2.1 s after the first: a new poll
  auto third = evaluator_.Evaluate(Ref(BaseMetadata()));
  ASSERT_TRUE(third.ok());
  EXPECT_NE(first->get(), third->get());
  EXPECT_EQ(reader_->calls(), 2);
}

// A reader that holds the answer already (offsets-topic: fresh snapshot, follower caught up) is
// asked first, on the caller's thread; the worker path stays for everything else.
TEST_F(EvaluatorTest, AReaderThatCanAnswerAtOnceIsEvaluatedOnTheCallersThread) {
  reader_->SetOffsets("g", {{.topic = "t", .partition = 0, .committed = 2, .end = 10}});
  reader_->AnswerImmediately(true);
  // The first evaluation goes to a worker: the trigger has no reader yet.
  auto first = evaluator_.Evaluate(Ref(BaseMetadata()));
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(reader_->calls(), 1);
  EXPECT_EQ(reader_->immediate_answers(), 0);

  reader_->SetOffsets("g", {{.topic = "t", .partition = 0, .committed = 9, .end = 10}});
  clock_.Advance(absl::Milliseconds(2100));  // the next poll
  std::optional<absl::StatusOr<std::shared_ptr<const Evaluation>>> answered;
  std::thread::id answered_on;
  evaluator_.EvaluateAsync(Ref(BaseMetadata()),
                           [&](absl::StatusOr<std::shared_ptr<const Evaluation>> e) {
                             answered = std::move(e);
                             answered_on = std::this_thread::get_id();
                           });
  ASSERT_TRUE(answered.has_value());  // before EvaluateAsync returned
  EXPECT_EQ(answered_on, std::this_thread::get_id());
  ASSERT_TRUE(answered->ok()) << answered->status();
  EXPECT_EQ((**answered)->report.total_lag, 1);
  EXPECT_EQ(reader_->calls(), 1);
  EXPECT_EQ(reader_->immediate_answers(), 1);
  EXPECT_EQ(evaluator_.Stats().immediate, 1);
  EXPECT_EQ(evaluator_.Stats().evaluations, 1);
  // It is the poll's evaluation: a call within the window reuses it.
  auto again = evaluator_.Evaluate(Ref(BaseMetadata()));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->get(), answered->value().get());

  // Half of idle_ttl after a worker last got the reader, the next evaluation goes to a worker
  // again (which asks the ReaderProvider, keeping the reader registered), then at once again.
  clock_.Advance(absl::Minutes(15));
  ASSERT_TRUE(evaluator_.Evaluate(Ref(BaseMetadata())).ok());
  EXPECT_EQ(reader_->calls(), 2);
  EXPECT_EQ(connections_.size(), 2u);
  clock_.Advance(absl::Milliseconds(2100));
  ASSERT_TRUE(evaluator_.Evaluate(Ref(BaseMetadata())).ok());
  EXPECT_EQ(reader_->calls(), 2);
  EXPECT_EQ(evaluator_.Stats().immediate, 2);

  // A reader that cannot answer at once: the worker reads.
  reader_->AnswerImmediately(false);
  clock_.Advance(absl::Milliseconds(2100));
  auto third = evaluator_.Evaluate(Ref(BaseMetadata()));
  ASSERT_TRUE(third.ok());
  EXPECT_EQ(reader_->calls(), 3);
  EXPECT_EQ(evaluator_.Stats().immediate, 2);
}

TEST_F(EvaluatorTest, DifferentTriggersDoNotShareEvaluations) {
  reader_->SetOffsets("g", {{.topic = "t", .partition = 0, .committed = 2, .end = 10}});
  reader_->SetOffsets("h", {{.topic = "t", .partition = 0, .committed = 9, .end = 10}});
  auto a = evaluator_.Evaluate(Ref(BaseMetadata("g"), "job-a"));
  auto b = evaluator_.Evaluate(Ref(BaseMetadata("h"), "job-b"));
  auto c = evaluator_.Evaluate(Ref(BaseMetadata("g"), "job-c"));  // same metadata, other job
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ((*a)->report.metric_value, 5);  // capped at 1 partition x threshold 5
  EXPECT_EQ((*b)->report.metric_value, 1);
  EXPECT_EQ(reader_->calls(), 3);
  EXPECT_EQ(evaluator_.Stats().triggers, 3);
}

TEST_F(EvaluatorTest, ConcurrentIdenticalRequestsWaitForTheSameEvaluation) {
  reader_->SetOffsets("g", {{.topic = "t", .partition = 0, .committed = 2, .end = 10}});
  reader_->BlockCalls();
  constexpr int kCallers = 8;
  std::vector<absl::StatusOr<std::shared_ptr<const Evaluation>>> results(
      kCallers, absl::UnknownError("not run"));
  std::vector<std::thread> threads;
  for (int i = 0; i < kCallers; ++i) {
    threads.emplace_back([&, i] { results[i] = evaluator_.Evaluate(Ref(BaseMetadata())); });
  }
  ASSERT_TRUE(reader_->AwaitBlockedCalls(1));
  // Give the other callers time to arrive and join the flight rather than start their own.
  while (evaluator_.Stats().joined < kCallers - 1) absl::SleepFor(absl::Milliseconds(1));
  reader_->ReleaseCalls();
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(reader_->calls(), 1);
  for (const auto& r : results) {
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->get(), results[0]->get());
  }
}

TEST_F(EvaluatorTest, ErrorsAreReturnedNotZeroAndNotCached) {
  reader_->SetError("g", absl::UnavailableError("broker down"));
  auto failed = evaluator_.Evaluate(Ref(BaseMetadata()));
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(evaluator_.Stats().failures, 1);

  reader_->ClearError("g");
  reader_->SetOffsets("g", {{.topic = "t", .partition = 0, .committed = 2, .end = 10}});
  auto retried = evaluator_.Evaluate(Ref(BaseMetadata()));  // KEDA's immediate retry
  ASSERT_TRUE(retried.ok()) << retried.status();
  EXPECT_EQ((*retried)->report.metric_value, 5);
  EXPECT_EQ(reader_->calls(), 2);
}

TEST_F(EvaluatorTest, ProviderErrorsPropagate) {
  Evaluator evaluator(
      [](const kafka::ConnectionConfig&) -> absl::StatusOr<std::shared_ptr<kafka::OffsetReader>> {
        return absl::InvalidArgumentError("tls: cannot build client");
      },
      nullptr, EvaluatorOptions{});
  auto e = evaluator.Evaluate(Ref(BaseMetadata()));
  EXPECT_EQ(e.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(EvaluatorTest, BadMetadataIsInvalidArgumentWithoutKafka) {
  Metadata md = BaseMetadata();
  md["lagThreshold"] = "0";
  auto e = evaluator_.Evaluate(Ref(md));
  EXPECT_EQ(e.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(e.status().message().find("lagThreshold"), absl::string_view::npos);
  EXPECT_EQ(reader_->calls(), 0);
  EXPECT_TRUE(connections_.empty());
}

TEST_F(EvaluatorTest, NamesLongerThanKubernetesAllowsAreInvalidArgumentWithoutState) {
  // At the limits: served.
  TriggerRef ok = Ref(BaseMetadata(), std::string(kMaxNameBytes, 'n'));
  ok.namespace_ = std::string(kMaxNamespaceBytes, 's');
  ASSERT_TRUE(evaluator_.ParseCached(ok).ok()) << evaluator_.ParseCached(ok).status();
  // One byte over: refused before any state, parse or Kafka call, and the name is not echoed.
  TriggerRef long_ns = ok;
  long_ns.namespace_ = std::string(kMaxNamespaceBytes + 1, 'x');
  TriggerRef long_name = Ref(BaseMetadata(), std::string(kMaxNameBytes + 1, 'y'));
  const int64_t triggers = evaluator_.Stats().triggers;
  const int calls = reader_->calls();
  for (const TriggerRef& ref : {long_ns, long_name}) {
    for (const absl::Status& status :
         {evaluator_.Evaluate(ref).status(), evaluator_.ParseCached(ref).status(),
          evaluator_.Parse(ref).status()}) {
      EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
      EXPECT_NE(status.message().find("bytes"), absl::string_view::npos) << status;
      EXPECT_EQ(status.message().find("xxxx"), absl::string_view::npos) << status;
      EXPECT_EQ(status.message().find("yyyy"), absl::string_view::npos) << status;
    }
  }
  EXPECT_EQ(evaluator_.Stats().triggers, triggers);
  EXPECT_EQ(reader_->calls(), calls);
}

TEST_F(EvaluatorTest, PartitionLimitationSelectingNoExistingPartitionIsAnErrorNotZero) {
  reader_->SetOffsets("g", {{.topic = "t", .partition = 0, .committed = 2, .end = 10},
                            {.topic = "t", .partition = 1, .committed = 7, .end = 10}});
  Metadata md = BaseMetadata();
  md["partitionLimitation"] = "5-7";
  auto e = evaluator_.Evaluate(Ref(md));
  EXPECT_EQ(e.status().code(), absl::StatusCode::kInvalidArgument) << e.status();
  EXPECT_NE(e.status().message().find("partitionLimitation"), absl::string_view::npos);
  EXPECT_EQ(evaluator_.Stats().failures, 1);
  md["partitionLimitation"] = "1,5-7";  // selects partition 1: served
  auto ok = evaluator_.Evaluate(Ref(md));
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ((*ok)->report.total_lag, 3);
}

TEST_F(EvaluatorTest, ServersOutsideTheAllowedPatternsArePermissionDeniedWithoutKafka) {
  int connects = 0;
  Evaluator evaluator(
      [&](const kafka::ConnectionConfig&) -> absl::StatusOr<std::shared_ptr<kafka::OffsetReader>> {
        ++connects;
        return std::shared_ptr<kafka::OffsetReader>(reader_);
      },
      nullptr, EvaluatorOptions{.allowed_bootstrap_servers = {"*.kafka.svc:9092", "kafka:9092"}});
  reader_->SetOffsets("g", {{.topic = "t", .partition = 0, .committed = 0, .end = 1}});
  EXPECT_TRUE(evaluator.Evaluate(Ref(BaseMetadata())).ok());
  Metadata md = BaseMetadata();
  md["bootstrapServers"] = "b-1.kafka.svc:9092,evil.example:9092";
  auto e = evaluator.Evaluate(Ref(md));
  EXPECT_EQ(e.status().code(), absl::StatusCode::kPermissionDenied) << e.status();
  EXPECT_NE(e.status().message().find("evil.example:9092"), absl::string_view::npos);
  EXPECT_EQ(connects, 1);
}

TEST_F(EvaluatorTest, ExcludePersistentLagComparesWithThePreviousPoll) {
  Metadata md = BaseMetadata();
  md["excludePersistentLag"] = "true";
  md["lagThreshold"] = "100";
  reader_->SetOffsets("g", {{.topic = "t", .partition = 0, .committed = 2, .end = 10},
                            {.topic = "t", .partition = 1, .committed = 4, .end = 10}});
  auto first = evaluator_.Evaluate(Ref(md));
  ASSERT_TRUE(first.ok());
  EXPECT_EQ((*first)->report.metric_value, 8 + 6);  // nothing to compare with yet

  // Within the window (same poll): the same answer, not a comparison with itself.
  clock_.Advance(absl::Seconds(1));
  auto same_poll = evaluator_.Evaluate(Ref(md));
  ASSERT_TRUE(same_poll.ok());
  EXPECT_EQ((*same_poll)->report.metric_value, 14);

  // Next poll: partition 0 did not move (persistent), partition 1 did.
  clock_.Advance(absl::Seconds(30));
  reader_->SetOffsets("g", {{.topic = "t", .partition = 0, .committed = 2, .end = 12},
                            {.topic = "t", .partition = 1, .committed = 5, .end = 12}});
  auto second = evaluator_.Evaluate(Ref(md));
  ASSERT_TRUE(second.ok());
  EXPECT_EQ((*second)->report.metric_value, 7);
  EXPECT_EQ((*second)->report.total_lag_with_persistent, 10 + 7);
  EXPECT_TRUE((*second)->report.active);
}

TEST_F(EvaluatorTest, IdleTriggerStateIsDropped) {
  reader_->SetOffsets("g", {{.topic = "t", .partition = 0, .committed = 2, .end = 10}});
  ASSERT_TRUE(evaluator_.Evaluate(Ref(BaseMetadata(), "old")).ok());
  EXPECT_EQ(evaluator_.Stats().triggers, 1);
  clock_.Advance(absl::Minutes(31));
  ASSERT_TRUE(evaluator_.Evaluate(Ref(BaseMetadata(), "new")).ok());
  EXPECT_EQ(evaluator_.Stats().triggers, 1);  // "old" went away, "new" is there
}

TEST_F(EvaluatorTest, ReuseThenIdleSweepKeepsOneLockOrder) {
  // Regression: the window-reuse path once took the evaluator's lock while holding a trigger's,
  // and the idle sweep takes them the other way round; absl's deadlock detector aborted the
  // scaler at its first sweep after a reused evaluation.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kAbort);
  reader_->SetOffsets("g", {{.topic = "t", .partition = 0, .committed = 2, .end = 10}});
  ASSERT_TRUE(evaluator_.Evaluate(Ref(BaseMetadata())).ok());
  ASSERT_TRUE(evaluator_.Evaluate(Ref(BaseMetadata())).ok());  // reused within the window
  EXPECT_EQ(evaluator_.Stats().reused, 1);
  clock_.Advance(absl::Minutes(2));  // the next call sweeps idle state
  ASSERT_TRUE(evaluator_.Evaluate(Ref(BaseMetadata(), "other")).ok());
  EXPECT_EQ(evaluator_.Stats().triggers, 2);
}

TEST_F(EvaluatorTest, EvaluateAsyncCallersJoinTheFlightWithoutWaiting) {
  reader_->SetOffsets("g", {{.topic = "t", .partition = 0, .committed = 2, .end = 10}});
  reader_->BlockCalls();
  constexpr int kCallers = 5;
  absl::Mutex mu;
  std::vector<absl::StatusOr<std::shared_ptr<const Evaluation>>> results;
  // All from this one thread: EvaluateAsync returns while the evaluation is blocked in Kafka.
  for (int i = 0; i < kCallers; ++i) {
    evaluator_.EvaluateAsync(Ref(BaseMetadata()),
                             [&](absl::StatusOr<std::shared_ptr<const Evaluation>> r) {
                               absl::MutexLock lock(&mu);
                               results.push_back(std::move(r));
                             });
  }
  ASSERT_TRUE(reader_->AwaitBlockedCalls(1));
  EXPECT_EQ(evaluator_.Stats().joined, kCallers - 1);
  {
    absl::MutexLock lock(&mu);
    EXPECT_TRUE(results.empty());
  }
  reader_->ReleaseCalls();
  {
    absl::MutexLock lock(&mu);
    auto all = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return results.size() == kCallers; };
    ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(&all), absl::Seconds(30)));
    for (const auto& r : results) {
      ASSERT_TRUE(r.ok()) << r.status();
      EXPECT_EQ(r->get(), results[0]->get());
    }
  }
  EXPECT_EQ(reader_->calls(), 1);
}

TEST_F(EvaluatorTest, EvaluateAsyncWithinTheWindowAnswersInline) {
  reader_->SetOffsets("g", {{.topic = "t", .partition = 0, .committed = 2, .end = 10}});
  ASSERT_TRUE(evaluator_.Evaluate(Ref(BaseMetadata())).ok());
  bool answered = false;
  evaluator_.EvaluateAsync(Ref(BaseMetadata()),
                           [&](absl::StatusOr<std::shared_ptr<const Evaluation>> r) {
                             EXPECT_TRUE(r.ok());
                             answered = true;
                           });
  EXPECT_TRUE(answered) << "reused answers need no worker";
  EXPECT_EQ(evaluator_.Stats().reused, 1);
}

// One worker for the cluster: trigger "busy" holds it, trigger "queued" waits for it. Triggers
// "g" and "h" were last evaluated 5 s ago (fake clock: past the window, within the 10 s one under
// load). While the queued work has waited less than the window (real time: the executor's clock)
// "g" queues as usual; once it has waited longer, "h" is answered from its last evaluation
// instead of queueing; past window_under_load it queues again.
TEST(EvaluatorUnderLoadTest, WorkWaitingLongerThanTheWindowWidensTheReuseWindow) {
  constexpr absl::Duration kWindow = absl::Milliseconds(200);
  FakeClock clock;
  auto reader = std::make_shared<testing::FakeOffsetReader>();
  for (const char* group : {"g", "h", "busy", "queued"}) {
    reader->SetOffsets(group, {{.topic = "t", .partition = 0, .committed = 2, .end = 10}});
  }
  Evaluator evaluator(
      [&](const kafka::ConnectionConfig&) -> absl::StatusOr<std::shared_ptr<kafka::OffsetReader>> {
        return std::shared_ptr<kafka::OffsetReader>(reader);
      },
      nullptr,
      EvaluatorOptions{.kafka_timeout = absl::Seconds(30),
                       .window = kWindow,
                       .window_under_load = absl::Seconds(10),
                       .executor = {.workers = 1, .workers_per_cluster = 1},
                       .now = [&clock] { return clock.Now(); }});
  const auto ref = [](const std::string& group) {
    return TriggerRef{.name = "job-" + group, .namespace_ = "ns", .metadata = BaseMetadata(group)};
  };
  ASSERT_TRUE(evaluator.Evaluate(ref("g")).ok());
  ASSERT_TRUE(evaluator.Evaluate(ref("h")).ok());
  clock.Advance(absl::Seconds(5));
  // Nothing queued: past the window means a fresh evaluation, as usual.
  ASSERT_TRUE(evaluator.Evaluate(ref("g")).ok());
  auto h_last = evaluator.Evaluate(ref("h"));
  ASSERT_TRUE(h_last.ok()) << h_last.status();
  EXPECT_EQ(reader->calls("g"), 2);
  EXPECT_EQ(reader->calls("h"), 2);
  clock.Advance(absl::Seconds(5));

  reader->BlockCalls(/*honor_deadline=*/false);
  absl::Notification busy_done, queued_done, g_done, h_late_done;
  evaluator.EvaluateAsync(ref("busy"), [&](auto) { busy_done.Notify(); });
  ASSERT_TRUE(reader->AwaitBlockedCalls(1));
  const absl::Time queued_at = absl::Now();
  evaluator.EvaluateAsync(ref("queued"), [&](auto) { queued_done.Notify(); });

  // Queued for less than the window: "g" (5 s old) queues behind it.
  evaluator.EvaluateAsync(ref("g"), [&](auto) { g_done.Notify(); });
  if (absl::Now() - queued_at < kWindow) {  // (a stalled test thread could not tell)
    EXPECT_FALSE(g_done.HasBeenNotified());
    EXPECT_EQ(evaluator.Stats().reused_under_load, 0);
    EXPECT_EQ(evaluator.Stats().queued, 2);
  }

  // Queued for longer than the window: "h" (5 s old) is answered at once from its evaluation.
  absl::SleepFor(kWindow + absl::Milliseconds(50));
  bool answered = false;
  evaluator.EvaluateAsync(ref("h"), [&](absl::StatusOr<std::shared_ptr<const Evaluation>> r) {
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->get(), h_last->get());
    answered = true;
  });
  EXPECT_TRUE(answered) << "answered inline from the last evaluation, not queued";
  EXPECT_EQ(evaluator.Stats().reused_under_load, 1);

  // Past window_under_load (11 s old) it queues like any other call, however loaded.
  clock.Advance(absl::Seconds(6));
  evaluator.EvaluateAsync(ref("h"), [&](auto) { h_late_done.Notify(); });
  EXPECT_FALSE(h_late_done.HasBeenNotified());
  EXPECT_EQ(evaluator.Stats().reused_under_load, 1);

  reader->ReleaseCalls();
  for (absl::Notification* n : {&busy_done, &queued_done, &g_done, &h_late_done}) {
    ASSERT_TRUE(n->WaitForNotificationWithTimeout(absl::Seconds(30)));
  }
  EXPECT_EQ(reader->calls("g"), 3);
  EXPECT_EQ(reader->calls("h"), 3);
}

TEST_F(EvaluatorTest, EachDistinctMetadataIsParsedOnce) {
  reader_->SetOffsets("g", {{.topic = "t", .partition = 0, .committed = 2, .end = 10}});
  auto first = evaluator_.ParseCached(Ref(BaseMetadata()));
  auto second = evaluator_.ParseCached(Ref(BaseMetadata()));
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(first->spec.get(), second->spec.get()) << "the second call parsed again";
  auto evaluation = evaluator_.Evaluate(Ref(BaseMetadata()));
  ASSERT_TRUE(evaluation.ok());
  EXPECT_EQ((*evaluation)->trigger.spec.get(), first->spec.get());
  Metadata other = BaseMetadata();
  other["lagThreshold"] = "7";
  auto third = evaluator_.ParseCached(Ref(other));
  ASSERT_TRUE(third.ok());
  EXPECT_NE(third->spec.get(), first->spec.get());
  EXPECT_EQ(third->spec->lag_threshold, 7);
}

// An Evaluator with the given bounds and a fake clock; every reader handed out is recorded by the
// cluster it is for (what ClusterRegistry would create a client for).
class EvaluatorBoundsTest : public ::testing::Test {
 protected:
  void Make(EvaluatorOptions options) {
    reader_->SetDefault(kafka::GroupOffsets{
        .partitions = {{.topic = "t", .partition = 0, .committed = 2, .end = 10}}});
    options.idle_ttl = absl::Minutes(30);
    options.now = [this] { return clock_.Now(); };
    evaluator_ = std::make_unique<Evaluator>(
        [this](const kafka::ConnectionConfig& c)
            -> absl::StatusOr<std::shared_ptr<kafka::OffsetReader>> {
          absl::MutexLock lock(&mu_);
          clusters_.push_back(c.bootstrap_servers);
          return std::shared_ptr<kafka::OffsetReader>(reader_);
        },
        nullptr, std::move(options));
  }

  static TriggerRef Ref(const std::string& ns, const std::string& name,
                        const std::string& cluster = "kafka:9092") {
    return TriggerRef{.name = name,
                      .namespace_ = ns,
                      .metadata = {{"bootstrapServers", cluster},
                                   {"consumerGroup", "g-" + name},
                                   {"topic", "t"},
                                   {"lagThreshold", "5"}}};
  }

  bool ReaderAskedFor(const std::string& cluster) {
    absl::MutexLock lock(&mu_);
    return std::find(clusters_.begin(), clusters_.end(), cluster) != clusters_.end();
  }

  static void ExpectExhausted(const absl::Status& status, const std::string& text) {
    EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted) << status;
    EXPECT_NE(status.message().find(text), absl::string_view::npos) << status;
  }

  FakeClock clock_;
  std::shared_ptr<testing::FakeOffsetReader> reader_ =
      std::make_shared<testing::FakeOffsetReader>();
  absl::Mutex mu_;
  std::vector<std::string> clusters_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<Evaluator> evaluator_;
};

TEST_F(EvaluatorBoundsTest, NewTriggersOverTheirBoundsAreRefusedAndIdleStateFreesSlots) {
  Make(EvaluatorOptions{.max_triggers = 3, .max_triggers_per_namespace = 2});
  ASSERT_TRUE(evaluator_->Evaluate(Ref("a", "j0")).ok());
  ASSERT_TRUE(evaluator_->Evaluate(Ref("a", "j1")).ok());
  // a's third trigger: refused by every entry point, without Kafka.
  auto over = evaluator_->Evaluate(Ref("a", "j2"));
  ExpectExhausted(over.status(),
                  "namespace a has 2 tracked triggers (--max-triggers-per-namespace=2)");
  ExpectExhausted(evaluator_->ParseCached(Ref("a", "j2")).status(),
                  "--max-triggers-per-namespace=2");
  EXPECT_EQ(reader_->calls("g-j2"), 0);
  // a's known triggers and another namespace are still served.
  clock_.Advance(absl::Seconds(3));  // past the window
  EXPECT_TRUE(evaluator_->Evaluate(Ref("a", "j0")).ok());
  ASSERT_TRUE(evaluator_->Evaluate(Ref("b", "j0")).ok());
  // The total: a third namespace finds no slot.
  ExpectExhausted(evaluator_->Evaluate(Ref("c", "j0")).status(),
                  "klag-scaler already tracks 3 triggers (--max-triggers=3)");
  EXPECT_EQ(evaluator_->Stats().triggers, 3);
  EXPECT_EQ(evaluator_->Stats().over_bound, 3);

  // Idle state frees slots: a/j1 and b/j0 unused for over idle_ttl, a/j0 used meanwhile.
  clock_.Advance(absl::Minutes(20));
  ASSERT_TRUE(evaluator_->Evaluate(Ref("a", "j0")).ok());
  clock_.Advance(absl::Minutes(11));
  EXPECT_TRUE(evaluator_->Evaluate(Ref("a", "j2")).ok());
  EXPECT_TRUE(evaluator_->Evaluate(Ref("c", "j0")).ok());
  EXPECT_EQ(evaluator_->Stats().triggers, 3);
}

TEST_F(EvaluatorBoundsTest, ClustersOverTheirBoundsAreRefusedWithoutANewClient) {
  Make(EvaluatorOptions{.max_clusters = 3, .max_clusters_per_namespace = 2});
  ASSERT_TRUE(evaluator_->Evaluate(Ref("a", "j1", "k1:9092")).ok());
  ASSERT_TRUE(evaluator_->Evaluate(Ref("a", "j2", "k2:9092")).ok());
  ASSERT_TRUE(evaluator_->Evaluate(Ref("a", "j3", "k1:9092")).ok()) << "a cluster a already uses";
  // a's third cluster: refused before a reader is asked for.
  ExpectExhausted(evaluator_->Evaluate(Ref("a", "j4", "k3:9092")).status(),
                  "namespace a already uses 2 Kafka clusters (--max-clusters-per-namespace=2); "
                  "cluster k3:9092 would be one more");
  ExpectExhausted(evaluator_->ParseCached(Ref("a", "j4", "k3:9092")).status(),
                  "--max-clusters-per-namespace=2");
  EXPECT_FALSE(ReaderAskedFor("k3:9092"));
  // Another namespace's new cluster is served, up to the total.
  ASSERT_TRUE(evaluator_->Evaluate(Ref("b", "j1", "k3:9092")).ok());
  EXPECT_TRUE(ReaderAskedFor("k3:9092"));
  EXPECT_EQ(evaluator_->Stats().clusters, 3);
  ExpectExhausted(evaluator_->Evaluate(Ref("c", "j1", "k4:9092")).status(),
                  "klag-scaler already uses 3 Kafka clusters (--max-clusters=3); cluster "
                  "k4:9092 would be one more");
  EXPECT_FALSE(ReaderAskedFor("k4:9092"));
  EXPECT_TRUE(evaluator_->Evaluate(Ref("c", "j2", "k1:9092")).ok()) << "a cluster in use";

  // A cluster stops counting once no trigger with state names it: a/j2 (k2) goes idle.
  clock_.Advance(absl::Minutes(20));
  for (const char* name : {"j1", "j3"})
    ASSERT_TRUE(evaluator_->Evaluate(Ref("a", name, "k1:9092")).ok());
  ASSERT_TRUE(evaluator_->Evaluate(Ref("b", "j1", "k3:9092")).ok());
  ASSERT_TRUE(evaluator_->Evaluate(Ref("c", "j2", "k1:9092")).ok());
  clock_.Advance(absl::Minutes(11));
  EXPECT_TRUE(evaluator_->Evaluate(Ref("a", "j4", "k3:9092")).ok());
  EXPECT_EQ(evaluator_->Stats().clusters, 2);  // k1, k3
  EXPECT_TRUE(evaluator_->Evaluate(Ref("c", "j1", "k4:9092")).ok());
  EXPECT_EQ(evaluator_->Stats().clusters, 3);
}

TEST(ForMessageTest, CutsLongTextAndMarksIt) {
  EXPECT_EQ(ForMessage("short"), "short");
  EXPECT_EQ(ForMessage(std::string(150, 'x'), 100), std::string(100, 'x') + "...");
}

TEST(EvaluatorProfileTest, ACachedParseSeesAProfileChangeWhenTheProfileIsReRead) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / testing::UniqueName("klag-evaluator-profile");
  fs::create_directories(dir / "p");
  auto write = [&](const std::string& key, const std::string& value) {
    std::ofstream(dir / "p" / key) << value;
  };
  write("allowedNamespaces", "ns");
  write("bootstrapServers", "a:9092");
  auto reader = std::make_shared<testing::FakeOffsetReader>();
  auto provider =
      [&](const kafka::ConnectionConfig&) -> absl::StatusOr<std::shared_ptr<kafka::OffsetReader>> {
    return reader;
  };
  const Metadata md = {
      {"authProfile", "p"}, {"consumerGroup", "g"}, {"topic", "t"}, {"lagThreshold", "5"}};
  const TriggerRef ref{.name = "job", .namespace_ = "ns", .metadata = md};

  // Profiles re-read every hour: the cached parse stands.
  ProfileStore hourly(dir.string(), absl::Hours(1));
  Evaluator cached(provider, &hourly, EvaluatorOptions{});
  auto before = cached.ParseCached(ref);
  ASSERT_TRUE(before.ok()) << before.status();
  EXPECT_EQ(before->spec->connection.bootstrap_servers, "a:9092");
  write("bootstrapServers", "b:9092");
  auto still = cached.ParseCached(ref);
  ASSERT_TRUE(still.ok());
  EXPECT_EQ(still->spec.get(), before->spec.get());

  // Profiles re-read at every use: every call parses again and sees the change.
  ProfileStore always(dir.string(), absl::ZeroDuration());
  Evaluator fresh(provider, &always, EvaluatorOptions{});
  auto b = fresh.ParseCached(ref);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->spec->connection.bootstrap_servers, "b:9092");
  write("bootstrapServers", "c:9092");
  auto c = fresh.ParseCached(ref);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->spec->connection.bootstrap_servers, "c:9092");
  fs::remove_all(dir);
}

TEST(EvaluatorProfileTest, AProfileMovingATriggerToAClusterOverTheBoundIsRefused) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / testing::UniqueName("klag-evaluator-bound");
  fs::create_directories(dir / "p");
  auto write = [&](const std::string& key, const std::string& value) {
    std::ofstream(dir / "p" / key) << value;
  };
  write("allowedNamespaces", "ns");
  write("bootstrapServers", "a:9092");
  auto reader = std::make_shared<testing::FakeOffsetReader>();
  auto provider =
      [&](const kafka::ConnectionConfig&) -> absl::StatusOr<std::shared_ptr<kafka::OffsetReader>> {
    return reader;
  };
  ProfileStore always(dir.string(), absl::ZeroDuration());  // re-read at every use
  Evaluator evaluator(provider, &always, EvaluatorOptions{.max_clusters_per_namespace = 1});
  const TriggerRef via_profile{
      .name = "job",
      .namespace_ = "ns",
      .metadata = {
          {"authProfile", "p"}, {"consumerGroup", "g"}, {"topic", "t"}, {"lagThreshold", "5"}}};
  const TriggerRef direct{.name = "other",
                          .namespace_ = "ns",
                          .metadata = {{"bootstrapServers", "a:9092"},
                                       {"consumerGroup", "g"},
                                       {"topic", "t"},
                                       {"lagThreshold", "5"}}};
  ASSERT_TRUE(evaluator.ParseCached(via_profile).ok());
  ASSERT_TRUE(evaluator.ParseCached(direct).ok());
  // The profile now names another cluster, while "other" still uses a:9092: a second cluster.
  write("bootstrapServers", "b:9092");
  auto moved = evaluator.ParseCached(via_profile);
  EXPECT_EQ(moved.status().code(), absl::StatusCode::kResourceExhausted) << moved.status();
  EXPECT_NE(moved.status().message().find("--max-clusters-per-namespace=1"),
            absl::string_view::npos)
      << moved.status();
  EXPECT_TRUE(evaluator.ParseCached(direct).ok());
  EXPECT_EQ(evaluator.Stats().clusters, 1);
  // The profile back on a:9092: served again.
  write("bootstrapServers", "a:9092");
  EXPECT_TRUE(evaluator.ParseCached(via_profile).ok());
  EXPECT_EQ(evaluator.Stats().clusters, 1);
  fs::remove_all(dir);
}

TEST(TriggerKeyTest, DependsOnNamespaceNameAndMetadata) {
  TriggerRef a{.name = "j", .namespace_ = "ns", .metadata = {{"topic", "t"}}};
  TriggerRef b = a;
  EXPECT_EQ(TriggerKey(a), TriggerKey(b));
  b.metadata["topic"] = "u";
  EXPECT_NE(TriggerKey(a), TriggerKey(b));
  TriggerRef c = a;
  c.namespace_ = "other";
  EXPECT_NE(TriggerKey(a), TriggerKey(c));
  EXPECT_EQ(TriggerKey(a).rfind("ns/j#", 0), 0u);
}

TEST(TriggerKeyTest, DigestIsKeyedAndHoldsNoSecret) {
  TriggerRef a{.name = "j",
               .namespace_ = "ns",
               .metadata = {{"topic", "t"}, {"username", "u"}, {"password", "hunter2"}}};
  TriggerRef b = a;
  b.metadata["password"] = "hunter3";
  // Different passwords: different keys (the state of two triggers is not mixed up) ...
  EXPECT_NE(TriggerKey(a), TriggerKey(b));
  EXPECT_EQ(TriggerKey(a), TriggerKey(a));
  const std::string key = TriggerKey(a);
  EXPECT_EQ(key.find("hunter"), std::string::npos) << key;
  // ... but nobody without the process secret can compute them: not the old unkeyed 64-bit hash,
  // not the digest under an empty or a guessed secret.
  const std::string digest = key.substr(key.find('#') + 1);
  EXPECT_EQ(digest.size(), 32u);
  const size_t unkeyed = absl::HashOf(
      std::vector<std::pair<std::string, std::string>>(a.metadata.begin(), a.metadata.end()));
  EXPECT_EQ(key.find(absl::StrFormat("%016x", unkeyed)), std::string::npos);
  EXPECT_NE(digest, internal::MetadataDigest(a.metadata, ""));
  EXPECT_NE(digest, internal::MetadataDigest(a.metadata, std::string(32, '\0')));
  // The digest depends on the secret, and is stable for one secret.
  EXPECT_EQ(internal::MetadataDigest(a.metadata, "s1"), internal::MetadataDigest(a.metadata, "s1"));
  EXPECT_NE(internal::MetadataDigest(a.metadata, "s1"), internal::MetadataDigest(a.metadata, "s2"));
  // Length-prefixed: moving a character between key and value changes the digest.
  EXPECT_NE(internal::MetadataDigest({{"ab", "c"}}, "s"),
            internal::MetadataDigest({{"a", "bc"}}, "s"));
  // It is HMAC-SHA256 of "1:a1:b" cut to 128 bits (values from Python's hmac module), with the
  // per-thread context keyed again when the secret changes, and from any thread.
  for (int round = 0; round < 2; ++round) {
    EXPECT_EQ(internal::MetadataDigest({{"a", "b"}}, "k"), "35cfc5b59b335a0bb28cd042ee236484");
    EXPECT_EQ(internal::MetadataDigest({{"a", "b"}}, ""), "52d76d69b2d820e29a37898c0cd4ce2d");
  }
  std::string from_thread;
  std::thread([&] { from_thread = internal::MetadataDigest({{"a", "b"}}, "k"); }).join();
  EXPECT_EQ(from_thread, "35cfc5b59b335a0bb28cd042ee236484");
}

TEST(ServerPatternTest, WildcardsAndCase) {
  EXPECT_TRUE(MatchesServerPattern("kafka.kafka.svc:9092", "kafka.kafka.svc:9092"));
  EXPECT_TRUE(MatchesServerPattern("*.kafka.svc:9092", "b-1.kafka.svc:9092"));
  EXPECT_TRUE(MatchesServerPattern("*.Kafka.svc:*", "b-1.kafka.SVC:9093"));
  EXPECT_TRUE(MatchesServerPattern("*", "anything:1"));
  EXPECT_FALSE(MatchesServerPattern("*.kafka.svc:9092", "evil.example:9092"));
  EXPECT_FALSE(MatchesServerPattern("*.kafka.svc:9092", "b-1.kafka.svc:9093"));
  EXPECT_FALSE(MatchesServerPattern("kafka:9092", "kafka:90921"));
  EXPECT_FALSE(MatchesServerPattern("", "kafka:9092"));
}

}  // namespace
}  // namespace klag::scaler
