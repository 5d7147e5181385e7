// One lag evaluation per poll: the GetMetrics and IsActive calls KEDA makes for one trigger in one
// poll (and the HPA's queries for ScaledObjects) share a single Kafka round trip, concurrent
// identical requests wait for the same one, and excludePersistentLag compares with the previous
// poll of the same trigger.
//
//   Evaluator evaluator(reader_provider, &profiles, EvaluatorOptions{});
//   evaluator.EvaluateAsync(ref, [](absl::StatusOr<std::shared_ptr<const Evaluation>> e) {
//     if (e.ok()) use((*e)->report.metric_value, (*e)->report.active);
//   });
//
// No thread waits for Kafka but the KafkaExecutor's workers (a bounded pool, fair between
// clusters): a call answered from the window completes inline, a call for a trigger whose
// evaluation is in flight joins it, a call whose reader can answer from shared state without a
// request (OffsetReader::TryReadOffsets) is evaluated inline too, and the rest queue for a
// worker. `Evaluate` is the blocking
// form (klag-scaler check, tests).
//
// Triggers are keyed by namespace, name and a keyed digest of the metadata (KEDA tells neither
// the trigger index nor when a ScaledJob goes away). A trigger's state holds its parsed metadata
// (parsed once, re-parsed only when its credentials profile is due to be re-read), its last
// evaluation and the previous snapshot; state of triggers not asked about for `idle_ttl` is
// dropped.
//
// Triggers come from untrusted tenants, so what they can make the scaler hold is bounded: tracked
// triggers (in total and per namespace) and the distinct Kafka clusters their triggers name (in
// total and per namespace; each is one librdkafka client in the ClusterRegistry). A request that
// would go over a bound is refused with kResourceExhausted naming the flag, before any parse
// state is kept or any client created; other namespaces are not affected.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "kafka/connection_config.h"
#include "kafka/offsets.h"
#include "scaler/lag/lag_calculator.h"
#include "scaler/lag/trigger_spec.h"
#include "scaler/service/kafka_executor.h"
#include "scaler/service/profile_store.h"

namespace klag::scaler {

// Hands out the shared reader for a cluster (production: kafka::ClusterRegistry).
using ReaderProvider = std::function<absl::StatusOr<std::shared_ptr<kafka::OffsetReader>>(
    const kafka::ConnectionConfig&)>;

class EvaluationObserver;

struct EvaluatorOptions {
  // Deadline of the Kafka work of one evaluation. KEDA sets none for ScaledJobs.
  absl::Duration kafka_timeout = absl::Seconds(5);
  // Calls for the same trigger within this window reuse the last evaluation.
  absl::Duration window = absl::Seconds(2);
  // Under load: while the oldest evaluation of the trigger's cluster waiting for a Kafka worker
  // has waited at least `window` (so a new one would wait at least that long too), a call reuses
  // the trigger's last evaluation up to this old instead of queueing one more (at most this
  // window is added to the age of an answer then). Keeps an overloaded scaler from doing the
  // same trigger's work twice per poll (KEDA's GetMetrics then IsActive arriving more than
  // `window` apart), which deepens the queue it waits in. At most `window`: off.
  absl::Duration window_under_load = absl::Seconds(10);
  // Per-trigger state unused this long is dropped.
  absl::Duration idle_ttl = absl::Minutes(30);
  // bootstrapServers patterns ("host:port", '*' matches any run of characters, case-insensitive)
  // that any trigger may make the scaler connect to, checked after the profile merge. Empty:
  // any cluster.
  std::vector<std::string> allowed_bootstrap_servers;
  // The operator's limits on connection settings from metadata (--kerberos-keytab-dir: the
  // directory every GSSAPI keytab must be under).
  kafka::ConnectionPolicy connection_policy;
  // Told about every Kafka evaluation (not about answers reused from the window or joined);
  // e.g. the Prometheus metrics (scaler/metrics). Null: none. Must outlive the Evaluator.
  EvaluationObserver* observer = nullptr;
  // Bounds (--max-triggers, --max-triggers-per-namespace, --max-clusters,
  // --max-clusters-per-namespace). A trigger counts while it has state (until idle_ttl unused);
  // a cluster counts while a trigger with state names it, for the namespaces whose triggers do.
  int64_t max_triggers = 100000;
  int64_t max_triggers_per_namespace = 10000;
  int64_t max_clusters = 100;
  int64_t max_clusters_per_namespace = 10;
  // The worker pool that runs the blocking Kafka reads (--kafka-workers and friends).
  KafkaExecutorOptions executor;
  // Injected for tests.
  std::function<absl::Time()> now = [] { return absl::Now(); };
};

struct TriggerRef {
  std::string name;
  std::string namespace_;
  Metadata metadata;
};

// A trigger as a request carries it, borrowed: valid while what it views is. The RPCs resolve
// their trigger from a view of the request (no copy of the metadata per RPC); the metadata is
// copied into a TriggerRef only when it is parsed (first sight, or a profile due to be re-read).
struct TriggerView {
  absl::string_view name;
  absl::string_view namespace_;
  // In key order (sorted by the maker; a request's map arrives in no order), keys distinct.
  absl::InlinedVector<std::pair<absl::string_view, absl::string_view>, 16> metadata;

  static TriggerView Of(const TriggerRef& ref);
  TriggerRef ToRef() const;
};

struct ParsedTrigger {
  std::shared_ptr<const TriggerSpec> spec;
  std::string metric_name;
};

struct Evaluation {
  ParsedTrigger trigger;
  LagReport report;
  absl::Time evaluated_at;
  // When the offsets behind `report` were read (kafka::GroupOffsets): the send time of the
  // oldest ListOffsets and of the OffsetFetch. InfinitePast when the reader does not say.
  absl::Time end_offsets_read_at = absl::InfinitePast();
  absl::Time committed_read_at = absl::InfinitePast();
};

// Receives the outcome of each evaluation that was started for Kafka (not of answers reused from
// the window or joined), including one that failed because it waited too long for a worker or
// found the queue full; on a worker or the calling thread (calls may be concurrent). Must not
// block.
class EvaluationObserver {
 public:
  virtual ~EvaluationObserver() = default;
  // `ref`: the request's namespace_ and name (without its metadata); `spec`:
  // the parsed trigger; `result`: the evaluation or the error returned to the caller.
  virtual void Evaluated(const TriggerRef& ref, const TriggerSpec& spec,
                         const absl::StatusOr<std::shared_ptr<const Evaluation>>& result,
                         absl::Time at) = 0;
};

struct EvaluatorStats {
  int64_t evaluations = 0;        // Kafka round trips started
  int64_t reused = 0;             // answered from the window
  int64_t reused_under_load = 0;  // answered from window_under_load (queued work waited a window)
  int64_t immediate = 0;   // evaluated at once from the reader's shared state (no worker, no I/O)
  int64_t joined = 0;      // waited for a concurrent identical evaluation
  int64_t failures = 0;    // evaluations answered with an error (Kafka's, or rejected/expired)
  int64_t triggers = 0;    // triggers with state now
  int64_t rejected = 0;    // the Kafka work queue was full (RESOURCE_EXHAUSTED)
  int64_t expired = 0;     // waited for a worker past the deadline (DEADLINE_EXCEEDED)
  int64_t queued = 0;      // evaluations waiting for a worker now
  int64_t running = 0;     // evaluations on a worker now
  int64_t clusters = 0;    // distinct clusters named by triggers with state now
  int64_t over_bound = 0;  // requests refused by a trigger or cluster bound
};

using EvaluationCallback =
    absl::AnyInvocable<void(absl::StatusOr<std::shared_ptr<const Evaluation>>) &&>;

class Evaluator {
 public:
  // `profiles` may be null (no authProfile support); it must outlive the Evaluator.
  Evaluator(ReaderProvider readers, ProfileStore* profiles, EvaluatorOptions options);

  // Starts the workers (options.executor). Destroying the Evaluator answers evaluations still
  // queued with kCancelled and waits for running ones.
  //
  // Merges the credentials profile (for `ref`'s namespace), parses the metadata and checks the
  // bootstrap servers against allowed_bootstrap_servers; no Kafka I/O. Errors: kInvalidArgument
  // naming the key; kPermissionDenied (a profile the namespace may not use, a server not
  // allowed); kFailedPrecondition (an incomplete profile). Thread-safe.
  absl::StatusOr<ParsedTrigger> Parse(const TriggerRef& ref) const;

  // Parse, answered from the trigger's state when this metadata was parsed before (and its
  // profile, if any, is not due to be re-read); creates the state on success. Errors: Parse's;
  // kResourceExhausted naming the bound when a new trigger, or a cluster new to the namespace or
  // to the scaler, would go over max_triggers*, max_clusters* (idle state is swept first).
  // Thread-safe.
  absl::StatusOr<ParsedTrigger> ParseCached(const TriggerRef& ref);
  absl::StatusOr<ParsedTrigger> ParseCached(const TriggerView& trigger);

  // Calls `done` exactly once with the evaluation of `ref` for this poll: inline when answered
  // from the window, on bad metadata, or evaluated at once from what the trigger's reader
  // already holds (OffsetReader::TryReadOffsets: with offsets-topic, a fresh snapshot and a
  // caught-up follower), else from a worker (or the executor's timer thread) when
  // the evaluation this call started or joined completes. Errors: those of Parse, the reader's
  // (kNotFound, kUnavailable, kDeadlineExceeded, kPermissionDenied): never a made-up 0;
  // kResourceExhausted when the work queue is full or a bound is hit (ParseCached);
  // kDeadlineExceeded naming the cluster when no worker was free within kafka_timeout; kCancelled
  // when the Evaluator is destroyed first. `done` must not block (it runs on a Kafka worker).
  // Thread-safe, never blocks on Kafka.
  void EvaluateAsync(const TriggerRef& ref, EvaluationCallback done);
  void EvaluateAsync(const TriggerView& trigger, EvaluationCallback done);

  // EvaluateAsync, waiting for the answer (within about kafka_timeout). Must not be called from
  // an EvaluationCallback. Thread-safe.
  absl::StatusOr<std::shared_ptr<const Evaluation>> Evaluate(const TriggerRef& ref);

  EvaluatorStats Stats() const;

 private:
  struct Flight;
  struct CachedParse;
  struct TriggerState;
  struct Resolved {
    std::shared_ptr<TriggerState> state;
    std::shared_ptr<const CachedParse> parse;
  };

  absl::StatusOr<ParsedTrigger> ParseUntil(const TriggerRef& ref, absl::Time* fresh_until) const;
  // The trigger's state (created on first use) and its parsed metadata (parsed when not cached
  // or stale); marks the state used.
  absl::StatusOr<Resolved> Resolve(const TriggerView& trigger);
  // The state for `key`, created (and counted) when there is none; kResourceExhausted when
  // creating it would go over a bound.
  absl::StatusOr<std::shared_ptr<TriggerState>> StateFor(const std::string& key,
                                                         absl::string_view ns,
                                                         const CachedParse& parse);
  // Moves an existing state's cluster accounting to `parse`'s cluster (its profile now names
  // another one); kResourceExhausted, and no change, when that goes over a cluster bound.
  absl::Status MoveCluster(TriggerState& state, const CachedParse& parse);
  // OK when a trigger of `ns` (a new one if `new_trigger`) naming `cluster_key` fits the bounds
  // as counted now; else kResourceExhausted naming the bound.
  absl::Status CheckBoundsLocked(const std::string& ns, const std::string& cluster_key,
                                 absl::string_view cluster_name, bool new_trigger) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // CheckBoundsLocked; when over a bound, sweeps idle state (at most once a second) and checks
  // again.
  absl::Status AdmitLocked(const std::string& ns, const std::string& cluster_key,
                           absl::string_view cluster_name, bool new_trigger, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CountLocked(const std::string& ns, const std::string& cluster_key, int delta_triggers)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UncountLocked(const std::string& ns, const std::string& cluster_key, int delta_triggers)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // On a worker: reads the offsets (blocking, by `deadline`) and evaluates; remembers the
  // reader for TryImmediate.
  absl::StatusOr<std::shared_ptr<const Evaluation>> RunEvaluation(TriggerState& state,
                                                                  const CachedParse& parse,
                                                                  absl::Time deadline);
  // On the caller's thread: the evaluation when the trigger's last reader can answer at once
  // (OffsetReader::TryReadOffsets), else nullopt (the work goes to a worker).
  std::optional<absl::StatusOr<std::shared_ptr<const Evaluation>>> TryImmediate(
      TriggerState& state, const CachedParse& parse);
  // The evaluation of `offsets` (lag, persistent-lag state, partitionLimitation's check).
  absl::StatusOr<std::shared_ptr<const Evaluation>> FinishEvaluation(TriggerState& state,
                                                                     const ParsedTrigger& trigger,
                                                                     kafka::GroupOffsets offsets);
  // Records `result` as the flight's outcome, tells the observer and every waiter.
  void Complete(TriggerState& state, const std::shared_ptr<Flight>& flight, const TriggerSpec& spec,
                absl::StatusOr<std::shared_ptr<const Evaluation>> result);
  void DropIdleLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const ReaderProvider readers_;
  ProfileStore* const profiles_;
  const EvaluatorOptions options_;

  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<TriggerState>> triggers_ ABSL_GUARDED_BY(mu_);
  absl::Time last_sweep_ ABSL_GUARDED_BY(mu_);
  // What the bounds count: per namespace, its triggers with state and, per cluster key, how many
  // of them name it; over all namespaces, per cluster key, how many triggers name it. Entries
  // at zero are erased.
  struct NamespaceUse {
    int64_t triggers = 0;
    absl::flat_hash_map<std::string, int64_t> clusters;
  };
  absl::flat_hash_map<std::string, NamespaceUse> namespaces_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, int64_t> clusters_ ABSL_GUARDED_BY(mu_);
  // Lock order: mu_ before any TriggerState::mu. The counters are atomics so that code holding a
  // TriggerState::mu never needs mu_.
  struct Counters {
    std::atomic<int64_t> evaluations{0};
    std::atomic<int64_t> reused{0};
    std::atomic<int64_t> reused_under_load{0};
    std::atomic<int64_t> immediate{0};
    std::atomic<int64_t> joined{0};
    std::atomic<int64_t> failures{0};
    std::atomic<int64_t> rejected{0};
    std::atomic<int64_t> expired{0};
    std::atomic<int64_t> over_bound{0};
  };
  Counters counters_;
  // Last member: destroyed first, so the work it cancels still finds the rest of the Evaluator.
  std::unique_ptr<KafkaExecutor> executor_;
};

// The per-trigger key: "<namespace>/<name>#<digest>", where the digest is the first 128 bits of
// HMAC-SHA256 of the metadata under a random per-process secret. The key is logged and returned
// in errors, and the metadata holds passwords and private keys: without the secret, the digest
// tells nothing about them (no offline guessing of a weak password from a logged key).
std::string TriggerKey(const TriggerRef& ref);
std::string TriggerKey(const TriggerView& trigger);

// Limits on ScaledObjectRef names (Kubernetes': a namespace is a DNS label, an object name a
// DNS subdomain).
inline constexpr size_t kMaxNamespaceBytes = 63;
inline constexpr size_t kMaxNameBytes = 253;

// kInvalidArgument (saying how long, never echoing the name) when `ref`'s namespace or name is
// longer than Kubernetes allows. Every Evaluator entry point checks it first.
absl::Status CheckRefNames(absl::string_view name, absl::string_view ns);
inline absl::Status CheckRefNames(const TriggerRef& ref) {
  return CheckRefNames(ref.name, ref.namespace_);
}

// True when `server` ("host:port") matches `pattern`: '*' matches any run of characters, the
// rest compares case-insensitively.
bool MatchesServerPattern(absl::string_view pattern, absl::string_view server);

// `text` (from a request) as echoed in an error or a log line: at most `max` bytes, cut ones
// marked with "...".
std::string ForMessage(absl::string_view text, size_t max = 100);

namespace internal {
// The digest part of TriggerKey under an explicit secret; exposed for tests.
std::string MetadataDigest(const Metadata& metadata, absl::string_view secret);
// The same over entries in key order.
std::string SortedMetadataDigest(
    absl::Span<const std::pair<absl::string_view, absl::string_view>> sorted,
    absl::string_view secret);
}  // namespace internal

}  // namespace klag::scaler
