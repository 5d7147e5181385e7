// One long-lived librdkafka consumer-type handle (never joins a group) with a thread serving its
// callbacks, and what those callbacks tell about broker reachability. Internal to
// RdkafkaOffsetReader (included only by rdkafka_*.cc files and tests).
//
//   absl::StatusOr<std::unique_ptr<rdkafka::Client>> client =
//       rdkafka::Client::Create(properties, /*statistics=*/true);
//   absl::StatusOr<rdkafka::MetadataPtr> md = (*client)->Metadata(
//       nullptr, deadline, absl::Milliseconds(500), "cluster x: Metadata");
//
// Reachability: a request that times out is kUnavailable when the client's latest connection
// news is bad, kDeadlineExceeded otherwise. News, in arrival order: the error callback reports
// connection failures (__TRANSPORT, __RESOLVE, __SSL, __AUTHENTICATION, __ALL_BROKERS_DOWN);
// the statistics callback reports whether any broker connection is UP; every answered request
// is good news. So a stopped broker turns timeouts into kUnavailable as soon as the disconnect
// or a refused reconnect is reported, and a restarted one turns them back with the first answer.
//
// Fast failure: while the news is bad, Metadata() waits at most one `probe` for a usable broker
// connection (librdkafka starts a connection attempt when asked for one) and then answers
// kUnavailable, instead of waiting for the whole deadline; a cluster whose connections are
// refused or whose names do not resolve fails in about `probe`. One probe at a time: while the
// news is bad and a probe is waiting, or one failed less than its `probe` ago with no good news
// since, Metadata() answers kUnavailable at once without waiting; so a dead cluster costs its
// callers one waiting call per `probe` however many arrive, and the probes go on (one per
// `probe`) to notice the cluster coming back.
#pragma once

#include <librdkafka/rdkafka.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "kafka/connection_config.h"
#include "kafka/rdkafka_handle.h"

namespace klag::kafka::rdkafka {

// What the statistics callback takes from librdkafka's statistics JSON: its real brokers (not
// "internal" or "logical": a group coordinator rides on a real broker's connection and would
// count its requests twice), whether any of them is UP, and the requests sent to them.
struct BrokerStats {
  bool any_real = false;
  bool any_up = false;
  int64_t requests = 0;
};

// Reads `json` up to the end of its "brokers" object with a SAX parser: no document is built, and
// the "topics" object after it (every partition the client knows, the bulk of the text for a
// client that watches many topics) is not even read. nullopt when the text is not statistics
// JSON with a "brokers" object.
std::optional<BrokerStats> SummarizeStatistics(std::string_view json);

class Client {
 public:
  // Creates the handle (no connection yet) and starts its callback thread.
  static absl::StatusOr<std::unique_ptr<Client>> Create(const RdkafkaProperties& properties,
                                                        bool statistics);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  rd_kafka_t* rk() const { return rk_.get(); }

  // A request got an answer: some broker is reachable.
  void MarkReachable();

  // Whether the latest connection news is good (or there is none yet).
  bool Reachable() const;

  // The status for a request that got no answer in time.
  absl::Status TimeoutStatus(absl::string_view context) const;

  // The status when librdkafka found no usable broker connection in time: kUnavailable (or
  // kUnauthenticated when authentication is what failed), with what the connection attempts
  // reported.
  absl::Status UnreachableStatus(absl::string_view context) const;

  // The status for `err`, with timeouts judged by reachability. "Unknown topic, partition or
  // group" is kUnavailable here (RdkafkaTransientStatus): only a Metadata answer about the topic
  // may say that a topic does not exist.
  absl::Status ErrorStatus(rd_kafka_resp_err_t err, absl::string_view context,
                           absl::string_view detail = "") const;

  // One Metadata request (about `rkt`, or brokers only when null) answered by `deadline`. Waits
  // for a usable broker connection one `probe` at a time: when a wait ends without one and the
  // news is bad (before or during the wait), fails kUnavailable (kUnauthenticated for failed
  // authentication) at once; with no bad news it waits on. A request sent but unanswered after a
  // probe (a slow broker) is asked once more with the rest of the deadline, so only the deadline
  // ends in kDeadlineExceeded. An answer marks the client reachable. Counts each request sent in
  // `requests`.
  absl::StatusOr<MetadataPtr> Metadata(rd_kafka_topic_t* rkt, absl::Time deadline,
                                       absl::Duration probe, absl::string_view context,
                                       std::atomic<int64_t>& requests);

  // OK at once when the latest connection news is good (or there is none yet); otherwise one
  // brokers-only Metadata() proves the cluster reachable, or fails as Metadata() does
  // (kUnavailable within about `probe` for a cluster known down). Counts a request sent in
  // `requests`.
  absl::Status EnsureReachable(absl::Time deadline, absl::Duration probe, absl::string_view context,
                               std::atomic<int64_t>& requests);

  // Requests sent to brokers (librdkafka statistics, "tx" over real brokers) as of the last
  // statistics event.
  int64_t broker_requests() const { return broker_requests_.load(); }

  // Metadata() calls that waited for a connection while the news was bad or found none
  // (probes), and those answered kUnavailable at once because a probe was waiting or had just
  // failed.
  int64_t probes() const { return probes_.load(); }
  int64_t probe_fast_failures() const { return probe_fast_failures_.load(); }

 private:
  Client() = default;

  absl::Status UnreachableStatusLocked(absl::string_view context) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Metadata() without the one-probe-at-a-time gate.
  absl::StatusOr<MetadataPtr> MetadataAttempts(rd_kafka_topic_t* rkt, absl::Time deadline,
                                               absl::Duration probe, absl::string_view context,
                                               std::atomic<int64_t>& requests);
  void PollLoop();
  static void OnError(rd_kafka_t* rk, int err_int, const char* reason, void* opaque);
  static int OnStats(rd_kafka_t* rk, char* json, size_t json_len, void* opaque);

  HandlePtr rk_;
  std::atomic<bool> stop_{false};
  std::thread poller_;
  std::atomic<int64_t> broker_requests_{0};
  std::atomic<int64_t> probes_{0};
  std::atomic<int64_t> probe_fast_failures_{0};

  mutable absl::Mutex mu_;
  uint64_t seq_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t last_down_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t last_up_ ABSL_GUARDED_BY(mu_) = 0;
  rd_kafka_resp_err_t last_connection_err_ ABSL_GUARDED_BY(mu_) = RD_KAFKA_RESP_ERR__TRANSPORT;
  std::string last_connection_error_ ABSL_GUARDED_BY(mu_);
  // The probe in progress while the news is bad, and the latest failed one: its time and the
  // news sequence number it got (good news after it, last_up_ > failed_probe_seq_, ends it).
  bool probing_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time failed_probe_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  uint64_t failed_probe_seq_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace klag::kafka::rdkafka
