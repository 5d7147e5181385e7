// libFuzzer harness: ComputeLag against a reference model written from KEDA's algorithm and
// klag's documented fixes (shared/reference/kafka-lag.md, README "Lag semantics"): per
// partition, no commit -> latest 1 / earliest end - log start (0 with
// scaleToZeroOnInvalidOffset), otherwise max(0, end - max(committed, log start)); the metric is
// the total capped at upper x lagThreshold (upper = partitions, or partitions with lag under
// limitToPartitionsWithLag) unless allowIdleConsumers; active when the total exceeds
// activationLagThreshold. ensureEvenDistributionOfPartitions and excludePersistentLag are
// checked by invariants only (metric within [0, upper x lagThreshold]; persistent partitions
// count for activity).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>

#include "kafka/offsets.h"
#include "scaler/lag/lag_calculator.h"
#include "scaler/lag/trigger_spec.h"
#include "tests/fuzz/fuzz_input.h"

namespace {

// Reads bytes from the input; 0 once it runs out.
class Bytes {
 public:
  Bytes(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  uint8_t U8() { return pos_ < size_ ? data_[pos_++] : 0; }
  int64_t Small() { return static_cast<int64_t>(U8()) * 7 + U8(); }  // 0 .. 2040
  bool Empty() const { return pos_ >= size_; }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using klag::fuzz::Check;
  Bytes in(data, size);
  klag::scaler::TriggerSpec spec;
  spec.topics = {"t"};
  const uint8_t flags = in.U8();
  spec.offset_reset_policy = (flags & 1) ? klag::scaler::OffsetResetPolicy::kEarliest
                                         : klag::scaler::OffsetResetPolicy::kLatest;
  spec.allow_idle_consumers = flags & 2;
  spec.scale_to_zero_on_invalid_offset = flags & 4;
  spec.limit_to_partitions_with_lag = flags & 8;
  spec.ensure_even_distribution_of_partitions = flags & 16;
  spec.exclude_persistent_lag = flags & 32;
  spec.lag_threshold = 1 + in.U8();
  spec.activation_lag_threshold = in.U8();

  klag::kafka::GroupOffsets offsets;
  const int count = 1 + in.U8() % 12;
  for (int p = 0; p < count; ++p) {
    klag::kafka::PartitionOffsets po{.topic = "t", .partition = p};
    po.log_start = in.Small();
    po.end = po.log_start + in.Small();
    const uint8_t c = in.U8();
    if (c % 4 != 0) po.committed = std::max<int64_t>(0, po.log_start + in.Small() - 500);
    offsets.partitions.push_back(po);
  }
  // A previous snapshot (for excludePersistentLag): some partitions' commits unchanged.
  klag::scaler::LagSnapshot previous;
  const bool have_previous = in.U8() & 1;
  for (const auto& po : offsets.partitions) {
    if (have_previous && (in.U8() & 1)) previous.committed[{po.topic, po.partition}] = po.committed;
  }

  const klag::scaler::LagReport r =
      klag::scaler::ComputeLag(spec, offsets, have_previous ? &previous : nullptr);

  // Per partition and the activity total: exactly the model.
  Check(r.partitions.size() == offsets.partitions.size(), "a partition was dropped or added");
  int64_t with_persistent = 0, with_lag = 0;
  for (size_t i = 0; i < offsets.partitions.size(); ++i) {
    const auto& po = offsets.partitions[i];
    int64_t lag;
    if (!po.committed.has_value()) {
      lag = spec.scale_to_zero_on_invalid_offset ? 0
            : spec.offset_reset_policy == klag::scaler::OffsetResetPolicy::kLatest
                ? 1
                : po.end - po.log_start;
    } else {
      lag = std::max<int64_t>(0, po.end - std::max(*po.committed, po.log_start));
    }
    Check(r.partitions[i].lag == lag, "a partition's lag differs from the model");
    with_persistent += lag;
    if (lag > 0) ++with_lag;
  }
  Check(r.total_lag_with_persistent == with_persistent, "activity total differs from the model");
  Check(r.active == (with_persistent > spec.activation_lag_threshold), "activity differs");
  Check(r.metric_value >= 0, "negative metric");
  Check(r.total_lag <= r.total_lag_with_persistent, "metric lag above the activity total");

  const int64_t partitions = static_cast<int64_t>(offsets.partitions.size());
  const bool capped = !spec.allow_idle_consumers || spec.limit_to_partitions_with_lag ||
                      spec.ensure_even_distribution_of_partitions;
  const int64_t upper = spec.limit_to_partitions_with_lag ? with_lag : partitions;
  if (capped) {
    Check(r.metric_value <= upper * spec.lag_threshold, "metric above upper x lagThreshold");
  }
  if (!spec.exclude_persistent_lag && !spec.ensure_even_distribution_of_partitions) {
    const int64_t expected =
        capped ? std::min(with_persistent, upper * spec.lag_threshold) : with_persistent;
    Check(r.metric_value == expected, "metric differs from the model");
  }
  return 0;
}
