// rdkafka::CommittedReads against librdkafka's mock cluster: which calls share a read (the
// freshness rule), what a call gets when the read it joined fails or is abandoned, coordinator
// retries, a dead cluster, and many threads on a few groups. A call's arrival time is a parameter
// of Begin, so most sharing cases need no timing. Label unit: needs no external broker.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "kafka/rdkafka_committed_reads.h"
#include "tests/kafka/mock_cluster.h"
#include "tests/testing/kafka_admin.h"
#include "tests/testing/test_env.h"

namespace klag::kafka::rdkafka {
namespace {

using ::klag::testing::kOffsetFetch;
using ::klag::testing::MockCluster;
using ::klag::testing::UniqueName;
using ::testing::HasSubstr;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

// How late past its deadline a call may return (thread wake-ups on a shared 2-core machine).
constexpr absl::Duration kSlack = absl::Milliseconds(300);

std::unique_ptr<CommittedReads> NewReads(const std::string& bootstrap,
                                         CommittedReads::Options options = {}) {
  absl::StatusOr<std::unique_ptr<Client>> client =
      Client::Create({{"bootstrap.servers", bootstrap},
                      {"reconnect.backoff.max.ms", "1000"},
                      {"statistics.interval.ms", "1000"}},
                     /*statistics=*/true);
  EXPECT_TRUE(client.ok()) << client.status();
  if (!client.ok()) return nullptr;
  options.name = "mock";
  return std::make_unique<CommittedReads>(*std::move(client), std::move(options));
}

std::vector<TopicPartition> Partitions(const std::string& topic, int count) {
  std::vector<TopicPartition> partitions;
  for (int p = 0; p < count; ++p) partitions.push_back(TopicPartition{topic, p});
  return partitions;
}

// Begin, asserting success.
std::unique_ptr<CommittedReads::Read> MustBegin(CommittedReads& reads, const std::string& group,
                                                const std::vector<TopicPartition>* partitions,
                                                absl::Time arrived,
                                                absl::Duration timeout = absl::Seconds(5)) {
  absl::StatusOr<std::unique_ptr<CommittedReads::Read>> read =
      reads.Begin(group, partitions, arrived, absl::Now() + timeout, "mock: " + group);
  EXPECT_TRUE(read.ok()) << read.status();
  return read.ok() ? *std::move(read) : nullptr;
}

struct Answer {
  absl::StatusOr<CommittedOffsets> offsets;
  absl::Time read_at;
};
Answer MustFinish(CommittedReads::Read& read, absl::Duration timeout = absl::Seconds(5)) {
  Answer answer;
  answer.offsets = read.Finish(absl::Now() + timeout, answer.read_at);
  return answer;
}

class CommittedReadsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    topic_ = cluster_.Topic(3, {5, 5, 5});
    other_topic_ = cluster_.Topic(2, {5, 5});
    group_ = UniqueName("mock-group");
    ASSERT_TRUE(testing::CommitOffsets(cluster_.bootstrap(), group_,
                                       {{topic_, 0, 2}, {topic_, 2, 4}, {other_topic_, 1, 3}})
                    .ok());
    partitions_ = Partitions(topic_, 3);
  }

  MockCluster cluster_{1};
  std::string topic_;
  std::string other_topic_;
  std::string group_;
  std::vector<TopicPartition> partitions_;
};

TEST_F(CommittedReadsTest, ReadsTheGivenPartitions) {
  auto reads = NewReads(cluster_.bootstrap());
  ASSERT_NE(reads, nullptr);
  const absl::Time before = absl::Now();
  auto read = MustBegin(*reads, group_, &partitions_, before);
  ASSERT_NE(read, nullptr);
  Answer answer = MustFinish(*read);
  ASSERT_TRUE(answer.offsets.ok()) << answer.offsets.status();
  // Partition 1 has no commit: absent.
  EXPECT_THAT(*answer.offsets, UnorderedElementsAre(Pair(TopicPartition{topic_, 0}, 2),
                                                    Pair(TopicPartition{topic_, 2}, 4)));
  EXPECT_GE(answer.read_at, before);
  EXPECT_LE(answer.read_at, absl::Now());

  EXPECT_EQ(reads->GetStats().requests, 1);
  // (A null partition list, every commit of the group, is read against a real broker in
  // rdkafka_offset_reader_e2e_test: librdkafka's mock answers an OffsetFetch without topics with
  // none.)
}

// Max age zero: a call joins a read in flight that was sent at or after it arrived, never one
// sent before, and never an answered one.
TEST_F(CommittedReadsTest, OnlyAReadSentAfterTheCallArrivedIsShared) {
  auto reads = NewReads(cluster_.bootstrap());
  ASSERT_NE(reads, nullptr);
  const absl::Time early = absl::Now();
  auto sender = MustBegin(*reads, group_, &partitions_, early);
  ASSERT_NE(sender, nullptr);
  // Arrived before the sender's read went out: joins it.
  auto joiner = MustBegin(*reads, group_, &partitions_, early);
  ASSERT_NE(joiner, nullptr);
  EXPECT_EQ(reads->GetStats().shared, 1);
  // Arrives after it went out: sends its own, which later arrivals join instead.
  auto late = MustBegin(*reads, group_, &partitions_, absl::Now() + absl::Milliseconds(1));
  ASSERT_NE(late, nullptr);
  EXPECT_EQ(reads->GetStats().requests, 2);

  Answer first = MustFinish(*sender);
  Answer joined = MustFinish(*joiner);
  Answer own = MustFinish(*late);
  ASSERT_TRUE(first.offsets.ok() && joined.offsets.ok() && own.offsets.ok());
  EXPECT_EQ(joined.read_at, first.read_at);
  EXPECT_EQ(*joined.offsets, *first.offsets);
  EXPECT_GT(own.read_at, first.read_at);

  // Answered reads are not kept without a max age: even a call that arrived before the last read
  // was sent now sends its own.
  EXPECT_EQ(reads->entries(), 0u);
  auto after = MustBegin(*reads, group_, &partitions_, early);
  ASSERT_NE(after, nullptr);
  ASSERT_TRUE(MustFinish(*after).offsets.ok());
  EXPECT_EQ(reads->GetStats().requests, 3);
  EXPECT_EQ(reads->GetStats().shared, 1);
}

TEST_F(CommittedReadsTest, OtherGroupsOrPartitionsDoNotShare) {
  auto reads = NewReads(cluster_.bootstrap(), {.max_age = absl::Minutes(1)});
  ASSERT_NE(reads, nullptr);
  const std::vector<TopicPartition> fewer = Partitions(topic_, 2);
  const std::vector<TopicPartition> other = Partitions(other_topic_, 2);
  const absl::Time arrived = absl::Now();
  std::vector<std::unique_ptr<CommittedReads::Read>> calls;
  calls.push_back(MustBegin(*reads, group_, &partitions_, arrived));
  calls.push_back(MustBegin(*reads, group_, &fewer, arrived));
  calls.push_back(MustBegin(*reads, group_, &other, arrived));
  calls.push_back(MustBegin(*reads, group_, nullptr, arrived));
  calls.push_back(MustBegin(*reads, UniqueName("mock-other-group"), &partitions_, arrived));
  for (auto& call : calls) {
    ASSERT_NE(call, nullptr);
    EXPECT_TRUE(MustFinish(*call).offsets.ok());
  }
  EXPECT_EQ(reads->GetStats().requests, 5);
  EXPECT_EQ(reads->GetStats().shared, 0);
  // The same five again within the max age: all answered from those reads.
  const std::vector<const std::vector<TopicPartition>*> asked = {&partitions_, &fewer, &other};
  for (const std::vector<TopicPartition>* partitions : asked) {
    auto again = MustBegin(*reads, group_, partitions, absl::Now());
    ASSERT_NE(again, nullptr);
    EXPECT_TRUE(MustFinish(*again).offsets.ok());
  }
  EXPECT_EQ(reads->GetStats().requests, 5);
  EXPECT_EQ(reads->GetStats().shared, 3);
}

// Group ids are any strings from trigger metadata: one that spells out another read's group and
// partitions (separators, '*', control characters) still gets a read, and offsets, of its own.
TEST_F(CommittedReadsTest, CraftedGroupNamesNeverShareAnotherGroupsRead) {
  auto reads = NewReads(cluster_.bootstrap(), {.max_age = absl::Minutes(1)});
  ASSERT_NE(reads, nullptr);
  const std::vector<TopicPartition> one = Partitions(topic_, 1);
  const std::vector<std::string> crafted = {
      group_ + "*", group_ + "\x1f", group_ + "\x1f\x1e" + topic_ + ":0,",
      absl::StrCat(group_, "/", topic_.size(), ":", topic_, ",0"), group_ + ":"};
  for (size_t i = 0; i < crafted.size(); ++i) {
    ASSERT_TRUE(testing::CommitOffsets(cluster_.bootstrap(), crafted[i],
                                       {{topic_, 0, static_cast<int64_t>(100 + i)}})
                    .ok());
  }
  // The real group first, with and without a partition list (their answers stay for a minute);
  // then each crafted one with the list (the mock answers none without it).
  const std::vector<TopicPartition>* const lists[] = {&one, nullptr};
  for (const std::vector<TopicPartition>* partitions : lists) {
    auto read = MustBegin(*reads, group_, partitions, absl::Now());
    ASSERT_NE(read, nullptr);
    ASSERT_TRUE(MustFinish(*read).offsets.ok());
  }
  for (size_t i = 0; i < crafted.size(); ++i) {
    auto read = MustBegin(*reads, crafted[i], &one, absl::Now());
    ASSERT_NE(read, nullptr);
    const Answer answer = MustFinish(*read);
    ASSERT_TRUE(answer.offsets.ok()) << answer.offsets.status();
    EXPECT_THAT(*answer.offsets,
                UnorderedElementsAre(Pair(TopicPartition{topic_, 0}, 100 + static_cast<int>(i))))
        << "group #" << i;
  }
  EXPECT_EQ(reads->GetStats().requests, 2 + static_cast<int64_t>(crafted.size()));
  EXPECT_EQ(reads->GetStats().shared, 0);
}

// Max age above zero: an answered, successful read sent at most that long before a call arrived
// answers it; an older one or a failed one does not.
TEST_F(CommittedReadsTest, MaxAgeSharesYoungSuccessfulAnswers) {
  constexpr absl::Duration kMaxAge = absl::Seconds(10);
  auto reads = NewReads(cluster_.bootstrap(), {.max_age = kMaxAge});
  ASSERT_NE(reads, nullptr);
  auto first = MustBegin(*reads, group_, &partitions_, absl::Now());
  ASSERT_NE(first, nullptr);
  const Answer answered = MustFinish(*first);
  ASSERT_TRUE(answered.offsets.ok());

  auto young = MustBegin(*reads, group_, &partitions_, answered.read_at + kMaxAge);
  ASSERT_NE(young, nullptr);
  const Answer shared = MustFinish(*young);
  ASSERT_TRUE(shared.offsets.ok());
  EXPECT_EQ(shared.read_at, answered.read_at);
  EXPECT_EQ(reads->GetStats().requests, 1);
  EXPECT_EQ(reads->GetStats().shared, 1);

  // Arriving later than the max age after that read: a read of its own.
  auto old =
      MustBegin(*reads, group_, &partitions_, answered.read_at + kMaxAge + absl::Milliseconds(1));
  ASSERT_NE(old, nullptr);
  ASSERT_TRUE(MustFinish(*old).offsets.ok());
  EXPECT_EQ(reads->GetStats().requests, 2);

  // A failed answer serves nobody: the next call asks again (and succeeds).
  const std::string group = UniqueName("mock-group");
  rd_kafka_mock_push_request_errors(cluster_.get(), kOffsetFetch, 1,
                                    RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED);
  auto failing = MustBegin(*reads, group, &partitions_, absl::Now());
  ASSERT_NE(failing, nullptr);
  const Answer failed = MustFinish(*failing);
  EXPECT_EQ(failed.offsets.status().code(), absl::StatusCode::kPermissionDenied)
      << failed.offsets.status();
  auto retry = MustBegin(*reads, group, &partitions_, failed.read_at - absl::Seconds(1));
  ASSERT_NE(retry, nullptr);
  const Answer retried = MustFinish(*retry);
  ASSERT_TRUE(retried.offsets.ok()) << retried.offsets.status();
  EXPECT_TRUE(retried.offsets->empty());  // that group never committed
  EXPECT_EQ(reads->GetStats().requests, 4);
}

// A read whose sender never finishes it (its evaluation gave up) is published as abandoned when
// dropped; the calls that joined it read on their own, after their own arrival.
TEST_F(CommittedReadsTest, JoinersOfAnAbandonedReadReadOnTheirOwn) {
  auto reads = NewReads(cluster_.bootstrap());
  ASSERT_NE(reads, nullptr);
  const absl::Time arrived = absl::Now();
  auto sender = MustBegin(*reads, group_, &partitions_, arrived);
  auto joiner = MustBegin(*reads, group_, &partitions_, arrived);
  ASSERT_NE(sender, nullptr);
  ASSERT_NE(joiner, nullptr);
  const absl::Time dropped = absl::Now();
  sender.reset();
  const Answer answer = MustFinish(*joiner);
  ASSERT_TRUE(answer.offsets.ok()) << answer.offsets.status();
  EXPECT_THAT(*answer.offsets, UnorderedElementsAre(Pair(TopicPartition{topic_, 0}, 2),
                                                    Pair(TopicPartition{topic_, 2}, 4)));
  EXPECT_GE(answer.read_at, dropped);
  EXPECT_EQ(reads->GetStats().requests, 2);
}

// A joiner waits for the shared read at most until its own deadline, and a sender that timed out
// on an earlier deadline than a joiner's does not fail the joiner: it reads on its own.
TEST_F(CommittedReadsTest, JoinersKeepTheirOwnDeadline) {
  auto reads = NewReads(cluster_.bootstrap());
  ASSERT_NE(reads, nullptr);
  ASSERT_TRUE(MustFinish(*MustBegin(*reads, group_, &partitions_, absl::Now())).offsets.ok());
  // The next OffsetFetch answers after 1.5 s.
  ASSERT_EQ(rd_kafka_mock_broker_push_request_error_rtts(cluster_.get(), 1, kOffsetFetch, 1,
                                                         RD_KAFKA_RESP_ERR_NO_ERROR, 1500),
            RD_KAFKA_RESP_ERR_NO_ERROR);
  const absl::Time arrived = absl::Now();
  // The sender's evaluation has 300 ms.
  auto sender = MustBegin(*reads, group_, &partitions_, arrived, absl::Milliseconds(300));
  auto short_joiner = MustBegin(*reads, group_, &partitions_, arrived);
  auto long_joiner = MustBegin(*reads, group_, &partitions_, arrived);
  ASSERT_NE(sender, nullptr);
  ASSERT_NE(short_joiner, nullptr);
  ASSERT_NE(long_joiner, nullptr);

  absl::Time start = absl::Now();
  Answer answer = MustFinish(*short_joiner, absl::Milliseconds(200));
  EXPECT_EQ(answer.offsets.status().code(), absl::StatusCode::kDeadlineExceeded)
      << answer.offsets.status();
  EXPECT_THAT(answer.offsets.status().message(), HasSubstr("ListConsumerGroupOffsets"));
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(200) + kSlack);

  // The sender gives up at 300 ms; the joiner, with 5 s, reads again on its own.
  answer = MustFinish(*sender, absl::Milliseconds(300));
  EXPECT_EQ(answer.offsets.status().code(), absl::StatusCode::kDeadlineExceeded);
  start = absl::Now();
  answer = MustFinish(*long_joiner);
  ASSERT_TRUE(answer.offsets.ok()) << answer.offsets.status();
  EXPECT_GE(answer.read_at, start);
  EXPECT_EQ(reads->GetStats().requests, 3);
}

TEST_F(CommittedReadsTest, MovingCoordinatorIsAskedAgainThenUnavailable) {
  auto reads = NewReads(cluster_.bootstrap());
  ASSERT_NE(reads, nullptr);
  ASSERT_TRUE(MustFinish(*MustBegin(*reads, group_, &partitions_, absl::Now())).offsets.ok());
  // Two in a row: the third request answers, and read_at is its send time.
  rd_kafka_mock_push_request_errors(cluster_.get(), kOffsetFetch, 2,
                                    RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
                                    RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS);
  const absl::Time start = absl::Now();
  auto read = MustBegin(*reads, group_, &partitions_, start);
  ASSERT_NE(read, nullptr);
  Answer answer = MustFinish(*read);
  ASSERT_TRUE(answer.offsets.ok()) << answer.offsets.status();
  EXPECT_EQ(reads->GetStats().requests, 4);
  // Backoffs of 100 and 200 ms came before the answering request.
  EXPECT_GE(answer.read_at - start, absl::Milliseconds(300));

  // More than three: kUnavailable naming the error.
  rd_kafka_mock_push_request_errors(
      cluster_.get(), kOffsetFetch, 3, RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
      RD_KAFKA_RESP_ERR_NOT_COORDINATOR, RD_KAFKA_RESP_ERR_NOT_COORDINATOR);
  read = MustBegin(*reads, group_, &partitions_, absl::Now());
  ASSERT_NE(read, nullptr);
  answer = MustFinish(*read);
  EXPECT_EQ(answer.offsets.status().code(), absl::StatusCode::kUnavailable)
      << answer.offsets.status();
  EXPECT_THAT(answer.offsets.status().message(), HasSubstr("NOT_COORDINATOR"));
  EXPECT_EQ(reads->GetStats().requests, 7);
}

// Once the client has bad news (its broker down), Begin proves the cluster reachable first and
// fails kUnavailable within about one probe instead of sending a request that would wait for the
// whole deadline.
TEST(CommittedReadsDeadClusterTest, BeginFailsFastOnceTheClusterIsKnownDown) {
  MockCluster cluster(1);
  const std::string topic = cluster.Topic(1, {1});
  const std::vector<TopicPartition> partitions = Partitions(topic, 1);
  auto reads = NewReads(cluster.bootstrap(), {.unreachable_probe = absl::Milliseconds(300)});
  ASSERT_NE(reads, nullptr);
  ASSERT_TRUE(MustFinish(*MustBegin(*reads, "g", &partitions, absl::Now())).offsets.ok());
  ASSERT_EQ(rd_kafka_mock_broker_set_down(cluster.get(), -1), RD_KAFKA_RESP_ERR_NO_ERROR);
  // The first call may have to wait for the disconnect news; later ones fail within a probe.
  {
    absl::StatusOr<std::unique_ptr<CommittedReads::Read>> read =
        reads->Begin("g", &partitions, absl::Now(), absl::Now() + absl::Seconds(5), "mock: g");
    absl::Time read_at;
    if (read.ok()) {
      EXPECT_FALSE((*read)->Finish(absl::Now() + absl::Seconds(5), read_at).ok());
    }
  }
  const CommittedReads::Stats before = reads->GetStats();
  for (int i = 0; i < 3; ++i) {
    const absl::Time start = absl::Now();
    absl::StatusOr<std::unique_ptr<CommittedReads::Read>> read =
        reads->Begin("g", &partitions, start, start + absl::Seconds(5), "mock: g");
    EXPECT_EQ(read.status().code(), absl::StatusCode::kUnavailable) << read.status();
    EXPECT_LT(absl::Now() - start, absl::Milliseconds(300) + kSlack);
  }
  const CommittedReads::Stats after = reads->GetStats();
  EXPECT_EQ(after.probe_failures - before.probe_failures, 3);
  EXPECT_EQ(after.requests, before.requests);  // no OffsetFetch sent to a dead cluster
}

// Many threads reading a few groups at once: every answer is right and read after its call
// arrived, and every call either sent a read or shared one.
TEST_F(CommittedReadsTest, ConcurrentCallsShareOnlyFreshReads) {
  constexpr int kThreads = 16;
  constexpr int kCallsPerThread = 25;
  constexpr int kGroups = 4;
  std::vector<std::string> groups;
  for (int g = 0; g < kGroups; ++g) {
    groups.push_back(UniqueName("mock-group"));
    ASSERT_TRUE(
        testing::CommitOffsets(cluster_.bootstrap(), groups.back(), {{topic_, 1, g + 1}}).ok());
  }
  auto reads = NewReads(cluster_.bootstrap());
  ASSERT_NE(reads, nullptr);
  // A slow coordinator keeps reads in flight while other calls arrive.
  rd_kafka_mock_broker_set_rtt(cluster_.get(), 1, 20);
  absl::Notification go;
  absl::Time go_at;
  std::atomic<int> wrong{0};
  std::atomic<int> stale{0};
  std::atomic<int> failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      go.WaitForNotification();
      for (int i = 0; i < kCallsPerThread; ++i) {
        const int g = (t + i) % kGroups;
        // Every thread's first call arrives at the same time: those of one group share a read.
        const absl::Time arrived = i == 0 ? go_at : absl::Now();
        absl::StatusOr<std::unique_ptr<CommittedReads::Read>> read =
            reads->Begin(groups[g], &partitions_, arrived, arrived + absl::Seconds(10), "mock");
        if (!read.ok()) {
          ++failed;
          continue;
        }
        absl::Time read_at;
        absl::StatusOr<CommittedOffsets> offsets =
            (*read)->Finish(arrived + absl::Seconds(10), read_at);
        if (!offsets.ok()) {
          ++failed;
          continue;
        }
        if (read_at < arrived) ++stale;
        const CommittedOffsets expected = {{TopicPartition{topic_, 1}, g + 1}};
        if (*offsets != expected) ++wrong;
      }
    });
  }
  go_at = absl::Now();
  go.Notify();
  for (std::thread& t : threads) t.join();
  rd_kafka_mock_broker_set_rtt(cluster_.get(), 1, 0);
  const CommittedReads::Stats stats = reads->GetStats();
  std::printf("%d calls on %d groups from %d threads, 20 ms RTT: %lld OffsetFetch, %lld shared\n",
              kThreads * kCallsPerThread, kGroups, kThreads, static_cast<long long>(stats.requests),
              static_cast<long long>(stats.shared));
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(stale.load(), 0);
  EXPECT_EQ(stats.requests + stats.shared, kThreads * kCallsPerThread);
  EXPECT_GT(stats.shared, 0);
  EXPECT_EQ(reads->entries(), 0u);
}

}  // namespace
}  // namespace klag::kafka::rdkafka
