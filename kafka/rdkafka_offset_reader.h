// The librdkafka-backed kafka::OffsetReader: one instance per cluster (bootstrap servers +
// credentials) serves every trigger on that cluster from long-lived clients.
//
//   absl::StatusOr<std::unique_ptr<kafka::RdkafkaOffsetReader>> reader =
//       kafka::RdkafkaOffsetReader::Create(connection, {.metadata_max_age = absl::Seconds(30)});
//   absl::StatusOr<kafka::GroupOffsets> offsets = (*reader)->ReadOffsets(
//       {.group = "billing", .topics = {"invoices"}}, absl::Now() + absl::Seconds(5));
//   kafka::RdkafkaOffsetReaderStats stats = (*reader)->Stats();  // Kafka requests caused so far
//
// How one ReadOffsets is answered (everything bounded by its deadline):
//   - a cluster known to be down (every connection refused, names not resolving, all brokers
//     down) answers kUnavailable after one probe of at most `unreachable_probe`, not at the
//     deadline, and calls arriving while a probe waits or within `unreachable_probe` of a failed
//     one answer at once; the first broker that answers again ends that (rdkafka_client.h);
//   - partitions: per-topic metadata cache, refreshed after `metadata_max_age` and at once after
//     "unknown topic"/"not leader"-style errors (rdkafka_topic_metadata.h);
//   - committed offsets, with committed_offsets_source = kOffsetsTopic: from the reader's
//     follower of __consumer_offsets once it has read that topic up to end offsets listed at
//     most `end_offsets_max_age` before the call (GroupOffsets::committed_read_at is that
//     ListOffsets' send time); otherwise (the default, and the follower's fallback):
//   - committed offsets: admin ListConsumerGroupOffsets (one OffsetFetch for the group), started
//     first and awaited last. Read for this call by default: concurrent calls for the same
//     (group, partitions), whatever their isolation level, share one OffsetFetch only when it was
//     sent after they arrived (with `committed_offsets_max_age`, at most that long before,
//     answered or in flight); GroupOffsets::committed_read_at is its send time
//     (rdkafka_committed_reads.h);
//   - end and log-start offsets: a snapshot per isolation level and partition shared by every
//     caller (end_offsets_cache.h), answered from when every needed value comes from a ListOffsets
//     sent at most `end_offsets_max_age` before the call; otherwise refreshed by
//     rd_kafka_offsets_for_times with RD_KAFKA_OFFSET_END and RD_KAFKA_OFFSET_BEGINNING (one
//     ListOffsets per leader broker each), which concurrent callers share (one refresh in flight
//     per isolation level; it also refreshes the other stale partitions of the same topics).
//     GroupOffsets::end_offsets_read_at is the send time of the oldest ListOffsets behind the
//     answer. So Kafka requests grow with groups, brokers and topics, not with triggers;
//   - clients: one reads committed offsets (admin requests only: it never learns a topic's
//     partitions), and one per isolation level asks for topic metadata and end offsets. Kept
//     apart because a consumer-type librdkafka client that knows partitions pays for them on
//     every request: its broker thread visits every known partition on each wake-up and it keeps
//     a timer per partition (with statistics on); the committed reads (one OffsetFetch per group
//     and poll) are most of the requests, the end-offset refreshes few (bench/README.md);
//   - unconsumed_since: every refresh also adds (end offset, its ListOffsets send time) to a
//     bounded per-partition history (end_offset_history.h); once the committed offsets are
//     known, the time the end moved past max(committed, log start) is interpolated from it.
//
// This header does not include librdkafka.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "kafka/connection_config.h"
#include "kafka/offsets.h"
#include "kafka/offsets_topic.h"

namespace klag::kafka {

// Where committed offsets come from.
enum class CommittedOffsetsSource {
  // An OffsetFetch to the group's coordinator (admin ListConsumerGroupOffsets) per read.
  kOffsetFetch,
  // The reader's own follower of `__consumer_offsets` (rdkafka_offsets_topic.h, the way Burrow
  // reads commits): no request per group; commits at most `end_offsets_max_age` old. The
  // credentials need Describe and Read on that topic. Reads fall back to OffsetFetch while the
  // follower loads, when it cannot catch up within half the time left, or once it stopped (no
  // permission, more than `offsets_topic_max_entries` commits).
  kOffsetsTopic,
};

struct RdkafkaOffsetReaderOptions {
  // How long a topic's partition count is trusted before it is looked up again (new partitions
  // appear after at most this long).
  absl::Duration metadata_max_age = absl::Seconds(30);
  // librdkafka client.id (shows up in broker logs and quotas).
  std::string client_id = "klag-scaler";
  // How old end and log-start offsets may be when returned (measured from the send time of the
  // ListOffsets that read them). Zero: every call waits for a refresh of its own or one that
  // started after it arrived.
  absl::Duration end_offsets_max_age = absl::Seconds(1);
  // How old committed offsets may be when returned (measured from the send time of the
  // OffsetFetch that read them, back from the call's arrival). Zero (the default): always read
  // for the call (shared only with calls that arrived before it was sent). Above zero, calls for
  // the same group and partitions within this age share one OffsetFetch, so S ScaledJobs on one
  // group cost one OffsetFetch per max age instead of S; the lag they see may then miss commits
  // made within that age (it overstates lag by at most that much consumption).
  absl::Duration committed_offsets_max_age = absl::ZeroDuration();
  // Where committed offsets come from (see CommittedOffsetsSource); with kOffsetsTopic,
  // committed_offsets_max_age applies to the fallback OffsetFetch only.
  CommittedOffsetsSource committed_offsets_source = CommittedOffsetsSource::kOffsetFetch;
  // kOffsetsTopic: most (group, topic, partition) commits the follower holds (about 100 bytes
  // each); a cluster with more falls back to OffsetFetch.
  int64_t offsets_topic_max_entries = 200'000;
  // kOffsetsTopic: a budget of commits shared by the followers of every reader given it (the
  // process-wide bound); null: none.
  std::shared_ptr<CommitBudget> offsets_topic_budget;
  // How long a snapshot refresh waits after its first caller for others to join it. Zero: no
  // waiting (callers still share the next refresh while one is in flight).
  absl::Duration list_offsets_window = absl::ZeroDuration();
  // While every broker is known unreachable, how long a call waits for a connection before it
  // answers kUnavailable (the deadline, when sooner, wins).
  absl::Duration unreachable_probe = absl::Milliseconds(500);
  // librdkafka statistics interval: broker connection states (for telling "unreachable" from
  // "slow") and request counters. Zero disables statistics; reachability then rests on the
  // error callback alone.
  absl::Duration statistics_interval = absl::Seconds(1);
  // Points of (end offset, time) history kept per partition and isolation level, from which
  // PartitionOffsets::unconsumed_since is estimated (16 bytes a point, allocated as the end
  // offset moves: a partition whose end never moves holds 2). Zero: no history,
  // unconsumed_since is always nullopt. Values 1 and 2 mean 3.
  int lag_history_points = 32;
  // Name used in error messages and logs; empty: the bootstrap servers. Must hold no secret.
  std::string cluster_name;
  // Extra librdkafka properties, applied after klag's own (so they can override them, e.g.
  // {"socket.timeout.ms", "10000"}). Values are never echoed in errors or logs.
  RdkafkaProperties extra_properties;
};

// Counters since Create(); a plain snapshot. "calls" are librdkafka API calls this reader made,
// each of which sends the Kafka requests named in the comment.
struct RdkafkaOffsetReaderStats {
  int64_t read_offsets_calls = 0;
  // rd_kafka_metadata calls: one Metadata request each.
  int64_t metadata_requests = 0;
  // rd_kafka_offsets_for_times calls: one ListOffsets request per leader broker each.
  int64_t list_offsets_calls = 0;
  // Partitions asked for in those calls (summed over calls).
  int64_t list_offsets_partitions = 0;
  // ListOffsets lookups that callers asked for (two per ReadOffsets: end and log start, plus
  // retries); lookups / list_offsets_calls is the coalescing factor (snapshot answers included).
  int64_t list_offsets_lookups = 0;
  // Lookups answered from the end/log-start snapshot alone (no ListOffsets waited for).
  int64_t snapshot_answers = 0;
  // Snapshot refreshes: two rd_kafka_offsets_for_times calls each (end and log start).
  int64_t snapshot_refreshes = 0;
  // Partitions in the snapshots now (all isolation levels).
  int64_t snapshot_partitions = 0;
  // End offset histories now (all isolation levels): points held and bytes of point storage.
  int64_t lag_history_points = 0;
  int64_t lag_history_bytes = 0;
  // ListConsumerGroupOffsets calls: one OffsetFetch each (plus a FindCoordinator when librdkafka
  // has no cached coordinator for the group).
  int64_t offset_fetch_requests = 0;
  // ReadOffsets calls that shared another call's ListConsumerGroupOffsets (sent after they
  // arrived) instead of sending their own.
  int64_t offset_fetch_shared = 0;
  // kOffsetsTopic: reads answered by the __consumer_offsets follower, reads that fell back to
  // OffsetFetch (loading, behind, or stopped), and the commits it holds now.
  int64_t offsets_topic_answers = 0;
  int64_t offsets_topic_fallbacks = 0;
  int64_t offsets_topic_entries = 0;
  // Calls answered kUnavailable by the reachability probe (the cluster known down).
  int64_t unreachable_probe_failures = 0;
  // Of the Metadata calls made while the cluster was known down: those that waited for a
  // connection (one at a time per client), and those answered at once because a probe was
  // waiting or had just failed (rdkafka_client.h).
  int64_t unreachable_probes = 0;
  int64_t unreachable_fast_failures = 0;
  // Requests this reader's librdkafka clients sent to brokers (every API, including metadata
  // refreshes and connection set-up), from librdkafka's statistics ("tx" per broker), as of the
  // last statistics event; 0 when statistics are off.
  int64_t broker_requests = 0;
  // librdkafka clients created so far (one for committed offsets, one per isolation level).
  int clients = 0;
};

class RdkafkaOffsetReader : public OffsetReader {
 public:
  // Validates the configuration (every librdkafka property is checked) without connecting;
  // clients are created on first use (committed offsets; one per isolation level). Errors:
  // kInvalidArgument naming the bad setting (never its value).
  static absl::StatusOr<std::unique_ptr<RdkafkaOffsetReader>> Create(
      const ConnectionConfig& config, const RdkafkaOffsetReaderOptions& options = {});

  // Stops the clients. No ReadOffsets call may be running.
  ~RdkafkaOffsetReader() override;
  RdkafkaOffsetReader(const RdkafkaOffsetReader&) = delete;
  RdkafkaOffsetReader& operator=(const RdkafkaOffsetReader&) = delete;

  // See OffsetReader. Thread-safe; returns by `deadline` (plus scheduling noise); end and
  // log-start offsets may be up to `end_offsets_max_age` old (end_offsets_read_at says how old),
  // committed offsets are read after the call arrived (committed_read_at). Error messages
  // name the cluster, the group and/or topic, and librdkafka's error. With no topics given,
  // topics come from the group's committed offsets; a topic that has commits but no longer
  // exists is skipped, and a group with no commits (on existing topics) is kNotFound. A timeout
  // is kUnavailable when no broker of the cluster is reachable (connections refused, failing or
  // not resolving), otherwise kDeadlineExceeded; failed authentication is kUnauthenticated.
  absl::StatusOr<GroupOffsets> ReadOffsets(const OffsetQuery& query, absl::Time deadline) override;

  // See OffsetReader. Answers only with --committed-offsets-source offsets-topic, for a query
  // naming its topics, once the end-offset clients it reads from (the query's isolation level
  // and read_committed, the follower's) and the follower exist, the cluster is reachable, the
  // partition counts are cached, every end offset is in the snapshot within
  // end_offsets_max_age, and the follower has read __consumer_offsets up to end offsets listed
  // within it: the freshness ReadOffsets gives in that mode. Creates nothing, sends nothing and
  // starts no refresh (EndOffsetsCache::Peek).
  std::optional<GroupOffsets> TryReadOffsets(const OffsetQuery& query) override;

  // Counters so far. Thread-safe.
  RdkafkaOffsetReaderStats Stats() const;

  class Impl;

 private:
  explicit RdkafkaOffsetReader(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace klag::kafka
