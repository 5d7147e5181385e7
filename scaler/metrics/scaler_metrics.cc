#include "scaler/metrics/scaler_metrics.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace klag::scaler {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

// gRPC's canonical code names, as grpc-go and grpc-java's metrics spell them.
const char* CodeName(grpc::StatusCode code) {
  static constexpr const char* kNames[] = {"OK",
                                           "CANCELLED",
                                           "UNKNOWN",
                                           "INVALID_ARGUMENT",
                                           "DEADLINE_EXCEEDED",
                                           "NOT_FOUND",
                                           "ALREADY_EXISTS",
                                           "PERMISSION_DENIED",
                                           "RESOURCE_EXHAUSTED",
                                           "FAILED_PRECONDITION",
                                           "ABORTED",
                                           "OUT_OF_RANGE",
                                           "UNIMPLEMENTED",
                                           "INTERNAL",
                                           "UNAVAILABLE",
                                           "DATA_LOSS",
                                           "UNAUTHENTICATED"};
  const int i = static_cast<int>(code);
  return i >= 0 && i < static_cast<int>(std::size(kNames)) ? kNames[i] : "UNKNOWN";
}

MetricFamily Family(std::string name, std::string help, MetricType type) {
  MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  return f;
}

void AddSample(MetricFamily& f, std::vector<ClientMetric::Label> labels, double value) {
  ClientMetric m;
  m.label = std::move(labels);
  if (f.type == MetricType::Counter) {
    m.counter.value = value;
  } else {
    m.gauge.value = value;
  }
  f.metric.push_back(std::move(m));
}

double Seconds(absl::Time t) { return absl::ToDoubleSeconds(t - absl::UnixEpoch()); }

}  // namespace

ScalerMetrics::ScalerMetrics(ScalerMetricsOptions options, BuildInfo build)
    : options_(std::move(options)),
      build_(std::move(build)),
      rpc_registry_(std::make_shared<prometheus::Registry>()),
      rpcs_(&prometheus::BuildCounter()
                 .Name("klag_scaler_rpcs_total")
                 .Help("ExternalScaler RPCs finished, by method and gRPC status code")
                 .Register(*rpc_registry_)),
      rpc_duration_(&prometheus::BuildHistogram()
                         .Name("klag_scaler_rpc_duration_seconds")
                         .Help("Latency of unary ExternalScaler RPCs (StreamIsActive excluded: its "
                               "duration is the stream's lifetime)")
                         .Register(*rpc_registry_)),
      evaluation_failures_(
          &prometheus::BuildCounter()
               .Name("klag_scaler_evaluation_failures_total")
               .Help("Fresh evaluations that failed, by gRPC status code name (Kafka errors: "
                     "UNAVAILABLE, DEADLINE_EXCEEDED, NOT_FOUND, PERMISSION_DENIED, ...)")
               .Register(*rpc_registry_)),
      data_age_(
          &prometheus::BuildHistogram()
               .Name("klag_evaluation_data_age_seconds")
               .Help("Age of the offsets behind each fresh evaluation when it was computed: "
                     "evaluation time minus the send time of the ListOffsets "
                     "(offsets=\"end\", bounded by --end-offsets-max-age) or of the "
                     "OffsetFetch (offsets=\"committed\", read for this evaluation) or of the "
                     "ListOffsets of __consumer_offsets its follower had read up to "
                     "(--committed-offsets-source offsets-topic)")
               .Register(*rpc_registry_)) {}

void ScalerMetrics::SetSources(MetricsSources sources) { sources_ = std::move(sources); }

void ScalerMetrics::RpcFinished(absl::string_view method, grpc::StatusCode code,
                                absl::Duration latency) {
  // The four methods the service reports (external_scaler_service.h); another name, which the
  // service never sends, goes through the label lookup.
  static constexpr absl::string_view kRpcMethods[kMethods] = {"IsActive", "StreamIsActive",
                                                              "GetMetricSpec", "GetMetrics"};
  int m = 0;
  while (m < kMethods && kRpcMethods[m] != method) ++m;
  const int c = static_cast<int>(code);
  const bool cached = m < kMethods && c >= 0 && c < kCodes;
  prometheus::Counter* counter =
      cached ? rpc_counters_[m][c].load(std::memory_order_acquire) : nullptr;
  if (counter == nullptr) {
    // Family::Add returns the series already made for these labels, so a race makes one.
    counter = &rpcs_->Add({{"method", std::string(method)}, {"code", CodeName(code)}});
    if (cached) rpc_counters_[m][c].store(counter, std::memory_order_release);
  }
  counter->Increment();
  if (method == "StreamIsActive") return;
  prometheus::Histogram* histogram =
      m < kMethods ? rpc_histograms_[m].load(std::memory_order_acquire) : nullptr;
  if (histogram == nullptr) {
    // 1 ms to 10 s: a window-reused answer takes well under a millisecond, a Kafka round trip
    // milliseconds to seconds, and --kafka-timeout defaults to 5 s.
    static const prometheus::Histogram::BucketBoundaries kBuckets = {
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
    histogram = &rpc_duration_->Add({{"method", std::string(method)}}, kBuckets);
    if (m < kMethods) rpc_histograms_[m].store(histogram, std::memory_order_release);
  }
  histogram->Observe(absl::ToDoubleSeconds(latency));
}

void ScalerMetrics::StreamOpened() { open_streams_.fetch_add(1, std::memory_order_relaxed); }
void ScalerMetrics::StreamClosed() { open_streams_.fetch_sub(1, std::memory_order_relaxed); }

void ScalerMetrics::Evaluated(const TriggerRef& ref, const TriggerSpec& spec,
                              const absl::StatusOr<std::shared_ptr<const Evaluation>>& result,
                              absl::Time at) {
  if (!result.ok()) {
    evaluation_failures_
        ->Add({{"code", CodeName(static_cast<grpc::StatusCode>(result.status().code()))}})
        .Increment();
  }
  if (result.ok()) {
    // 1 ms to 10 s: a committed offset read for this evaluation is milliseconds old, end offsets
    // up to --end-offsets-max-age (1 s) plus the round trip.
    static const prometheus::Histogram::BucketBoundaries kAgeBuckets = {
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 1.5, 2, 5, 10};
    static constexpr const char* kOffsets[] = {"end", "committed"};
    const Evaluation& e = **result;
    const absl::Time read_at[] = {e.end_offsets_read_at, e.committed_read_at};
    for (int i = 0; i < 2; ++i) {
      if (read_at[i] == absl::InfinitePast()) continue;  // the reader did not say
      prometheus::Histogram* histogram = data_age_series_[i].load(std::memory_order_acquire);
      if (histogram == nullptr) {  // Family::Add returns the one series of these labels
        histogram = &data_age_->Add({{"offsets", kOffsets[i]}}, kAgeBuckets);
        data_age_series_[i].store(histogram, std::memory_order_release);
      }
      histogram->Observe(std::max(0.0, absl::ToDoubleSeconds(e.evaluated_at - read_at[i])));
    }
  }
  const absl::Time now = options_.now();
  TriggerLabels key{ref.namespace_, ref.name, spec.consumer_group, absl::StrJoin(spec.topics, ",")};
  absl::MutexLock lock(&mu_);
  // Expired series are swept at most once a second here (Collect and series() sweep always): a
  // sweep walks every series, and doing it on every evaluation made each one O(series) under
  // this lock (bench, S = 5,000: about a core of CPU).
  if (now - last_sweep_ >= absl::Seconds(1) || now < last_sweep_) {
    SweepLocked(now);
    last_sweep_ = now;
  }
  auto it = triggers_.find(key);
  if (it == triggers_.end()) {
    if (SeriesLocked() + kSeriesPerTrigger > options_.max_series) {
      dropped_triggers_.fetch_add(1, std::memory_order_relaxed);
      return;  // nor its partitions: a trigger without series would show only half a picture
    }
    it = triggers_.emplace(std::move(key), TriggerValues{}).first;
  }
  TriggerValues& t = it->second;
  t.updated = now;
  t.evaluated_at = at;
  t.target = spec.lag_threshold;
  t.result_code = static_cast<int>(result.status().code());
  if (!result.ok()) return;  // the values of the last successful evaluation stay
  const LagReport& report = (*result)->report;
  t.has_report = true;
  t.metric_value = report.metric_value;
  t.active = report.active;
  t.lag = report.total_lag_with_persistent;
  t.partitions_with_lag = report.partitions_with_lag;
  t.lag_seconds = report.max_lag_seconds;
  for (const PartitionLag& p : report.partitions) {
    const PartitionLabelsView pkey{
        std::string_view(spec.connection.bootstrap_servers).substr(0, kMaxClusterLabel),
        spec.consumer_group, p.topic, p.partition};
    auto pit = partitions_.find(pkey);
    if (pit == partitions_.end()) {
      if (SeriesLocked() + kSeriesPerPartition > options_.max_series) {
        dropped_partitions_.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      pit = partitions_
                .emplace(PartitionLabels{std::get<0>(pkey), std::get<1>(pkey), std::get<2>(pkey),
                                         std::get<3>(pkey)},
                         PartitionValues{})
                .first;
    }
    pit->second = PartitionValues{.committed = p.committed,
                                  .log_start = p.log_start,
                                  .end = p.end,
                                  .lag = p.lag,
                                  .lag_seconds = p.lag_seconds,
                                  .updated = now};
  }
}

int64_t ScalerMetrics::SeriesLocked() const {
  return static_cast<int64_t>(triggers_.size()) * kSeriesPerTrigger +
         static_cast<int64_t>(partitions_.size()) * kSeriesPerPartition;
}

int64_t ScalerMetrics::series() const {
  absl::MutexLock lock(&mu_);
  SweepLocked(options_.now());
  return SeriesLocked();
}

void ScalerMetrics::SweepLocked(absl::Time now) const {
  std::erase_if(triggers_,
                [&](const auto& e) { return now - e.second.updated > options_.series_ttl; });
  std::erase_if(partitions_,
                [&](const auto& e) { return now - e.second.updated > options_.series_ttl; });
}

std::vector<MetricFamily> ScalerMetrics::Collect() const {
  std::vector<MetricFamily> out;

  MetricFamily build = Family("klag_build_info",
                              "Always 1; the labels name the build (version, git commit) and the "
                              "librdkafka loaded at run time",
                              MetricType::Gauge);
  AddSample(
      build,
      {{"version", build_.version}, {"commit", build_.commit}, {"librdkafka", build_.librdkafka}},
      1);
  out.push_back(std::move(build));

  for (MetricFamily& f : rpc_registry_->Collect()) out.push_back(std::move(f));

  MetricFamily streams =
      Family("klag_scaler_open_streams", "StreamIsActive streams open now", MetricType::Gauge);
  AddSample(streams, {}, static_cast<double>(open_streams_.load(std::memory_order_relaxed)));
  out.push_back(std::move(streams));

  if (sources_.evaluator) {
    const EvaluatorStats s = sources_.evaluator();
    MetricFamily evaluations =
        Family("klag_scaler_evaluations_total",
               "Trigger evaluations by outcome: fresh (a Kafka round trip), reused (answered from "
               "--evaluation-window), reused_under_load (answered from "
               "--evaluation-window-under-load: the cluster's Kafka work waited), joined "
               "(waited for a concurrent identical evaluation), immediate (evaluated at once "
               "from offsets the scaler already holds, no Kafka request: "
               "--committed-offsets-source offsets-topic)",
               MetricType::Counter);
    AddSample(evaluations, {{"outcome", "fresh"}}, static_cast<double>(s.evaluations));
    AddSample(evaluations, {{"outcome", "reused"}}, static_cast<double>(s.reused));
    AddSample(evaluations, {{"outcome", "reused_under_load"}},
              static_cast<double>(s.reused_under_load));
    AddSample(evaluations, {{"outcome", "joined"}}, static_cast<double>(s.joined));
    AddSample(evaluations, {{"outcome", "immediate"}}, static_cast<double>(s.immediate));
    out.push_back(std::move(evaluations));
    MetricFamily triggers = Family("klag_scaler_triggers",
                                   "Triggers the evaluator holds state for (asked about within "
                                   "--client-idle-timeout)",
                                   MetricType::Gauge);
    AddSample(triggers, {}, static_cast<double>(s.triggers));
    out.push_back(std::move(triggers));
    MetricFamily clusters =
        Family("klag_scaler_clusters",
               "Distinct Kafka clusters named by the triggers the evaluator holds state for",
               MetricType::Gauge);
    AddSample(clusters, {}, static_cast<double>(s.clusters));
    out.push_back(std::move(clusters));
    // The Kafka worker pool's saturation: work waiting at the bound is refused, work that
    // waits past its deadline expires; both reach KEDA as failed calls.
    MetricFamily work = Family("klag_scaler_kafka_work",
                               "Evaluations waiting for a Kafka worker (queued) and on one now "
                               "(running); --kafka-workers and --kafka-queue bound them",
                               MetricType::Gauge);
    AddSample(work, {{"state", "queued"}}, static_cast<double>(s.queued));
    AddSample(work, {{"state", "running"}}, static_cast<double>(s.running));
    out.push_back(std::move(work));
    MetricFamily refused =
        Family("klag_scaler_refused_total",
               "Calls answered with an error before any Kafka work, by reason: queue_full (the "
               "Kafka work queue at --kafka-queue or --kafka-queue-per-cluster: "
               "RESOURCE_EXHAUSTED), expired (no Kafka worker free within --kafka-timeout: "
               "DEADLINE_EXCEEDED), over_bound (a trigger or cluster bound: RESOURCE_EXHAUSTED)",
               MetricType::Counter);
    AddSample(refused, {{"reason", "queue_full"}}, static_cast<double>(s.rejected));
    AddSample(refused, {{"reason", "expired"}}, static_cast<double>(s.expired));
    AddSample(refused, {{"reason", "over_bound"}}, static_cast<double>(s.over_bound));
    out.push_back(std::move(refused));
  }
  if (sources_.kafka_clients) {
    MetricFamily clients =
        Family("klag_scaler_kafka_clients",
               "Kafka offset readers held (one per distinct connection)", MetricType::Gauge);
    AddSample(clients, {}, static_cast<double>(sources_.kafka_clients()));
    out.push_back(std::move(clients));
  }
  if (sources_.kafka_requests) {
    MetricFamily requests =
        Family("klag_scaler_kafka_requests_total",
               "Kafka requests the scaler's offset readers made, by API, summed over clusters",
               MetricType::Counter);
    for (const auto& [api, count] : sources_.kafka_requests()) {
      AddSample(requests, {{"api", api}}, static_cast<double>(count));
    }
    out.push_back(std::move(requests));
  }
  if (sources_.offsets_topic) {
    const std::map<std::string, int64_t> counts = sources_.offsets_topic();
    MetricFamily reads = Family(
        "klag_scaler_offsets_topic_reads_total",
        "With --committed-offsets-source offsets-topic: committed-offset reads answered by a "
        "__consumer_offsets follower (result=\"answered\") or sent to OffsetFetch instead "
        "(result=\"fallback\": the follower is loading, behind, or stopped)",
        MetricType::Counter);
    MetricFamily commits =
        Family("klag_scaler_offsets_topic_commits",
               "Committed offsets the __consumer_offsets followers hold, summed over clusters",
               MetricType::Gauge);
    for (const char* result : {"answered", "fallback"}) {
      auto it = counts.find(result);
      AddSample(reads, {{"result", result}},
                static_cast<double>(it == counts.end() ? 0 : it->second));
    }
    auto it = counts.find("commits");
    AddSample(commits, {}, static_cast<double>(it == counts.end() ? 0 : it->second));
    out.push_back(std::move(reads));
    out.push_back(std::move(commits));
  }

  MetricFamily dropped = Family("klag_metrics_series_dropped_total",
                                "Per-trigger or per-partition label sets not exported because "
                                "--metrics-max-series was reached, by kind",
                                MetricType::Counter);
  AddSample(dropped, {{"kind", "trigger"}},
            static_cast<double>(dropped_triggers_.load(std::memory_order_relaxed)));
  AddSample(dropped, {{"kind", "partition"}},
            static_cast<double>(dropped_partitions_.load(std::memory_order_relaxed)));
  out.push_back(std::move(dropped));

  MetricFamily t_value =
      Family("klag_trigger_metric_value", "The metric value last sent to KEDA for the trigger",
             MetricType::Gauge);
  MetricFamily t_target =
      Family("klag_trigger_target", "The trigger's lagThreshold (KEDA's target per replica)",
             MetricType::Gauge);
  MetricFamily t_active = Family("klag_trigger_active",
                                 "1 when the trigger was last active (lag above "
                                 "activationLagThreshold, or older than activationLagSeconds), "
                                 "0 otherwise",
                                 MetricType::Gauge);
  MetricFamily t_lag = Family("klag_trigger_lag_records",
                              "Sum of the lag of the trigger's partitions (including persistent "
                              "lag), at the last successful evaluation",
                              MetricType::Gauge);
  MetricFamily t_lag_seconds =
      Family("klag_trigger_lag_seconds",
             "Estimated age of the oldest unconsumed record of the trigger's partitions (the "
             "largest partition lag in seconds; absent when unknown)",
             MetricType::Gauge);
  MetricFamily t_with_lag = Family("klag_trigger_partitions_with_lag",
                                   "Partitions of the trigger with lag > 0", MetricType::Gauge);
  MetricFamily t_time =
      Family("klag_trigger_last_evaluation_timestamp_seconds",
             "Unix time of the trigger's last evaluation against Kafka (success or failure)",
             MetricType::Gauge);
  MetricFamily t_code = Family("klag_trigger_last_result_code",
                               "gRPC status code of the last evaluation (0 OK, 5 NOT_FOUND, "
                               "14 UNAVAILABLE, 4 DEADLINE_EXCEEDED, 7 PERMISSION_DENIED, ...)",
                               MetricType::Gauge);
  MetricFamily p_committed =
      Family("klag_partition_committed_offset",
             "The group's committed offset (absent when it has none)", MetricType::Gauge);
  MetricFamily p_end = Family("klag_partition_end_offset",
                              "The partition's end offset (high watermark, or last stable offset "
                              "for isolationLevel read_committed)",
                              MetricType::Gauge);
  MetricFamily p_start = Family("klag_partition_log_start_offset",
                                "The partition's log start offset", MetricType::Gauge);
  MetricFamily p_lag = Family("klag_partition_lag_records",
                              "end - max(committed, log start), never negative; without a "
                              "committed offset, as offsetResetPolicy says",
                              MetricType::Gauge);
  MetricFamily p_lag_seconds =
      Family("klag_partition_lag_seconds",
             "Estimated age of the oldest unconsumed record (0 without lag; absent when "
             "unknown), interpolated from the history of end offsets",
             MetricType::Gauge);
  {
    absl::MutexLock lock(&mu_);
    SweepLocked(options_.now());
    for (const auto& [key, t] : triggers_) {
      const auto& [ns, scaledjob, group, topic] = key;
      std::vector<ClientMetric::Label> labels = {
          {"namespace", ns}, {"scaledjob", scaledjob}, {"group", group}, {"topic", topic}};
      AddSample(t_target, labels, static_cast<double>(t.target));
      AddSample(t_time, labels, Seconds(t.evaluated_at));
      AddSample(t_code, labels, t.result_code);
      if (!t.has_report) continue;
      AddSample(t_value, labels, static_cast<double>(t.metric_value));
      AddSample(t_active, labels, t.active ? 1 : 0);
      AddSample(t_lag, labels, static_cast<double>(t.lag));
      AddSample(t_with_lag, labels, static_cast<double>(t.partitions_with_lag));
      if (t.lag_seconds.has_value()) AddSample(t_lag_seconds, labels, *t.lag_seconds);
    }
    for (const auto& [key, p] : partitions_) {
      const auto& [cluster, group, topic, partition] = key;
      std::vector<ClientMetric::Label> labels = {{"cluster", cluster},
                                                 {"group", group},
                                                 {"topic", topic},
                                                 {"partition", absl::StrCat(partition)}};
      if (p.committed.has_value()) {
        AddSample(p_committed, labels, static_cast<double>(*p.committed));
      }
      AddSample(p_end, labels, static_cast<double>(p.end));
      AddSample(p_start, labels, static_cast<double>(p.log_start));
      AddSample(p_lag, labels, static_cast<double>(p.lag));
      if (p.lag_seconds.has_value()) AddSample(p_lag_seconds, labels, *p.lag_seconds);
    }
    MetricFamily series = Family("klag_metrics_series",
                                 "Per-trigger plus per-partition series held now (bounded by "
                                 "--metrics-max-series)",
                                 MetricType::Gauge);
    AddSample(series, {}, static_cast<double>(SeriesLocked()));
    out.push_back(std::move(series));
  }
  for (MetricFamily* f :
       {&t_value, &t_target, &t_active, &t_lag, &t_lag_seconds, &t_with_lag, &t_time, &t_code,
        &p_committed, &p_end, &p_start, &p_lag, &p_lag_seconds}) {
    out.push_back(std::move(*f));
  }
  return out;
}

}  // namespace klag::scaler
