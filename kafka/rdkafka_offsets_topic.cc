#include "kafka/rdkafka_offsets_topic.h"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <array>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/thread_name.h"
#include "kafka/rdkafka_status.h"
#include "spdlog/spdlog.h"

namespace klag::kafka::rdkafka {
namespace {

// Records handed over per rd_kafka_consume_batch_queue call, and how long one waits.
constexpr size_t kBatch = 512;
constexpr int kPollMs = 200;
constexpr absl::Duration kMetadataTimeout = absl::Seconds(5);
constexpr absl::Duration kMetadataProbe = absl::Milliseconds(500);

}  // namespace

absl::StatusOr<std::unique_ptr<OffsetsTopicFollower>> OffsetsTopicFollower::Start(
    const RdkafkaProperties& properties, const Options& options, EndsFn ends) {
  RdkafkaProperties props = properties;
  // Later settings win (librdkafka applies them in order).
  props.push_back({"isolation.level", "read_committed"});
  props.push_back({"enable.partition.eof", "true"});
  props.push_back({"enable.auto.commit", "false"});
  // Should the position ever fall out of range, read again from the start rather than skip to
  // the end (librdkafka's default), which would silently lose the commits in between.
  props.push_back({"auto.offset.reset", "earliest"});
  // Prefetch is per partition with the simple consumer: keep it small (the topic has 50
  // partitions by default; steady-state traffic is a few commits per second per group). A fetch
  // that fills the queue past these thresholds postpones the partition's next fetch by
  // fetch.queue.backoff.ms (1 s by default in librdkafka 2.8): loading a topic of 12,000
  // commits took 2.8 s with the default, hence a short one.
  props.push_back({"queued.min.messages", "10000"});
  props.push_back({"queued.max.messages.kbytes", "1024"});
  props.push_back({"fetch.message.max.bytes", "262144"});
  props.push_back({"fetch.queue.backoff.ms", "10"});
  props.push_back({"statistics.interval.ms",
                   absl::StrCat(absl::ToInt64Milliseconds(options.statistics_interval))});
  absl::StatusOr<std::unique_ptr<Client>> client =
      Client::Create(props, options.statistics_interval > absl::ZeroDuration());
  if (!client.ok()) {
    return absl::Status(client.status().code(),
                        absl::StrCat("cluster ", options.name, ": ", kOffsetsTopic,
                                     " follower: ", client.status().message()));
  }
  std::unique_ptr<OffsetsTopicFollower> follower(
      new OffsetsTopicFollower(options, *std::move(client), std::move(ends)));
  follower->reader_ = std::thread([f = follower.get()] {
    NameThisThread("klag-offsets-tp");
    f->Run();
  });
  return follower;
}

OffsetsTopicFollower::OffsetsTopicFollower(Options options, std::unique_ptr<Client> client,
                                           EndsFn ends)
    : options_(std::move(options)),
      client_(std::move(client)),
      ends_(std::move(ends)),
      table_({.max_entries = options_.max_entries, .budget = options_.budget}),
      started_at_(absl::Now()) {}

OffsetsTopicFollower::~OffsetsTopicFollower() {
  stop_.store(true);
  if (reader_.joinable()) reader_.join();
  if (topic_ != nullptr) {
    int32_t count = 0;
    {
      absl::MutexLock lock(&mu_);
      count = PartitionCountLocked();
    }
    for (int32_t p = 0; p < count; ++p) rd_kafka_consume_stop(topic_, p);
    rd_kafka_topic_destroy(topic_);
  }
  if (queue_ != nullptr) rd_kafka_queue_destroy(queue_);
  client_.reset();
}

void OffsetsTopicFollower::Fail(absl::Status reason) {
  spdlog::warn("cluster {}: stopped following {}; committed offsets come from OffsetFetch: {}",
               options_.name, std::string(kOffsetsTopic), std::string(reason.message()));
  absl::MutexLock lock(&mu_);
  failed_ = std::move(reason);
  table_.Clear();
  stop_.store(true);
}

bool OffsetsTopicFollower::StartReading() {
  const std::string context = absl::StrCat("cluster ", options_.name, ": topic ", kOffsetsTopic);
  rd_kafka_topic_t* topic = rd_kafka_topic_new(client_->rk(), kOffsetsTopic.data(), nullptr);
  absl::StatusOr<MetadataPtr> metadata = client_->Metadata(
      topic, absl::Now() + kMetadataTimeout, kMetadataProbe, context, metadata_requests_);
  int32_t count = 0;
  rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
  if (metadata.ok()) {
    for (int i = 0; i < (*metadata)->topic_cnt; ++i) {
      const rd_kafka_metadata_topic_t& t = (*metadata)->topics[i];
      if (kOffsetsTopic != t.topic) continue;
      err = t.err;
      count = t.partition_cnt;
    }
  }
  if (err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED) {
    rd_kafka_topic_destroy(topic);
    Fail(RdkafkaStatus(err, context));
    return false;
  }
  if (!metadata.ok() || err != RD_KAFKA_RESP_ERR_NO_ERROR || count <= 0) {
    // No group has committed on this cluster yet (the broker creates the topic on the first
    // FindCoordinator), or the cluster is not reachable: try again later.
    spdlog::debug("{}: not readable yet ({}); trying again in {}", context,
                  metadata.ok() ? std::string(rd_kafka_err2str(err))
                                : std::string(metadata.status().message()),
                  absl::FormatDuration(options_.retry));
    rd_kafka_topic_destroy(topic);
    return false;
  }
  queue_ = rd_kafka_queue_new(client_->rk());
  topic_ = topic;
  auto partitions = std::make_shared<std::vector<TopicPartition>>();
  partitions->reserve(count);
  for (int32_t p = 0; p < count; ++p) {
    partitions->push_back(TopicPartition{std::string(kOffsetsTopic), p});
  }
  {
    absl::MutexLock lock(&mu_);
    partitions_ = std::move(partitions);
    reached_.assign(count, 0);
    loaded_.assign(count, false);
  }
  for (int32_t p = 0; p < count; ++p) {
    if (rd_kafka_consume_start_queue(topic_, p, RD_KAFKA_OFFSET_BEGINNING, queue_) == -1) {
      Fail(RdkafkaStatus(rd_kafka_last_error(), absl::StrCat(context, " partition ", p)));
      return false;
    }
  }
  spdlog::info("{}: following {} partitions", context, count);
  return true;
}

void OffsetsTopicFollower::Run() {
  absl::Time next_try = absl::InfinitePast();
  std::array<rd_kafka_message_t*, kBatch> batch{};
  while (!stop_.load()) {
    if (topic_ == nullptr) {
      if (absl::Now() < next_try) {
        absl::SleepFor(absl::Milliseconds(kPollMs));
        continue;
      }
      if (!StartReading()) next_try = absl::Now() + options_.retry;
      continue;
    }
    const ssize_t n = rd_kafka_consume_batch_queue(queue_, kPollMs, batch.data(), batch.size());
    if (n <= 0) continue;
    std::optional<absl::Status> fail;
    {
      absl::MutexLock lock(&mu_);
      for (ssize_t i = 0; i < n; ++i) {
        const rd_kafka_message_t* m = batch[i];
        const int32_t p = m->partition;
        if (p < 0 || p >= PartitionCountLocked()) continue;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
          reached_[p] = std::max(reached_[p], m->offset);
          if (!loaded_[p]) {
            loaded_[p] = true;
            if (++loaded_count_ == PartitionCountLocked()) {
              spdlog::info("cluster {}: read {} to its end in {}: {} commits of {} groups",
                           options_.name, std::string(kOffsetsTopic),
                           absl::FormatDuration(
                               absl::Trunc(absl::Now() - started_at_, absl::Milliseconds(1))),
                           table_.entries(), table_.groups());
            }
          }
          continue;
        }
        if (m->err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED) {
          fail = RdkafkaStatus(m->err,
                               absl::StrCat("cluster ", options_.name, ": topic ", kOffsetsTopic));
          break;
        }
        if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
          // librdkafka retries fetch errors on its own (leader moves, broker restarts).
          spdlog::debug("cluster {}: {} partition {}: {}", options_.name,
                        std::string(kOffsetsTopic), p, rd_kafka_err2str(m->err));
          continue;
        }
        reached_[p] = std::max(reached_[p], m->offset + 1);
        ++records_;
        if (m->key == nullptr) {
          ++malformed_;
          continue;
        }
        std::optional<absl::string_view> value;
        if (m->payload != nullptr) {
          value = absl::string_view(static_cast<const char*>(m->payload), m->len);
        }
        absl::StatusOr<std::optional<OffsetCommitRecord>> record = ParseOffsetsTopicRecord(
            absl::string_view(static_cast<const char*>(m->key), m->key_len), value);
        if (!record.ok()) {
          if (malformed_++ == 0) {
            spdlog::warn("cluster {}: skipping unreadable records of {} (first: {})", options_.name,
                         std::string(kOffsetsTopic), std::string(record.status().message()));
          }
          continue;
        }
        if (!record->has_value()) continue;
        if (!table_.Apply(**record)) {
          fail = absl::ResourceExhaustedError(
              table_.entries() >= options_.max_entries
                  ? absl::StrCat("cluster ", options_.name, ": ", kOffsetsTopic,
                                 " holds more than ", options_.max_entries,
                                 " committed offsets (--offsets-topic-max-entries); reading it "
                                 "would hold too much memory")
                  : absl::StrCat("cluster ", options_.name, ": the ", options_.budget->max(),
                                 " committed offsets all clusters' followers may hold "
                                 "(--offsets-topic-max-entries-total) are in use"));
          break;
        }
      }
    }
    for (ssize_t i = 0; i < n; ++i) rd_kafka_message_destroy(batch[i]);
    if (fail.has_value()) Fail(*std::move(fail));
  }
}

absl::StatusOr<absl::flat_hash_map<TopicPartition, int64_t>> OffsetsTopicFollower::Committed(
    const std::string& group, const std::vector<TopicPartition>* partitions, absl::Time deadline,
    absl::Time& read_at) {
  std::shared_ptr<const std::vector<TopicPartition>> topic_partitions;
  {
    absl::MutexLock lock(&mu_);
    if (!failed_.ok()) return absl::FailedPreconditionError(failed_.message());
    if (partitions_ == nullptr || loaded_count_ < PartitionCountLocked()) {
      return absl::UnavailableError(
          absl::StrCat("cluster ", options_.name, ": ", kOffsetsTopic, " is still being read"));
    }
    topic_partitions = partitions_;
  }
  const std::string context = absl::StrCat("cluster ", options_.name, ": topic ", kOffsetsTopic);
  EndOffsetsCache::Answer ends = ends_(*topic_partitions, deadline);
  if (ends.timed_out) return absl::DeadlineExceededError(absl::StrCat(context, ": ListOffsets"));
  absl::StatusOr<std::vector<int64_t>> end_or = EndsOf(*topic_partitions, ends);
  if (!end_or.ok()) return end_or.status();
  const std::vector<int64_t>& end = *end_or;
  absl::MutexLock lock(&mu_);
  auto caught_up = [this, &end]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !failed_.ok() || !FirstBehindLocked(end).has_value();
  };
  if (!mu_.AwaitWithDeadline(absl::Condition(&caught_up), deadline)) {
    if (const std::optional<size_t> p = FirstBehindLocked(end); p.has_value()) {
      return absl::DeadlineExceededError(absl::StrCat(context, " partition ", *p,
                                                      ": read up to offset ", reached_[*p], " of ",
                                                      end[*p], " by the deadline"));
    }
  }
  if (!failed_.ok()) return absl::FailedPreconditionError(failed_.message());
  read_at = ends.read_at;
  return table_.Group(group, partitions);
}

absl::StatusOr<std::vector<int64_t>> OffsetsTopicFollower::EndsOf(
    const std::vector<TopicPartition>& topic_partitions,
    const EndOffsetsCache::Answer& ends) const {
  std::vector<int64_t> end(topic_partitions.size());
  for (size_t p = 0; p < topic_partitions.size(); ++p) {
    auto it = ends.partitions.find(topic_partitions[p]);
    const int error = it == ends.partitions.end() ? ends.error : it->second.error;
    if (error != 0 || it == ends.partitions.end()) {
      return RdkafkaTransientStatus(static_cast<rd_kafka_resp_err_t>(error),
                                    absl::StrCat("cluster ", options_.name, ": topic ",
                                                 kOffsetsTopic, " partition ", p, ": ListOffsets"));
    }
    end[p] = it->second.end;
  }
  return end;
}

std::optional<size_t> OffsetsTopicFollower::FirstBehindLocked(
    const std::vector<int64_t>& end) const {
  for (size_t p = 0; p < end.size() && p < reached_.size(); ++p) {
    if (reached_[p] < end[p]) return p;
  }
  return std::nullopt;
}

std::optional<absl::flat_hash_map<TopicPartition, int64_t>> OffsetsTopicFollower::TryCommitted(
    const std::string& group, const std::vector<TopicPartition>* partitions, const PeekFn& peek,
    absl::Time& read_at) {
  std::shared_ptr<const std::vector<TopicPartition>> topic_partitions;
  {
    absl::MutexLock lock(&mu_);
    if (!failed_.ok() || partitions_ == nullptr || loaded_count_ < PartitionCountLocked()) {
      return std::nullopt;
    }
    topic_partitions = partitions_;
  }
  std::optional<EndOffsetsCache::Answer> ends = peek(*topic_partitions);
  if (!ends.has_value()) return std::nullopt;
  absl::StatusOr<std::vector<int64_t>> end = EndsOf(*topic_partitions, *ends);
  if (!end.ok()) return std::nullopt;
  absl::MutexLock lock(&mu_);
  if (!failed_.ok() || FirstBehindLocked(*end).has_value()) return std::nullopt;
  read_at = ends->read_at;
  return table_.Group(group, partitions);
}

OffsetsTopicFollower::Stats OffsetsTopicFollower::GetStats() const {
  Stats stats;
  stats.broker_requests = client_->broker_requests();
  absl::MutexLock lock(&mu_);
  stats.ready = partitions_ != nullptr && loaded_count_ == PartitionCountLocked() && failed_.ok();
  stats.failed = !failed_.ok();
  stats.records = records_;
  stats.malformed = malformed_;
  stats.entries = table_.entries();
  stats.groups = table_.groups();
  return stats;
}

}  // namespace klag::kafka::rdkafka
