#include "kafka/rdkafka_topic_metadata.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "kafka/rdkafka_status.h"

namespace klag::kafka::rdkafka {
namespace {

// A topic this reader has seen exist that a Metadata answer calls unknown is asked about once
// more after this pause before it is reported as not found: a broker that is (re)starting or
// has not caught up may briefly miss it.
constexpr absl::Duration kAbsenceRecheckDelay = absl::Milliseconds(300);

}  // namespace

TopicMetadataCache::TopicMetadataCache(std::string name, absl::Duration max_age,
                                       absl::Duration probe, std::atomic<int64_t>& requests)
    : name_(std::move(name)), max_age_(max_age), probe_(probe), requests_(requests) {
  absl::MutexLock lock(&mu_);
  last_sweep_ = absl::Now();
}

absl::StatusOr<int> TopicMetadataCache::Fetch(Client& client, const std::string& topic,
                                              absl::Time deadline) {
  const std::string context = absl::StrCat("cluster ", name_, ": topic ", topic, ": Metadata");
  if (RemainingMs(deadline) <= 0) return client.TimeoutStatus(context);
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(client.rk(), topic.c_str(), nullptr);
  if (rkt == nullptr) return RdkafkaStatus(rd_kafka_last_error(), context);
  absl::StatusOr<MetadataPtr> metadata = client.Metadata(rkt, deadline, probe_, context, requests_);
  rd_kafka_topic_destroy(rkt);
  if (!metadata.ok()) return metadata.status();
  for (int i = 0; i < (*metadata)->topic_cnt; ++i) {
    const rd_kafka_metadata_topic_t& t = (*metadata)->topics[i];
    if (topic != t.topic) continue;
    // The one place that says "does not exist": a broker answered a Metadata request for the
    // topic with UNKNOWN_TOPIC_OR_PART (PartitionCount asks twice for a topic it saw before).
    if (t.err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
      return absl::NotFoundError(
          absl::StrCat("cluster ", name_, ": topic ", topic, " does not exist"));
    }
    if (t.err != RD_KAFKA_RESP_ERR_NO_ERROR) return client.ErrorStatus(t.err, context);
    if (t.partition_cnt <= 0) {
      return absl::UnavailableError(absl::StrCat(context, ": topic has no partitions yet"));
    }
    return t.partition_cnt;
  }
  // An answer without the topic proves nothing about it.
  return absl::UnavailableError(absl::StrCat(context, ": the answer does not mention the topic"));
}

std::optional<int> TopicMetadataCache::CachedPartitionCount(const std::string& topic) {
  absl::MutexLock lock(&mu_);
  auto it = topics_.find(topic);
  if (it == topics_.end() || !it->second.valid) return std::nullopt;
  const absl::Time now = absl::Now();
  if (now - it->second.fetched >= max_age_) return std::nullopt;
  it->second.last_used = now;
  return it->second.partitions;
}

absl::StatusOr<int> TopicMetadataCache::PartitionCount(Client& client, const std::string& topic,
                                                       absl::Time deadline, bool force) {
  absl::MutexLock lock(&mu_);
  const absl::Time now = absl::Now();
  // Forget topics nobody asked about for a while (deleted topics, removed triggers).
  const absl::Duration idle_limit = std::max(absl::Minutes(10), 10 * max_age_);
  if (now - last_sweep_ > max_age_) {
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
    if (!force && entry.valid && absl::Now() - entry.fetched < max_age_) {
      return entry.partitions;
    }
    if (entry.fetching) {
      waited_for = entry.generation;
      auto fetched = [this, &topic]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        auto it = topics_.find(topic);
        return it == topics_.end() || !it->second.fetching;
      };
      if (!mu_.AwaitWithDeadline(absl::Condition(&fetched), deadline)) {
        return client.TimeoutStatus(
            absl::StrCat("cluster ", name_, ": topic ", topic, ": Metadata"));
      }
      continue;
    }
    entry.fetching = true;
    const bool existed = entry.existed;
    mu_.Unlock();
    absl::StatusOr<int> count = Fetch(client, topic, deadline);
    if (absl::IsNotFound(count.status()) && existed) {
      // It existed when we last asked: a deleted topic, or a broker that is (re)starting and
      // misses it for a moment. Only a second answer, a little later, confirms the absence.
      if (deadline - absl::Now() > 2 * kAbsenceRecheckDelay) {
        absl::SleepFor(kAbsenceRecheckDelay);
        count = Fetch(client, topic, deadline);
      } else {
        count = absl::UnavailableError(absl::StrCat(
            "cluster ", name_, ": topic ", topic,
            ": Metadata: the broker no longer lists the topic; not confirmed yet (transient)"));
      }
    }
    mu_.Lock();
    TopicEntry& done = topics_[topic];  // node-based map: `entry` is still valid; looked up
                                        // again for clarity
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

void TopicMetadataCache::Invalidate(const std::string& topic) {
  absl::MutexLock lock(&mu_);
  auto it = topics_.find(topic);
  if (it != topics_.end()) it->second.valid = false;
}

}  // namespace klag::kafka::rdkafka
