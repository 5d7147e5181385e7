// Committed offsets of consumer groups, read with admin ListConsumerGroupOffsets (one OffsetFetch
// to the group's coordinator each) on a client of their own, and shared by the calls allowed to
// share them. Internal to RdkafkaOffsetReader (included only by rdkafka_*.cc files and tests).
//
//   rdkafka::CommittedReads reads(*std::move(client), {.name = "prod"});
//   absl::StatusOr<std::unique_ptr<rdkafka::CommittedReads::Read>> read = reads.Begin(
//       "billing", &partitions, /*arrived=*/now, deadline, "cluster prod: group billing");
//   ...  // the OffsetFetch is in flight: look up end offsets meanwhile
//   absl::Time read_at;  // send time of the OffsetFetch that answered
//   absl::StatusOr<rdkafka::CommittedOffsets> committed = (*read)->Finish(deadline, read_at);
//
// Sharing: a read is keyed by its group and the partitions asked for (the isolation level plays
// no part: an OffsetFetch does not depend on it). A call joins the read of its key that was sent
// at or after it arrived, less `max_age` (zero, the default: only a read sent after the call
// arrived, in flight; above zero, also an answered and successful one sent within max_age), or
// sends its own, which later calls then join. The caller that sent a read publishes its outcome
// (a Read destroyed unfinished publishes "abandoned"); a joiner whose sender gave up (aborted, or
// timed out or unavailable on a deadline earlier than the joiner's) reads on its own while its
// deadline allows.
//
// Coordinator moves: while the coordinator answers that it is moving or loading
// (NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE, COORDINATOR_LOAD_IN_PROGRESS), the read asks again
// up to three requests in all, backing off 100 ms, then 200 ms, while the deadline allows
// (librdkafka looks the coordinator up again after such an answer); the answer's read_at is the
// send time of the request that answered.
//
// Reachability: coordinator-routed admin requests get librdkafka's maximum timeout (librdkafka
// 2.0.2 must never time them out itself while the coordinator is unreachable:
// kMaxAdminRequestTimeout), so one is sent only after some broker answered since the client's
// latest bad connection news; when the news is bad, Begin first proves the cluster reachable with
// one Metadata probe (Client::EnsureReachable) or fails kUnavailable within `unreachable_probe`.
#pragma once

#include <librdkafka/rdkafka.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "kafka/offsets.h"
#include "kafka/rdkafka_client.h"
#include "kafka/rdkafka_handle.h"

namespace klag::kafka::rdkafka {

// A group's committed offsets: partitions without a commit are absent.
using CommittedOffsets = absl::flat_hash_map<TopicPartition, int64_t>;

class CommittedReads {
 public:
  struct Options {
    // Names the cluster in logs (no secret).
    std::string name;
    // How old a shared answer may be, back from a call's arrival (see above).
    absl::Duration max_age = absl::ZeroDuration();
    // How long a call waits for a connection while the client's news is bad.
    absl::Duration unreachable_probe = absl::Milliseconds(500);
  };

  struct Stats {
    // ListConsumerGroupOffsets calls: one OffsetFetch each (plus a FindCoordinator when librdkafka
    // has no cached coordinator for the group).
    int64_t requests = 0;
    // Calls that joined another call's read instead of sending their own.
    int64_t shared = 0;
    // Reachability probes (Metadata requests) sent, and calls they failed kUnavailable.
    int64_t probe_requests = 0;
    int64_t probe_failures = 0;
  };

  // One call's part in a shared read, from Begin to Finish.
  class Read {
   public:
    // Publishes "abandoned" for a read this call sent and never finished, so that the calls that
    // joined it read on their own.
    ~Read();
    Read(const Read&) = delete;
    Read& operator=(const Read&) = delete;

    // The committed offsets, and in `read_at` the send time of the OffsetFetch that answered.
    // Call once. Errors are mapped by Client::ErrorStatus and name `context` (Begin's).
    absl::StatusOr<CommittedOffsets> Finish(absl::Time deadline, absl::Time& read_at);

   private:
    friend class CommittedReads;
    struct Shared;
    Read(CommittedReads& reads, std::string key, std::string group,
         const std::vector<TopicPartition>* partitions, std::string context);

    CommittedReads& reads_;
    const std::string key_;
    const std::string group_;
    const std::vector<TopicPartition>* const partitions_;
    const std::string context_;
    std::shared_ptr<Shared> joined_;  // a read someone else sent
    std::shared_ptr<Shared> owned_;   // the read this call sent
    std::optional<AdminCall> call_;
    absl::Time sent_at_;
    bool published_ = false;
  };

  CommittedReads(std::unique_ptr<Client> client, Options options);
  ~CommittedReads();
  CommittedReads(const CommittedReads&) = delete;
  CommittedReads& operator=(const CommittedReads&) = delete;

  // Joins a read of `group`'s committed offsets for `partitions` (in (topic, partition) order;
  // null: every partition the group has commits for) that may answer a call which arrived at
  // `arrived`, or sends one. `partitions` must outlive the Read. Errors: the cluster known
  // unreachable (kUnavailable, kUnauthenticated) or `deadline` passed while proving it reachable.
  absl::StatusOr<std::unique_ptr<Read>> Begin(const std::string& group,
                                              const std::vector<TopicPartition>* partitions,
                                              absl::Time arrived, absl::Time deadline,
                                              absl::string_view context);

  Client& client() const { return *client_; }
  Stats GetStats() const;
  // Keys held for sharing now (in flight, or answered within about two max ages).
  size_t entries() const;

 private:
  AdminCall Start(const std::string& group, const std::vector<TopicPartition>* partitions,
                  absl::Time deadline);
  absl::StatusOr<CommittedOffsets> Await(AdminCall& call, absl::Time deadline,
                                         absl::string_view context, rd_kafka_resp_err_t& err);
  // Awaits `first` (sent at `sent_at`) and asks again while the coordinator moves (see above);
  // `sent_at` ends as the send time of the request that answered.
  absl::StatusOr<CommittedOffsets> Fetch(const std::string& group,
                                         const std::vector<TopicPartition>* partitions,
                                         AdminCall first, absl::Time deadline,
                                         absl::string_view context, absl::Time& sent_at);
  absl::Status BeginInto(Read& read, absl::Time arrived, absl::Time deadline);
  void Publish(const std::string& key, const std::shared_ptr<Read::Shared>& shared,
               absl::StatusOr<CommittedOffsets> result, absl::Time read_at);

  const std::unique_ptr<Client> client_;
  const Options options_;
  std::atomic<int64_t> requests_{0};
  std::atomic<int64_t> shared_count_{0};
  std::atomic<int64_t> probe_requests_{0};
  std::atomic<int64_t> probe_failures_{0};

  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<Read::Shared>> reads_ ABSL_GUARDED_BY(mu_);
  absl::Time last_sweep_ ABSL_GUARDED_BY(mu_);
};

}  // namespace klag::kafka::rdkafka
