#include "scaler/service/evaluator.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <optional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"

namespace klag::scaler {

// One in-progress evaluation; concurrent callers for the same trigger add themselves to
// `waiters` (under the TriggerState's mu) instead of waiting on a thread.
struct Evaluator::Flight {
  TriggerRef ref;  // the name and namespace of the request that started it, for the observer
  std::vector<EvaluationCallback> waiters;
};

// Metadata parsed once per trigger key.
struct Evaluator::CachedParse {
  ParsedTrigger trigger;
  std::string cluster_key;  // trigger.spec->connection.Key(): what the executor is fair over
  absl::Time fresh_until;   // re-parse after (the profile is due to be re-read)
};

struct Evaluator::TriggerState {
  absl::Mutex mu;
  std::shared_ptr<const CachedParse> parsed ABSL_GUARDED_BY(mu);
  std::shared_ptr<const Evaluation> last ABSL_GUARDED_BY(mu);
  std::shared_ptr<Flight> flight ABSL_GUARDED_BY(mu);
  // Snapshot of the previous poll, for excludePersistentLag.
  std::optional<LagSnapshot> previous ABSL_GUARDED_BY(mu);
  absl::Time last_used ABSL_GUARDED_BY(mu);
  // The reader of the last evaluation sent to a worker and the cluster key it was got for: what
  // an evaluation tries first to answer at once (OffsetReader::TryReadOffsets). Weak: the
  // ClusterRegistry decides how long a reader lives.
  std::weak_ptr<kafka::OffsetReader> reader ABSL_GUARDED_BY(mu);
  std::string reader_cluster_key ABSL_GUARDED_BY(mu);
  // When a worker last got `reader` from the ReaderProvider. Used for answers at once only for
  // half of idle_ttl after that, so a reader in use is asked for again (and so kept by the
  // ClusterRegistry, whose idle timeout is the same flag) whatever the snapshot's max age.
  absl::Time reader_got_at ABSL_GUARDED_BY(mu);
  // What the bounds count this state under; guarded by the Evaluator's mu_.
  std::string namespace_;
  std::string cluster_key;
  bool counted = false;  // in triggers_ (false once dropped as idle)
};

namespace {

kafka::OffsetQuery QueryOf(const TriggerSpec& spec) {
  return kafka::OffsetQuery{
      .group = spec.consumer_group, .topics = spec.topics, .isolation = spec.isolation_level};
}

// 32 random bytes drawn once per process: the HMAC key of TriggerKey's digest.
const std::string& ProcessSecret() {
  static const std::string* const secret = [] {
    auto* s = new std::string(32, '\0');
    if (RAND_bytes(reinterpret_cast<unsigned char*>(s->data()), static_cast<int>(s->size())) != 1) {
      spdlog::critical("RAND_bytes failed: cannot make the trigger key secret");
      std::abort();
    }
    return s;
  }();
  return *secret;
}

void AppendLengthPrefixed(std::string* out, absl::string_view text) {
  absl::StrAppend(out, text.size(), ":", text);
}

// HMAC-SHA256 with a context kept per thread and keyed once: OpenSSL 3's one-shot HMAC() looks
// the algorithm up in the provider tables on every call, which cost about 4% of klag-scaler's CPU
// at 3,000 polls a second (perf, bench/README.md).
class ThreadHmac {
 public:
  // The MAC of `data` under `key`, into `out` (32 bytes).
  static void Sha256(absl::string_view key, absl::string_view data, unsigned char* out) {
    thread_local ThreadHmac hmac;
    hmac.Compute(key, data, out);
  }

 private:
  ThreadHmac() = default;
  ~ThreadHmac() {
    EVP_MAC_CTX_free(ctx_);
    EVP_MAC_free(mac_);
  }

  void Compute(absl::string_view key, absl::string_view data, unsigned char* out) {
    if (mac_ == nullptr) mac_ = EVP_MAC_fetch(nullptr, OSSL_MAC_NAME_HMAC, nullptr);
    if (ctx_ == nullptr && mac_ != nullptr) ctx_ = EVP_MAC_CTX_new(mac_);
    char digest[] = "SHA256";
    const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                                 OSSL_PARAM_END};
    // A null key with EVP_MAC_init reuses the one set before.
    const bool same_key = key_.has_value() && *key_ == key;
    bool ok =
        ctx_ != nullptr &&
        EVP_MAC_init(ctx_, same_key ? nullptr : reinterpret_cast<const unsigned char*>(key.data()),
                     same_key ? 0 : key.size(), same_key ? nullptr : params) == 1;
    if (ok && !same_key) key_ = std::string(key);
    size_t length = 0;
    ok = ok &&
         EVP_MAC_update(ctx_, reinterpret_cast<const unsigned char*>(data.data()), data.size()) ==
             1 &&
         EVP_MAC_final(ctx_, out, &length, 32) == 1 && length == 32;
    if (!ok) {
      spdlog::critical("HMAC-SHA256 failed");
      std::abort();
    }
  }

  EVP_MAC* mac_ = nullptr;
  EVP_MAC_CTX* ctx_ = nullptr;
  std::optional<std::string> key_;
};

}  // namespace

namespace internal {

std::string MetadataDigest(const Metadata& metadata, absl::string_view secret) {
  TriggerView view;
  for (const auto& [key, value] : metadata) view.metadata.emplace_back(key, value);
  return SortedMetadataDigest(view.metadata, secret);
}

std::string SortedMetadataDigest(
    absl::Span<const std::pair<absl::string_view, absl::string_view>> sorted,
    absl::string_view secret) {
  // Length-prefixed keys and values, so that no two different maps serialise the same; entries
  // come in key order, so equal metadata digests equally. The text is built in a buffer kept per
  // thread (three digests per poll).
  thread_local std::string data;
  data.clear();
  for (const auto& [key, value] : sorted) {
    AppendLengthPrefixed(&data, key);
    AppendLengthPrefixed(&data, value);
  }
  std::array<unsigned char, 32> mac;
  ThreadHmac::Sha256(secret, data, mac.data());
  // Secrets do not stay behind in the buffer (its capacity does).
  OPENSSL_cleanse(data.data(), data.size());
  // 128 bits: a collision would make two triggers of one ScaledJob share state.
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(mac.data()), 16));
}

}  // namespace internal

TriggerView TriggerView::Of(const TriggerRef& ref) {
  TriggerView view{.name = ref.name, .namespace_ = ref.namespace_};
  view.metadata.reserve(ref.metadata.size());
  for (const auto& [key, value] : ref.metadata) view.metadata.emplace_back(key, value);
  return view;  // std::map iterates in key order
}

TriggerRef TriggerView::ToRef() const {
  TriggerRef ref{.name = std::string(name), .namespace_ = std::string(namespace_)};
  for (const auto& [key, value] : metadata) {
    ref.metadata.emplace_hint(ref.metadata.end(), key, value);
  }
  return ref;
}

std::string TriggerKey(const TriggerRef& ref) { return TriggerKey(TriggerView::Of(ref)); }

std::string TriggerKey(const TriggerView& trigger) {
  return absl::StrCat(trigger.namespace_, "/", trigger.name, "#",
                      internal::SortedMetadataDigest(trigger.metadata, ProcessSecret()));
}

std::string ForMessage(absl::string_view text, size_t max) {
  if (text.size() <= max) return std::string(text);
  return absl::StrCat(text.substr(0, max), "...");
}

bool MatchesServerPattern(absl::string_view pattern, absl::string_view server) {
  // Iterative glob with backtracking to the last '*'.
  size_t p = 0, s = 0, star = absl::string_view::npos, star_s = 0;
  while (s < server.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      star_s = s;
    } else if (p < pattern.size() &&
               absl::ascii_tolower(static_cast<unsigned char>(pattern[p])) ==
                   absl::ascii_tolower(static_cast<unsigned char>(server[s]))) {
      ++p;
      ++s;
    } else if (star != absl::string_view::npos) {
      p = star + 1;
      s = ++star_s;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

absl::Status CheckRefNames(absl::string_view name, absl::string_view ns) {
  // KEDA sends Kubernetes names: a namespace is a DNS label (at most 63 bytes), a ScaledJob or
  // ScaledObject name a DNS subdomain (at most 253). Longer ones come from a direct caller and
  // would otherwise end up, whole, in trigger keys, log lines and metric labels.
  if (ns.size() > kMaxNamespaceBytes) {
    return absl::InvalidArgumentError(absl::StrCat("ScaledObjectRef.namespace is ", ns.size(),
                                                   " bytes; a Kubernetes namespace "
                                                   "name has at most ",
                                                   kMaxNamespaceBytes));
  }
  if (name.size() > kMaxNameBytes) {
    return absl::InvalidArgumentError(absl::StrCat("ScaledObjectRef.name is ", name.size(),
                                                   " bytes; a Kubernetes object name has at "
                                                   "most ",
                                                   kMaxNameBytes));
  }
  return absl::OkStatus();
}

Evaluator::Evaluator(ReaderProvider readers, ProfileStore* profiles, EvaluatorOptions options)
    : readers_(std::move(readers)),
      profiles_(profiles),
      options_(std::move(options)),
      executor_(std::make_unique<KafkaExecutor>(options_.executor)) {
  last_sweep_ = options_.now();
}

absl::StatusOr<ParsedTrigger> Evaluator::Parse(const TriggerRef& ref) const {
  absl::Time fresh_until;
  return ParseUntil(ref, &fresh_until);
}

absl::StatusOr<ParsedTrigger> Evaluator::ParseUntil(const TriggerRef& ref,
                                                    absl::Time* fresh_until) const {
  *fresh_until = absl::InfiniteFuture();
  if (absl::Status s = CheckRefNames(ref); !s.ok()) return s;
  const Metadata* effective = &ref.metadata;
  absl::StatusOr<Metadata> merged;
  if (profiles_ != nullptr) {
    merged = profiles_->Merge(ref.namespace_, ref.metadata, fresh_until);
    if (!merged.ok()) return merged.status();
    effective = &*merged;
  }
  absl::StatusOr<TriggerSpec> spec = ParseTriggerSpec(*effective, options_.connection_policy);
  if (!spec.ok()) return spec.status();
  if (!options_.allowed_bootstrap_servers.empty()) {
    for (absl::string_view server :
         absl::StrSplit(spec->connection.bootstrap_servers, ',', absl::SkipWhitespace())) {
      server = absl::StripAsciiWhitespace(server);
      const bool allowed =
          std::any_of(options_.allowed_bootstrap_servers.begin(),
                      options_.allowed_bootstrap_servers.end(), [&](const std::string& pattern) {
                        return MatchesServerPattern(absl::StripAsciiWhitespace(pattern), server);
                      });
      if (!allowed) {
        return absl::PermissionDeniedError(
            absl::StrCat("bootstrapServers entry \"", server,
                         "\" is not a cluster this klag-scaler may connect to "
                         "(--allowed-bootstrap-servers)"));
      }
    }
  }
  ParsedTrigger parsed;
  parsed.metric_name = MetricName(*spec);
  parsed.spec = std::make_shared<const TriggerSpec>(*std::move(spec));
  return parsed;
}

absl::StatusOr<std::shared_ptr<Evaluator::TriggerState>> Evaluator::StateFor(
    const std::string& key, absl::string_view ns, const CachedParse& parse) {
  const TriggerSpec& spec = *parse.trigger.spec;
  absl::MutexLock lock(&mu_);
  const absl::Time now = options_.now();
  if (now - last_sweep_ > absl::Minutes(1)) DropIdleLocked(now);
  if (auto it = triggers_.find(key); it != triggers_.end()) return it->second;  // a racing call
  if (absl::Status s =
          AdmitLocked(std::string(ns), parse.cluster_key, spec.connection.bootstrap_servers,
                      /*new_trigger=*/true, now);
      !s.ok()) {
    counters_.over_bound.fetch_add(1, std::memory_order_relaxed);
    return s;
  }
  auto state = std::make_shared<TriggerState>();
  state->namespace_ = std::string(ns);
  state->cluster_key = parse.cluster_key;
  {
    absl::MutexLock state_lock(&state->mu);
    state->last_used = now;
  }
  CountLocked(state->namespace_, state->cluster_key, 1);
  state->counted = true;
  triggers_.emplace(key, state);
  if (!spec.unknown_keys.empty()) {
    // Once per trigger: KEDA forwards the trigger's keys verbatim, so a typo such as
    // lagTreshold would otherwise silently fall back to a default.
    spdlog::warn("trigger {}: ignoring unknown metadata keys: {}", key,
                 absl::StrJoin(spec.unknown_keys, ", "));
  }
  return state;
}

absl::Status Evaluator::MoveCluster(TriggerState& state, const CachedParse& parse) {
  absl::MutexLock lock(&mu_);
  if (state.cluster_key == parse.cluster_key) return absl::OkStatus();
  if (!state.counted) {
    // Dropped as idle meanwhile: this call finishes with it, the next one counts a new state.
    state.cluster_key = parse.cluster_key;
    return absl::OkStatus();
  }
  UncountLocked(state.namespace_, state.cluster_key, 0);
  if (absl::Status s =
          AdmitLocked(state.namespace_, parse.cluster_key,
                      parse.trigger.spec->connection.bootstrap_servers, false, options_.now());
      !s.ok()) {
    CountLocked(state.namespace_, state.cluster_key, 0);
    counters_.over_bound.fetch_add(1, std::memory_order_relaxed);
    return s;
  }
  state.cluster_key = parse.cluster_key;
  CountLocked(state.namespace_, state.cluster_key, 0);
  return absl::OkStatus();
}

absl::Status Evaluator::CheckBoundsLocked(const std::string& ns, const std::string& cluster_key,
                                          absl::string_view cluster_name, bool new_trigger) const {
  const auto use = namespaces_.find(ns);
  const NamespaceUse* ns_use = use == namespaces_.end() ? nullptr : &use->second;
  if (new_trigger) {
    if (static_cast<int64_t>(triggers_.size()) >= options_.max_triggers) {
      return absl::ResourceExhaustedError(
          absl::StrCat("klag-scaler already tracks ", triggers_.size(),
                       " triggers (--max-triggers=", options_.max_triggers, ")"));
    }
    if (ns_use != nullptr && ns_use->triggers >= options_.max_triggers_per_namespace) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "namespace ", ForMessage(ns), " has ", ns_use->triggers,
          " tracked triggers (--max-triggers-per-namespace=", options_.max_triggers_per_namespace,
          ")"));
    }
  }
  const int64_t ns_clusters = ns_use == nullptr ? 0 : static_cast<int64_t>(ns_use->clusters.size());
  if ((ns_use == nullptr || !ns_use->clusters.contains(cluster_key)) &&
      ns_clusters >= options_.max_clusters_per_namespace) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "namespace ", ForMessage(ns), " already uses ", ns_clusters,
        " Kafka clusters (--max-clusters-per-namespace=", options_.max_clusters_per_namespace,
        "); cluster ", ForMessage(cluster_name), " would be one more"));
  }
  if (!clusters_.contains(cluster_key) &&
      static_cast<int64_t>(clusters_.size()) >= options_.max_clusters) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "klag-scaler already uses ", clusters_.size(), " Kafka clusters (--max-clusters=",
        options_.max_clusters, "); cluster ", ForMessage(cluster_name), " would be one more"));
  }
  return absl::OkStatus();
}

absl::Status Evaluator::AdmitLocked(const std::string& ns, const std::string& cluster_key,
                                    absl::string_view cluster_name, bool new_trigger,
                                    absl::Time now) {
  absl::Status s = CheckBoundsLocked(ns, cluster_key, cluster_name, new_trigger);
  // Idle state frees slots: sweep before refusing (at most once a second, so a tenant retrying
  // at its bound does not make every call walk every trigger).
  if (!s.ok() && now - last_sweep_ >= absl::Seconds(1)) {
    DropIdleLocked(now);
    s = CheckBoundsLocked(ns, cluster_key, cluster_name, new_trigger);
  }
  return s;
}

void Evaluator::CountLocked(const std::string& ns, const std::string& cluster_key,
                            int delta_triggers) {
  NamespaceUse& use = namespaces_[ns];
  use.triggers += delta_triggers;
  ++use.clusters[cluster_key];
  ++clusters_[cluster_key];
}

void Evaluator::UncountLocked(const std::string& ns, const std::string& cluster_key,
                              int delta_triggers) {
  auto use = namespaces_.find(ns);
  if (use != namespaces_.end()) {
    use->second.triggers -= delta_triggers;
    if (auto c = use->second.clusters.find(cluster_key);
        c != use->second.clusters.end() && --c->second == 0) {
      use->second.clusters.erase(c);
    }
    if (use->second.triggers == 0 && use->second.clusters.empty()) namespaces_.erase(use);
  }
  if (auto c = clusters_.find(cluster_key); c != clusters_.end() && --c->second == 0) {
    clusters_.erase(c);
  }
}

void Evaluator::DropIdleLocked(absl::Time now) {
  last_sweep_ = now;
  for (auto it = triggers_.begin(); it != triggers_.end();) {
    bool idle;
    {
      absl::MutexLock state_lock(&it->second->mu);
      idle = it->second->flight == nullptr && now - it->second->last_used > options_.idle_ttl;
    }
    if (idle) {
      UncountLocked(it->second->namespace_, it->second->cluster_key, 1);
      it->second->counted = false;
      triggers_.erase(it++);
    } else {
      ++it;
    }
  }
}

absl::StatusOr<Evaluator::Resolved> Evaluator::Resolve(const TriggerView& trigger) {
  // Before the key is made: names are part of every key, log line and metric label.
  if (absl::Status s = CheckRefNames(trigger.name, trigger.namespace_); !s.ok()) return s;
  const std::string key = TriggerKey(trigger);
  std::shared_ptr<TriggerState> state;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = options_.now();
    if (now - last_sweep_ > absl::Minutes(1)) DropIdleLocked(now);
    if (auto it = triggers_.find(key); it != triggers_.end()) state = it->second;
  }
  if (state != nullptr) {
    absl::MutexLock lock(&state->mu);
    state->last_used = options_.now();
    // fresh_until is the profile store's (real) clock, not options_.now.
    if (state->parsed != nullptr && absl::Now() < state->parsed->fresh_until) {
      std::shared_ptr<const CachedParse> parse = state->parsed;
      return Resolved{.state = std::move(state), .parse = std::move(parse)};
    }
  }
  // First sight of this metadata, or its profile is due to be re-read: parse (outside any lock:
  // a profile may be read from disk).
  auto parse = std::make_shared<CachedParse>();
  absl::StatusOr<ParsedTrigger> parsed = ParseUntil(trigger.ToRef(), &parse->fresh_until);
  if (!parsed.ok()) return parsed.status();
  parse->trigger = *std::move(parsed);
  parse->cluster_key = parse->trigger.spec->connection.Key();
  if (state == nullptr) {
    absl::StatusOr<std::shared_ptr<TriggerState>> created =
        StateFor(key, trigger.namespace_, *parse);
    if (!created.ok()) return created.status();
    state = *std::move(created);
  }
  if (absl::Status s = MoveCluster(*state, *parse); !s.ok()) return s;
  absl::MutexLock lock(&state->mu);
  state->parsed = parse;
  return Resolved{.state = std::move(state), .parse = std::move(parse)};
}

absl::StatusOr<ParsedTrigger> Evaluator::ParseCached(const TriggerRef& ref) {
  return ParseCached(TriggerView::Of(ref));
}

absl::StatusOr<ParsedTrigger> Evaluator::ParseCached(const TriggerView& trigger) {
  absl::StatusOr<Resolved> resolved = Resolve(trigger);
  if (!resolved.ok()) return resolved.status();
  return resolved->parse->trigger;
}

void Evaluator::EvaluateAsync(const TriggerRef& ref, EvaluationCallback done) {
  EvaluateAsync(TriggerView::Of(ref), std::move(done));
}

void Evaluator::EvaluateAsync(const TriggerView& trigger, EvaluationCallback done) {
  absl::StatusOr<Resolved> resolved = Resolve(trigger);
  if (!resolved.ok()) {
    std::move(done)(resolved.status());
    return;
  }
  std::shared_ptr<TriggerState> state = std::move(resolved->state);
  std::shared_ptr<const CachedParse> parse = std::move(resolved->parse);

  std::shared_ptr<const Evaluation> reuse;
  std::shared_ptr<Flight> flight;
  {
    absl::MutexLock lock(&state->mu);
    const absl::Time now = options_.now();
    state->last_used = now;
    const absl::Duration age =
        state->last == nullptr ? absl::InfiniteDuration() : now - state->last->evaluated_at;
    if (age < options_.window) {
      counters_.reused.fetch_add(1, std::memory_order_relaxed);
      reuse = state->last;
    } else if (state->flight == nullptr && age < options_.window_under_load &&
               executor_->QueueWait(parse->cluster_key) >= options_.window) {
      // Overloaded: a new evaluation would wait for a worker at least as long as the window.
      // Lock order: the trigger's mutex, then the executor's (which calls nothing under it).
      counters_.reused_under_load.fetch_add(1, std::memory_order_relaxed);
      reuse = state->last;
    } else if (state->flight != nullptr) {
      counters_.joined.fetch_add(1, std::memory_order_relaxed);
      state->flight->waiters.push_back(std::move(done));
      return;
    } else {
      flight = std::make_shared<Flight>();
      // Names only: the metadata (secrets included) is not needed once parsed.
      flight->ref = TriggerRef{.name = std::string(trigger.name),
                               .namespace_ = std::string(trigger.namespace_)};
      flight->waiters.push_back(std::move(done));
      state->flight = flight;
    }
  }
  if (reuse != nullptr) {
    std::move(done)(std::move(reuse));
    return;
  }
  const TriggerSpec& spec = *parse->trigger.spec;
  if (std::optional<absl::StatusOr<std::shared_ptr<const Evaluation>>> now =
          TryImmediate(*state, *parse);
      now.has_value()) {
    Complete(*state, flight, spec, *std::move(now));
    return;
  }

  // The deadline runs from now: time spent waiting for a worker counts against kafka_timeout,
  // so the caller hears back within it whatever the queue.
  const absl::Time deadline = absl::Now() + options_.kafka_timeout;
  absl::Status queued = executor_->Submit(KafkaExecutor::Work{
      .cluster_key = parse->cluster_key,
      .cluster_name = spec.connection.bootstrap_servers,
      .deadline = deadline,
      .run = [this, state, parse, flight, deadline](absl::Status ready) {
        absl::StatusOr<std::shared_ptr<const Evaluation>> result =
            ready.ok() ? RunEvaluation(*state, *parse, deadline)
                       : absl::StatusOr<std::shared_ptr<const Evaluation>>(ready);
        if (!ready.ok()) {
          counters_.failures.fetch_add(1, std::memory_order_relaxed);
          if (ready.code() == absl::StatusCode::kDeadlineExceeded) {
            counters_.expired.fetch_add(1, std::memory_order_relaxed);
          }
        }
        Complete(*state, flight, *parse->trigger.spec, std::move(result));
      }});
  if (!queued.ok()) {
    counters_.failures.fetch_add(1, std::memory_order_relaxed);
    if (queued.code() == absl::StatusCode::kResourceExhausted) {
      counters_.rejected.fetch_add(1, std::memory_order_relaxed);
    }
    Complete(*state, flight, spec, queued);
  }
}

void Evaluator::Complete(TriggerState& state, const std::shared_ptr<Flight>& flight,
                         const TriggerSpec& spec,
                         absl::StatusOr<std::shared_ptr<const Evaluation>> result) {
  if (options_.observer != nullptr) {
    options_.observer->Evaluated(flight->ref, spec, result, options_.now());
  }
  std::vector<EvaluationCallback> waiters;
  {
    absl::MutexLock lock(&state.mu);
    if (result.ok()) state.last = *result;
    state.flight = nullptr;
    waiters = std::move(flight->waiters);
  }
  for (EvaluationCallback& waiter : waiters) std::move(waiter)(result);
}

absl::StatusOr<std::shared_ptr<const Evaluation>> Evaluator::Evaluate(const TriggerRef& ref) {
  absl::Notification done;
  absl::StatusOr<std::shared_ptr<const Evaluation>> result = absl::UnknownError("unset");
  EvaluateAsync(ref, [&](absl::StatusOr<std::shared_ptr<const Evaluation>> r) {
    result = std::move(r);
    done.Notify();
  });
  done.WaitForNotification();
  return result;
}

absl::StatusOr<std::shared_ptr<const Evaluation>> Evaluator::RunEvaluation(TriggerState& state,
                                                                           const CachedParse& parse,
                                                                           absl::Time deadline) {
  counters_.evaluations.fetch_add(1, std::memory_order_relaxed);
  const TriggerSpec& spec = *parse.trigger.spec;
  // `deadline` is on the real clock; the reader gets the time left on options_.now's (the same
  // clock outside tests).
  const absl::Time reader_deadline = options_.now() + (deadline - absl::Now());
  absl::StatusOr<std::shared_ptr<kafka::OffsetReader>> reader = readers_(spec.connection);
  if (reader.ok()) {
    absl::MutexLock lock(&state.mu);
    state.reader = *reader;
    state.reader_cluster_key = parse.cluster_key;
    state.reader_got_at = options_.now();
  }
  absl::StatusOr<kafka::GroupOffsets> offsets =
      reader.ok() ? (*reader)->ReadOffsets(QueryOf(spec), reader_deadline)
                  : absl::StatusOr<kafka::GroupOffsets>(reader.status());
  if (!offsets.ok()) {
    counters_.failures.fetch_add(1, std::memory_order_relaxed);
    return offsets.status();
  }
  return FinishEvaluation(state, parse.trigger, *std::move(offsets));
}

std::optional<absl::StatusOr<std::shared_ptr<const Evaluation>>> Evaluator::TryImmediate(
    TriggerState& state, const CachedParse& parse) {
  std::shared_ptr<kafka::OffsetReader> reader;
  {
    absl::MutexLock lock(&state.mu);
    if (state.reader_cluster_key == parse.cluster_key &&
        options_.now() - state.reader_got_at < options_.idle_ttl / 2) {
      reader = state.reader.lock();
    }
  }
  if (reader == nullptr) return std::nullopt;
  std::optional<kafka::GroupOffsets> offsets = reader->TryReadOffsets(QueryOf(*parse.trigger.spec));
  if (!offsets.has_value()) return std::nullopt;
  counters_.immediate.fetch_add(1, std::memory_order_relaxed);
  return FinishEvaluation(state, parse.trigger, *std::move(offsets));
}

absl::StatusOr<std::shared_ptr<const Evaluation>> Evaluator::FinishEvaluation(
    TriggerState& state, const ParsedTrigger& trigger, kafka::GroupOffsets offsets) {
  const TriggerSpec& spec = *trigger.spec;
  // A partitionLimitation that selects no existing partition is an error (KEDA fails such a
  // trigger), not a lag of 0 that would hold a broken trigger at zero silently.
  if (absl::Status s = CheckPartitionLimitation(spec, offsets); !s.ok()) {
    counters_.failures.fetch_add(1, std::memory_order_relaxed);
    return s;
  }
  auto evaluation = std::make_shared<Evaluation>();
  {
    // Only the flight's owner gets here (a worker, or the caller answering at once), so
    // `previous` is read and replaced by one thread.
    absl::MutexLock lock(&state.mu);
    const LagSnapshot* previous = state.previous.has_value() ? &*state.previous : nullptr;
    evaluation->report = ComputeLag(spec, offsets, previous);
    state.previous = evaluation->report.snapshot;
  }
  evaluation->trigger = trigger;
  evaluation->evaluated_at = options_.now();
  evaluation->end_offsets_read_at = offsets.end_offsets_read_at;
  evaluation->committed_read_at = offsets.committed_read_at;
  return std::shared_ptr<const Evaluation>(std::move(evaluation));
}

EvaluatorStats Evaluator::Stats() const {
  EvaluatorStats stats;
  stats.evaluations = counters_.evaluations.load(std::memory_order_relaxed);
  stats.reused = counters_.reused.load(std::memory_order_relaxed);
  stats.reused_under_load = counters_.reused_under_load.load(std::memory_order_relaxed);
  stats.immediate = counters_.immediate.load(std::memory_order_relaxed);
  stats.joined = counters_.joined.load(std::memory_order_relaxed);
  stats.failures = counters_.failures.load(std::memory_order_relaxed);
  stats.rejected = counters_.rejected.load(std::memory_order_relaxed);
  stats.expired = counters_.expired.load(std::memory_order_relaxed);
  stats.over_bound = counters_.over_bound.load(std::memory_order_relaxed);
  const KafkaExecutorStats executor = executor_->Stats();
  stats.queued = executor.queued;
  stats.running = executor.running;
  absl::MutexLock lock(&mu_);
  stats.triggers = static_cast<int64_t>(triggers_.size());
  stats.clusters = static_cast<int64_t>(clusters_.size());
  return stats;
}

}  // namespace klag::scaler
