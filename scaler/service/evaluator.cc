#include "scaler/service/evaluator.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
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

// One in-progress evaluation; concurrent callers for the same trigger wait on `done`.
struct Evaluator::Flight {
  absl::Notification done;
  absl::StatusOr<std::shared_ptr<const Evaluation>> result = absl::UnknownError("unset");
};

struct Evaluator::TriggerState {
  absl::Mutex mu;
  std::shared_ptr<const Evaluation> last ABSL_GUARDED_BY(mu);
  std::shared_ptr<Flight> flight ABSL_GUARDED_BY(mu);
  // Snapshot of the previous poll, for excludePersistentLag.
  std::optional<LagSnapshot> previous ABSL_GUARDED_BY(mu);
  absl::Time last_used ABSL_GUARDED_BY(mu);
};

namespace {

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

}  // namespace

namespace internal {

std::string MetadataDigest(const Metadata& metadata, absl::string_view secret) {
  // Length-prefixed keys and values, so that no two different maps serialise the same; std::map
  // iterates in key order, so equal metadata digests equally.
  std::string data;
  for (const auto& [key, value] : metadata) {
    AppendLengthPrefixed(&data, key);
    AppendLengthPrefixed(&data, value);
  }
  std::array<unsigned char, EVP_MAX_MD_SIZE> mac;
  unsigned int mac_len = 0;
  if (HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
           reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac.data(),
           &mac_len) == nullptr) {
    spdlog::critical("HMAC-SHA256 failed");
    std::abort();
  }
  // 128 bits: a collision would make two triggers of one ScaledJob share state.
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(mac.data()), std::min(mac_len, 16u)));
}

}  // namespace internal

std::string TriggerKey(const TriggerRef& ref) {
  return absl::StrCat(ref.namespace_, "/", ref.name, "#",
                      internal::MetadataDigest(ref.metadata, ProcessSecret()));
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

Evaluator::Evaluator(ReaderProvider readers, ProfileStore* profiles, EvaluatorOptions options)
    : readers_(std::move(readers)), profiles_(profiles), options_(std::move(options)) {
  last_sweep_ = options_.now();
}

absl::StatusOr<ParsedTrigger> Evaluator::Parse(const TriggerRef& ref) const {
  const Metadata* effective = &ref.metadata;
  absl::StatusOr<Metadata> merged;
  if (profiles_ != nullptr) {
    merged = profiles_->Merge(ref.namespace_, ref.metadata);
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

std::shared_ptr<Evaluator::TriggerState> Evaluator::StateFor(const std::string& key,
                                                             const TriggerSpec& spec) {
  absl::MutexLock lock(&mu_);
  const absl::Time now = options_.now();
  if (now - last_sweep_ > absl::Minutes(1)) DropIdleLocked(now);
  auto [it, inserted] = triggers_.try_emplace(key);
  if (inserted) {
    it->second = std::make_shared<TriggerState>();
    if (!spec.unknown_keys.empty()) {
      // Once per trigger: KEDA forwards the trigger's keys verbatim, so a typo such as
      // lagTreshold would otherwise silently fall back to a default.
      spdlog::warn("trigger {}: ignoring unknown metadata keys: {}", key,
                   absl::StrJoin(spec.unknown_keys, ", "));
    }
  }
  return it->second;
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
      triggers_.erase(it++);
    } else {
      ++it;
    }
  }
}

absl::StatusOr<std::shared_ptr<const Evaluation>> Evaluator::Evaluate(const TriggerRef& ref) {
  absl::StatusOr<ParsedTrigger> parsed = Parse(ref);
  if (!parsed.ok()) return parsed.status();
  const std::string key = TriggerKey(ref);
  std::shared_ptr<TriggerState> state = StateFor(key, *parsed->spec);

  std::shared_ptr<Flight> flight;
  bool leader = false;
  {
    absl::MutexLock lock(&state->mu);
    const absl::Time now = options_.now();
    state->last_used = now;
    if (state->last != nullptr && now - state->last->evaluated_at < options_.window) {
      counters_.reused.fetch_add(1, std::memory_order_relaxed);
      return state->last;
    }
    if (state->flight == nullptr) {
      state->flight = std::make_shared<Flight>();
      leader = true;
    }
    flight = state->flight;
  }
  if (!leader) {
    counters_.joined.fetch_add(1, std::memory_order_relaxed);
    // The leader's reader call is bounded by kafka_timeout; the slack covers lag computation.
    if (!flight->done.WaitForNotificationWithTimeout(options_.kafka_timeout + absl::Seconds(1))) {
      return absl::DeadlineExceededError(
          absl::StrCat("trigger ", key, ": the evaluation in progress did not finish within ",
                       absl::FormatDuration(options_.kafka_timeout)));
    }
    return flight->result;
  }

  const std::shared_ptr<const TriggerSpec> spec = parsed->spec;
  absl::StatusOr<std::shared_ptr<const Evaluation>> result =
      RunEvaluation(*state, *std::move(parsed));
  if (options_.observer != nullptr)
    options_.observer->Evaluated(ref, *spec, result, options_.now());
  {
    absl::MutexLock lock(&state->mu);
    if (result.ok()) state->last = *result;
    state->flight = nullptr;
  }
  flight->result = result;
  flight->done.Notify();
  return result;
}

absl::StatusOr<std::shared_ptr<const Evaluation>> Evaluator::RunEvaluation(TriggerState& state,
                                                                           ParsedTrigger trigger) {
  counters_.evaluations.fetch_add(1, std::memory_order_relaxed);
  const TriggerSpec& spec = *trigger.spec;
  absl::StatusOr<std::shared_ptr<kafka::OffsetReader>> reader = readers_(spec.connection);
  absl::StatusOr<kafka::GroupOffsets> offsets =
      reader.ok() ? (*reader)->ReadOffsets(kafka::OffsetQuery{.group = spec.consumer_group,
                                                              .topics = spec.topics,
                                                              .isolation = spec.isolation_level},
                                           options_.now() + options_.kafka_timeout)
                  : absl::StatusOr<kafka::GroupOffsets>(reader.status());
  if (!offsets.ok()) {
    counters_.failures.fetch_add(1, std::memory_order_relaxed);
    return offsets.status();
  }
  // A partitionLimitation that selects no existing partition is an error (KEDA fails such a
  // trigger), not a lag of 0 that would hold a broken trigger at zero silently.
  if (absl::Status s = CheckPartitionLimitation(spec, *offsets); !s.ok()) {
    counters_.failures.fetch_add(1, std::memory_order_relaxed);
    return s;
  }
  auto evaluation = std::make_shared<Evaluation>();
  {
    // Only the leader of a flight gets here, so `previous` is read and replaced by one thread.
    absl::MutexLock lock(&state.mu);
    const LagSnapshot* previous = state.previous.has_value() ? &*state.previous : nullptr;
    evaluation->report = ComputeLag(spec, *offsets, previous);
    state.previous = evaluation->report.snapshot;
  }
  evaluation->trigger = std::move(trigger);
  evaluation->evaluated_at = options_.now();
  return std::shared_ptr<const Evaluation>(std::move(evaluation));
}

EvaluatorStats Evaluator::Stats() const {
  EvaluatorStats stats;
  stats.evaluations = counters_.evaluations.load(std::memory_order_relaxed);
  stats.reused = counters_.reused.load(std::memory_order_relaxed);
  stats.joined = counters_.joined.load(std::memory_order_relaxed);
  stats.failures = counters_.failures.load(std::memory_order_relaxed);
  absl::MutexLock lock(&mu_);
  stats.triggers = static_cast<int64_t>(triggers_.size());
  return stats;
}

}  // namespace klag::scaler
