#include "scaler/lag/lag_calculator.h"

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <limits>
#include <map>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "kafka/connection_config.h"
#include "kafka/partition_work.h"

namespace klag::scaler {
namespace {

constexpr int64_t kMax = std::numeric_limits<int64_t>::max();

// Lag counts records, so sums and products saturate instead of wrapping: an absurd
// lagThreshold (up to 2^63-1) times the partition count must not turn the cap negative.
int64_t SaturatingAdd(int64_t a, int64_t b) {  // a, b >= 0
  return a > kMax - b ? kMax : a + b;
}

int64_t SaturatingMul(int64_t a, int64_t b) {  // a, b >= 0
  if (a == 0 || b == 0) return 0;
  return a > kMax / b ? kMax : a * b;
}

// KEDA's getNextFactorThatBalancesConsumersToTopicPartitions: the smallest divisor f of
// `partitions` (ascending, as FindFactors sorts them) with f * threshold >= total_lag, or
// `partitions` when none is.
int64_t NextFactor(int64_t total_lag, int64_t partitions, int64_t threshold) {
  for (int64_t f = 1; f <= partitions; ++f) {
    if (partitions % f == 0 && SaturatingMul(f, threshold) >= total_lag) return f;
  }
  return partitions;
}

// The lag of one partition, counted for activity (before excludePersistentLag): the rule klag-job's
// no-work check shares (kafka/partition_work.h).
int64_t PartitionLagFor(const TriggerSpec& spec, const kafka::PartitionOffsets& p) {
  return kafka::PartitionWork(
      p, {.reset_to_earliest = spec.offset_reset_policy == OffsetResetPolicy::kEarliest,
          .scale_to_zero_on_invalid_offset = spec.scale_to_zero_on_invalid_offset});
}

// partitionLimitation as sorted, merged ranges, so each partition is checked in O(log R): a
// limitation listing every partition one by one (R = P) would otherwise cost O(P^2).
class AllowedPartitions {
 public:
  explicit AllowedPartitions(std::vector<PartitionRange> ranges) : ranges_(std::move(ranges)) {
    std::sort(ranges_.begin(), ranges_.end(),
              [](const PartitionRange& a, const PartitionRange& b) { return a.first < b.first; });
    std::vector<PartitionRange> merged;
    for (const PartitionRange& r : ranges_) {
      if (!merged.empty() && static_cast<int64_t>(r.first) <= int64_t{merged.back().last} + 1) {
        merged.back().last = std::max(merged.back().last, r.last);
      } else {
        merged.push_back(r);
      }
    }
    ranges_ = std::move(merged);
  }

  const std::vector<PartitionRange>& ranges() const { return ranges_; }

  bool Contains(int32_t id) const {
    auto it = std::upper_bound(ranges_.begin(), ranges_.end(), id,
                               [](int32_t v, const PartitionRange& r) { return v < r.first; });
    return it != ranges_.begin() && id <= std::prev(it)->last;
  }

 private:
  std::vector<PartitionRange> ranges_;
};

// "0-2,5" for sorted, merged ranges.
std::string FormatRanges(const std::vector<PartitionRange>& ranges) {
  return absl::StrJoin(ranges, ",", [](std::string* out, const PartitionRange& r) {
    if (r.first == r.last) {
      absl::StrAppend(out, r.first);
    } else {
      absl::StrAppend(out, r.first, "-", r.last);
    }
  });
}

// At most this many topics are listed in the error (a trigger may name hundreds).
constexpr size_t kMaxTopicsListed = 10;

// The age of the oldest unconsumed record of a partition with `lag` records counted: 0 without
// lag; otherwise how long before the committed offsets were read the end offset passed the
// first unconsumed offset (kafka::PartitionOffsets::unconsumed_since), when known.
std::optional<double> LagSeconds(int64_t lag, const kafka::PartitionOffsets& p,
                                 absl::Time committed_read_at) {
  if (lag <= 0) return 0.0;
  if (!p.unconsumed_since.has_value() || committed_read_at == absl::InfinitePast()) {
    return std::nullopt;
  }
  return std::max(0.0, absl::ToDoubleSeconds(committed_read_at - *p.unconsumed_since));
}

}  // namespace

absl::Status CheckPartitionLimitation(const TriggerSpec& spec, const kafka::GroupOffsets& offsets) {
  if (spec.topics.empty() || spec.partition_limitation.empty()) return absl::OkStatus();
  const AllowedPartitions allowed(spec.partition_limitation);
  // Existing partitions per topic, as ranges (offsets are sorted by topic, then partition, but
  // are not relied on to be).
  std::map<std::string, std::vector<int32_t>> existing;
  for (const kafka::PartitionOffsets& p : offsets.partitions) {
    if (allowed.Contains(p.partition)) return absl::OkStatus();
    existing[p.topic].push_back(p.partition);
  }
  std::vector<std::string> listed;
  for (auto& [topic, ids] : existing) {
    if (listed.size() == kMaxTopicsListed) {
      listed.push_back(absl::StrCat("... (", existing.size(), " topics)"));
      break;
    }
    std::sort(ids.begin(), ids.end());
    std::vector<PartitionRange> ranges;
    for (int32_t id : ids) {
      if (!ranges.empty() && int64_t{ranges.back().last} + 1 >= id) {
        ranges.back().last = std::max(ranges.back().last, id);
      } else {
        ranges.push_back({id, id});
      }
    }
    listed.push_back(absl::StrCat(topic, ": ", FormatRanges(ranges)));
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "partitionLimitation ", kafka::QuoteValue(FormatRanges(allowed.ranges())),
      " selects no existing partition (",
      listed.empty() ? "the topics have no partitions" : absl::StrJoin(listed, "; "), ")"));
}

LagReport ComputeLag(const TriggerSpec& spec, const kafka::GroupOffsets& offsets,
                     const LagSnapshot* previous) {
  LagReport report;
  // As in KEDA, partitionLimitation applies only when topics are named.
  const bool limited = !spec.topics.empty() && !spec.partition_limitation.empty();
  const AllowedPartitions allowed(limited ? spec.partition_limitation
                                          : std::vector<PartitionRange>{});
  bool any_lag = false;
  bool any_lag_seconds = false;
  double max_lag_seconds = 0;
  for (const kafka::PartitionOffsets& p : offsets.partitions) {
    if (limited && !allowed.Contains(p.partition)) continue;
    PartitionLag lag{.topic = p.topic,
                     .partition = p.partition,
                     .committed = p.committed,
                     .log_start = p.log_start,
                     .end = p.end};
    lag.lag = PartitionLagFor(spec, p);
    lag.lag_seconds = LagSeconds(lag.lag, p, offsets.committed_read_at);
    const kafka::TopicPartition tp{p.topic, p.partition};
    if (spec.exclude_persistent_lag && previous != nullptr && p.committed.has_value() &&
        lag.lag > 0) {
      auto it = previous->committed.find(tp);
      lag.persistent = it != previous->committed.end() && it->second == p.committed;
    }
    const int64_t metric_lag = lag.persistent ? 0 : lag.lag;
    report.total_lag = SaturatingAdd(report.total_lag, metric_lag);
    report.total_lag_with_persistent = SaturatingAdd(report.total_lag_with_persistent, lag.lag);
    if (metric_lag > 0) ++report.partitions_with_lag;
    if (lag.lag > 0) {
      any_lag = true;
      if (lag.lag_seconds.has_value()) {
        any_lag_seconds = true;
        max_lag_seconds = std::max(max_lag_seconds, *lag.lag_seconds);
      }
    }
    report.snapshot.committed[tp] = p.committed;
    report.partitions.push_back(std::move(lag));
  }
  if (!any_lag || any_lag_seconds) report.max_lag_seconds = max_lag_seconds;
  std::sort(report.partitions.begin(), report.partitions.end(),
            [](const PartitionLag& a, const PartitionLag& b) {
              return std::tie(a.topic, a.partition) < std::tie(b.topic, b.partition);
            });

  const int64_t partition_count = static_cast<int64_t>(report.partitions.size());
  const int64_t threshold = spec.lag_threshold;
  int64_t metric = report.total_lag;
  if (!spec.allow_idle_consumers || spec.limit_to_partitions_with_lag ||
      spec.ensure_even_distribution_of_partitions) {
    if (spec.ensure_even_distribution_of_partitions && metric > 0) {
      metric = SaturatingMul(NextFactor(metric, partition_count, threshold), threshold);
    }
    const int64_t upper =
        spec.limit_to_partitions_with_lag ? report.partitions_with_lag : partition_count;
    // KEDA caps only when totalLag / T > upper (integer division), so up to upper*T + T - 1
    // passes; the exact cap keeps ceil(metric / T) <= upper.
    metric = std::min(metric, SaturatingMul(upper, threshold));
  }
  report.metric_value = metric;
  report.active = report.total_lag_with_persistent > spec.activation_lag_threshold ||
                  (spec.activation_lag_seconds.has_value() &&
                   report.max_lag_seconds.value_or(0) > *spec.activation_lag_seconds);
  return report;
}

}  // namespace klag::scaler
