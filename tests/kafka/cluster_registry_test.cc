#include "kafka/cluster_registry.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <memory>
#include <set>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "tests/testing/fake_offset_reader.h"

namespace klag::kafka {
namespace {

ConnectionConfig Cluster(const std::string& bootstrap, const std::string& password = "") {
  ConnectionConfig config;
  config.bootstrap_servers = bootstrap;
  if (!password.empty()) {
    config.sasl.mechanism = SaslMechanism::kPlain;
    config.sasl.username = "user";
    config.sasl.password = password;
  }
  return config;
}

// A factory that makes FakeOffsetReaders and counts calls; optionally fails.
struct CountingFactory {
  std::atomic<int> calls{0};
  std::atomic<bool> fail{false};

  ClusterRegistry::Factory Get() {
    return [this](const ConnectionConfig&) -> absl::StatusOr<std::shared_ptr<OffsetReader>> {
      ++calls;
      if (fail) return absl::InvalidArgumentError("bad connection settings");
      return std::make_shared<testing::FakeOffsetReader>();
    };
  }
};

// A clock the test moves by hand.
struct FakeClock {
  absl::Mutex mu;
  absl::Time now = absl::FromUnixSeconds(1'000'000);

  ClusterRegistry::Clock Get() {
    return [this] {
      absl::MutexLock lock(&mu);
      return now;
    };
  }
  void Advance(absl::Duration d) {
    absl::MutexLock lock(&mu);
    now += d;
  }
};

TEST(ClusterRegistryTest, EqualConnectionSettingsShareOneReader) {
  CountingFactory factory;
  ClusterRegistry registry(factory.Get());
  absl::StatusOr<std::shared_ptr<OffsetReader>> a = registry.For(Cluster("k1:9092"));
  absl::StatusOr<std::shared_ptr<OffsetReader>> b = registry.For(Cluster("k1:9092"));
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(a->get(), b->get());
  EXPECT_EQ(factory.calls.load(), 1);
  EXPECT_EQ(registry.Size(), 1u);
}

TEST(ClusterRegistryTest, DifferentClustersOrCredentialsGetTheirOwnReaders) {
  CountingFactory factory;
  ClusterRegistry registry(factory.Get());
  auto plain = registry.For(Cluster("k1:9092"));
  auto other_cluster = registry.For(Cluster("k2:9092"));
  auto alice = registry.For(Cluster("k1:9092", "alice-secret"));
  auto bob = registry.For(Cluster("k1:9092", "bob-secret"));
  ASSERT_TRUE(plain.ok() && other_cluster.ok() && alice.ok() && bob.ok());
  EXPECT_NE(plain->get(), other_cluster->get());
  EXPECT_NE(plain->get(), alice->get());
  EXPECT_NE(alice->get(), bob->get());
  EXPECT_EQ(registry.Size(), 4u);
  EXPECT_EQ(factory.calls.load(), 4);
}

TEST(ClusterRegistryTest, FactoryErrorIsReturnedAndNotCached) {
  CountingFactory factory;
  factory.fail = true;
  ClusterRegistry registry(factory.Get());
  absl::StatusOr<std::shared_ptr<OffsetReader>> reader = registry.For(Cluster("k1:9092"));
  EXPECT_EQ(reader.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(registry.Size(), 0u);
  factory.fail = false;
  reader = registry.For(Cluster("k1:9092"));
  EXPECT_TRUE(reader.ok()) << reader.status();
  EXPECT_EQ(factory.calls.load(), 2);
}

TEST(ClusterRegistryTest, ReadersUnusedForTheIdleTimeoutAreDropped) {
  CountingFactory factory;
  FakeClock clock;
  ClusterRegistry registry(factory.Get(), absl::Minutes(10), clock.Get());
  auto first_b = registry.For(Cluster("b:9092"));
  ASSERT_TRUE(first_b.ok());
  std::weak_ptr<OffsetReader> weak_b = *first_b;
  first_b = absl::UnknownError("released");  // the caller lets go of it
  ASSERT_TRUE(registry.For(Cluster("a:9092")).ok());

  clock.Advance(absl::Minutes(6));
  ASSERT_TRUE(registry.For(Cluster("a:9092")).ok());  // a stays in use; b idle for 6 min
  EXPECT_EQ(registry.Size(), 2u);

  clock.Advance(absl::Minutes(5));
  ASSERT_TRUE(registry.For(Cluster("a:9092")).ok());  // b idle for 11 min: dropped
  EXPECT_EQ(registry.Size(), 1u);
  EXPECT_TRUE(weak_b.expired());

  auto second_b = registry.For(Cluster("b:9092"));  // comes back as a new reader
  ASSERT_TRUE(second_b.ok());
  EXPECT_EQ(factory.calls.load(), 3);
  EXPECT_EQ(registry.Size(), 2u);
}

TEST(ClusterRegistryTest, EvictedReaderStaysUsableForItsHolders) {
  CountingFactory factory;
  FakeClock clock;
  ClusterRegistry registry(factory.Get(), absl::Minutes(1), clock.Get());
  absl::StatusOr<std::shared_ptr<OffsetReader>> held = registry.For(Cluster("a:9092"));
  ASSERT_TRUE(held.ok());
  clock.Advance(absl::Minutes(2));
  EXPECT_EQ(registry.EvictIdle(), 1);
  EXPECT_EQ(registry.Size(), 0u);
  // The evaluation that still holds it finishes normally.
  auto* fake = static_cast<testing::FakeOffsetReader*>(held->get());
  fake->SetOffsets("g", {{.topic = "t", .partition = 0, .committed = 1, .log_start = 0, .end = 3}});
  absl::StatusOr<GroupOffsets> offsets =
      (*held)->ReadOffsets({.group = "g", .topics = {"t"}}, absl::Now() + absl::Seconds(1));
  ASSERT_TRUE(offsets.ok()) << offsets.status();
  EXPECT_EQ(offsets->partitions.at(0).end, 3);
  // A new request gets a new reader.
  auto fresh = registry.For(Cluster("a:9092"));
  ASSERT_TRUE(fresh.ok());
  EXPECT_NE(fresh->get(), held->get());
}

TEST(ClusterRegistryTest, EvictIdleKeepsRecentlyUsedReaders) {
  CountingFactory factory;
  FakeClock clock;
  ClusterRegistry registry(factory.Get(), absl::Minutes(10), clock.Get());
  ASSERT_TRUE(registry.For(Cluster("a:9092")).ok());
  clock.Advance(absl::Minutes(9));
  EXPECT_EQ(registry.EvictIdle(), 0);
  EXPECT_EQ(registry.Size(), 1u);
}

TEST(ClusterRegistryTest, ConcurrentCallersGetOneReaderPerCluster) {
  CountingFactory factory;
  ClusterRegistry registry(factory.Get());
  constexpr int kThreads = 8;
  constexpr int kCalls = 200;
  const std::vector<std::string> clusters = {"a:9092", "b:9092", "c:9092"};
  absl::Mutex mu;
  std::map<std::string, std::set<OffsetReader*>> seen;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kCalls; ++i) {
        const std::string& cluster = clusters[(t + i) % clusters.size()];
        absl::StatusOr<std::shared_ptr<OffsetReader>> reader = registry.For(Cluster(cluster));
        ASSERT_TRUE(reader.ok());
        absl::MutexLock lock(&mu);
        seen[cluster].insert(reader->get());
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(factory.calls.load(), 3);
  for (const auto& [cluster, readers] : seen) EXPECT_EQ(readers.size(), 1u) << cluster;
  EXPECT_EQ(registry.Size(), 3u);
}

}  // namespace
}  // namespace klag::kafka
