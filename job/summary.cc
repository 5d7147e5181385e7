#include "job/summary.h"

#include "nlohmann/json.hpp"

namespace klag::job {
namespace {

nlohmann::json OptionalOffset(const std::optional<int64_t>& offset) {
  return offset.has_value() ? nlohmann::json(*offset) : nlohmann::json(nullptr);
}

}  // namespace

std::string SummaryJson(const DrainReport& report, absl::string_view group) {
  nlohmann::json partitions = nlohmann::json::array();
  for (const PartitionProgress& p : report.partitions) {
    partitions.push_back({{"topic", p.partition.topic},
                          {"partition", p.partition.partition},
                          {"start", p.start},
                          {"end", p.end},
                          {"committed_before", OptionalOffset(p.committed_before)},
                          {"committed", OptionalOffset(p.committed)},
                          {"records", p.records}});
  }
  nlohmann::json summary = {
      {"exit_reason", std::string(ExitReasonName(report.reason))},
      {"exit_code", ExitCode(report.reason)},
      {"group", std::string(group)},
      {"records", report.records},
      {"bytes", report.bytes},
      {"dead_lettered", report.dead_lettered},
      {"batches", report.batches},
      {"commits", report.commits},
      {"duration_s", absl::ToDoubleSeconds(report.duration)},
      {"partitions", std::move(partitions)},
  };
  if (!report.error.ok()) summary["error"] = report.error.ToString();
  // Topic names and error texts may hold any bytes: replace invalid UTF-8 rather than throw.
  return summary.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace klag::job
