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
#include "kafka/rdkafka_handle.h"
#include "kafka/rdkafka_list_offsets.h"
#include "kafka/rdkafka_offsets_topic.h"
#include "kafka/rdkafka_status.h"
#include "kafka/rdkafka_topic_metadata.h"
#include "spdlog/spdlog.h"

namespace klag::kafka {
namespace {

using rdkafka::AdminCall;
using rdkafka::AdminOutcome;
using rdkafka::Client;
using rdkafka::PartitionListPtr;
using rdkafka::RemainingMs;

// How many times ReadOffsets asks again for partitions that failed with a retriable error
// (leader moved, metadata stale), refreshing metadata in between, while the deadline allows.
constexpr int kListOffsetsAttempts = 3;
constexpr absl::Duration kRetryBackoff = absl::Milliseconds(50);
// How many ListConsumerGroupOffsets requests one ReadOffsets makes while the group coordinator
// answers that it is moving or loading (NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE,
// COORDINATOR_LOAD_IN_PROGRESS), while the deadline allows.
constexpr int kOffsetFetchAttempts = 3;
constexpr absl::Duration kCoordinatorBackoff = absl::Milliseconds(100);

using Committed = absl::flat_hash_map<TopicPartition, int64_t>;

struct Counters {
  std::atomic<int64_t> read_offsets_calls{0};
  std::atomic<int64_t> metadata_requests{0};
  rdkafka::ListOffsetsCounters list_offsets;
  std::atomic<int64_t> list_offsets_lookups{0};
  std::atomic<int64_t> offset_fetch_requests{0};
  std::atomic<int64_t> offset_fetch_shared{0};
  std::atomic<int64_t> unreachable_probe_failures{0};
  std::atomic<int64_t> offsets_topic_answers{0};
  std::atomic<int64_t> offsets_topic_fallbacks{0};
  std::atomic<int> clients{0};
};

const char* IsolationName(IsolationLevel isolation) {
  return isolation == IsolationLevel::kReadCommitted ? "read_committed" : "read_uncommitted";
}

// Group coordinator answers that mean "ask again shortly" (the coordinator moves or loads).
bool CoordinatorMoving(rd_kafka_resp_err_t err) {
  return err == RD_KAFKA_RESP_ERR_NOT_COORDINATOR ||
         err == RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE ||
         err == RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS;
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

// One ListConsumerGroupOffsets shared by the ReadOffsets calls for one (isolation, group,
// partitions) that arrived before it was sent. The caller that sent it (the owner) publishes the
// outcome; the others wait for it.
struct SharedCommitted {
  absl::Time sent_at;   // before the first OffsetFetch of the owner went out
  absl::Time deadline;  // the owner's
  bool done = false;
  absl::StatusOr<Committed> result = absl::AbortedError("abandoned");
  absl::Time read_at;  // send time of the OffsetFetch that answered
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
    committed_client_.reset();
  }

  absl::StatusOr<GroupOffsets> ReadOffsets(const OffsetQuery& query, absl::Time deadline);
  std::optional<GroupOffsets> TryReadOffsets(const OffsetQuery& query);
  RdkafkaOffsetReaderStats Stats() const;

 private:
  // A ReadOffsets call's part in a shared committed-offsets read: the owner started the call and
  // must publish its outcome (the destructor publishes "abandoned" if it never does).
  struct CommittedRead {
    CommittedRead(Impl& impl, std::string key) : impl_(impl), key_(std::move(key)) {}
    ~CommittedRead() {
      if (owned_ != nullptr && !published_)
        impl_.Publish(key_, owned_, absl::AbortedError("abandoned"), {});
    }
    CommittedRead(const CommittedRead&) = delete;
    CommittedRead& operator=(const CommittedRead&) = delete;

    Impl& impl_;
    const std::string key_;
    std::shared_ptr<SharedCommitted> joined_;
    std::shared_ptr<SharedCommitted> owned_;
    std::optional<AdminCall> call_;
    absl::Time sent_at_;
    bool published_ = false;
  };

  absl::StatusOr<Lane*> LaneFor(IsolationLevel isolation);
  // The client that reads committed offsets (ListConsumerGroupOffsets) for every isolation level,
  // created on first use.
  absl::StatusOr<Client*> CommittedClient();
  // klag's properties, `isolation.level` when given (ListOffsets reads by it), then the
  // operator's extra properties (they win): what every client of this reader starts from.
  RdkafkaProperties ClientProperties(std::optional<absl::string_view> isolation) const;
  // A client with ClientProperties(isolation); counted in Stats().clients.
  absl::StatusOr<std::unique_ptr<Client>> NewClient(std::optional<absl::string_view> isolation);
  absl::Status EnsureReachable(Client& client, absl::Time deadline, absl::string_view context);
  AdminCall StartCommitted(Client& client, const std::string& group,
                           const std::vector<TopicPartition>* partitions, absl::Time deadline);
  absl::StatusOr<Committed> AwaitCommitted(Client& client, AdminCall& call, absl::Time deadline,
                                           absl::string_view context, rd_kafka_resp_err_t& err);
  absl::StatusOr<Committed> FetchCommitted(Client& client, const std::string& group,
                                           const std::vector<TopicPartition>* partitions,
                                           AdminCall first, absl::Time deadline,
                                           absl::string_view context, absl::Time& sent_at);
  // Joins a shared read of `read.key_` sent at or after `arrived`, or starts one (after
  // EnsureReachable). Errors: those of EnsureReachable.
  absl::Status BeginCommitted(Client& client, CommittedRead& read, const std::string& group,
                              const std::vector<TopicPartition>* partitions, absl::Time arrived,
                              absl::Time deadline, absl::string_view context);
  // The committed offsets of `read`, and the send time of the OffsetFetch that answered.
  absl::StatusOr<Committed> FinishCommitted(Client& client, CommittedRead& read,
                                            const std::string& group,
                                            const std::vector<TopicPartition>* partitions,
                                            absl::Time deadline, absl::string_view context,
                                            absl::Time& read_at);
  void Publish(const std::string& key, const std::shared_ptr<SharedCommitted>& shared,
               absl::StatusOr<Committed> result, absl::Time read_at);
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
  std::unique_ptr<Client> committed_client_ ABSL_GUARDED_BY(lanes_mu_);

  absl::Mutex committed_mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<SharedCommitted>> committed_
      ABSL_GUARDED_BY(committed_mu_);
  absl::Time last_committed_sweep_ ABSL_GUARDED_BY(committed_mu_);

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

absl::StatusOr<Client*> RdkafkaOffsetReader::Impl::CommittedClient() {
  absl::MutexLock lock(&lanes_mu_);
  if (committed_client_ != nullptr) return committed_client_.get();
  absl::StatusOr<std::unique_ptr<Client>> client = NewClient(std::nullopt);
  if (!client.ok()) return client.status();
  committed_client_ = *std::move(client);
  spdlog::info("cluster {}: created librdkafka client {} (committed offsets)", name_,
               rd_kafka_name(committed_client_->rk()));
  return committed_client_.get();
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

// Committed offsets come from a coordinator-routed admin request, which librdkafka 2.0.2 must
// never time out on its own while the coordinator is unreachable (see kMaxAdminRequestTimeout):
// such requests get the maximum timeout and are started only after some broker has answered
// since the latest bad connection news. When the news is bad, one Metadata request (brokers
// only) proves the cluster reachable first, or fails the evaluation as the outage it is, within
// `unreachable_probe` (Client::Metadata): a dead cluster fails fast.
absl::Status RdkafkaOffsetReader::Impl::EnsureReachable(Client& client, absl::Time deadline,
                                                        absl::string_view caller) {
  if (client.Reachable()) return absl::OkStatus();
  absl::StatusOr<rdkafka::MetadataPtr> metadata =
      client.Metadata(nullptr, deadline, options_.unreachable_probe,
                      absl::StrCat(caller, ": Metadata"), counters_.metadata_requests);
  if (!metadata.ok() && absl::IsUnavailable(metadata.status())) {
    counters_.unreachable_probe_failures.fetch_add(1);
  }
  return metadata.status();
}

AdminCall RdkafkaOffsetReader::Impl::StartCommitted(Client& client, const std::string& group,
                                                    const std::vector<TopicPartition>* partitions,
                                                    absl::Time deadline) {
  PartitionListPtr list;
  if (partitions != nullptr) {
    list.reset(rd_kafka_topic_partition_list_new(static_cast<int>(partitions->size())));
    for (const TopicPartition& tp : *partitions) {
      rd_kafka_topic_partition_list_add(list.get(), tp.topic.c_str(), tp.partition);
    }
  }
  // NULL partitions: every partition the group has committed offsets for (OffsetFetch with a
  // null topic list).
  rd_kafka_ListConsumerGroupOffsets_t* request =
      rd_kafka_ListConsumerGroupOffsets_new(group.c_str(), list.get());
  counters_.offset_fetch_requests.fetch_add(1);
  rd_kafka_t* rk = client.rk();
  AdminCall call = rdkafka::StartAdmin(
      rk, deadline, RD_KAFKA_EVENT_LISTCONSUMERGROUPOFFSETS_RESULT,
      [&](const rd_kafka_AdminOptions_t* options, rd_kafka_queue_t* queue) {
        rd_kafka_ListConsumerGroupOffsets(rk, &request, 1, options, queue);
      },
      rdkafka::kMaxAdminRequestTimeout);
  rd_kafka_ListConsumerGroupOffsets_destroy(request);
  return call;
}

absl::StatusOr<Committed> RdkafkaOffsetReader::Impl::AwaitCommitted(Client& client, AdminCall& call,
                                                                    absl::Time deadline,
                                                                    absl::string_view context,
                                                                    rd_kafka_resp_err_t& err) {
  const std::string what = absl::StrCat(context, ": ListConsumerGroupOffsets");
  AdminOutcome outcome = rdkafka::AwaitAdmin(call, deadline);
  err = outcome.err;
  if (outcome.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return client.ErrorStatus(outcome.err, what, outcome.detail);
  }
  client.MarkReachable();
  size_t count = 0;
  const rd_kafka_group_result_t** groups = rd_kafka_ListConsumerGroupOffsets_result_groups(
      rd_kafka_event_ListConsumerGroupOffsets_result(outcome.event.get()), &count);
  absl::flat_hash_map<TopicPartition, int64_t> committed;
  for (size_t i = 0; i < count; ++i) {
    if (const rd_kafka_error_t* error = rd_kafka_group_result_error(groups[i]); error != nullptr) {
      err = rd_kafka_error_code(error);
      return client.ErrorStatus(err, what, rd_kafka_error_string(error));
    }
    const rd_kafka_topic_partition_list_t* partitions = rd_kafka_group_result_partitions(groups[i]);
    for (int p = 0; partitions != nullptr && p < partitions->cnt; ++p) {
      const rd_kafka_topic_partition_t& tp = partitions->elems[p];
      if (tp.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        err = tp.err;
        return client.ErrorStatus(
            tp.err, absl::StrCat(what, ": topic ", tp.topic, " partition ", tp.partition));
      }
      // librdkafka reports "no commit" as RD_KAFKA_OFFSET_INVALID (-1001); the wire says -1.
      if (tp.offset >= 0) committed[TopicPartition{tp.topic, tp.partition}] = tp.offset;
    }
  }
  return committed;
}

// Awaits `first` (started at `sent_at`) and, while the coordinator answers that it is moving or
// loading, asks again (librdkafka looks the coordinator up again after such an answer) while the
// deadline allows; `sent_at` ends as the start time of the call that answered.
absl::StatusOr<Committed> RdkafkaOffsetReader::Impl::FetchCommitted(
    Client& client, const std::string& group, const std::vector<TopicPartition>* partitions,
    AdminCall first, absl::Time deadline, absl::string_view context, absl::Time& sent_at) {
  AdminCall call = std::move(first);
  for (int attempt = 1;; ++attempt) {
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    absl::StatusOr<Committed> committed = AwaitCommitted(client, call, deadline, context, err);
    if (committed.ok() || !CoordinatorMoving(err) || attempt >= kOffsetFetchAttempts ||
        deadline - absl::Now() < 3 * kCoordinatorBackoff) {
      return committed;
    }
    absl::SleepFor(std::min(kCoordinatorBackoff * attempt, (deadline - absl::Now()) / 3));
    // The coordinator just answered, so the client is reachable and a new coordinator-routed
    // request is safe to start (see EnsureReachable).
    sent_at = absl::Now();
    call = StartCommitted(client, group, partitions, deadline);
  }
}

absl::Status RdkafkaOffsetReader::Impl::BeginCommitted(
    Client& client, CommittedRead& read, const std::string& group,
    const std::vector<TopicPartition>* partitions, absl::Time arrived, absl::Time deadline,
    absl::string_view context) {
  {
    absl::MutexLock lock(&committed_mu_);
    auto it = committed_.find(read.key_);
    // Only a read sent after this call arrived answers it ("read for this poll"), or, with
    // committed_offsets_max_age, one sent at most that long before it arrived: in flight, or done
    // and successful.
    const absl::Time oldest = arrived - options_.committed_offsets_max_age;
    if (it != committed_.end()) {
      const SharedCommitted& shared = *it->second;
      const bool in_flight = !shared.done && shared.sent_at >= oldest;
      const bool answered = shared.done && shared.result.ok() && shared.read_at >= oldest;
      if (in_flight || answered) {
        read.joined_ = it->second;
        counters_.offset_fetch_shared.fetch_add(1);
        return absl::OkStatus();
      }
    }
  }
  if (absl::Status s = EnsureReachable(client, deadline, context); !s.ok()) return s;
  read.owned_ = std::make_shared<SharedCommitted>();
  read.owned_->deadline = deadline;
  read.sent_at_ = absl::Now();
  read.owned_->sent_at = read.sent_at_;
  {
    absl::MutexLock lock(&committed_mu_);
    committed_[read.key_] = read.owned_;  // later arrivals join this one
  }
  read.call_ = StartCommitted(client, group, partitions, deadline);
  return absl::OkStatus();
}

void RdkafkaOffsetReader::Impl::Publish(const std::string& key,
                                        const std::shared_ptr<SharedCommitted>& shared,
                                        absl::StatusOr<Committed> result, absl::Time read_at) {
  absl::MutexLock lock(&committed_mu_);
  shared->result = std::move(result);
  shared->read_at = read_at;
  shared->done = true;
  const absl::Duration max_age = options_.committed_offsets_max_age;
  if (auto it = committed_.find(key); it != committed_.end() && it->second == shared &&
                                      (max_age <= absl::ZeroDuration() || !shared->result.ok())) {
    committed_.erase(it);
  }
  // With a max age, answers stay for later callers: drop those too old to serve anyone, at
  // most once per max age (so the map holds the keys read within about two max ages).
  const absl::Time now = absl::Now();
  if (max_age > absl::ZeroDuration() && now - last_committed_sweep_ >= max_age) {
    last_committed_sweep_ = now;
    for (auto it = committed_.begin(); it != committed_.end();) {
      const SharedCommitted& entry = *it->second;
      if (entry.done && entry.read_at < now - max_age) {
        committed_.erase(it++);  // flat_hash_map: erase(iterator) returns void
      } else {
        ++it;
      }
    }
  }
}

absl::StatusOr<Committed> RdkafkaOffsetReader::Impl::FinishCommitted(
    Client& client, CommittedRead& read, const std::string& group,
    const std::vector<TopicPartition>* partitions, absl::Time deadline, absl::string_view context,
    absl::Time& read_at) {
  if (read.owned_ != nullptr) {
    absl::Time sent_at = read.sent_at_;
    absl::StatusOr<Committed> committed = FetchCommitted(
        client, group, partitions, *std::move(read.call_), deadline, context, sent_at);
    read_at = sent_at;
    Publish(read.key_, read.owned_, committed, sent_at);
    read.published_ = true;
    return committed;
  }
  std::shared_ptr<SharedCommitted> shared = read.joined_;
  {
    absl::MutexLock lock(&committed_mu_);
    auto done = [&shared]() { return shared->done; };
    if (!committed_mu_.AwaitWithDeadline(absl::Condition(&done), deadline)) {
      return client.TimeoutStatus(absl::StrCat(context, ": ListConsumerGroupOffsets"));
    }
  }
  // The owner gave up (its own deadline or another failure came first): read on our own while
  // our deadline allows.
  const bool owner_gave_up =
      absl::IsAborted(shared->result.status()) ||
      (shared->deadline < deadline && (absl::IsDeadlineExceeded(shared->result.status()) ||
                                       absl::IsUnavailable(shared->result.status())));
  if (owner_gave_up && absl::Now() < deadline) {
    CommittedRead own(*this, read.key_);
    if (absl::Status s =
            BeginCommitted(client, own, group, partitions, absl::Now(), deadline, context);
        !s.ok()) {
      return s;
    }
    return FinishCommitted(client, own, group, partitions, deadline, context, read_at);
  }
  read_at = shared->read_at;
  return shared->result;
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

  // Shared committed reads are keyed by isolation level, group and what is asked for.
  std::string key = absl::StrCat(static_cast<int>(query.isolation), "\x1f", query.group, "\x1f");
  std::map<std::string, int> counts;
  std::optional<CommittedRead> committed_read;
  Client* committed_client = nullptr;  // set with committed_read
  std::vector<TopicPartition> all;
  Committed committed;
  absl::Time committed_read_at = absl::InfinitePast();
  if (!topics.empty()) {
    for (const std::string& topic : topics) {
      absl::StatusOr<int> count =
          metadata_.PartitionCount(*lane.client, topic, deadline, /*force=*/false);
      if (!count.ok()) return count.status();
      counts[topic] = *count;
      absl::StrAppend(&key, topic, ":", *count, "\x1e");
    }
    for (const auto& [topic, count] : counts) {
      for (int p = 0; p < count; ++p) all.push_back(TopicPartition{topic, p});
    }
    std::optional<Committed> followed =
        FollowedCommitted(query.group, &all, deadline, committed_read_at);
    if (followed.has_value()) {
      committed = *std::move(followed);
    } else {
      // Runs while the ListOffsets lookups below are in flight.
      absl::StatusOr<Client*> client = CommittedClient();
      if (!client.ok()) return client.status();
      committed_client = *client;
      committed_read.emplace(*this, key);
      if (absl::Status s = BeginCommitted(
              *committed_client, *committed_read, query.group, &all, arrived, deadline,
              absl::StrCat(context, ": topic ", absl::StrJoin(topics, ", ")));
          !s.ok()) {
        return s;
      }
    }
  } else {
    std::optional<Committed> followed =
        FollowedCommitted(query.group, nullptr, deadline, committed_read_at);
    if (followed.has_value()) {
      committed = *std::move(followed);
    } else {
      absl::StatusOr<Client*> client = CommittedClient();
      if (!client.ok()) return client.status();
      CommittedRead read(*this, key);
      if (absl::Status s =
              BeginCommitted(**client, read, query.group, nullptr, arrived, deadline, context);
          !s.ok()) {
        return s;
      }
      absl::StatusOr<Committed> fetched = FinishCommitted(**client, read, query.group, nullptr,
                                                          deadline, context, committed_read_at);
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
  if (committed_read.has_value()) {
    // `all` lists the same partitions the call was started with (both come from `counts`).
    absl::StatusOr<Committed> fetched =
        FinishCommitted(*committed_client, *committed_read, query.group, &all, deadline, context,
                        committed_read_at);
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
  stats.offset_fetch_requests = counters_.offset_fetch_requests.load();
  stats.offset_fetch_shared = counters_.offset_fetch_shared.load();
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
  if (committed_client_ != nullptr) add_client(*committed_client_);
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
