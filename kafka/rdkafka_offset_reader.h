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
//   - partitions: per-topic metadata cache, refreshed after `metadata_max_age` and at once after
//     "unknown topic"/"not leader"-style errors;
//   - committed offsets: admin ListConsumerGroupOffsets (one OffsetFetch for the group), started
//     first and awaited last;
//   - end and log-start offsets: rd_kafka_offsets_for_times with RD_KAFKA_OFFSET_END /
//     RD_KAFKA_OFFSET_BEGINNING (one ListOffsets per leader broker). Concurrent callers'
//     partitions are coalesced into one call per `list_offsets_window` (and never more than one
//     call in flight per kind and isolation level), so Kafka requests grow with brokers and
//     groups, not with the number of triggers.
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

namespace klag::kafka {

struct RdkafkaOffsetReaderOptions {
  // How long a topic's partition count is trusted before it is looked up again (new partitions
  // appear after at most this long).
  absl::Duration metadata_max_age = absl::Seconds(30);
  // librdkafka client.id (shows up in broker logs and quotas).
  std::string client_id = "klag-scaler";
  // How long the first caller of a ListOffsets batch waits for others to join it. Zero: no
  // waiting (calls still coalesce while the previous call is in flight).
  absl::Duration list_offsets_window = absl::Milliseconds(5);
  // librdkafka statistics interval: broker connection states (for telling "unreachable" from
  // "slow") and request counters. Zero disables statistics; reachability then rests on the
  // error callback alone.
  absl::Duration statistics_interval = absl::Seconds(1);
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
  // retries); lookups / list_offsets_calls is the coalescing factor.
  int64_t list_offsets_lookups = 0;
  // ListConsumerGroupOffsets calls: one OffsetFetch each (plus a FindCoordinator when librdkafka
  // has no cached coordinator for the group).
  int64_t offset_fetch_requests = 0;
  // Requests this reader's librdkafka clients sent to brokers (every API, including metadata
  // refreshes and connection set-up), from librdkafka's statistics ("tx" per broker), as of the
  // last statistics event; 0 when statistics are off.
  int64_t broker_requests = 0;
  // librdkafka clients created so far (at most one per isolation level).
  int clients = 0;
};

class RdkafkaOffsetReader : public OffsetReader {
 public:
  // Validates the configuration (every librdkafka property is checked) without connecting;
  // clients are created on first use, one per isolation level. Errors: kInvalidArgument naming
  // the bad setting (never its value).
  static absl::StatusOr<std::unique_ptr<RdkafkaOffsetReader>> Create(
      const ConnectionConfig& config, const RdkafkaOffsetReaderOptions& options = {});

  // Stops the clients. No ReadOffsets call may be running.
  ~RdkafkaOffsetReader() override;
  RdkafkaOffsetReader(const RdkafkaOffsetReader&) = delete;
  RdkafkaOffsetReader& operator=(const RdkafkaOffsetReader&) = delete;

  // See OffsetReader. Thread-safe; returns by `deadline` (plus scheduling noise). Error messages
  // name the cluster, the group and/or topic, and librdkafka's error. With no topics given,
  // topics come from the group's committed offsets; a topic that has commits but no longer
  // exists is skipped, and a group with no commits (on existing topics) is kNotFound. A timeout
  // is kUnavailable when no broker of the cluster is reachable (connections refused, failing or
  // not resolving), otherwise kDeadlineExceeded; failed authentication is kUnauthenticated.
  absl::StatusOr<GroupOffsets> ReadOffsets(const OffsetQuery& query, absl::Time deadline) override;

  // Counters so far. Thread-safe.
  RdkafkaOffsetReaderStats Stats() const;

  class Impl;

 private:
  explicit RdkafkaOffsetReader(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace klag::kafka
