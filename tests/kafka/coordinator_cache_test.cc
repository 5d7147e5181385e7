// librdkafka's group coordinator cache on the real broker (label e2e): one long-lived client
// without group.id (like klag-scaler's, kafka/rdkafka_offset_reader.cc) reads the committed
// offsets of many groups with admin ListConsumerGroupOffsets, round after round, and librdkafka's
// own statistics count the requests it sent.
//
// librdkafka 2.8.0 caches at most 11 coordinators (rdkafka_coord.c), so beyond 11 groups nearly
// every read first sends a FindCoordinator; klag's scripts/librdkafka/coord-cache-indexed.patch
// keeps up to 100,000 in a hashed LRU cache, so only the first round looks coordinators up.
// Fails on the unpatched library: there, 300 groups x 3 rounds send about 290 FindCoordinator
// requests in each round after the first (878 in all; 300 with the patch).
#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "kafka/rdkafka_handle.h"
#include "nlohmann/json.hpp"
#include "tests/kafka/commit_many.h"
#include "tests/testing/kafka_admin.h"
#include "tests/testing/test_env.h"

namespace klag::kafka {
namespace {

using ::klag::testing::CommitMany;
using ::klag::testing::CreateTopic;
using ::klag::testing::GroupCommit;
using ::klag::testing::UniqueName;

constexpr absl::Duration kTimeout = absl::Seconds(60);

// Requests of the two kinds a committed-offset read sends, summed over the client's brokers.
struct RequestCounts {
  int64_t find_coordinator = 0;
  int64_t offset_fetch = 0;
};

// The request counts of librdkafka's latest statistics emission, and how many emissions came.
class StatsSink {
 public:
  static int OnStats(rd_kafka_t* /*rk*/, char* json, size_t json_len, void* opaque) {
    static_cast<StatsSink*>(opaque)->Record(
        nlohmann::json::parse(json, json + json_len, nullptr, /*allow_exceptions=*/false));
    return 0;  // librdkafka frees `json`
  }

  int64_t emissions() const {
    absl::MutexLock lock(&mu_);
    return emissions_;
  }

  // The counts of the first emission after `after` emissions; false on timeout.
  bool WaitPast(int64_t after, absl::Duration timeout, RequestCounts& counts) const {
    absl::MutexLock lock(&mu_);
    auto past = [this, after]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return emissions_ > after; };
    if (!mu_.AwaitWithTimeout(absl::Condition(&past), timeout)) return false;
    counts = counts_;
    return true;
  }

 private:
  void Record(const nlohmann::json& stats) {
    RequestCounts counts;
    const auto brokers = stats.is_object() ? stats.find("brokers") : stats.end();
    if (brokers == stats.end() || !brokers->is_object()) return;
    for (const auto& [name, broker] : brokers->items()) {
      // "internal" is librdkafka's own queue; a "logical" (group coordinator) broker rides on a
      // real one's connection (and a client without group.id has none).
      if (!broker.is_object() || broker.value("source", "") == "internal" ||
          broker.value("source", "") == "logical") {
        continue;
      }
      const auto req = broker.find("req");
      if (req == broker.end() || !req->is_object()) continue;
      counts.find_coordinator += req->value("FindCoordinator", int64_t{0});
      counts.offset_fetch += req->value("OffsetFetch", int64_t{0});
    }
    absl::MutexLock lock(&mu_);
    counts_ = counts;
    ++emissions_;
  }

  mutable absl::Mutex mu_;
  RequestCounts counts_ ABSL_GUARDED_BY(mu_);
  int64_t emissions_ ABSL_GUARDED_BY(mu_) = 0;
};

// Reads the committed offsets of every group in `groups` (one ListConsumerGroupOffsets call per
// group, all in flight at once) and waits for every result; each must be error-free.
absl::Status ReadRound(rd_kafka_t* rk, const std::vector<std::string>& groups) {
  const absl::Time deadline = absl::Now() + kTimeout;
  rdkafka::QueuePtr queue(rd_kafka_queue_new(rk));
  rdkafka::AdminOptionsPtr options(
      rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS));
  char errstr[256];
  if (rd_kafka_AdminOptions_set_request_timeout(
          options.get(), static_cast<int>(absl::ToInt64Milliseconds(kTimeout)), errstr,
          sizeof(errstr)) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return absl::InternalError(errstr);
  }
  for (const std::string& group : groups) {
    rd_kafka_ListConsumerGroupOffsets_t* list =
        rd_kafka_ListConsumerGroupOffsets_new(group.c_str(), /*partitions=*/nullptr);
    rd_kafka_ListConsumerGroupOffsets(rk, &list, 1, options.get(), queue.get());
    rd_kafka_ListConsumerGroupOffsets_destroy(list);
  }
  for (size_t done = 0; done < groups.size();) {
    rd_kafka_event_t* event = rd_kafka_queue_poll(queue.get(), rdkafka::RemainingMs(deadline));
    if (event == nullptr) {
      return absl::DeadlineExceededError(
          absl::StrCat(done, " of ", groups.size(), " ListConsumerGroupOffsets results"));
    }
    rdkafka::EventPtr owned(event);
    if (rd_kafka_event_type(event) != RD_KAFKA_EVENT_LISTCONSUMERGROUPOFFSETS_RESULT) continue;
    ++done;
    if (rd_kafka_event_error(event) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return absl::InternalError(rd_kafka_event_error_string(event));
    }
    size_t count = 0;
    const rd_kafka_group_result_t** results = rd_kafka_ListConsumerGroupOffsets_result_groups(
        rd_kafka_event_ListConsumerGroupOffsets_result(event), &count);
    for (size_t i = 0; i < count; ++i) {
      if (const rd_kafka_error_t* error = rd_kafka_group_result_error(results[i])) {
        return absl::InternalError(absl::StrCat(rd_kafka_group_result_name(results[i]), ": ",
                                                rd_kafka_error_string(error)));
      }
    }
  }
  return absl::OkStatus();
}

// Commits an offset for `group_count` new groups, then reads them `rounds` times on one client.
// Returns the request counts after each round (cumulative; from the first statistics emission
// made after the round), or fewer on failure.
std::vector<RequestCounts> ReadGroupsRepeatedly(const std::string& bootstrap, int group_count,
                                                int rounds) {
  const std::string topic = UniqueName("coord-cache");
  EXPECT_TRUE(CreateTopic(bootstrap, topic, 1).ok());
  std::vector<std::string> groups;
  std::vector<GroupCommit> commits;
  for (int i = 0; i < group_count; ++i) {
    groups.push_back(UniqueName("coord-cache-group"));
    commits.push_back({groups.back(), {{topic, 0, i}}});
  }
  const absl::Status committed = CommitMany(bootstrap, commits);
  EXPECT_TRUE(committed.ok()) << committed;

  StatsSink sink;
  absl::StatusOr<rdkafka::HandlePtr> rk = rdkafka::NewHandle(
      RD_KAFKA_CONSUMER, {{"bootstrap.servers", bootstrap}, {"statistics.interval.ms", "100"}},
      [&sink](rd_kafka_conf_t* conf) {
        rd_kafka_conf_set_opaque(conf, &sink);
        rd_kafka_conf_set_stats_cb(conf, &StatsSink::OnStats);
      });
  EXPECT_TRUE(rk.ok()) << rk.status();
  if (!rk.ok() || !committed.ok()) return {};
  // Statistics are served by rd_kafka_poll on the handle's main queue.
  std::atomic<bool> stop{false};
  std::thread poller([&] {
    while (!stop.load()) rd_kafka_poll(rk->get(), 50);
  });
  std::vector<RequestCounts> after_round;
  for (int round = 0; round < rounds; ++round) {
    const absl::Status read = ReadRound(rk->get(), groups);
    EXPECT_TRUE(read.ok()) << "round " << round << ": " << read;
    if (!read.ok()) break;
    // Every request of the round has been answered, so sent. The next emission may have been
    // made before and delivered after this point; the one after it counts them all.
    RequestCounts counts;
    const bool emitted = sink.WaitPast(sink.emissions() + 1, kTimeout, counts);
    EXPECT_TRUE(emitted) << "no statistics after round " << round;
    if (!emitted) break;
    after_round.push_back(counts);
  }
  stop.store(true);
  poller.join();
  return after_round;
}

TEST(CoordinatorCacheTest, LooksUpEachGroupsCoordinatorOnlyInTheFirstRound) {
  KLAG_REQUIRE_BROKER(bootstrap);
  constexpr int kGroups = 300;
  constexpr int kRounds = 3;
  // Coordinator lookups allowed after the first round: one retried after a transient error.
  constexpr int64_t kSlack = 5;
  const std::vector<RequestCounts> counts = ReadGroupsRepeatedly(bootstrap, kGroups, kRounds);
  ASSERT_EQ(counts.size(), kRounds);
  // The first round must look up every group's coordinator (more when the client's broker
  // connections come up while lookups are in flight: librdkafka then sends them again).
  EXPECT_EQ(counts[0].offset_fetch, kGroups);
  EXPECT_GE(counts[0].find_coordinator, kGroups);
  // Later rounds find every coordinator in the cache. Unpatched 2.8.0 caches 11 and sends
  // about 290 lookups per round here.
  for (int round = 1; round < kRounds; ++round) {
    SCOPED_TRACE(absl::StrCat("round ", round));
    EXPECT_EQ(counts[round].offset_fetch - counts[round - 1].offset_fetch, kGroups);
    EXPECT_LE(counts[round].find_coordinator - counts[round - 1].find_coordinator, kSlack);
  }
}

}  // namespace
}  // namespace klag::kafka
