// RdkafkaOffsetReader against the real broker of scripts/kafka.sh (label e2e). Every test uses its
// own topics and groups on the shared broker; the restart test starts a broker of its own (of the
// version in KLAG_KAFKA_VERSION, like the shared one in scripts/test.sh's version matrix).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "kafka/rdkafka_offset_reader.h"
#include "tests/testing/kafka_admin.h"
#include "tests/testing/test_env.h"

namespace klag::kafka {
namespace {

using ::klag::testing::CommitOffsets;
using ::klag::testing::CreateTopic;
using ::klag::testing::OpenTransaction;
using ::klag::testing::Produce;
using ::klag::testing::UniqueName;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr absl::Duration kDeadline = absl::Seconds(10);

// The offsets without PartitionOffsets::unconsumed_since (an estimate from the reader's history,
// tested in lag_seconds_e2e_test), for exact comparisons.
std::vector<PartitionOffsets> WithoutEstimates(std::vector<PartitionOffsets> partitions) {
  for (PartitionOffsets& p : partitions) p.unconsumed_since.reset();
  return partitions;
}

PartitionOffsets P(const std::string& topic, int32_t partition, std::optional<int64_t> committed,
                   int64_t log_start, int64_t end) {
  return PartitionOffsets{topic, partition, committed, log_start, end};
}

std::unique_ptr<RdkafkaOffsetReader> NewReader(const std::string& bootstrap,
                                               RdkafkaOffsetReaderOptions options = {}) {
  ConnectionConfig config;
  config.bootstrap_servers = bootstrap;
  absl::StatusOr<std::unique_ptr<RdkafkaOffsetReader>> reader =
      RdkafkaOffsetReader::Create(config, options);
  EXPECT_TRUE(reader.ok()) << reader.status();
  return reader.ok() ? *std::move(reader) : nullptr;
}

TEST(RdkafkaOffsetReaderE2eTest, ReportsCommittedLogStartAndEndPerPartition) {
  KLAG_REQUIRE_BROKER(bootstrap);
  const std::string topic = UniqueName("reader-offsets");
  const std::string group = UniqueName("reader-group");
  ASSERT_TRUE(CreateTopic(bootstrap, topic, 3).ok());
  ASSERT_TRUE(Produce(bootstrap, topic, 0, 5).ok());
  ASSERT_TRUE(Produce(bootstrap, topic, 1, 3).ok());
  ASSERT_TRUE(testing::DeleteRecordsBefore(bootstrap, topic, 0, 2).ok());
  ASSERT_TRUE(CommitOffsets(bootstrap, group, {{topic, 0, 4}, {topic, 1, 1}}).ok());

  // A long max age: the second read below is answered from the snapshot however slow the
  // machine.
  auto reader = NewReader(bootstrap, {.end_offsets_max_age = absl::Minutes(5)});
  ASSERT_NE(reader, nullptr);
  absl::StatusOr<GroupOffsets> offsets =
      reader->ReadOffsets({.group = group, .topics = {topic}}, absl::Now() + kDeadline);
  ASSERT_TRUE(offsets.ok()) << offsets.status();
  EXPECT_THAT(
      WithoutEstimates(offsets->partitions),
      ElementsAre(P(topic, 0, 4, 2, 5), P(topic, 1, 1, 0, 3), P(topic, 2, std::nullopt, 0, 0)));

  // A second read comes from the metadata cache and the end/log-start snapshot: no Metadata
  // or ListOffsets request; committed offsets are read again.
  const RdkafkaOffsetReaderStats before = reader->Stats();
  ASSERT_TRUE(
      reader->ReadOffsets({.group = group, .topics = {topic}}, absl::Now() + kDeadline).ok());
  const RdkafkaOffsetReaderStats after = reader->Stats();
  EXPECT_EQ(after.metadata_requests, before.metadata_requests);
  EXPECT_EQ(after.offset_fetch_requests, before.offset_fetch_requests + 1);
  EXPECT_EQ(after.list_offsets_calls, before.list_offsets_calls);
  EXPECT_EQ(after.snapshot_answers, before.snapshot_answers + 1);
  // One client reads committed offsets, one (per isolation level) topic metadata and end
  // offsets.
  EXPECT_EQ(after.clients, 2);
  // librdkafka's statistics (every second) count every request the client sent.
  absl::SleepFor(absl::Milliseconds(1500));
  EXPECT_GE(reader->Stats().broker_requests,
            after.metadata_requests + after.list_offsets_calls + after.offset_fetch_requests);
}

TEST(RdkafkaOffsetReaderE2eTest, GroupWithoutCommitsHasNoCommittedOffsets) {
  KLAG_REQUIRE_BROKER(bootstrap);
  const std::string topic = UniqueName("reader-nocommit");
  ASSERT_TRUE(CreateTopic(bootstrap, topic, 2).ok());
  ASSERT_TRUE(Produce(bootstrap, topic, 1, 4).ok());

  auto reader = NewReader(bootstrap);
  ASSERT_NE(reader, nullptr);
  absl::StatusOr<GroupOffsets> offsets = reader->ReadOffsets(
      {.group = UniqueName("reader-never-committed"), .topics = {topic}}, absl::Now() + kDeadline);
  ASSERT_TRUE(offsets.ok()) << offsets.status();
  EXPECT_THAT(WithoutEstimates(offsets->partitions),
              ElementsAre(P(topic, 0, std::nullopt, 0, 0), P(topic, 1, std::nullopt, 0, 4)));
}

TEST(RdkafkaOffsetReaderE2eTest, WithoutTopicsReportsEveryPartitionOfTheCommittedTopics) {
  KLAG_REQUIRE_BROKER(bootstrap);
  const std::string a = UniqueName("reader-derived-a");
  const std::string b = UniqueName("reader-derived-b");
  const std::string unrelated = UniqueName("reader-derived-unrelated");
  const std::string group = UniqueName("reader-derived-group");
  ASSERT_TRUE(CreateTopic(bootstrap, a, 2).ok());
  ASSERT_TRUE(CreateTopic(bootstrap, b, 1).ok());
  ASSERT_TRUE(CreateTopic(bootstrap, unrelated, 1).ok());
  ASSERT_TRUE(Produce(bootstrap, a, 0, 2).ok());
  ASSERT_TRUE(Produce(bootstrap, a, 1, 6).ok());
  ASSERT_TRUE(Produce(bootstrap, b, 0, 1).ok());
  ASSERT_TRUE(CommitOffsets(bootstrap, group, {{a, 1, 5}, {b, 0, 1}}).ok());

  auto reader = NewReader(bootstrap);
  ASSERT_NE(reader, nullptr);
  absl::StatusOr<GroupOffsets> offsets =
      reader->ReadOffsets({.group = group, .topics = {}}, absl::Now() + kDeadline);
  ASSERT_TRUE(offsets.ok()) << offsets.status();
  // a's partition 0 has no commit but belongs to a committed topic; `unrelated` is not reported.
  EXPECT_THAT(WithoutEstimates(offsets->partitions),
              ElementsAre(P(a, 0, std::nullopt, 0, 2), P(a, 1, 5, 0, 6), P(b, 0, 1, 0, 1)));
}

TEST(RdkafkaOffsetReaderE2eTest, WithoutTopicsAndWithoutCommitsIsNotFound) {
  KLAG_REQUIRE_BROKER(bootstrap);
  const std::string group = UniqueName("reader-empty-group");
  auto reader = NewReader(bootstrap);
  ASSERT_NE(reader, nullptr);
  absl::StatusOr<GroupOffsets> offsets =
      reader->ReadOffsets({.group = group, .topics = {}}, absl::Now() + kDeadline);
  ASSERT_EQ(offsets.status().code(), absl::StatusCode::kNotFound) << offsets.status();
  EXPECT_THAT(offsets.status().message(), HasSubstr(group));
  EXPECT_THAT(offsets.status().message(), HasSubstr("set `topic`"));
  EXPECT_THAT(offsets.status().message(), HasSubstr(bootstrap));
}

TEST(RdkafkaOffsetReaderE2eTest, UnknownTopicIsNotFoundNamingIt) {
  KLAG_REQUIRE_BROKER(bootstrap);
  const std::string topic = UniqueName("reader-missing");
  auto reader = NewReader(bootstrap);
  ASSERT_NE(reader, nullptr);
  const absl::Time start = absl::Now();
  absl::StatusOr<GroupOffsets> offsets = reader->ReadOffsets(
      {.group = UniqueName("reader-group"), .topics = {topic}}, absl::Now() + kDeadline);
  ASSERT_EQ(offsets.status().code(), absl::StatusCode::kNotFound) << offsets.status();
  EXPECT_THAT(offsets.status().message(), HasSubstr(topic));
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));  // an answer, not a timeout
  // Asking does not create it.
  EXPECT_EQ(testing::EndOffsets(bootstrap, topic).status().code(), absl::StatusCode::kNotFound);
}

// Reads `query` until partition 0's end offset is `want` or `timeout` passes; returns the last
// answer. A transaction's commit or abort returns once the coordinator has decided it; the
// marker reaches the partition's log a little later (Kafka writes it asynchronously), so a test
// that needs the marker must wait for it. A wrong end offset still fails: the caller checks the
// returned value, which after the timeout is the last one read.
absl::StatusOr<GroupOffsets> ReadUntilEnd(RdkafkaOffsetReader& reader, const OffsetQuery& query,
                                          int64_t want, absl::Duration timeout = kDeadline) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    absl::StatusOr<GroupOffsets> offsets = reader.ReadOffsets(query, absl::Now() + kDeadline);
    const bool done =
        offsets.ok() && !offsets->partitions.empty() && offsets->partitions.front().end == want;
    if (done || absl::Now() >= deadline) return offsets;
    absl::SleepFor(absl::Milliseconds(100));
  }
}

TEST(RdkafkaOffsetReaderE2eTest, ReadCommittedEndsAtTheLastStableOffset) {
  KLAG_REQUIRE_BROKER(bootstrap);
  const std::string topic = UniqueName("reader-txn");
  const std::string group = UniqueName("reader-txn-group");
  ASSERT_TRUE(CreateTopic(bootstrap, topic, 1).ok());
  auto reader = NewReader(bootstrap);
  ASSERT_NE(reader, nullptr);
  const OffsetQuery uncommitted{.group = group, .topics = {topic}};
  const OffsetQuery committed{
      .group = group, .topics = {topic}, .isolation = IsolationLevel::kReadCommitted};

  ASSERT_TRUE(
      testing::ProduceTransactional(bootstrap, topic, 0, 3, testing::TransactionEnd::kCommit)
          .ok());  // records 0-2, marker 3
  // The commit marker must be in the log before the next transaction's records, so that they
  // are 4-5 (otherwise they could come first and the marker after them).
  absl::StatusOr<GroupOffsets> hw = ReadUntilEnd(*reader, uncommitted, 4);
  ASSERT_TRUE(hw.ok()) << hw.status();
  ASSERT_EQ(hw->partitions.at(0).end, 4) << "the commit marker did not arrive";
  absl::StatusOr<std::unique_ptr<OpenTransaction>> open = OpenTransaction::Begin(bootstrap);
  ASSERT_TRUE(open.ok()) << open.status();
  absl::StatusOr<std::vector<int64_t>> written = (*open)->Produce(topic, 0, 2);
  ASSERT_TRUE(written.ok()) << written.status();
  ASSERT_THAT(*written, ElementsAre(4, 5));  // records 4-5, open

  // The open transaction's records are acknowledged, so both ends are exact at once.
  hw = reader->ReadOffsets(uncommitted, absl::Now() + kDeadline);
  absl::StatusOr<GroupOffsets> lso = reader->ReadOffsets(committed, absl::Now() + kDeadline);
  ASSERT_TRUE(hw.ok()) << hw.status();
  ASSERT_TRUE(lso.ok()) << lso.status();
  EXPECT_EQ(hw->partitions.at(0).end, 6);
  EXPECT_EQ(lso->partitions.at(0).end, 4);
  EXPECT_EQ(reader->Stats().clients, 3);  // committed offsets, and one per isolation level

  ASSERT_TRUE((*open)->Abort().ok());  // abort marker at 6, written asynchronously
  hw = ReadUntilEnd(*reader, uncommitted, 7);
  lso = ReadUntilEnd(*reader, committed, 7);
  ASSERT_TRUE(hw.ok()) << hw.status();
  ASSERT_TRUE(lso.ok()) << lso.status();
  EXPECT_EQ(hw->partitions.at(0).end, 7);
  EXPECT_EQ(lso->partitions.at(0).end, 7);
}

TEST(RdkafkaOffsetReaderE2eTest, ConcurrentReadersShareListOffsetsCalls) {
  KLAG_REQUIRE_BROKER(bootstrap);
  constexpr int kTopics = 4;
  constexpr int kReaders = 64;
  std::vector<std::string> topics;
  for (int i = 0; i < kTopics; ++i) {
    topics.push_back(UniqueName("reader-batch"));
    ASSERT_TRUE(CreateTopic(bootstrap, topics.back(), 3).ok());
    ASSERT_TRUE(Produce(bootstrap, topics.back(), 0, i + 1).ok());
  }
  auto reader = NewReader(bootstrap);
  ASSERT_NE(reader, nullptr);
  // Warm the metadata cache so the measured round is only offsets.
  for (const std::string& topic : topics) {
    ASSERT_TRUE(
        reader->ReadOffsets({.group = "warm", .topics = {topic}}, absl::Now() + kDeadline).ok());
  }
  const RdkafkaOffsetReaderStats before = reader->Stats();
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  const absl::Time start = absl::Now();
  for (int i = 0; i < kReaders; ++i) {
    threads.emplace_back([&, i] {
      const std::string& topic = topics[i % kTopics];
      absl::StatusOr<GroupOffsets> offsets = reader->ReadOffsets(
          {.group = absl::StrCat("batch-group-", i), .topics = {topic}}, absl::Now() + kDeadline);
      if (!offsets.ok() || offsets->partitions.at(0).end != i % kTopics + 1) ++failures;
    });
  }
  for (std::thread& t : threads) t.join();
  const absl::Duration took = absl::Now() - start;
  const RdkafkaOffsetReaderStats after = reader->Stats();
  EXPECT_EQ(failures.load(), 0);
  const int64_t calls = after.list_offsets_calls - before.list_offsets_calls;
  const int64_t lookups = after.list_offsets_lookups - before.list_offsets_lookups;
  std::printf(
      "%d concurrent ReadOffsets: %lld ListOffsets lookups -> %lld offsets_for_times "
      "calls, %lld OffsetFetch, %lld broker requests (stats), %.1f ms\n",
      kReaders, static_cast<long long>(lookups), static_cast<long long>(calls),
      static_cast<long long>(after.offset_fetch_requests - before.offset_fetch_requests),
      static_cast<long long>(after.broker_requests - before.broker_requests),
      absl::ToDoubleMilliseconds(took));
  EXPECT_EQ(lookups, 2 * kReaders);
  // Without coalescing this would be 2 * kReaders.
  EXPECT_LE(calls, kReaders / 2);
}

// The freshness bound: end offsets may come from the snapshot while younger than the max age
// (and say so in end_offsets_read_at); after it, a read sees the new end. Committed offsets are
// always read after the call arrived.
TEST(RdkafkaOffsetReaderE2eTest, EndOffsetsAreAtMostMaxAgeOld) {
  KLAG_REQUIRE_BROKER(bootstrap);
  const std::string topic = UniqueName("reader-fresh");
  const std::string group = UniqueName("reader-fresh-group");
  ASSERT_TRUE(CreateTopic(bootstrap, topic, 1).ok());
  ASSERT_TRUE(Produce(bootstrap, topic, 0, 3).ok());
  constexpr absl::Duration kMaxAge = absl::Seconds(2);
  auto reader = NewReader(bootstrap, {.end_offsets_max_age = kMaxAge});
  ASSERT_NE(reader, nullptr);
  const OffsetQuery query{.group = group, .topics = {topic}};

  const absl::Time arrived1 = absl::Now();
  absl::StatusOr<GroupOffsets> first = reader->ReadOffsets(query, arrived1 + kDeadline);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->partitions.at(0).end, 3);
  EXPECT_GE(first->end_offsets_read_at, arrived1 - kMaxAge);
  EXPECT_LE(first->end_offsets_read_at, absl::Now());
  EXPECT_GE(first->committed_read_at, arrived1);

  ASSERT_TRUE(Produce(bootstrap, topic, 0, 2).ok());
  const absl::Time arrived2 = absl::Now();
  absl::StatusOr<GroupOffsets> second = reader->ReadOffsets(query, arrived2 + kDeadline);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_GE(second->end_offsets_read_at, arrived2 - kMaxAge);
  EXPECT_GE(second->committed_read_at, arrived2);
  if (second->partitions.at(0).end == 3) {
    // The old end, from the snapshot: read by the first call's ListOffsets.
    EXPECT_EQ(second->end_offsets_read_at, first->end_offsets_read_at);
  } else {
    EXPECT_EQ(second->partitions.at(0).end, 5);  // the machine was slow: refreshed
  }

  // Past the max age of the first read: the new end.
  absl::SleepFor(first->end_offsets_read_at + kMaxAge + absl::Milliseconds(10) - absl::Now());
  const absl::Time arrived3 = absl::Now();
  absl::StatusOr<GroupOffsets> third = reader->ReadOffsets(query, arrived3 + kDeadline);
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_EQ(third->partitions.at(0).end, 5);
  EXPECT_GT(third->end_offsets_read_at, first->end_offsets_read_at);
  EXPECT_GE(third->end_offsets_read_at, arrived3 - kMaxAge);
  EXPECT_GE(third->committed_read_at, arrived3);
}

// Many threads polling many triggers on one topic: ListOffsets calls are bounded by snapshot
// refreshes (about one per max age), not by callers.
TEST(RdkafkaOffsetReaderE2eTest, ManyCallersOnOneTopicCostRefreshesNotCalls) {
  KLAG_REQUIRE_BROKER(bootstrap);
  const std::string topic = UniqueName("reader-many");
  ASSERT_TRUE(CreateTopic(bootstrap, topic, 6).ok());
  ASSERT_TRUE(Produce(bootstrap, topic, 0, 4).ok());
  constexpr absl::Duration kMaxAge = absl::Milliseconds(500);
  auto reader = NewReader(bootstrap, {.end_offsets_max_age = kMaxAge});
  ASSERT_NE(reader, nullptr);
  constexpr int kThreads = 8;
  constexpr int kTriggersPerThread = 25;
  constexpr int kRounds = 6;
  const RdkafkaOffsetReaderStats before = reader->Stats();
  std::atomic<int> failures{0};
  std::atomic<int> stale{0};
  std::vector<std::thread> threads;
  const absl::Time start = absl::Now();
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < kRounds; ++round) {
        for (int trigger = 0; trigger < kTriggersPerThread; ++trigger) {
          const absl::Time arrived = absl::Now();
          absl::StatusOr<GroupOffsets> offsets = reader->ReadOffsets(
              {.group = absl::StrCat("many-", t, "-", trigger), .topics = {topic}},
              arrived + kDeadline);
          if (!offsets.ok() || offsets->partitions.at(0).end != 4) ++failures;
          if (offsets.ok() && offsets->end_offsets_read_at < arrived - kMaxAge) ++stale;
        }
        absl::SleepFor(absl::Milliseconds(100));
      }
    });
  }
  for (std::thread& t : threads) t.join();
  const absl::Duration took = absl::Now() - start;
  const RdkafkaOffsetReaderStats after = reader->Stats();
  const int64_t reads = after.read_offsets_calls - before.read_offsets_calls;
  const int64_t calls = after.list_offsets_calls - before.list_offsets_calls;
  const int64_t refreshes = after.snapshot_refreshes - before.snapshot_refreshes;
  std::printf(
      "%lld ReadOffsets (%d threads x %d triggers x %d rounds) in %.0f ms, max age %s: %lld "
      "snapshot answers, %lld refreshes, %lld offsets_for_times calls, %lld OffsetFetch\n",
      static_cast<long long>(reads), kThreads, kTriggersPerThread, kRounds,
      absl::ToDoubleMilliseconds(took), absl::FormatDuration(kMaxAge).c_str(),
      static_cast<long long>(after.snapshot_answers - before.snapshot_answers),
      static_cast<long long>(refreshes), static_cast<long long>(calls),
      static_cast<long long>(after.offset_fetch_requests - before.offset_fetch_requests));
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(stale.load(), 0);
  EXPECT_EQ(reads, kThreads * kTriggersPerThread * kRounds);
  EXPECT_EQ(calls, 2 * refreshes);  // end + log start per refresh
  // One refresh per max age at most (plus the first), however many callers.
  EXPECT_LE(refreshes, took / kMaxAge + 2);
}

// Runs scripts/kafka.sh with its own state dir; returns stdout (trimmed) or nullopt on failure.
std::optional<std::string> KafkaSh(const std::string& state, const std::string& args) {
  const std::string command =
      absl::StrCat("KLAG_KAFKA_STATE='", state, "' '", KLAG_SOURCE_DIR, "/scripts/kafka.sh' ", args,
                   " 2>>'", state, "/kafka-sh.err'");
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return std::nullopt;
  std::string out;
  char buffer[256];
  while (fgets(buffer, sizeof(buffer), pipe) != nullptr) out += buffer;
  const int rc = pclose(pipe);
  if (rc != 0) return std::nullopt;
  return std::string(absl::StripAsciiWhitespace(out));
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return std::string(absl::StripAsciiWhitespace(text));
}

class OwnBroker {
 public:
  OwnBroker() {
    char dir[] = "/tmp/klag-reader-broker-XXXXXX";
    state_ = mkdtemp(dir);
  }
  ~OwnBroker() {
    (void)KafkaSh(state_, "stop");
    std::error_code ignored;
    std::filesystem::remove_all(state_, ignored);
  }
  const std::string& state() const { return state_; }

 private:
  std::string state_;
};

TEST(RdkafkaOffsetReaderE2eTest, BrokerStoppedIsUnavailableAndRestartedAnswersAgain) {
  KLAG_REQUIRE_BROKER(shared_bootstrap);  // e2e runs are enabled; this test runs its own broker
  OwnBroker broker;
  std::optional<std::string> bootstrap = KafkaSh(broker.state(), "start");
  ASSERT_TRUE(bootstrap.has_value()) << ReadFile(broker.state() + "/kafka-sh.err");
  // kafka.sh starts the version in KLAG_KAFKA_VERSION (the leg of scripts/test.sh's matrix).
  if (const char* wanted = std::getenv("KLAG_KAFKA_VERSION"); wanted != nullptr && *wanted) {
    ASSERT_EQ(ReadFile(broker.state() + "/version"), wanted);
  }
  const std::string topic = UniqueName("reader-restart");
  const std::string group = UniqueName("reader-restart-group");
  ASSERT_TRUE(CreateTopic(*bootstrap, topic, 2).ok());
  ASSERT_TRUE(Produce(*bootstrap, topic, 1, 3).ok());
  ASSERT_TRUE(CommitOffsets(*bootstrap, group, {{topic, 1, 2}}).ok());

  auto reader = NewReader(*bootstrap);
  ASSERT_NE(reader, nullptr);
  const OffsetQuery query{.group = group, .topics = {topic}};
  absl::StatusOr<GroupOffsets> offsets = reader->ReadOffsets(query, absl::Now() + kDeadline);
  ASSERT_TRUE(offsets.ok()) << offsets.status();
  const std::vector<PartitionOffsets> expected = {P(topic, 0, std::nullopt, 0, 0),
                                                  P(topic, 1, 2, 0, 3)};
  EXPECT_EQ(WithoutEstimates(offsets->partitions), expected);

  const std::string port = ReadFile(broker.state() + "/port");
  const std::string controller_port = ReadFile(broker.state() + "/controller_port");
  ASSERT_TRUE(KafkaSh(broker.state(), "stop").has_value());

  constexpr absl::Duration kShortDeadline = absl::Seconds(3);
  for (int i = 0; i < 3; ++i) {  // right after the stop, and on later evaluations
    const absl::Time start = absl::Now();
    offsets = reader->ReadOffsets(query, start + kShortDeadline);
    const absl::Duration took = absl::Now() - start;
    std::printf("broker stopped, read %d: %s after %.0f ms\n", i,
                offsets.status().ToString().c_str(), absl::ToDoubleMilliseconds(took));
    EXPECT_EQ(offsets.status().code(), absl::StatusCode::kUnavailable) << offsets.status();
    EXPECT_THAT(offsets.status().message(), HasSubstr(*bootstrap));
    EXPECT_THAT(offsets.status().message(), HasSubstr(group));
    EXPECT_LT(took, kShortDeadline + absl::Milliseconds(250));
  }

  std::optional<std::string> again = KafkaSh(
      broker.state(), absl::StrCat("start --port ", port, " --controller-port ", controller_port));
  ASSERT_TRUE(again.has_value()) << ReadFile(broker.state() + "/kafka-sh.err");
  ASSERT_EQ(*again, *bootstrap);
  // The same reader answers again once librdkafka has reconnected (backoff capped at 1 s).
  const absl::Time restarted = absl::Now();
  absl::Status last;
  bool answered = false;
  while (absl::Now() - restarted < absl::Seconds(30)) {
    offsets = reader->ReadOffsets(query, absl::Now() + kShortDeadline);
    if (offsets.ok()) {
      answered = true;
      break;
    }
    last = offsets.status();
    absl::SleepFor(absl::Milliseconds(200));
  }
  ASSERT_TRUE(answered) << last;
  std::printf("broker restarted: first answer after %.0f ms\n",
              absl::ToDoubleMilliseconds(absl::Now() - restarted));
  EXPECT_EQ(WithoutEstimates(offsets->partitions), expected);
}

}  // namespace
}  // namespace klag::kafka
