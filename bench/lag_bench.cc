// Micro-benchmarks of the pure lag code (scaler/lag): trigger metadata parsing and the lag
// computation of one evaluation, at P = 12, 1,000 and 10,000 partitions, so that a regression
// shows up as a number. Run alone or through bench/run.sh (which prints them as a table):
//
//   build-bench/bench/klag_lag_bench --benchmark_min_time=0.2
//
// Every benchmark reports `items_per_second` = partitions per second, so the figures of
// different P compare directly (a flat rate means linear cost).
#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "kafka/offsets.h"
#include "scaler/lag/lag_calculator.h"
#include "scaler/lag/trigger_spec.h"

namespace klag::scaler {
namespace {

constexpr char kTopic[] = "ListedStockPrice";

// The seed's trigger metadata, plus whatever `extra` adds.
Metadata TriggerMetadata(Metadata extra = {}) {
  Metadata md = {{"bootstrapServers", "kafka-0.kafka:9092,kafka-1.kafka:9092,kafka-2.kafka:9092"},
                 {"consumerGroup", "python_data_load"},
                 {"topic", kTopic},
                 {"lagThreshold", "1"},
                 {"offsetResetPolicy", "latest"},
                 {"scalerAddress", "klag-scaler.klag.svc.cluster.local:6000"}};
  for (auto& [k, v] : extra) md[k] = v;
  return md;
}

// "0,1,2,...,P-1": every partition named on its own (the longest partitionLimitation for P).
std::string PartitionList(int64_t partitions) {
  std::string s;
  for (int64_t i = 0; i < partitions; ++i) absl::StrAppend(&s, i == 0 ? "" : ",", i);
  return s;
}

TriggerSpec MustParse(const Metadata& md) {
  absl::StatusOr<TriggerSpec> spec = ParseTriggerSpec(md);
  if (!spec.ok()) {
    fprintf(stderr, "lag_bench: bad metadata: %s\n", spec.status().ToString().c_str());
    abort();
  }
  return *std::move(spec);
}

// One topic of P partitions, all committed, each with some lag (sorted, as readers return them).
kafka::GroupOffsets Offsets(int64_t partitions, int64_t advance = 0) {
  kafka::GroupOffsets offsets;
  offsets.partitions.reserve(static_cast<size_t>(partitions));
  for (int64_t i = 0; i < partitions; ++i) {
    offsets.partitions.push_back({.topic = kTopic,
                                  .partition = static_cast<int32_t>(i),
                                  .committed = 1000 + i + advance,
                                  .log_start = 10,
                                  .end = 5000 + 3 * i});
  }
  return offsets;
}

// Metadata parsing, typical trigger (no partitionLimitation): independent of P.
void BM_ParseTriggerSpec(benchmark::State& state) {
  const Metadata md = TriggerMetadata();
  for (auto _ : state) {
    absl::StatusOr<TriggerSpec> spec = ParseTriggerSpec(md);
    benchmark::DoNotOptimize(spec);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ParseTriggerSpec);

// Metadata parsing with a partitionLimitation that names each of P partitions.
void BM_ParseTriggerSpec_PartitionList(benchmark::State& state) {
  const Metadata md = TriggerMetadata({{"partitionLimitation", PartitionList(state.range(0))}});
  for (auto _ : state) {
    absl::StatusOr<TriggerSpec> spec = ParseTriggerSpec(md);
    benchmark::DoNotOptimize(spec);
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_ParseTriggerSpec_PartitionList)->Arg(12)->Arg(1000)->Arg(10000);

// KEDA's metric name for the trigger (computed per GetMetricSpec).
void BM_MetricName(benchmark::State& state) {
  const TriggerSpec spec = MustParse(TriggerMetadata());
  for (auto _ : state) benchmark::DoNotOptimize(MetricName(spec));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_MetricName);

// One evaluation with the default settings (cap at P x lagThreshold).
void BM_ComputeLag(benchmark::State& state) {
  const TriggerSpec spec = MustParse(TriggerMetadata());
  const kafka::GroupOffsets offsets = Offsets(state.range(0));
  for (auto _ : state) {
    LagReport report = ComputeLag(spec, offsets, nullptr);
    benchmark::DoNotOptimize(report);
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_ComputeLag)->Arg(12)->Arg(1000)->Arg(10000);

// excludePersistentLag with the previous poll's snapshot (half the partitions did not move).
void BM_ComputeLag_ExcludePersistentLag(benchmark::State& state) {
  const TriggerSpec spec = MustParse(TriggerMetadata({{"excludePersistentLag", "true"}}));
  const int64_t partitions = state.range(0);
  const LagReport previous = ComputeLag(spec, Offsets(partitions), nullptr);
  kafka::GroupOffsets offsets = Offsets(partitions);
  for (int64_t i = 0; i < partitions; i += 2) *offsets.partitions[i].committed += 1;
  for (auto _ : state) {
    LagReport report = ComputeLag(spec, offsets, &previous.snapshot);
    benchmark::DoNotOptimize(report);
  }
  state.SetItemsProcessed(state.iterations() * partitions);
}
BENCHMARK(BM_ComputeLag_ExcludePersistentLag)->Arg(12)->Arg(1000)->Arg(10000);

// partitionLimitation naming every partition on its own ("0,1,...,P-1").
void BM_ComputeLag_PartitionList(benchmark::State& state) {
  const int64_t partitions = state.range(0);
  const TriggerSpec spec =
      MustParse(TriggerMetadata({{"partitionLimitation", PartitionList(partitions)}}));
  const kafka::GroupOffsets offsets = Offsets(partitions);
  for (auto _ : state) {
    LagReport report = ComputeLag(spec, offsets, nullptr);
    benchmark::DoNotOptimize(report);
  }
  state.SetItemsProcessed(state.iterations() * partitions);
}
BENCHMARK(BM_ComputeLag_PartitionList)->Arg(12)->Arg(1000)->Arg(10000);

// partitionLimitation as one range ("0-(P-1)").
void BM_ComputeLag_PartitionRange(benchmark::State& state) {
  const int64_t partitions = state.range(0);
  const TriggerSpec spec =
      MustParse(TriggerMetadata({{"partitionLimitation", absl::StrCat("0-", partitions - 1)}}));
  const kafka::GroupOffsets offsets = Offsets(partitions);
  for (auto _ : state) {
    LagReport report = ComputeLag(spec, offsets, nullptr);
    benchmark::DoNotOptimize(report);
  }
  state.SetItemsProcessed(state.iterations() * partitions);
}
BENCHMARK(BM_ComputeLag_PartitionRange)->Arg(12)->Arg(1000)->Arg(10000);

}  // namespace
}  // namespace klag::scaler

BENCHMARK_MAIN();
