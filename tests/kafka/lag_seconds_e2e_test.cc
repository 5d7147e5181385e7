// Accuracy of PartitionOffsets::unconsumed_since (lag in seconds) against real record timestamps
// on the real broker (label e2e). Three producers write one partition each while the reader is
// polled every kPoll: a steady one, a bursty one and one that stops. Before every read the group
// commits a record produced at least kMinAge earlier (cycling over every such record, so each
// poll measures a different offset and age); the error of one estimate is
//   estimated age - true age
//     = (committed_read_at - unconsumed_since) - (committed_read_at - CreateTime(record))
//     = CreateTime(record) - unconsumed_since,
// where the record is the one at max(committed, log start), and CreateTime is the timestamp the
// producer gave it (its delivery report).
#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "kafka/rdkafka_handle.h"
#include "kafka/rdkafka_offset_reader.h"
#include "tests/testing/kafka_admin.h"
#include "tests/testing/test_env.h"

namespace klag::kafka {
namespace {

using ::klag::testing::CommitEntry;
using ::klag::testing::CreateTopic;
using ::klag::testing::UniqueName;

constexpr absl::Duration kPoll = absl::Milliseconds(250);
constexpr absl::Duration kMaxAge = absl::Milliseconds(200);
constexpr absl::Duration kProduceFor = absl::Seconds(8);
constexpr absl::Duration kWatchFor = absl::Seconds(10);  // the stopped producer's records age
constexpr absl::Duration kMinAge = absl::Milliseconds(500);
constexpr absl::Duration kDeadline = absl::Seconds(10);
// Scheduling slack between a read's start and its ListOffsets' send time, plus the round trip.
constexpr absl::Duration kSlack = absl::Milliseconds(150);

enum Pattern { kSteady = 0, kBursty = 1, kStopped = 2 };
constexpr const char* kNames[] = {"steady", "bursty", "stopped"};

struct Record {
  absl::Time created;    // CreateTime: set by the producer when the record was produced
  absl::Time delivered;  // when its delivery report arrived: after the broker appended it
};

// Delivered records per partition: offset -> Record.
class Deliveries {
 public:
  void Add(int32_t partition, int64_t offset, Record record) {
    absl::MutexLock lock(&mu_);
    created_[partition][offset] = record;
  }
  std::optional<Record> At(int32_t partition, int64_t offset) const {
    absl::MutexLock lock(&mu_);
    auto p = created_.find(partition);
    if (p == created_.end()) return std::nullopt;
    auto it = p->second.find(offset);
    if (it == p->second.end()) return std::nullopt;
    return it->second;
  }
  // Offsets of the partition's records created at or before `cutoff`, in order.
  std::vector<int64_t> CreatedBy(int32_t partition, absl::Time cutoff) const {
    absl::MutexLock lock(&mu_);
    std::vector<int64_t> offsets;
    auto p = created_.find(partition);
    if (p == created_.end()) return offsets;
    for (const auto& [offset, record] : p->second) {
      if (record.created <= cutoff) offsets.push_back(offset);
    }
    return offsets;
  }

 private:
  mutable absl::Mutex mu_;
  std::map<int32_t, std::map<int64_t, Record>> created_ ABSL_GUARDED_BY(mu_);
};

void OnDelivery(rd_kafka_t* /*rk*/, const rd_kafka_message_t* message, void* opaque) {
  if (message->err != RD_KAFKA_RESP_ERR_NO_ERROR) return;  // a missing record fails the test
  rd_kafka_timestamp_type_t type = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
  const int64_t ms = rd_kafka_message_timestamp(message, &type);
  if (type != RD_KAFKA_TIMESTAMP_CREATE_TIME) return;
  static_cast<Deliveries*>(opaque)->Add(message->partition, message->offset,
                                        {absl::FromUnixMillis(ms), absl::Now()});
}

struct Estimate {
  int64_t offset = 0;
  Record record;
  absl::Time estimate;
};

struct Errors {
  int missing = 0;  // an unconsumed record but no estimate
  std::vector<Estimate> estimates;
  double max_abs_ms = 0;
  double sum_abs_ms = 0;
  double sum_ms = 0;
  double max_age_ms = 0;
  double max_latency_ms = 0;  // delivery report - CreateTime

  void Add(const Estimate& e, absl::Time read_at) {
    estimates.push_back(e);
    const double ms = absl::ToDoubleMilliseconds(e.record.created - e.estimate);
    max_abs_ms = std::max(max_abs_ms, std::abs(ms));
    sum_abs_ms += std::abs(ms);
    sum_ms += ms;
    max_age_ms = std::max(max_age_ms, absl::ToDoubleMilliseconds(read_at - e.record.created));
    max_latency_ms =
        std::max(max_latency_ms, absl::ToDoubleMilliseconds(e.record.delivered - e.record.created));
  }
  double mean_abs_ms() const { return estimates.empty() ? 0 : sum_abs_ms / estimates.size(); }
  double mean_ms() const { return estimates.empty() ? 0 : sum_ms / estimates.size(); }
};

TEST(LagSecondsE2eTest, EstimatesTheAgeOfTheOldestUnconsumedRecordFromEndOffsets) {
  KLAG_REQUIRE_BROKER(bootstrap);
  const std::string topic = UniqueName("lag-seconds");
  const std::string group = UniqueName("lag-seconds-group");
  ASSERT_TRUE(CreateTopic(bootstrap, topic, 3).ok());

  ConnectionConfig config;
  config.bootstrap_servers = bootstrap;
  absl::StatusOr<std::unique_ptr<RdkafkaOffsetReader>> reader =
      RdkafkaOffsetReader::Create(config, {.end_offsets_max_age = kMaxAge});
  ASSERT_TRUE(reader.ok()) << reader.status();
  const OffsetQuery query{.group = group, .topics = {topic}};
  // The first sample (every end at 0) is taken before anything is produced.
  ASSERT_TRUE((*reader)->ReadOffsets(query, absl::Now() + kDeadline).ok());

  Deliveries deliveries;
  absl::StatusOr<rdkafka::HandlePtr> producer =
      rdkafka::NewHandle(RD_KAFKA_PRODUCER,
                         {{"bootstrap.servers", bootstrap},
                          {"client.id", "klag-test-lag-seconds"},
                          {"linger.ms", "0"},
                          {"acks", "all"}},
                         [&deliveries](rd_kafka_conf_t* conf) {
                           rd_kafka_conf_set_dr_msg_cb(conf, &OnDelivery);
                           rd_kafka_conf_set_opaque(conf, &deliveries);
                         });
  ASSERT_TRUE(producer.ok()) << producer.status();
  rd_kafka_t* rk = producer->get();

  // Every 50 ms: steady writes 1 record (20/s) for kProduceFor; bursty writes 15 at once at
  // 0.5 s, 3.5 s and 6.5 s (3 s apart); stopped writes 1 (20/s) for 2.5 s, then nothing.
  std::atomic<int> produce_errors{0};
  const absl::Time start = absl::Now();
  std::jthread producing([&] {  // joined on every way out
    auto produce = [&](int32_t partition) {
      const rd_kafka_resp_err_t err =
          rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(partition),
                            RD_KAFKA_V_VALUE(const_cast<char*>("x"), 1),
                            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
      if (err != RD_KAFKA_RESP_ERR_NO_ERROR) produce_errors.fetch_add(1);
    };
    const absl::Duration tick = absl::Milliseconds(50);
    for (int i = 0; start + i * tick < start + kProduceFor; ++i) {
      absl::SleepFor(start + i * tick - absl::Now());
      const absl::Duration at = i * tick;
      produce(kSteady);
      if (at == absl::Milliseconds(500) || at == absl::Milliseconds(3500) ||
          at == absl::Milliseconds(6500)) {
        for (int r = 0; r < 15; ++r) produce(kBursty);
      }
      if (at < absl::Milliseconds(2500)) produce(kStopped);
      rd_kafka_poll(rk, 0);  // delivery reports
    }
    if (rd_kafka_flush(rk, 10'000) != RD_KAFKA_RESP_ERR_NO_ERROR) produce_errors.fetch_add(1);
  });

  // Commits through one long-lived consumer that never joins the group (a simple consumer's
  // OffsetCommit), so a round does not wait for a new admin client.
  absl::StatusOr<rdkafka::HandlePtr> committer =
      rdkafka::NewHandle(RD_KAFKA_CONSUMER, {{"bootstrap.servers", bootstrap},
                                             {"client.id", "klag-test-lag-seconds"},
                                             {"group.id", group},
                                             {"enable.auto.commit", "false"}});
  ASSERT_TRUE(committer.ok()) << committer.status();
  auto commit = [&](const std::vector<CommitEntry>& entries) {
    rdkafka::PartitionListPtr list(
        rd_kafka_topic_partition_list_new(static_cast<int>(entries.size())));
    for (const CommitEntry& e : entries) {
      rd_kafka_topic_partition_list_add(list.get(), e.topic.c_str(), e.partition)->offset =
          e.offset;
    }
    return rd_kafka_commit(committer->get(), list.get(), /*async=*/0);
  };

  Errors errors[3];
  int reads = 0;
  absl::Duration slowest_round = absl::ZeroDuration();
  // Largest time between two consecutive reads: what interpolation can be off by for a burst.
  absl::Duration widest_gap = absl::ZeroDuration();
  absl::Time last_read = absl::InfinitePast();
  for (int iteration = 0; absl::Now() < start + kWatchFor; ++iteration) {
    const absl::Time round = absl::Now();
    // Commit, per partition, one of the records at least kMinAge old (a different one each round).
    std::vector<CommitEntry> commits;
    for (int32_t p = 0; p < 3; ++p) {
      const std::vector<int64_t> old = deliveries.CreatedBy(p, round - kMinAge);
      if (old.empty()) continue;
      commits.push_back({topic, p, old[(iteration * 7 + p * 3) % old.size()]});
    }
    if (!commits.empty()) {
      const rd_kafka_resp_err_t err = commit(commits);
      ASSERT_EQ(err, RD_KAFKA_RESP_ERR_NO_ERROR) << rd_kafka_err2str(err);
    }

    const absl::Time read = absl::Now();
    if (last_read != absl::InfinitePast()) widest_gap = std::max(widest_gap, read - last_read);
    last_read = read;
    absl::StatusOr<GroupOffsets> offsets = (*reader)->ReadOffsets(query, read + kDeadline);
    ASSERT_TRUE(offsets.ok()) << offsets.status();
    ++reads;
    for (const PartitionOffsets& p : offsets->partitions) {
      const int64_t oldest = std::max(p.committed.value_or(p.log_start), p.log_start);
      if (oldest >= p.end) {
        EXPECT_EQ(p.unconsumed_since, std::nullopt) << kNames[p.partition];
        continue;
      }
      // The reader may have seen a record whose delivery report has not been served yet.
      const std::optional<Record> record = deliveries.At(p.partition, oldest);
      if (!record.has_value()) continue;
      if (!p.unconsumed_since.has_value()) {
        ++errors[p.partition].missing;
        continue;
      }
      errors[p.partition].Add({oldest, *record, *p.unconsumed_since}, offsets->committed_read_at);
    }
    slowest_round = std::max(slowest_round, absl::Now() - round);
    absl::SleepFor(round + kPoll - absl::Now());
  }
  producing.join();
  EXPECT_EQ(produce_errors.load(), 0);

  // Fully consumed: nothing to estimate.
  absl::StatusOr<std::map<int32_t, int64_t>> ends = testing::EndOffsets(bootstrap, topic);
  ASSERT_TRUE(ends.ok()) << ends.status();
  std::vector<CommitEntry> at_end;
  for (const auto& [p, end] : *ends) at_end.push_back({topic, p, end});
  ASSERT_EQ(commit(at_end), RD_KAFKA_RESP_ERR_NO_ERROR);
  absl::StatusOr<GroupOffsets> consumed = (*reader)->ReadOffsets(query, absl::Now() + kDeadline);
  ASSERT_TRUE(consumed.ok()) << consumed.status();
  for (const PartitionOffsets& p : consumed->partitions) {
    ASSERT_EQ(p.committed, p.end) << kNames[p.partition];  // snapshot within kMaxAge: same ends
    EXPECT_EQ(p.unconsumed_since, std::nullopt) << kNames[p.partition];
  }

  const RdkafkaOffsetReaderStats stats = (*reader)->Stats();
  std::printf(
      "lag seconds: %d reads every %s (slowest round %s, widest gap between reads %s), end "
      "offsets max age %s\n",
      reads, absl::FormatDuration(kPoll).c_str(), absl::FormatDuration(slowest_round).c_str(),
      absl::FormatDuration(widest_gap).c_str(), absl::FormatDuration(kMaxAge).c_str());
  for (int p = 0; p < 3; ++p) {
    const Errors& e = errors[p];
    std::printf(
        "lag seconds: %-7s %3zu estimates (%d missing), ages up to %.0f ms: |error| max %.0f ms, "
        "mean %.0f ms; mean signed error %+.0f ms (positive: age overestimated); produce to "
        "delivery report up to %.0f ms\n",
        kNames[p], e.estimates.size(), e.missing, e.max_age_ms, e.max_abs_ms, e.mean_abs_ms(),
        e.mean_ms(), e.max_latency_ms);
    // Every record produced after the first sample lies within the history.
    EXPECT_EQ(e.missing, 0) << kNames[p];
    EXPECT_GE(e.estimates.size(), 10u) << kNames[p];
    // The estimate interpolates between the samples just before and just after the record was
    // appended (after it was created, before its delivery report), so it is off from that
    // window by at most the time between two samples: at most the widest gap between reads
    // (plus the ListOffsets round trip and scheduling slack). A lost flat stretch, a wrong
    // segment or an extrapolation would be off by seconds.
    for (const Estimate& x : e.estimates) {
      EXPECT_GE(x.estimate, x.record.created - widest_gap - kSlack)
          << kNames[p] << " offset " << x.offset << " created "
          << absl::FormatDuration(x.record.created - start) << " estimated "
          << absl::FormatDuration(x.estimate - start);
      EXPECT_LE(x.estimate, x.record.delivered + widest_gap + kSlack)
          << kNames[p] << " offset " << x.offset << " delivered "
          << absl::FormatDuration(x.record.delivered - start) << " estimated "
          << absl::FormatDuration(x.estimate - start);
    }
  }
  std::printf("lag seconds: history %lld points, %lld bytes for 3 partitions\n",
              static_cast<long long>(stats.lag_history_points),
              static_cast<long long>(stats.lag_history_bytes));
  EXPECT_LE(stats.lag_history_points, 3 * 32);
}

}  // namespace
}  // namespace klag::kafka
