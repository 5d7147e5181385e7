#include "kafka/rdkafka_offset_reader.h"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <optional>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "kafka/rdkafka_handle.h"
#include "kafka/rdkafka_status.h"
#include "nlohmann/json.hpp"
#include "spdlog/spdlog.h"

namespace klag::kafka {
namespace {

using rdkafka::AdminCall;
using rdkafka::AdminOutcome;
using rdkafka::HandlePtr;
using rdkafka::MetadataPtr;
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
// A topic this reader has seen exist that a Metadata answer calls unknown is asked about once
// more after this pause before it is reported as not found: a broker that is (re)starting or
// has not caught up may briefly miss it.
constexpr absl::Duration kAbsenceRecheckDelay = absl::Milliseconds(300);

struct Counters {
  std::atomic<int64_t> read_offsets_calls{0};
  std::atomic<int64_t> metadata_requests{0};
  std::atomic<int64_t> list_offsets_calls{0};
  std::atomic<int64_t> list_offsets_partitions{0};
  std::atomic<int64_t> list_offsets_lookups{0};
  std::atomic<int64_t> offset_fetch_requests{0};
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

// One long-lived librdkafka consumer-type handle (never joins a group) with a thread serving its
// callbacks, and what those callbacks tell about broker reachability.
//
// Reachability: a request that times out is kUnavailable when the client's latest connection
// news is bad, kDeadlineExceeded otherwise. News, in arrival order: the error callback reports
// connection failures (__TRANSPORT, __RESOLVE, __SSL, __AUTHENTICATION, __ALL_BROKERS_DOWN);
// the statistics callback reports whether any broker connection is UP; every answered request
// is good news. So a stopped broker turns timeouts into kUnavailable as soon as the disconnect
// or a refused reconnect is reported, and a restarted one turns them back with the first answer.
class Client {
 public:
  static absl::StatusOr<std::unique_ptr<Client>> Create(const RdkafkaProperties& properties,
                                                        bool statistics) {
    std::unique_ptr<Client> client(new Client());
    absl::StatusOr<HandlePtr> rk = rdkafka::NewHandle(
        RD_KAFKA_CONSUMER, properties, [&client, statistics](rd_kafka_conf_t* conf) {
          rd_kafka_conf_set_opaque(conf, client.get());
          rd_kafka_conf_set_error_cb(conf, &Client::OnError);
          if (statistics) rd_kafka_conf_set_stats_cb(conf, &Client::OnStats);
        });
    if (!rk.ok()) return rk.status();
    client->rk_ = *std::move(rk);
    client->poller_ = std::thread([c = client.get()] { c->PollLoop(); });
    return client;
  }

  ~Client() {
    stop_.store(true);
    // Create() may fail before the handle or the poller exists (e.g. a wrong keyPassword makes
    // rd_kafka_new fail): only stop what was started.
    if (rk_ != nullptr) rd_kafka_yield(rk_.get());
    if (poller_.joinable()) poller_.join();
  }

  rd_kafka_t* rk() const { return rk_.get(); }

  // A request got an answer: some broker is reachable.
  void MarkReachable() {
    absl::MutexLock lock(&mu_);
    last_up_ = ++seq_;
  }

  // Whether the latest connection news is good (or there is none yet).
  bool Reachable() const {
    absl::MutexLock lock(&mu_);
    return last_down_ <= last_up_;
  }

  // The status for a request that got no answer in time.
  absl::Status TimeoutStatus(absl::string_view context) const {
    absl::MutexLock lock(&mu_);
    if (last_down_ > last_up_) return UnreachableStatusLocked(context);
    return RdkafkaStatus(RD_KAFKA_RESP_ERR__TIMED_OUT, context);
  }

  // The status when librdkafka found no usable broker connection in time: kUnavailable (or
  // kUnauthenticated when authentication is what failed), with what the connection attempts
  // reported.
  absl::Status UnreachableStatus(absl::string_view context) const {
    absl::MutexLock lock(&mu_);
    return UnreachableStatusLocked(context);
  }

  // The status for `err`, with timeouts judged by reachability. "Unknown topic, partition or
  // group" is kUnavailable here (RdkafkaTransientStatus): only FetchPartitionCount, reading a
  // Metadata answer about the topic, may say that a topic does not exist.
  absl::Status ErrorStatus(rd_kafka_resp_err_t err, absl::string_view context,
                           absl::string_view detail = "") const {
    if (err == RD_KAFKA_RESP_ERR__TIMED_OUT || err == RD_KAFKA_RESP_ERR__TIMED_OUT_QUEUE) {
      return TimeoutStatus(context);
    }
    return RdkafkaTransientStatus(err, context, detail);
  }

  int64_t broker_requests() const { return broker_requests_.load(); }

 private:
  Client() = default;

  absl::Status UnreachableStatusLocked(absl::string_view context) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return RdkafkaStatus(last_connection_err_, context,
                         absl::StrCat("no broker is reachable: ", last_connection_error_.empty()
                                                                      ? "no connection is up"
                                                                      : last_connection_error_));
  }

  void PollLoop() {
    while (!stop_.load()) rd_kafka_poll(rk_.get(), 200);
  }

  static void OnError(rd_kafka_t* rk, int err_int, const char* reason, void* opaque) {
    auto* self = static_cast<Client*>(opaque);
    const auto err = static_cast<rd_kafka_resp_err_t>(err_int);
    spdlog::debug("librdkafka {} error: {} ({})", rd_kafka_name(rk), reason,
                  rd_kafka_err2name(err));
    switch (err) {
      case RD_KAFKA_RESP_ERR__TRANSPORT:
      case RD_KAFKA_RESP_ERR__RESOLVE:
      case RD_KAFKA_RESP_ERR__SSL:
      case RD_KAFKA_RESP_ERR__AUTHENTICATION: {
        absl::MutexLock lock(&self->mu_);
        self->last_down_ = ++self->seq_;
        self->last_connection_err_ = err;
        self->last_connection_error_ = reason;
        break;
      }
      case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN: {
        absl::MutexLock lock(&self->mu_);
        self->last_down_ = ++self->seq_;
        if (self->last_connection_error_.empty()) {
          self->last_connection_err_ = err;
          self->last_connection_error_ = reason;
        }
        break;
      }
      default:
        break;
    }
  }

  static int OnStats(rd_kafka_t* /*rk*/, char* json, size_t json_len, void* opaque) {
    auto* self = static_cast<Client*>(opaque);
    const nlohmann::json stats =
        nlohmann::json::parse(json, json + json_len, nullptr, /*allow_exceptions=*/false);
    if (stats.is_discarded() || !stats.is_object()) return 0;
    const auto brokers = stats.find("brokers");
    if (brokers == stats.end() || !brokers->is_object()) return 0;
    bool any_up = false;
    bool any_real = false;
    int64_t tx = 0;
    for (const auto& [name, broker] : brokers->items()) {
      if (!broker.is_object()) continue;
      const std::string source = broker.value("source", "");
      // "internal" is librdkafka's own queue; "logical" brokers (group coordinator) ride on a
      // real broker's connection and would count its requests twice.
      if (source == "internal" || source == "logical") continue;
      any_real = true;
      if (broker.value("state", "") == "UP") any_up = true;
      tx += broker.value("tx", int64_t{0});
    }
    self->broker_requests_.store(tx);
    if (any_real) {
      absl::MutexLock lock(&self->mu_);
      if (any_up) {
        self->last_up_ = ++self->seq_;
      } else {
        self->last_down_ = ++self->seq_;
        if (self->last_connection_error_.empty()) {
          self->last_connection_error_ = "no broker connection is up";
        }
      }
    }
    return 0;  // librdkafka frees `json`
  }

  HandlePtr rk_;
  std::atomic<bool> stop_{false};
  std::thread poller_;
  std::atomic<int64_t> broker_requests_{0};

  mutable absl::Mutex mu_;
  uint64_t seq_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t last_down_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t last_up_ ABSL_GUARDED_BY(mu_) = 0;
  rd_kafka_resp_err_t last_connection_err_ ABSL_GUARDED_BY(mu_) = RD_KAFKA_RESP_ERR__TRANSPORT;
  std::string last_connection_error_ ABSL_GUARDED_BY(mu_);
};

// Coalesces concurrent end (or log-start) offset lookups into rd_kafka_offsets_for_times calls
// made by one worker thread: a batch opens with its first lookup, collects others for `window`,
// and is sent when the window has passed and the previous call has returned. Each caller waits
// for its batch only until its own deadline; the call itself runs until the latest deadline of
// its members.
class ListOffsetsBatcher {
 public:
  struct PartitionResult {
    int64_t offset = 0;
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
  };
  using Results = absl::flat_hash_map<TopicPartition, PartitionResult>;

  struct Batch {
    absl::flat_hash_set<TopicPartition> partitions;
    absl::Time deadline = absl::InfinitePast();
    bool done = false;
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    Results results;
  };

  ListOffsetsBatcher(Client& client, int64_t which, absl::Duration window, Counters& counters)
      : client_(client), which_(which), window_(window), counters_(counters) {
    worker_ = std::thread([this] { Run(); });
  }

  ~ListOffsetsBatcher() {
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
    }
    worker_.join();
  }

  // Adds `partitions` to the open batch (opening one if needed).
  std::shared_ptr<Batch> Submit(const std::vector<TopicPartition>& partitions,
                                absl::Time deadline) {
    counters_.list_offsets_lookups.fetch_add(1);
    absl::MutexLock lock(&mu_);
    if (pending_ == nullptr) {
      pending_ = std::make_shared<Batch>();
      pending_since_ = absl::Now();
    }
    pending_->partitions.insert(partitions.begin(), partitions.end());
    pending_->deadline = std::max(pending_->deadline, deadline);
    return pending_;
  }

  // Waits for `batch` until `deadline`; returns the results of `partitions` (per-partition
  // errors included), or the status of a failure that covers them all.
  absl::StatusOr<Results> Await(const std::shared_ptr<Batch>& batch,
                                const std::vector<TopicPartition>& partitions, absl::Time deadline,
                                absl::string_view context) {
    rd_kafka_resp_err_t err;
    Results mine;
    {
      absl::MutexLock lock(&mu_);
      auto done = [&batch]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return batch->done; };
      if (!mu_.AwaitWithDeadline(absl::Condition(&done), deadline)) {
        return client_.TimeoutStatus(context);
      }
      err = batch->err;
      for (const TopicPartition& tp : partitions) {
        auto it = batch->results.find(tp);
        // Absent: the whole call failed before librdkafka looked at the partition.
        mine[tp] = it != batch->results.end() ? it->second : PartitionResult{0, err};
      }
    }
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR && !NeedsMetadataRefresh(err)) {
      return client_.ErrorStatus(err, context);
    }
    return mine;
  }

 private:
  void Run() {
    absl::MutexLock lock(&mu_);
    while (true) {
      auto ready = [this]()
                       ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_ || pending_ != nullptr; };
      mu_.Await(absl::Condition(&ready));
      if (stop_) break;
      if (window_ > absl::ZeroDuration()) {
        mu_.AwaitWithDeadline(absl::Condition(&stop_), pending_since_ + window_);
        if (stop_) break;
      }
      std::shared_ptr<Batch> batch = std::move(pending_);
      pending_.reset();
      PartitionListPtr list(
          rd_kafka_topic_partition_list_new(static_cast<int>(batch->partitions.size())));
      for (const TopicPartition& tp : batch->partitions) {
        rd_kafka_topic_partition_list_add(list.get(), tp.topic.c_str(), tp.partition)->offset =
            which_;
      }
      const absl::Time deadline = batch->deadline;
      mu_.Unlock();

      rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR__TIMED_OUT;
      if (RemainingMs(deadline) > 0) {
        counters_.list_offsets_calls.fetch_add(1);
        counters_.list_offsets_partitions.fetch_add(list->cnt);
        err = rd_kafka_offsets_for_times(client_.rk(), list.get(), RemainingMs(deadline));
      }
      bool any_answer = false;
      Results results;
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        for (int i = 0; i < list->cnt; ++i) {
          const rd_kafka_topic_partition_t& p = list->elems[i];
          results[TopicPartition{p.topic, p.partition}] = PartitionResult{p.offset, p.err};
          any_answer = any_answer || p.err == RD_KAFKA_RESP_ERR_NO_ERROR;
        }
      }
      if (any_answer) client_.MarkReachable();

      mu_.Lock();
      batch->err = err;
      batch->results = std::move(results);
      batch->done = true;
    }
    // Let waiters of a batch that will never be sent go at once.
    if (pending_ != nullptr) {
      pending_->err = RD_KAFKA_RESP_ERR__DESTROY;
      pending_->done = true;
    }
  }

  Client& client_;
  const int64_t which_;
  const absl::Duration window_;
  Counters& counters_;
  std::thread worker_;

  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::shared_ptr<Batch> pending_ ABSL_GUARDED_BY(mu_);
  absl::Time pending_since_ ABSL_GUARDED_BY(mu_);
};

// Everything for one isolation level: its client and its two batchers (declared after the
// client, so they stop first).
struct Lane {
  std::unique_ptr<Client> client;
  std::unique_ptr<ListOffsetsBatcher> end;
  std::unique_ptr<ListOffsetsBatcher> log_start;
};

}  // namespace

class RdkafkaOffsetReader::Impl {
 public:
  Impl(RdkafkaProperties properties, RdkafkaOffsetReaderOptions options, std::string name)
      : properties_(std::move(properties)), options_(std::move(options)), name_(std::move(name)) {}

  ~Impl() {
    for (auto& lane : lanes_) {
      if (lane == nullptr) continue;
      lane->end.reset();
      lane->log_start.reset();
      lane->client.reset();
    }
  }

  absl::StatusOr<GroupOffsets> ReadOffsets(const OffsetQuery& query, absl::Time deadline);
  RdkafkaOffsetReaderStats Stats() const;

 private:
  struct TopicEntry {
    int partitions = 0;
    bool valid = false;
    absl::Time fetched = absl::InfinitePast();
    absl::Time last_used = absl::InfinitePast();
    bool fetching = false;
    // A Metadata answer listed the topic since the last confirmed absence.
    bool existed = false;
    uint64_t generation = 0;
    absl::Status last_error;
  };

  absl::StatusOr<Lane*> LaneFor(IsolationLevel isolation);
  absl::StatusOr<int> PartitionCount(Lane& lane, const std::string& topic, absl::Time deadline,
                                     bool force);
  absl::StatusOr<int> FetchPartitionCount(Lane& lane, const std::string& topic,
                                          absl::Time deadline);
  void InvalidateTopic(const std::string& topic);
  absl::Status EnsureReachable(Lane& lane, absl::Time deadline, absl::string_view context);
  AdminCall StartCommitted(Lane& lane, const std::string& group,
                           const std::vector<TopicPartition>* partitions, absl::Time deadline);
  absl::StatusOr<absl::flat_hash_map<TopicPartition, int64_t>> AwaitCommitted(
      Lane& lane, AdminCall& call, absl::Time deadline, absl::string_view context,
      rd_kafka_resp_err_t& err);
  absl::StatusOr<absl::flat_hash_map<TopicPartition, int64_t>> FetchCommitted(
      Lane& lane, const std::string& group, const std::vector<TopicPartition>* partitions,
      AdminCall first, absl::Time deadline, absl::string_view context);
  absl::Status LookupOffsets(Lane& lane, const std::vector<TopicPartition>& partitions,
                             absl::Time deadline, absl::string_view context,
                             absl::flat_hash_map<TopicPartition, int64_t>& end,
                             absl::flat_hash_map<TopicPartition, int64_t>& log_start);

  const RdkafkaProperties properties_;
  const RdkafkaOffsetReaderOptions options_;
  const std::string name_;
  Counters counters_;

  mutable absl::Mutex lanes_mu_;
  std::unique_ptr<Lane> lanes_[2] ABSL_GUARDED_BY(lanes_mu_);

  absl::Mutex metadata_mu_;
  std::map<std::string, TopicEntry> topics_ ABSL_GUARDED_BY(metadata_mu_);
  absl::Time last_sweep_ ABSL_GUARDED_BY(metadata_mu_) = absl::Now();
};

absl::StatusOr<Lane*> RdkafkaOffsetReader::Impl::LaneFor(IsolationLevel isolation) {
  const int index = isolation == IsolationLevel::kReadCommitted ? 1 : 0;
  absl::MutexLock lock(&lanes_mu_);
  if (lanes_[index] != nullptr) return lanes_[index].get();
  RdkafkaProperties properties = properties_;
  properties.push_back({"isolation.level", IsolationName(isolation)});
  for (const auto& extra : options_.extra_properties) properties.push_back(extra);
  absl::StatusOr<std::unique_ptr<Client>> client =
      Client::Create(properties, options_.statistics_interval > absl::ZeroDuration());
  if (!client.ok()) {
    return absl::Status(client.status().code(),
                        absl::StrCat("cluster ", name_, ": ", client.status().message()));
  }
  auto lane = std::make_unique<Lane>();
  lane->client = *std::move(client);
  lane->end = std::make_unique<ListOffsetsBatcher>(*lane->client, RD_KAFKA_OFFSET_END,
                                                   options_.list_offsets_window, counters_);
  lane->log_start = std::make_unique<ListOffsetsBatcher>(*lane->client, RD_KAFKA_OFFSET_BEGINNING,
                                                         options_.list_offsets_window, counters_);
  counters_.clients.fetch_add(1);
  spdlog::info("cluster {}: created librdkafka client {} ({})", name_,
               rd_kafka_name(lane->client->rk()), IsolationName(isolation));
  lanes_[index] = std::move(lane);
  return lanes_[index].get();
}

absl::StatusOr<int> RdkafkaOffsetReader::Impl::FetchPartitionCount(Lane& lane,
                                                                   const std::string& topic,
                                                                   absl::Time deadline) {
  const std::string context = absl::StrCat("cluster ", name_, ": topic ", topic, ": Metadata");
  if (RemainingMs(deadline) <= 0) return lane.client->TimeoutStatus(context);
  rd_kafka_t* rk = lane.client->rk();
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
  if (rkt == nullptr) return RdkafkaStatus(rd_kafka_last_error(), context);
  counters_.metadata_requests.fetch_add(1);
  const rd_kafka_metadata_t* raw = nullptr;
  const rd_kafka_resp_err_t err =
      rd_kafka_metadata(rk, /*all_topics=*/0, rkt, &raw, RemainingMs(deadline));
  rd_kafka_topic_destroy(rkt);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    // rd_kafka_metadata reports "no usable broker within the timeout" as __TRANSPORT.
    if (err == RD_KAFKA_RESP_ERR__TRANSPORT) return lane.client->UnreachableStatus(context);
    return lane.client->ErrorStatus(err, context);
  }
  MetadataPtr metadata(raw);
  lane.client->MarkReachable();
  for (int i = 0; i < metadata->topic_cnt; ++i) {
    const rd_kafka_metadata_topic_t& t = metadata->topics[i];
    if (topic != t.topic) continue;
    // The one place that says "does not exist": a broker answered a Metadata request for the
    // topic with UNKNOWN_TOPIC_OR_PART (PartitionCount asks twice for a topic it saw before).
    if (t.err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
      return absl::NotFoundError(
          absl::StrCat("cluster ", name_, ": topic ", topic, " does not exist"));
    }
    if (t.err != RD_KAFKA_RESP_ERR_NO_ERROR) return lane.client->ErrorStatus(t.err, context);
    if (t.partition_cnt <= 0) {
      return absl::UnavailableError(absl::StrCat(context, ": topic has no partitions yet"));
    }
    return t.partition_cnt;
  }
  // An answer without the topic proves nothing about it.
  return absl::UnavailableError(absl::StrCat(context, ": the answer does not mention the topic"));
}

absl::StatusOr<int> RdkafkaOffsetReader::Impl::PartitionCount(Lane& lane, const std::string& topic,
                                                              absl::Time deadline, bool force) {
  absl::MutexLock lock(&metadata_mu_);
  const absl::Time now = absl::Now();
  // Forget topics nobody asked about for a while (deleted topics, removed triggers).
  const absl::Duration idle_limit = std::max(absl::Minutes(10), 10 * options_.metadata_max_age);
  if (now - last_sweep_ > options_.metadata_max_age) {
    last_sweep_ = now;
    for (auto it = topics_.begin(); it != topics_.end();) {
      if (!it->second.fetching && now - it->second.last_used > idle_limit) {
        it = topics_.erase(it);
      } else {
        ++it;
      }
    }
  }
  std::optional<uint64_t> waited_for;  // generation of a fetch we waited for
  while (true) {
    TopicEntry& entry = topics_[topic];
    entry.last_used = absl::Now();
    if (waited_for.has_value() && entry.generation != *waited_for) {
      // Someone else's fetch finished while we waited: share its outcome.
      if (!entry.last_error.ok()) return entry.last_error;
      if (entry.valid) return entry.partitions;
    }
    if (!force && entry.valid && absl::Now() - entry.fetched < options_.metadata_max_age) {
      return entry.partitions;
    }
    if (entry.fetching) {
      waited_for = entry.generation;
      auto fetched = [this, &topic]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(metadata_mu_) {
        auto it = topics_.find(topic);
        return it == topics_.end() || !it->second.fetching;
      };
      if (!metadata_mu_.AwaitWithDeadline(absl::Condition(&fetched), deadline)) {
        return lane.client->TimeoutStatus(
            absl::StrCat("cluster ", name_, ": topic ", topic, ": Metadata"));
      }
      continue;
    }
    entry.fetching = true;
    const bool existed = entry.existed;
    metadata_mu_.Unlock();
    absl::StatusOr<int> count = FetchPartitionCount(lane, topic, deadline);
    if (absl::IsNotFound(count.status()) && existed) {
      // It existed when we last asked: a deleted topic, or a broker that is (re)starting and
      // misses it for a moment. Only a second answer, a little later, confirms the absence.
      if (deadline - absl::Now() > 2 * kAbsenceRecheckDelay) {
        absl::SleepFor(kAbsenceRecheckDelay);
        count = FetchPartitionCount(lane, topic, deadline);
      } else {
        count = absl::UnavailableError(absl::StrCat(
            "cluster ", name_, ": topic ", topic,
            ": Metadata: the broker no longer lists the topic; not confirmed yet (transient)"));
      }
    }
    metadata_mu_.Lock();
    TopicEntry& done = topics_[topic];  // the map is node-based: `entry` is still valid, but
                                        // look it up again for clarity
    done.fetching = false;
    ++done.generation;
    done.last_error = count.status();
    if (count.ok()) {
      done.valid = true;
      done.existed = true;
      done.partitions = *count;
      done.fetched = absl::Now();
    } else if (absl::IsNotFound(count.status())) {
      done.valid = false;
      done.existed = false;
    }
    return count;
  }
}

void RdkafkaOffsetReader::Impl::InvalidateTopic(const std::string& topic) {
  absl::MutexLock lock(&metadata_mu_);
  auto it = topics_.find(topic);
  if (it != topics_.end()) it->second.valid = false;
}

// Committed offsets come from a coordinator-routed admin request, which librdkafka 2.0.2 must
// never time out on its own while the coordinator is unreachable (see kMaxAdminRequestTimeout):
// such requests get the maximum timeout and are started only after some broker has answered
// since the latest bad connection news. When the news is bad, one Metadata request (brokers
// only) proves the cluster reachable first, or fails the evaluation as the outage it is.
absl::Status RdkafkaOffsetReader::Impl::EnsureReachable(Lane& lane, absl::Time deadline,
                                                        absl::string_view caller) {
  if (lane.client->Reachable()) return absl::OkStatus();
  const std::string context = absl::StrCat(caller, ": Metadata");
  if (RemainingMs(deadline) <= 0) return lane.client->TimeoutStatus(context);
  counters_.metadata_requests.fetch_add(1);
  const rd_kafka_metadata_t* raw = nullptr;
  const rd_kafka_resp_err_t err =
      rd_kafka_metadata(lane.client->rk(), /*all_topics=*/0, nullptr, &raw, RemainingMs(deadline));
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    // __TRANSPORT here means "no usable broker within the timeout": report it like a timeout,
    // with what the connection attempts said.
    if (err == RD_KAFKA_RESP_ERR__TRANSPORT) return lane.client->UnreachableStatus(context);
    return lane.client->ErrorStatus(err, context);
  }
  MetadataPtr metadata(raw);
  lane.client->MarkReachable();
  return absl::OkStatus();
}

AdminCall RdkafkaOffsetReader::Impl::StartCommitted(Lane& lane, const std::string& group,
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
  rd_kafka_t* rk = lane.client->rk();
  AdminCall call = rdkafka::StartAdmin(
      rk, deadline, RD_KAFKA_EVENT_LISTCONSUMERGROUPOFFSETS_RESULT,
      [&](const rd_kafka_AdminOptions_t* options, rd_kafka_queue_t* queue) {
        rd_kafka_ListConsumerGroupOffsets(rk, &request, 1, options, queue);
      },
      rdkafka::kMaxAdminRequestTimeout);
  rd_kafka_ListConsumerGroupOffsets_destroy(request);
  return call;
}

absl::StatusOr<absl::flat_hash_map<TopicPartition, int64_t>>
RdkafkaOffsetReader::Impl::AwaitCommitted(Lane& lane, AdminCall& call, absl::Time deadline,
                                          absl::string_view context, rd_kafka_resp_err_t& err) {
  const std::string what = absl::StrCat(context, ": ListConsumerGroupOffsets");
  AdminOutcome outcome = rdkafka::AwaitAdmin(call, deadline);
  err = outcome.err;
  if (outcome.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return lane.client->ErrorStatus(outcome.err, what, outcome.detail);
  }
  lane.client->MarkReachable();
  size_t count = 0;
  const rd_kafka_group_result_t** groups = rd_kafka_ListConsumerGroupOffsets_result_groups(
      rd_kafka_event_ListConsumerGroupOffsets_result(outcome.event.get()), &count);
  absl::flat_hash_map<TopicPartition, int64_t> committed;
  for (size_t i = 0; i < count; ++i) {
    if (const rd_kafka_error_t* error = rd_kafka_group_result_error(groups[i]); error != nullptr) {
      err = rd_kafka_error_code(error);
      return lane.client->ErrorStatus(err, what, rd_kafka_error_string(error));
    }
    const rd_kafka_topic_partition_list_t* partitions = rd_kafka_group_result_partitions(groups[i]);
    for (int p = 0; partitions != nullptr && p < partitions->cnt; ++p) {
      const rd_kafka_topic_partition_t& tp = partitions->elems[p];
      if (tp.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        err = tp.err;
        return lane.client->ErrorStatus(
            tp.err, absl::StrCat(what, ": topic ", tp.topic, " partition ", tp.partition));
      }
      // librdkafka reports "no commit" as RD_KAFKA_OFFSET_INVALID (-1001); the wire says -1.
      if (tp.offset >= 0) committed[TopicPartition{tp.topic, tp.partition}] = tp.offset;
    }
  }
  return committed;
}

// Awaits `first` and, while the coordinator answers that it is moving or loading, asks again
// (librdkafka looks the coordinator up again after such an answer) while the deadline allows.
absl::StatusOr<absl::flat_hash_map<TopicPartition, int64_t>>
RdkafkaOffsetReader::Impl::FetchCommitted(Lane& lane, const std::string& group,
                                          const std::vector<TopicPartition>* partitions,
                                          AdminCall first, absl::Time deadline,
                                          absl::string_view context) {
  AdminCall call = std::move(first);
  for (int attempt = 1;; ++attempt) {
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    absl::StatusOr<absl::flat_hash_map<TopicPartition, int64_t>> committed =
        AwaitCommitted(lane, call, deadline, context, err);
    if (committed.ok() || !CoordinatorMoving(err) || attempt >= kOffsetFetchAttempts ||
        deadline - absl::Now() < 3 * kCoordinatorBackoff) {
      return committed;
    }
    absl::SleepFor(std::min(kCoordinatorBackoff * attempt, (deadline - absl::Now()) / 3));
    // The coordinator just answered, so the client is reachable and a new coordinator-routed
    // request is safe to start (see EnsureReachable).
    call = StartCommitted(lane, group, partitions, deadline);
  }
}

absl::Status RdkafkaOffsetReader::Impl::LookupOffsets(
    Lane& lane, const std::vector<TopicPartition>& partitions, absl::Time deadline,
    absl::string_view context, absl::flat_hash_map<TopicPartition, int64_t>& end,
    absl::flat_hash_map<TopicPartition, int64_t>& log_start) {
  std::set<std::string> topics;
  for (const TopicPartition& tp : partitions) topics.insert(tp.topic);
  // Failures that cover the whole call name every topic of this caller.
  const std::string what =
      absl::StrCat(context, ": topic ", absl::StrJoin(topics, ", "), ": ListOffsets");
  std::vector<TopicPartition> remaining = partitions;
  for (int attempt = 1;; ++attempt) {
    auto end_batch = lane.end->Submit(remaining, deadline);
    auto start_batch = lane.log_start->Submit(remaining, deadline);
    absl::StatusOr<ListOffsetsBatcher::Results> ends =
        lane.end->Await(end_batch, remaining, deadline, what);
    if (!ends.ok()) return ends.status();
    absl::StatusOr<ListOffsetsBatcher::Results> starts =
        lane.log_start->Await(start_batch, remaining, deadline, what);
    if (!starts.ok()) return starts.status();

    std::vector<TopicPartition> failed;
    std::set<std::string> stale_topics;
    rd_kafka_resp_err_t first_err = RD_KAFKA_RESP_ERR_NO_ERROR;
    const TopicPartition* first_failed = nullptr;
    for (const TopicPartition& tp : remaining) {
      const ListOffsetsBatcher::PartitionResult& e = ends->at(tp);
      const ListOffsetsBatcher::PartitionResult& s = starts->at(tp);
      const rd_kafka_resp_err_t err = e.err != RD_KAFKA_RESP_ERR_NO_ERROR ? e.err : s.err;
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        end[tp] = e.offset;
        log_start[tp] = s.offset;
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
    if (failed.empty()) return absl::OkStatus();
    for (const std::string& topic : stale_topics) InvalidateTopic(topic);
    if (attempt >= kListOffsetsAttempts || deadline - absl::Now() < 2 * kRetryBackoff) {
      return lane.client->ErrorStatus(
          first_err, absl::StrCat(context, ": topic ", first_failed->topic, " partition ",
                                  first_failed->partition, ": ListOffsets"));
    }
    // A fresh Metadata request also refreshes librdkafka's own leader cache, which
    // rd_kafka_offsets_for_times routes by.
    for (const std::string& topic : stale_topics) {
      absl::StatusOr<int> count = PartitionCount(lane, topic, deadline, /*force=*/true);
      if (!count.ok()) return count.status();
    }
    absl::SleepFor(std::min(kRetryBackoff * attempt, (deadline - absl::Now()) / 4));
    remaining = std::move(failed);
  }
}

absl::StatusOr<GroupOffsets> RdkafkaOffsetReader::Impl::ReadOffsets(const OffsetQuery& query,
                                                                    absl::Time deadline) {
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

  std::map<std::string, int> counts;
  std::optional<AdminCall> committed_call;
  absl::flat_hash_map<TopicPartition, int64_t> committed;
  if (!topics.empty()) {
    for (const std::string& topic : topics) {
      absl::StatusOr<int> count = PartitionCount(lane, topic, deadline, /*force=*/false);
      if (!count.ok()) return count.status();
      counts[topic] = *count;
    }
    std::vector<TopicPartition> all;
    for (const auto& [topic, count] : counts) {
      for (int p = 0; p < count; ++p) all.push_back(TopicPartition{topic, p});
    }
    // Runs while the ListOffsets lookups below are in flight.
    if (absl::Status s = EnsureReachable(
            lane, deadline, absl::StrCat(context, ": topic ", absl::StrJoin(topics, ", ")));
        !s.ok()) {
      return s;
    }
    committed_call = StartCommitted(lane, query.group, &all, deadline);
  } else {
    if (absl::Status s = EnsureReachable(lane, deadline, context); !s.ok()) return s;
    absl::StatusOr<absl::flat_hash_map<TopicPartition, int64_t>> all =
        FetchCommitted(lane, query.group, nullptr,
                       StartCommitted(lane, query.group, nullptr, deadline), deadline, context);
    if (!all.ok()) return all.status();
    committed = *std::move(all);
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
      absl::StatusOr<int> count = PartitionCount(lane, topic, deadline, /*force=*/false);
      // Commits made before partitions were added: our cached count is stale.
      if (count.ok() && *count <= max) count = PartitionCount(lane, topic, deadline, true);
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
  }

  std::vector<TopicPartition> all;
  for (const auto& [topic, count] : counts) {
    for (int p = 0; p < count; ++p) all.push_back(TopicPartition{topic, p});
  }
  absl::flat_hash_map<TopicPartition, int64_t> end;
  absl::flat_hash_map<TopicPartition, int64_t> log_start;
  if (absl::Status s = LookupOffsets(lane, all, deadline, context, end, log_start); !s.ok()) {
    return s;
  }
  if (committed_call.has_value()) {
    // `all` lists the same partitions the call was started with (both come from `counts`).
    absl::StatusOr<absl::flat_hash_map<TopicPartition, int64_t>> fetched =
        FetchCommitted(lane, query.group, &all, *std::move(committed_call), deadline, context);
    if (!fetched.ok()) return fetched.status();
    committed = *std::move(fetched);
  }

  GroupOffsets result;
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
  return result;
}

RdkafkaOffsetReaderStats RdkafkaOffsetReader::Impl::Stats() const {
  RdkafkaOffsetReaderStats stats;
  stats.read_offsets_calls = counters_.read_offsets_calls.load();
  stats.metadata_requests = counters_.metadata_requests.load();
  stats.list_offsets_calls = counters_.list_offsets_calls.load();
  stats.list_offsets_partitions = counters_.list_offsets_partitions.load();
  stats.list_offsets_lookups = counters_.list_offsets_lookups.load();
  stats.offset_fetch_requests = counters_.offset_fetch_requests.load();
  stats.clients = counters_.clients.load();
  absl::MutexLock lock(&lanes_mu_);
  for (const auto& lane : lanes_) {
    if (lane != nullptr) stats.broker_requests += lane->client->broker_requests();
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

RdkafkaOffsetReaderStats RdkafkaOffsetReader::Stats() const { return impl_->Stats(); }

}  // namespace klag::kafka
