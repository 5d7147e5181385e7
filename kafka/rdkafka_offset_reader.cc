#include "kafka/rdkafka_offset_reader.h"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "kafka/end_offsets_cache.h"
#include "kafka/rdkafka_client.h"
#include "kafka/rdkafka_committed_reads.h"
#include "kafka/rdkafka_handle.h"
#include "kafka/rdkafka_list_offsets.h"
#include "kafka/rdkafka_offsets_topic.h"
#include "kafka/rdkafka_status.h"
#include "kafka/rdkafka_topic_metadata.h"
#include "spdlog/spdlog.h"

namespace klag::kafka {
namespace {

using rdkafka::Client;

// How many times ReadOffsets asks again for partitions that failed with a retriable error
// (leader moved, metadata stale), refreshing metadata in between, while the deadline allows.
constexpr int kListOffsetsAttempts = 3;
constexpr absl::Duration kRetryBackoff = absl::Milliseconds(50);
using rdkafka::CommittedReads;
using Committed = rdkafka::CommittedOffsets;

struct Counters {
  std::atomic<int64_t> read_offsets_calls{0};
  std::atomic<int64_t> metadata_requests{0};
  rdkafka::ListOffsetsCounters list_offsets;
  std::atomic<int64_t> list_offsets_lookups{0};
  std::atomic<int64_t> unreachable_probe_failures{0};
  std::atomic<int64_t> offsets_topic_answers{0};
  std::atomic<int64_t> offsets_topic_fallbacks{0};
  std::atomic<int> clients{0};
};

const char* IsolationName(IsolationLevel isolation) {
  return isolation == IsolationLevel::kReadCommitted ? "read_committed" : "read_uncommitted";
}

// Errors after which the partition's leader or the topic's existence should be looked up again
// before asking once more.
bool NeedsMetadataRefresh(rd_kafka_resp_err_t err) {
  switch (err) {
    case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
    case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR_FENCED_LEADER_EPOCH:
    case RD_KAFKA_RESP_ERR_UNKNOWN_LEADER_EPOCH:
    case RD_KAFKA_RESP_ERR_REPLICA_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_OFFSET_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_BROKER_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR__NODE_UPDATE:
      return true;
    default:
      return false;
  }
}

// Everything for one isolation level: its client (topic metadata and ListOffsets) and its
// end/log-start snapshot (declared after the client, so it stops first).
struct Lane {
  std::unique_ptr<Client> client;
  std::unique_ptr<EndOffsetsCache> offsets;
};

}  // namespace

class RdkafkaOffsetReader::Impl {
 public:
  Impl(RdkafkaProperties properties, RdkafkaOffsetReaderOptions options, std::string name)
      : properties_(std::move(properties)),
        options_(std::move(options)),
        name_(std::move(name)),
        metadata_(name_, options_.metadata_max_age, options_.unreachable_probe,
                  counters_.metadata_requests) {}

  ~Impl() {
    follower_.reset();
    for (auto& lane : lanes_) {
      if (lane == nullptr) continue;
      lane->offsets.reset();
      lane->client.reset();
    }
    committed_reads_.reset();
  }

  absl::StatusOr<GroupOffsets> ReadOffsets(const OffsetQuery& query, absl::Time deadline);
  std::optional<GroupOffsets> TryReadOffsets(const OffsetQuery& query);
  RdkafkaOffsetReaderStats Stats() const;

 private:
  absl::StatusOr<Lane*> LaneFor(IsolationLevel isolation);
  // The committed-offsets reads and their client (ListConsumerGroupOffsets for every isolation
  // level), created on first use.
  absl::StatusOr<CommittedReads*> GetCommittedReads();
  // klag's properties, `isolation.level` when given (ListOffsets reads by it), then the
  // operator's extra properties (they win): what every client of this reader starts from.
  RdkafkaProperties ClientProperties(std::optional<absl::string_view> isolation) const;
  // A client with ClientProperties(isolation); counted in Stats().clients.
  absl::StatusOr<std::unique_ptr<Client>> NewClient(std::optional<absl::string_view> isolation);
  // Client::EnsureReachable with this reader's probe, counted.
  absl::Status EnsureReachable(Client& client, absl::Time deadline, absl::string_view context);
  // The follower's answer, or nullopt when committed offsets come from OffsetFetch: always with
  // kOffsetFetch; with kOffsetsTopic when the read falls back (counted; the follower is started
  // on first use).
  std::optional<Committed> FollowedCommitted(const std::string& group,
                                             const std::vector<TopicPartition>* partitions,
                                             absl::Time deadline, absl::Time& read_at);
  // The answer for `all` (in (topic, partition) order) from the offsets read, with the times
  // the oldest unconsumed records were produced where the end offset history tells.
  GroupOffsets Assemble(Lane& lane, const std::vector<TopicPartition>& all,
                        const Committed& committed,
                        const absl::flat_hash_map<TopicPartition, int64_t>& end,
                        const absl::flat_hash_map<TopicPartition, int64_t>& log_start,
                        absl::Time end_read_at, absl::Time committed_read_at) const;
  absl::Status LookupOffsets(Lane& lane, const std::vector<TopicPartition>& partitions,
                             absl::Time deadline, absl::string_view context,
                             absl::flat_hash_map<TopicPartition, int64_t>& end,
                             absl::flat_hash_map<TopicPartition, int64_t>& log_start,
                             absl::Time& read_at);

  const RdkafkaProperties properties_;
  const RdkafkaOffsetReaderOptions options_;
  const std::string name_;
  Counters counters_;
  rdkafka::TopicMetadataCache metadata_;

  mutable absl::Mutex lanes_mu_;
  std::unique_ptr<Lane> lanes_[2] ABSL_GUARDED_BY(lanes_mu_);
  std::unique_ptr<CommittedReads> committed_reads_ ABSL_GUARDED_BY(lanes_mu_);

  mutable absl::Mutex follower_mu_;
  bool follower_started_ ABSL_GUARDED_BY(follower_mu_) = false;
  std::unique_ptr<rdkafka::OffsetsTopicFollower> follower_ ABSL_GUARDED_BY(follower_mu_);
};

std::optional<Committed> RdkafkaOffsetReader::Impl::FollowedCommitted(
    const std::string& group, const std::vector<TopicPartition>* partitions, absl::Time deadline,
    absl::Time& read_at) {
  if (options_.committed_offsets_source != CommittedOffsetsSource::kOffsetsTopic) {
    return std::nullopt;
  }
  rdkafka::OffsetsTopicFollower* follower = nullptr;
  {
    absl::MutexLock lock(&follower_mu_);
    if (!follower_started_) {
      follower_started_ = true;
      RdkafkaProperties properties = ClientProperties(std::nullopt);
      // Its end offsets come from the read_committed lane's snapshot: shared with the topics
      // of read_committed triggers, bounded by end_offsets_max_age, and on other connections
      // than its long-polling Fetch (rdkafka_offsets_topic.h).
      auto ends = [this](const std::vector<TopicPartition>& partitions, absl::Time deadline) {
        absl::StatusOr<Lane*> lane = LaneFor(IsolationLevel::kReadCommitted);
        if (!lane.ok()) {
          EndOffsetsCache::Answer failed;
          failed.error = RD_KAFKA_RESP_ERR__INVALID_ARG;
          return failed;
        }
        EndOffsetsCache::Answer answer = (*lane)->offsets->Lookup(partitions, deadline);
        std::vector<TopicPartition> failed;
        for (const auto& [tp, offsets] : answer.partitions) {
          if (offsets.error != 0) failed.push_back(tp);
        }
        if (!failed.empty()) (*lane)->offsets->Invalidate(failed);
        return answer;
      };
      absl::StatusOr<std::unique_ptr<rdkafka::OffsetsTopicFollower>> started =
          rdkafka::OffsetsTopicFollower::Start(
              properties,
              {.name = name_,
               .max_entries = options_.offsets_topic_max_entries,
               .budget = options_.offsets_topic_budget.get(),
               .statistics_interval = options_.statistics_interval},
              std::move(ends));
      if (started.ok()) {
        follower_ = *std::move(started);
      } else {
        spdlog::warn("cluster {}: committed offsets come from OffsetFetch: {}", name_,
                     std::string(started.status().message()));
      }
    }
    follower = follower_.get();
  }
  if (follower != nullptr) {
    // Half the time left, so a follower that cannot catch up leaves time for an OffsetFetch.
    const absl::Time now = absl::Now();
    absl::StatusOr<Committed> committed =
        follower->Committed(group, partitions, now + (deadline - now) / 2, read_at);
    if (committed.ok()) {
      counters_.offsets_topic_answers.fetch_add(1);
      // As with OffsetFetch, "no commit" is not an offset.
      absl::erase_if(*committed, [](const auto& entry) { return entry.second < 0; });
      return *std::move(committed);
    }
    spdlog::debug("cluster {}: group {}: reading committed offsets with OffsetFetch: {}", name_,
                  group, std::string(committed.status().message()));
  }
  counters_.offsets_topic_fallbacks.fetch_add(1);
  return std::nullopt;
}

absl::StatusOr<Lane*> RdkafkaOffsetReader::Impl::LaneFor(IsolationLevel isolation) {
  const int index = isolation == IsolationLevel::kReadCommitted ? 1 : 0;
  absl::MutexLock lock(&lanes_mu_);
  if (lanes_[index] != nullptr) return lanes_[index].get();
  absl::StatusOr<std::unique_ptr<Client>> client = NewClient(IsolationName(isolation));
  if (!client.ok()) return client.status();
  auto lane = std::make_unique<Lane>();
  lane->client = *std::move(client);
  Client* raw_client = lane->client.get();
  lane->offsets = std::make_unique<EndOffsetsCache>(
      [this, raw_client](const std::vector<TopicPartition>& partitions, absl::Time deadline) {
        return rdkafka::ListEndAndLogStart(*raw_client, partitions, deadline,
                                           counters_.list_offsets);
      },
      EndOffsetsCache::Options{
          .max_age = options_.end_offsets_max_age,
          .window = options_.list_offsets_window,
          .idle_ttl = std::max(absl::Minutes(10), 10 * options_.metadata_max_age),
          .history_points = std::max(0, options_.lag_history_points)});
  spdlog::info("cluster {}: created librdkafka client {} (topic metadata and end offsets, {})",
               name_, rd_kafka_name(lane->client->rk()), IsolationName(isolation));
  lanes_[index] = std::move(lane);
  return lanes_[index].get();
}

absl::StatusOr<CommittedReads*> RdkafkaOffsetReader::Impl::GetCommittedReads() {
  absl::MutexLock lock(&lanes_mu_);
  if (committed_reads_ != nullptr) return committed_reads_.get();
  absl::StatusOr<std::unique_ptr<Client>> client = NewClient(std::nullopt);
  if (!client.ok()) return client.status();
  spdlog::info("cluster {}: created librdkafka client {} (committed offsets)", name_,
               rd_kafka_name((*client)->rk()));
  committed_reads_ = std::make_unique<CommittedReads>(
      *std::move(client), CommittedReads::Options{.name = name_,
                                                  .max_age = options_.committed_offsets_max_age,
                                                  .unreachable_probe = options_.unreachable_probe});
  return committed_reads_.get();
}

RdkafkaProperties RdkafkaOffsetReader::Impl::ClientProperties(
    std::optional<absl::string_view> isolation) const {
  RdkafkaProperties properties = properties_;
  if (isolation.has_value()) properties.push_back({"isolation.level", std::string(*isolation)});
  for (const auto& extra : options_.extra_properties) properties.push_back(extra);
  return properties;
}

absl::StatusOr<std::unique_ptr<Client>> RdkafkaOffsetReader::Impl::NewClient(
    std::optional<absl::string_view> isolation) {
  absl::StatusOr<std::unique_ptr<Client>> client = Client::Create(
      ClientProperties(isolation), options_.statistics_interval > absl::ZeroDuration());
  if (!client.ok()) {
    return absl::Status(client.status().code(),
                        absl::StrCat("cluster ", name_, ": ", client.status().message()));
  }
  counters_.clients.fetch_add(1);
  return client;
}

// A cluster known to be down answers kUnavailable within one probe, not at the deadline.
absl::Status RdkafkaOffsetReader::Impl::EnsureReachable(Client& client, absl::Time deadline,
                                                        absl::string_view context) {
  absl::Status s = client.EnsureReachable(deadline, options_.unreachable_probe, context,
                                          counters_.metadata_requests);
  if (absl::IsUnavailable(s)) counters_.unreachable_probe_failures.fetch_add(1);
  return s;
}

absl::Status RdkafkaOffsetReader::Impl::LookupOffsets(
    Lane& lane, const std::vector<TopicPartition>& partitions, absl::Time deadline,
    absl::string_view context, absl::flat_hash_map<TopicPartition, int64_t>& end,
    absl::flat_hash_map<TopicPartition, int64_t>& log_start, absl::Time& read_at) {
  std::set<std::string> topics;
  for (const TopicPartition& tp : partitions) topics.insert(tp.topic);
  // Failures that cover the whole call name every topic of this caller.
  const std::string what =
      absl::StrCat(context, ": topic ", absl::StrJoin(topics, ", "), ": ListOffsets");
  read_at = absl::InfiniteFuture();
  std::vector<TopicPartition> remaining = partitions;
  for (int attempt = 1;; ++attempt) {
    counters_.list_offsets_lookups.fetch_add(2);  // end and log start
    EndOffsetsCache::Answer answer = lane.offsets->Lookup(remaining, deadline);
    if (answer.timed_out) return lane.client->TimeoutStatus(what);
    const auto call_err = static_cast<rd_kafka_resp_err_t>(answer.error);
    if (call_err != RD_KAFKA_RESP_ERR_NO_ERROR && !NeedsMetadataRefresh(call_err)) {
      return lane.client->ErrorStatus(call_err, what);
    }

    std::vector<TopicPartition> failed;
    std::set<std::string> stale_topics;
    rd_kafka_resp_err_t first_err = RD_KAFKA_RESP_ERR_NO_ERROR;
    const TopicPartition* first_failed = nullptr;
    for (const TopicPartition& tp : remaining) {
      const EndOffsetsCache::Offsets& o = answer.partitions.at(tp);
      const auto err = static_cast<rd_kafka_resp_err_t>(o.error);
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        end[tp] = o.end;
        log_start[tp] = o.log_start;
        continue;
      }
      if (!NeedsMetadataRefresh(err)) {
        return lane.client->ErrorStatus(
            err, absl::StrCat(context, ": topic ", tp.topic, " partition ", tp.partition,
                              ": ListOffsets"));
      }
      if (first_failed == nullptr) {
        first_failed = &tp;
        first_err = err;
      }
      failed.push_back(tp);
      stale_topics.insert(tp.topic);
    }
    if (failed.size() < remaining.size()) read_at = std::min(read_at, answer.read_at);
    if (failed.empty()) return absl::OkStatus();
    lane.offsets->Invalidate(failed);
    for (const std::string& topic : stale_topics) metadata_.Invalidate(topic);
    if (attempt >= kListOffsetsAttempts || deadline - absl::Now() < 2 * kRetryBackoff) {
      return lane.client->ErrorStatus(
          first_err, absl::StrCat(context, ": topic ", first_failed->topic, " partition ",
                                  first_failed->partition, ": ListOffsets"));
    }
    // A fresh Metadata request also refreshes librdkafka's own leader cache, which
    // rd_kafka_offsets_for_times routes by.
    for (const std::string& topic : stale_topics) {
      absl::StatusOr<int> count =
          metadata_.PartitionCount(*lane.client, topic, deadline, /*force=*/true);
      if (!count.ok()) return count.status();
    }
    absl::SleepFor(std::min(kRetryBackoff * attempt, (deadline - absl::Now()) / 4));
    remaining = std::move(failed);
  }
}

absl::StatusOr<GroupOffsets> RdkafkaOffsetReader::Impl::ReadOffsets(const OffsetQuery& query,
                                                                    absl::Time deadline) {
  const absl::Time arrived = absl::Now();
  counters_.read_offsets_calls.fetch_add(1);
  if (query.group.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cluster ", name_, ": consumer group must not be empty"));
  }
  std::set<std::string> topics;
  for (const std::string& topic : query.topics) {
    if (topic.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("cluster ", name_, ": group ", query.group,
                                                     ": topic names must not be empty"));
    }
    topics.insert(topic);
  }
  const std::string context = absl::StrCat("cluster ", name_, ": group ", query.group);
  absl::StatusOr<Lane*> lane_or = LaneFor(query.isolation);
  if (!lane_or.ok()) return lane_or.status();
  Lane& lane = **lane_or;
  // A cluster known to be down answers kUnavailable within one probe, not at the deadline.
  if (absl::Status s = EnsureReachable(*lane.client, deadline, context); !s.ok()) return s;

  std::map<std::string, int> counts;
  std::vector<TopicPartition> all;
  // The committed-offsets read started before the ListOffsets lookups and finished after them
  // (it points to `all`).
  std::unique_ptr<CommittedReads::Read> committed_read;
  Committed committed;
  absl::Time committed_read_at = absl::InfinitePast();
  if (!topics.empty()) {
    for (const std::string& topic : topics) {
      absl::StatusOr<int> count =
          metadata_.PartitionCount(*lane.client, topic, deadline, /*force=*/false);
      if (!count.ok()) return count.status();
      counts[topic] = *count;
    }
    for (const auto& [topic, count] : counts) {
      for (int p = 0; p < count; ++p) all.push_back(TopicPartition{topic, p});
    }
    std::optional<Committed> followed =
        FollowedCommitted(query.group, &all, deadline, committed_read_at);
    if (followed.has_value()) {
      committed = *std::move(followed);
    } else {
      // In flight while the ListOffsets lookups below are.
      absl::StatusOr<CommittedReads*> reads = GetCommittedReads();
      if (!reads.ok()) return reads.status();
      absl::StatusOr<std::unique_ptr<CommittedReads::Read>> read =
          (*reads)->Begin(query.group, &all, arrived, deadline,
                          absl::StrCat(context, ": topic ", absl::StrJoin(topics, ", ")));
      if (!read.ok()) return read.status();
      committed_read = *std::move(read);
    }
  } else {
    std::optional<Committed> followed =
        FollowedCommitted(query.group, nullptr, deadline, committed_read_at);
    if (followed.has_value()) {
      committed = *std::move(followed);
    } else {
      absl::StatusOr<CommittedReads*> reads = GetCommittedReads();
      if (!reads.ok()) return reads.status();
      absl::StatusOr<std::unique_ptr<CommittedReads::Read>> read =
          (*reads)->Begin(query.group, nullptr, arrived, deadline, context);
      if (!read.ok()) return read.status();
      absl::StatusOr<Committed> fetched = (*read)->Finish(deadline, committed_read_at);
      if (!fetched.ok()) return fetched.status();
      committed = *std::move(fetched);
    }
    std::map<std::string, int32_t> max_partition;
    for (const auto& [tp, offset] : committed) {
      max_partition[tp.topic] = std::max(max_partition[tp.topic], tp.partition);
    }
    if (max_partition.empty()) {
      return absl::NotFoundError(absl::StrCat(
          "cluster ", name_, ": consumer group ", query.group,
          " has no committed offsets; set `topic` to measure lag before the group commits"));
    }
    std::vector<std::string> gone;
    for (const auto& [topic, max] : max_partition) {
      absl::StatusOr<int> count =
          metadata_.PartitionCount(*lane.client, topic, deadline, /*force=*/false);
      // Commits made before partitions were added: our cached count is stale.
      if (count.ok() && *count <= max) {
        count = metadata_.PartitionCount(*lane.client, topic, deadline, /*force=*/true);
      }
      if (absl::IsNotFound(count.status())) {
        gone.push_back(topic);  // commits outlive deleted topics; they measure nothing
        continue;
      }
      if (!count.ok()) return count.status();
      counts[topic] = *count;
    }
    if (counts.empty()) {
      return absl::NotFoundError(
          absl::StrCat("cluster ", name_, ": consumer group ", query.group,
                       " has committed offsets only for topics that no longer exist (",
                       absl::StrJoin(gone, ", "), "); set `topic`"));
    }
    for (const auto& [topic, count] : counts) {
      for (int p = 0; p < count; ++p) all.push_back(TopicPartition{topic, p});
    }
  }

  absl::flat_hash_map<TopicPartition, int64_t> end;
  absl::flat_hash_map<TopicPartition, int64_t> log_start;
  absl::Time end_read_at;
  if (absl::Status s = LookupOffsets(lane, all, deadline, context, end, log_start, end_read_at);
      !s.ok()) {
    return s;
  }
  if (committed_read != nullptr) {
    absl::StatusOr<Committed> fetched = committed_read->Finish(deadline, committed_read_at);
    if (!fetched.ok()) return fetched.status();
    committed = *std::move(fetched);
  }

  return Assemble(lane, all, committed, end, log_start, end_read_at, committed_read_at);
}

std::optional<GroupOffsets> RdkafkaOffsetReader::Impl::TryReadOffsets(const OffsetQuery& query) {
  // Only committed offsets held in memory can be answered at once; the topics must be named
  // (with none, they come from the group's commits, which ReadOffsets resolves).
  if (options_.committed_offsets_source != CommittedOffsetsSource::kOffsetsTopic ||
      query.group.empty() || query.topics.empty()) {
    return std::nullopt;
  }
  Lane* lane = nullptr;
  Lane* committed_lane = nullptr;  // the follower's end offsets come from its snapshot
  {
    // No lane is created here.
    absl::MutexLock lock(&lanes_mu_);
    lane = lanes_[query.isolation == IsolationLevel::kReadCommitted ? 1 : 0].get();
    committed_lane = lanes_[1].get();
  }
  if (lane == nullptr || committed_lane == nullptr || !lane->client->Reachable()) {
    return std::nullopt;
  }
  rdkafka::OffsetsTopicFollower* follower = nullptr;
  {
    absl::MutexLock lock(&follower_mu_);
    follower = follower_.get();
  }
  if (follower == nullptr) return std::nullopt;
  std::set<std::string> topics;
  for (const std::string& topic : query.topics) {
    if (topic.empty()) return std::nullopt;
    topics.insert(topic);
  }
  std::vector<TopicPartition> all;
  for (const std::string& topic : topics) {
    const std::optional<int> count = metadata_.CachedPartitionCount(topic);
    if (!count.has_value()) return std::nullopt;
    for (int p = 0; p < *count; ++p) all.push_back(TopicPartition{topic, p});
  }
  // From the snapshots only (Peek starts no fetch), and only when the follower has already read
  // up to __consumer_offsets' end offsets listed within the bound: no request, no waiting.
  absl::Time committed_read_at = absl::InfinitePast();
  std::optional<Committed> committed = follower->TryCommitted(
      query.group, &all,
      [committed_lane](const std::vector<TopicPartition>& partitions) {
        return committed_lane->offsets->Peek(partitions);
      },
      committed_read_at);
  if (!committed.has_value()) return std::nullopt;
  absl::erase_if(*committed, [](const auto& entry) { return entry.second < 0; });
  std::optional<EndOffsetsCache::Answer> answer = lane->offsets->Peek(all);
  if (!answer.has_value()) return std::nullopt;
  absl::flat_hash_map<TopicPartition, int64_t> end;
  absl::flat_hash_map<TopicPartition, int64_t> log_start;
  for (const auto& [tp, offsets] : answer->partitions) {
    if (offsets.error != 0) return std::nullopt;
    end[tp] = offsets.end;
    log_start[tp] = offsets.log_start;
  }
  counters_.read_offsets_calls.fetch_add(1);
  counters_.list_offsets_lookups.fetch_add(2);  // end and log start
  counters_.offsets_topic_answers.fetch_add(1);
  return Assemble(*lane, all, *committed, end, log_start, answer->read_at, committed_read_at);
}

GroupOffsets RdkafkaOffsetReader::Impl::Assemble(
    Lane& lane, const std::vector<TopicPartition>& all, const Committed& committed,
    const absl::flat_hash_map<TopicPartition, int64_t>& end,
    const absl::flat_hash_map<TopicPartition, int64_t>& log_start, absl::Time end_read_at,
    absl::Time committed_read_at) const {
  GroupOffsets result;
  result.end_offsets_read_at = end_read_at;
  result.committed_read_at = committed_read_at;
  result.partitions.reserve(all.size());
  for (const TopicPartition& tp : all) {  // `counts` is ordered: (topic, partition) order
    PartitionOffsets p;
    p.topic = tp.topic;
    p.partition = tp.partition;
    if (auto it = committed.find(tp); it != committed.end()) p.committed = it->second;
    p.log_start = log_start.at(tp);
    p.end = end.at(tp);
    result.partitions.push_back(std::move(p));
  }
  // The oldest unconsumed record: the committed offset, or the log start when there is no
  // commit or retention deleted past it. Estimated only when the answer shows one unconsumed.
  std::vector<EndOffsetsCache::TimeQuery> queries;
  std::vector<size_t> queried;
  for (size_t i = 0; i < result.partitions.size(); ++i) {
    const PartitionOffsets& p = result.partitions[i];
    const int64_t oldest = std::max(p.committed.value_or(p.log_start), p.log_start);
    if (oldest >= p.end) continue;
    queries.push_back({TopicPartition{p.topic, p.partition}, oldest});
    queried.push_back(i);
  }
  if (!queries.empty() && options_.lag_history_points > 0) {
    std::vector<std::optional<absl::Time>> times = lane.offsets->TimesOf(queries);
    for (size_t j = 0; j < queried.size(); ++j) {
      result.partitions[queried[j]].unconsumed_since = times[j];
    }
  }
  return result;
}

RdkafkaOffsetReaderStats RdkafkaOffsetReader::Impl::Stats() const {
  RdkafkaOffsetReaderStats stats;
  stats.read_offsets_calls = counters_.read_offsets_calls.load();
  stats.metadata_requests = counters_.metadata_requests.load();
  stats.list_offsets_calls = counters_.list_offsets.calls.load();
  stats.list_offsets_partitions = counters_.list_offsets.partitions.load();
  stats.list_offsets_lookups = counters_.list_offsets_lookups.load();
  stats.unreachable_probe_failures = counters_.unreachable_probe_failures.load();
  stats.offsets_topic_answers = counters_.offsets_topic_answers.load();
  stats.offsets_topic_fallbacks = counters_.offsets_topic_fallbacks.load();
  stats.clients = counters_.clients.load();
  {
    absl::MutexLock lock(&follower_mu_);
    if (follower_ != nullptr) {
      const rdkafka::OffsetsTopicFollower::Stats follower = follower_->GetStats();
      stats.offsets_topic_entries = follower.entries;
      stats.broker_requests += follower.broker_requests;
    }
  }
  absl::MutexLock lock(&lanes_mu_);
  auto add_client = [&stats](const Client& client) {
    stats.broker_requests += client.broker_requests();
    stats.unreachable_probes += client.probes();
    stats.unreachable_fast_failures += client.probe_fast_failures();
  };
  if (committed_reads_ != nullptr) {
    add_client(committed_reads_->client());
    const CommittedReads::Stats reads = committed_reads_->GetStats();
    stats.offset_fetch_requests = reads.requests;
    stats.offset_fetch_shared = reads.shared;
    stats.metadata_requests += reads.probe_requests;
    stats.unreachable_probe_failures += reads.probe_failures;
  }
  for (const auto& lane : lanes_) {
    if (lane == nullptr) continue;
    add_client(*lane->client);
    const EndOffsetsCache::Stats cache = lane->offsets->GetStats();
    stats.snapshot_answers += cache.snapshot_answers;
    stats.snapshot_refreshes += cache.fetches;
    stats.snapshot_partitions += cache.entries;
    stats.lag_history_points += cache.history_points;
    stats.lag_history_bytes += cache.history_bytes;
  }
  return stats;
}

absl::StatusOr<std::unique_ptr<RdkafkaOffsetReader>> RdkafkaOffsetReader::Create(
    const ConnectionConfig& config, const RdkafkaOffsetReaderOptions& options) {
  absl::StatusOr<RdkafkaProperties> connection = ToRdkafkaProperties(config);
  if (!connection.ok()) return connection.status();
  RdkafkaProperties properties = *std::move(connection);
  const std::string name =
      options.cluster_name.empty() ? config.bootstrap_servers : options.cluster_name;
  // klag's defaults; options.extra_properties come after them (per client) and win.
  properties.push_back({"client.id", options.client_id});
  // This client never consumes or joins a group; it must not create topics by asking about them.
  properties.push_back({"allow.auto.create.topics", "false"});
  properties.push_back({"enable.auto.commit", "false"});
  // After an outage, reconnect within a second of the broker coming back instead of backing off
  // up to librdkafka's default 10 s (which would fail evaluations after a broker restart).
  properties.push_back({"reconnect.backoff.max.ms", "1000"});
  if (options.statistics_interval > absl::ZeroDuration()) {
    properties.push_back({"statistics.interval.ms",
                          absl::StrCat(absl::ToInt64Milliseconds(options.statistics_interval))});
  }
  // Validate every property now (isolation.level is set per client later).
  RdkafkaProperties check = properties;
  for (const auto& extra : options.extra_properties) check.push_back(extra);
  if (absl::StatusOr<rdkafka::ConfPtr> conf = rdkafka::NewConf(check); !conf.ok()) {
    return absl::Status(conf.status().code(),
                        absl::StrCat("cluster ", name, ": ", conf.status().message()));
  }
  return std::unique_ptr<RdkafkaOffsetReader>(
      new RdkafkaOffsetReader(std::make_unique<Impl>(std::move(properties), options, name)));
}

RdkafkaOffsetReader::RdkafkaOffsetReader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

RdkafkaOffsetReader::~RdkafkaOffsetReader() = default;

absl::StatusOr<GroupOffsets> RdkafkaOffsetReader::ReadOffsets(const OffsetQuery& query,
                                                              absl::Time deadline) {
  return impl_->ReadOffsets(query, deadline);
}

std::optional<GroupOffsets> RdkafkaOffsetReader::TryReadOffsets(const OffsetQuery& query) {
  return impl_->TryReadOffsets(query);
}

RdkafkaOffsetReaderStats RdkafkaOffsetReader::Stats() const { return impl_->Stats(); }

}  // namespace klag::kafka
