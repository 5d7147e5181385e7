// The scaler's Prometheus metrics: its own RPCs, evaluations and Kafka clients, and, per trigger
// and per group/topic/partition, the lag it computed. Fed by the service and the evaluator
// through their observer interfaces; read by Prometheus through prometheus-cpp's Exposer
// (metrics_exposer.h), which calls Collect() on each scrape. Every metric is listed in
// docs/observability.md.
//
//   ScalerMetrics metrics(ScalerMetricsOptions{.max_series = 10000}, BuildInfo{...});
//   Evaluator evaluator(readers, &profiles, EvaluatorOptions{.observer = &metrics});
//   ExternalScalerService service(&evaluator, ServiceOptions{.observer = &metrics});
//   metrics.SetSources({.evaluator = [&] { return evaluator.Stats(); }, ...});
//
// Cardinality: trigger and partition labels come from untrusted requests, so per-trigger and
// per-partition series are capped at `max_series` (series that would exceed it are not created,
// and klag_metrics_series_dropped_total counts the refusals), and series not updated for
// `series_ttl` are removed. Labels are only namespace, scaledjob, group, topic and partition:
// never metadata values, which can hold passwords.
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "scaler/service/evaluator.h"
#include "scaler/service/external_scaler_service.h"

namespace klag::scaler {

struct ScalerMetricsOptions {
  // Upper bound on per-trigger plus per-partition series (each trigger label set costs
  // kSeriesPerTrigger series, each partition kSeriesPerPartition).
  int64_t max_series = 10000;
  // Trigger and partition series not updated by an evaluation for this long are removed.
  absl::Duration series_ttl = absl::Minutes(10);
  // Injected for tests.
  std::function<absl::Time()> now = [] { return absl::Now(); };
};

// Values of klag_build_info's labels.
struct BuildInfo {
  std::string version;
  std::string commit;
  std::string librdkafka;
};

// Kafka requests one reader made, by API name ("Metadata", "ListOffsets", "OffsetFetch").
using KafkaRequestCounts = std::map<std::string, int64_t>;

// Read at each scrape; any may be empty.
struct MetricsSources {
  std::function<EvaluatorStats()> evaluator;
  std::function<int64_t()> kafka_clients;              // readers in the cluster registry
  std::function<KafkaRequestCounts()> kafka_requests;  // summed over clusters
  // --committed-offsets-source offsets-topic, summed over clusters: "answered" (reads answered
  // by a __consumer_offsets follower), "fallback" (reads that went to OffsetFetch instead) and
  // "commits" (commits the followers hold now).
  std::function<std::map<std::string, int64_t>()> offsets_topic;
};

class ScalerMetrics final : public prometheus::Collectable,
                            public EvaluationObserver,
                            public RpcObserver {
 public:
  static constexpr int64_t kSeriesPerTrigger = 8;
  static constexpr int64_t kSeriesPerPartition = 5;
  // Bytes of the bootstrap servers kept in the `cluster` label.
  static constexpr size_t kMaxClusterLabel = 256;

  ScalerMetrics(ScalerMetricsOptions options, BuildInfo build);

  // Call once before the first scrape (the sources usually need objects that need `this`).
  void SetSources(MetricsSources sources);

  // prometheus::Collectable: every family, in the text format's order. Thread-safe.
  std::vector<prometheus::MetricFamily> Collect() const override;

  // EvaluationObserver. Thread-safe.
  void Evaluated(const TriggerRef& ref, const TriggerSpec& spec,
                 const absl::StatusOr<std::shared_ptr<const Evaluation>>& result,
                 absl::Time at) override;

  // RpcObserver. Thread-safe.
  void RpcFinished(absl::string_view method, grpc::StatusCode code,
                   absl::Duration latency) override;
  void StreamOpened() override;
  void StreamClosed() override;

  // Per-trigger plus per-partition series held now (for tests and the klag_metrics_series gauge).
  int64_t series() const;

 private:
  using TriggerLabels = std::tuple<std::string, std::string, std::string, std::string>;
  // (cluster, group, topic, partition); cluster: the bootstrap servers, cut to kMaxClusterLabel.
  using PartitionLabels = std::tuple<std::string, std::string, std::string, int32_t>;
  // The same labels borrowed from the evaluation, to find a series without copying them (the
  // maps compare transparently).
  using PartitionLabelsView =
      std::tuple<std::string_view, std::string_view, std::string_view, int32_t>;
  struct TriggerValues {
    bool has_report = false;
    int64_t metric_value = 0;
    int64_t target = 0;
    bool active = false;
    int64_t lag = 0;
    int64_t partitions_with_lag = 0;
    std::optional<double> lag_seconds;
    absl::Time evaluated_at;
    int result_code = 0;
    absl::Time updated;
  };
  struct PartitionValues {
    std::optional<int64_t> committed;
    int64_t log_start = 0;
    int64_t end = 0;
    int64_t lag = 0;
    std::optional<double> lag_seconds;
    absl::Time updated;
  };

  void SweepLocked(absl::Time now) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int64_t SeriesLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const ScalerMetricsOptions options_;
  const BuildInfo build_;
  MetricsSources sources_;

  // RPC metrics: bounded labels (four methods, seventeen codes), kept by prometheus-cpp.
  std::shared_ptr<prometheus::Registry> rpc_registry_;
  prometheus::Family<prometheus::Counter>* rpcs_;
  prometheus::Family<prometheus::Histogram>* rpc_duration_;
  // The series above once made, by method (kRpcMethods' order) and code (0-16), so that an RPC
  // builds no label map: prometheus-cpp's Family::Add copies, hashes and looks up the labels
  // under its mutex on every call. Null until first used (a series appears with its first RPC).
  static constexpr int kMethods = 4;
  static constexpr int kCodes = 17;
  std::atomic<prometheus::Counter*> rpc_counters_[kMethods][kCodes] = {};
  std::atomic<prometheus::Histogram*> rpc_histograms_[kMethods] = {};
  prometheus::Family<prometheus::Counter>* evaluation_failures_;
  prometheus::Family<prometheus::Histogram>* data_age_;
  // data_age_'s two series (offsets "end", "committed") once made (null until first used).
  std::atomic<prometheus::Histogram*> data_age_series_[2] = {};
  std::atomic<int64_t> open_streams_{0};
  std::atomic<int64_t> dropped_triggers_{0};
  std::atomic<int64_t> dropped_partitions_{0};

  mutable absl::Mutex mu_;
  absl::Time last_sweep_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  // Mutable: Collect() (const) removes expired series.
  mutable std::map<TriggerLabels, TriggerValues> triggers_ ABSL_GUARDED_BY(mu_);
  mutable std::map<PartitionLabels, PartitionValues, std::less<>> partitions_ ABSL_GUARDED_BY(mu_);
};

}  // namespace klag::scaler
