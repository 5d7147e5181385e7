// EndOffsetsCache with an injected clock and a fake fetch function (no librdkafka, no broker).
#include "kafka/end_offsets_cache.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <optional>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"

namespace klag::kafka {
namespace {

using ::testing::UnorderedElementsAre;

// A clock the test moves by hand.
class FakeClock {
 public:
  absl::Time Now() const {
    absl::MutexLock lock(&mu_);
    return now_;
  }
  void Advance(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    now_ += d;
  }

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ = absl::FromUnixSeconds(1'700'000'000);
};

// A "cluster" whose end offsets the test sets; records every fetch.
class FakeCluster {
 public:
  EndOffsetsCache::FetchResult Fetch(const std::vector<TopicPartition>& partitions) {
    gate_.WaitForNotification();
    absl::MutexLock lock(&mu_);
    calls_.push_back(partitions);
    EndOffsetsCache::FetchResult result;
    result.error = call_error_;
    if (call_error_ != 0) return result;
    for (const TopicPartition& tp : partitions) {
      auto it = end_.find(tp);
      result.partitions[tp] = it == end_.end() ? EndOffsetsCache::Offsets{.error = 3}
                                               : EndOffsetsCache::Offsets{it->second, 0, 0};
    }
    return result;
  }
  void SetEnd(const TopicPartition& tp, int64_t end) {
    absl::MutexLock lock(&mu_);
    end_[tp] = end;
  }
  void SetCallError(int error) {
    absl::MutexLock lock(&mu_);
    call_error_ = error;
  }
  std::vector<std::vector<TopicPartition>> calls() const {
    absl::MutexLock lock(&mu_);
    return calls_;
  }
  // Unless constructed open, fetches block until Open() (for tests of concurrent callers).
  void Open() { gate_.Notify(); }

  explicit FakeCluster(bool open) {
    if (open) gate_.Notify();
  }

 private:
  mutable absl::Mutex mu_;
  absl::flat_hash_map<TopicPartition, int64_t> end_ ABSL_GUARDED_BY(mu_);
  int call_error_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::vector<TopicPartition>> calls_ ABSL_GUARDED_BY(mu_);
  absl::Notification gate_;
};

struct Fixture {
  explicit Fixture(bool open = true, absl::Duration max_age = absl::Seconds(1),
                   int history_points = EndOffsetHistory::kDefaultMaxPoints)
      : cluster(open),
        cache([this](const std::vector<TopicPartition>& p,
                     absl::Time /*deadline*/) { return cluster.Fetch(p); },
              {.max_age = max_age, .history_points = history_points, .clock = [this] {
                 return clock.Now();
               }}) {}
  FakeClock clock;
  FakeCluster cluster;
  EndOffsetsCache cache;
};

const absl::Time kFar = absl::InfiniteFuture();
const TopicPartition kA0{"a", 0};
const TopicPartition kA1{"a", 1};
const TopicPartition kB0{"b", 0};

TEST(EndOffsetsCacheTest, WithinMaxAgeAnswersFromTheSnapshotAndAfterItFetchesAgain) {
  Fixture f;
  f.cluster.SetEnd(kA0, 5);
  const absl::Time t0 = f.clock.Now();
  EndOffsetsCache::Answer first = f.cache.Lookup({kA0}, kFar);
  ASSERT_FALSE(first.timed_out);
  EXPECT_FALSE(first.from_snapshot);
  EXPECT_EQ(first.partitions.at(kA0).end, 5);
  EXPECT_EQ(first.read_at, t0);

  f.cluster.SetEnd(kA0, 9);
  f.clock.Advance(absl::Milliseconds(999));
  EndOffsetsCache::Answer cached = f.cache.Lookup({kA0}, kFar);
  EXPECT_TRUE(cached.from_snapshot);
  EXPECT_EQ(cached.partitions.at(kA0).end, 5);  // old, but within the bound
  EXPECT_EQ(cached.read_at, t0);
  EXPECT_GE(cached.read_at, f.clock.Now() - absl::Seconds(1));
  EXPECT_EQ(f.cluster.calls().size(), 1u);

  f.clock.Advance(absl::Milliseconds(2));  // now older than max_age
  EndOffsetsCache::Answer fresh = f.cache.Lookup({kA0}, kFar);
  EXPECT_FALSE(fresh.from_snapshot);
  EXPECT_EQ(fresh.partitions.at(kA0).end, 9);
  EXPECT_EQ(fresh.read_at, f.clock.Now());
  EXPECT_EQ(f.cluster.calls().size(), 2u);
  EndOffsetsCache::Stats stats = f.cache.GetStats();
  EXPECT_EQ(stats.lookups, 3);
  EXPECT_EQ(stats.snapshot_answers, 1);
  EXPECT_EQ(stats.fetches, 2);
}

TEST(EndOffsetsCacheTest, PeekAnswersOnlyFromTheSnapshotAndNeverFetches) {
  Fixture f;
  f.cluster.SetEnd(kA0, 5);
  f.cluster.SetEnd(kA1, 7);
  EXPECT_FALSE(f.cache.Peek({kA0}).has_value());  // nothing yet, and nothing fetched for it
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_TRUE(f.cluster.calls().empty());

  const absl::Time t0 = f.clock.Now();
  ASSERT_FALSE(f.cache.Lookup({kA0}, kFar).timed_out);  // fetches the topic: a0 and nothing else
  f.clock.Advance(absl::Milliseconds(999));
  std::optional<EndOffsetsCache::Answer> peeked = f.cache.Peek({kA0});
  ASSERT_TRUE(peeked.has_value());
  EXPECT_TRUE(peeked->from_snapshot);
  EXPECT_EQ(peeked->partitions.at(kA0).end, 5);
  EXPECT_EQ(peeked->read_at, t0);
  EXPECT_FALSE(f.cache.Peek({kA0, kA1}).has_value());  // a1 was never fetched

  f.clock.Advance(absl::Milliseconds(2));  // older than max_age
  EXPECT_FALSE(f.cache.Peek({kA0}).has_value());
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_EQ(f.cluster.calls().size(), 1u);
}

TEST(EndOffsetsCacheTest, RefreshTakesTheOtherStalePartitionsOfTheTopicAlong) {
  Fixture f;
  for (const TopicPartition& tp : {kA0, kA1, kB0}) f.cluster.SetEnd(tp, 1);
  ASSERT_FALSE(f.cache.Lookup({kA0, kA1, kB0}, kFar).timed_out);
  f.clock.Advance(absl::Seconds(2));
  // Only a/0 is asked for; a/1 is stale too and rides along, b/0 (another topic) does not.
  ASSERT_FALSE(f.cache.Lookup({kA0}, kFar).timed_out);
  ASSERT_EQ(f.cluster.calls().size(), 2u);
  EXPECT_THAT(f.cluster.calls()[1], UnorderedElementsAre(kA0, kA1));
  // a/1 is now fresh: no fetch for it.
  EXPECT_TRUE(f.cache.Lookup({kA1}, kFar).from_snapshot);
}

TEST(EndOffsetsCacheTest, RefreshTakesTheStalePartitionsOfOtherTopicsInUseAlong) {
  Fixture f;
  for (const TopicPartition& tp : {kA0, kA1, kB0}) f.cluster.SetEnd(tp, 1);
  ASSERT_FALSE(f.cache.Lookup({kA0, kA1}, kFar).timed_out);
  f.clock.Advance(absl::Milliseconds(600));
  ASSERT_FALSE(f.cache.Lookup({kB0}, kFar).timed_out);
  f.clock.Advance(absl::Milliseconds(600));  // a/* stale; b/0 fresh and looked up 600 ms ago
  ASSERT_FALSE(f.cache.Lookup({kB0}, kFar).timed_out);
  EXPECT_EQ(f.cluster.calls().size(), 2u);
  f.clock.Advance(absl::Milliseconds(600));  // b/0 stale too, looked up 600 ms ago: in use
  ASSERT_FALSE(f.cache.Lookup({kA0}, kFar).timed_out);
  ASSERT_EQ(f.cluster.calls().size(), 3u);
  EXPECT_THAT(f.cluster.calls()[2], UnorderedElementsAre(kA0, kA1, kB0));
}

TEST(EndOffsetsCacheTest, ConcurrentCallersShareOneFetch) {
  Fixture f(/*open=*/false);
  f.cluster.SetEnd(kA0, 7);
  f.cluster.SetEnd(kA1, 8);
  constexpr int kCallers = 16;
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  // The first caller's fetch blocks in the fake cluster; everyone else arrives meanwhile.
  for (int i = 0; i < kCallers; ++i) {
    threads.emplace_back([&f, &ok, i] {
      EndOffsetsCache::Answer a = f.cache.Lookup({i % 2 == 0 ? kA0 : kA1}, kFar);
      if (!a.timed_out && a.error == 0) ++ok;
    });
  }
  absl::SleepFor(absl::Milliseconds(100));  // let them all queue up
  f.cluster.Open();
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(ok.load(), kCallers);
  // One fetch in flight (the first caller's), the rest joined one next fetch.
  EXPECT_LE(f.cluster.calls().size(), 2u);
  EXPECT_EQ(f.cache.GetStats().lookups, kCallers);
}

TEST(EndOffsetsCacheTest, CallerJoinsAFetchInFlightOnlyWhenItStartedWithinTheBound) {
  Fixture f(/*open=*/false);
  f.cluster.SetEnd(kA0, 1);
  absl::Time first_read_at;
  std::thread first([&] { first_read_at = f.cache.Lookup({kA0}, kFar).read_at; });
  // Wait until the first fetch is in flight (it blocks on the gate).
  while (f.cache.GetStats().fetches == 0) absl::SleepFor(absl::Milliseconds(1));
  const absl::Time sent = f.clock.Now();
  f.clock.Advance(absl::Seconds(5));  // the fetch in flight is now too old for new callers
  absl::Time second_read_at;
  std::thread second([&] { second_read_at = f.cache.Lookup({kA0}, kFar).read_at; });
  absl::SleepFor(absl::Milliseconds(50));
  f.cluster.Open();
  first.join();
  second.join();
  EXPECT_EQ(first_read_at, sent);
  EXPECT_EQ(second_read_at, sent + absl::Seconds(5));  // waited for a fetch of its own
  EXPECT_EQ(f.cluster.calls().size(), 2u);
}

TEST(EndOffsetsCacheTest, FailuresAreReturnedAndNeverKept) {
  Fixture f;
  f.cluster.SetEnd(kA0, 4);
  // b/0 is unknown to the fake cluster: a per-partition error.
  EndOffsetsCache::Answer a = f.cache.Lookup({kA0, kB0}, kFar);
  ASSERT_FALSE(a.timed_out);
  EXPECT_EQ(a.error, 0);
  EXPECT_EQ(a.partitions.at(kA0).error, 0);
  EXPECT_EQ(a.partitions.at(kB0).error, 3);
  EXPECT_FALSE(f.cache.Lookup({kB0}, kFar).from_snapshot);  // asked again

  f.clock.Advance(absl::Seconds(2));
  f.cluster.SetCallError(42);
  EndOffsetsCache::Answer failed = f.cache.Lookup({kA0}, kFar);
  EXPECT_EQ(failed.error, 42);
  EXPECT_EQ(failed.partitions.at(kA0).error, 42);
  f.cluster.SetCallError(0);
  EXPECT_FALSE(f.cache.Lookup({kA0}, kFar).from_snapshot);
}

TEST(EndOffsetsCacheTest, InvalidateForcesAFetch) {
  Fixture f;
  f.cluster.SetEnd(kA0, 4);
  ASSERT_FALSE(f.cache.Lookup({kA0}, kFar).timed_out);
  f.cache.Invalidate({kA0});
  EXPECT_FALSE(f.cache.Lookup({kA0}, kFar).from_snapshot);
  EXPECT_EQ(f.cluster.calls().size(), 2u);
}

TEST(EndOffsetsCacheTest, NoAnswerByTheDeadlineIsTimedOut) {
  Fixture f(/*open=*/false);
  f.cluster.SetEnd(kA0, 4);
  EndOffsetsCache::Answer a = f.cache.Lookup({kA0}, absl::Now() + absl::Milliseconds(50));
  EXPECT_TRUE(a.timed_out);
  f.cluster.Open();  // lets the worker finish before the cache is destroyed
}

TEST(EndOffsetsCacheTest, IdleTopicsAreDropped) {
  Fixture f;
  f.cluster.SetEnd(kA0, 4);
  f.cluster.SetEnd(kB0, 4);
  ASSERT_FALSE(f.cache.Lookup({kA0, kB0}, kFar).timed_out);
  EXPECT_EQ(f.cache.GetStats().entries, 2);
  f.clock.Advance(absl::Minutes(11));  // past idle_ttl (10 min)
  ASSERT_FALSE(f.cache.Lookup({kA0}, kFar).timed_out);
  EXPECT_EQ(f.cache.GetStats().entries, 1);  // b/0 dropped, a/0 refreshed
}

// Fetches `tp` at end `end` at the fake clock's time (max_age is 1 s: each call is 2 s later).
void FetchAt(Fixture& f, const TopicPartition& tp, int64_t end) {
  f.clock.Advance(absl::Seconds(2));
  f.cluster.SetEnd(tp, end);
  ASSERT_FALSE(f.cache.Lookup({tp}, kFar).from_snapshot);
}

TEST(EndOffsetsCacheTest, EveryFetchFeedsTheHistoryWithItsStartTime) {
  Fixture f;
  const absl::Time t0 = f.clock.Now();
  FetchAt(f, kA0, 100);  // at t0 + 2 s
  FetchAt(f, kA0, 140);  // at t0 + 4 s: 20 records/s
  FetchAt(f, kB0, 7);
  std::vector<std::optional<absl::Time>> times =
      f.cache.TimesOf({{kA0, 119}, {kA0, 140}, {kA1, 0}, {kB0, 3}, {kA0, 139}});
  ASSERT_EQ(times.size(), 5u);
  EXPECT_EQ(times[0], t0 + absl::Seconds(3));  // end reached 120 halfway
  EXPECT_EQ(times[1], std::nullopt);           // nothing at or past the end
  EXPECT_EQ(times[2], std::nullopt);           // never fetched
  EXPECT_EQ(times[3], t0 + absl::Seconds(6));  // before b/0's only sample: its time
  EXPECT_EQ(times[4], t0 + absl::Seconds(4));
  const EndOffsetsCache::Stats stats = f.cache.GetStats();
  EXPECT_EQ(stats.histories, 2);
  EXPECT_EQ(stats.history_points, 3);
}

TEST(EndOffsetsCacheTest, SnapshotAnswersAddNoSample) {
  Fixture f;
  const absl::Time t0 = f.clock.Now();
  FetchAt(f, kA0, 100);
  f.cluster.SetEnd(kA0, 500);  // not fetched: the snapshot answers within max_age
  f.clock.Advance(absl::Milliseconds(500));
  ASSERT_TRUE(f.cache.Lookup({kA0}, kFar).from_snapshot);
  EXPECT_EQ(f.cache.GetStats().history_points, 1);
  EXPECT_EQ(f.cache.TimesOf({{kA0, 50}})[0], t0 + absl::Seconds(2));
}

TEST(EndOffsetsCacheTest, InvalidateAndFailedFetchesKeepTheHistory) {
  Fixture f;
  const absl::Time t0 = f.clock.Now();
  FetchAt(f, kA0, 100);
  FetchAt(f, kA0, 140);
  f.cache.Invalidate({kA0});
  EXPECT_EQ(f.cache.GetStats().entries, 0);
  EXPECT_EQ(f.cache.TimesOf({{kA0, 119}})[0], t0 + absl::Seconds(3));
  f.clock.Advance(absl::Seconds(2));
  f.cluster.SetCallError(42);
  EXPECT_EQ(f.cache.Lookup({kA0}, kFar).error, 42);
  EXPECT_EQ(f.cache.GetStats().entries, 0);
  EXPECT_EQ(f.cache.TimesOf({{kA0, 119}})[0], t0 + absl::Seconds(3));
  // The value is fetched again, not taken from the kept entry.
  f.cluster.SetCallError(0);
  FetchAt(f, kA0, 150);
  EXPECT_EQ(f.cluster.calls().size(), 4u);
  EXPECT_EQ(f.cache.TimesOf({{kA0, 144}})[0], t0 + absl::Seconds(6));  // 140 at 4 s, 150 at 8 s
}

TEST(EndOffsetsCacheTest, IdleTopicsDropTheirHistory) {
  Fixture f;
  FetchAt(f, kA0, 100);
  FetchAt(f, kA0, 140);
  f.clock.Advance(absl::Minutes(11));  // past idle_ttl (10 min)
  FetchAt(f, kB0, 1);                  // sweeps a
  EXPECT_EQ(f.cache.TimesOf({{kA0, 119}})[0], std::nullopt);
  EXPECT_EQ(f.cache.GetStats().histories, 1);
}

TEST(EndOffsetsCacheTest, ZeroHistoryPointsKeepsNoHistory) {
  Fixture f(/*open=*/true, absl::Seconds(1), /*history_points=*/0);
  FetchAt(f, kA0, 100);
  FetchAt(f, kA0, 140);
  EXPECT_EQ(f.cache.TimesOf({{kA0, 119}})[0], std::nullopt);
  EXPECT_EQ(f.cache.GetStats().histories, 0);
}

}  // namespace
}  // namespace klag::kafka
