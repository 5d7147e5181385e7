#include "scaler/service/check_report.h"

#include <algorithm>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "kafka/connection_config.h"
#include "nlohmann/json.hpp"
#include "scaler/lag/trigger_spec.h"

namespace klag::scaler {
namespace {

// Seconds with one decimal ("42.5"); "-" when unknown.
std::string FormatSeconds(std::optional<double> seconds) {
  return seconds.has_value() ? absl::StrFormat("%.1f", *seconds) : "-";
}

nlohmann::json OptionalJson(std::optional<double> value) {
  return value.has_value() ? nlohmann::json(*value) : nlohmann::json(nullptr);
}

}  // namespace

std::string FormatCheckReport(const Evaluation& evaluation) {
  const TriggerSpec& spec = *evaluation.trigger.spec;
  const LagReport& report = evaluation.report;

  std::vector<std::vector<std::string>> rows;
  rows.push_back(
      {"TOPIC", "PARTITION", "COMMITTED", "LOG-START", "END", "LAG", "LAG-SECONDS", "NOTE"});
  for (const PartitionLag& p : report.partitions) {
    std::string note;
    if (!p.committed.has_value()) {
      note = "no commit";
    } else if (*p.committed < p.log_start) {
      note = "commit below log start";
    } else if (*p.committed > p.end) {
      note = "commit beyond end";
    }
    if (p.persistent) note = note.empty() ? "persistent" : absl::StrCat(note, ", persistent");
    rows.push_back({p.topic, absl::StrCat(p.partition),
                    p.committed.has_value() ? absl::StrCat(*p.committed) : "-",
                    absl::StrCat(p.log_start), absl::StrCat(p.end), absl::StrCat(p.lag),
                    FormatSeconds(p.lag_seconds), note});
  }
  std::vector<size_t> widths(rows[0].size(), 0);
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  std::string out = absl::StrCat(
      "consumer group ", spec.consumer_group, ", topics ",
      spec.topics.empty() ? "(from the group's commits)" : absl::StrJoin(spec.topics, ","), "\n\n");
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      // Numbers right-aligned, text left-aligned.
      const bool numeric = i >= 1 && i <= 6;
      absl::StrAppend(&line,
                      numeric ? absl::StrFormat("%*s", widths[i], row[i])
                              : absl::StrFormat("%-*s", widths[i], row[i]),
                      i + 1 < row.size() ? "  " : "");
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    absl::StrAppend(&out, line, "\n");
  }
  absl::StrAppend(&out, "\ntotal lag ", report.total_lag_with_persistent, " (metric lag ",
                  report.total_lag, ", ", report.partitions_with_lag, " of ",
                  report.partitions.size(), " partitions lagging), oldest unconsumed record ",
                  FormatSeconds(report.max_lag_seconds), " s old\n");
  absl::StrAppend(&out, "\nKEDA would receive:\n");
  absl::StrAppend(&out, "  metric name  ", evaluation.trigger.metric_name,
                  "   (KEDA prefixes s<trigger index>-)\n");
  absl::StrAppend(&out, "  metric value ", report.metric_value, "\n");
  absl::StrAppend(&out, "  target       ", spec.lag_threshold, "   (lagThreshold)\n");
  absl::StrAppend(&out, "  active       ", report.active ? "true" : "false", "   (lag ",
                  report.total_lag_with_persistent,
                  report.total_lag_with_persistent > spec.activation_lag_threshold ? " > " : " <= ",
                  spec.activation_lag_threshold, " activationLagThreshold");
  if (spec.activation_lag_seconds.has_value()) {
    const bool older = report.max_lag_seconds.value_or(0) > *spec.activation_lag_seconds;
    absl::StrAppend(&out, older ? " or " : " and ", FormatSeconds(report.max_lag_seconds),
                    older ? " s > " : " s <= ", FormatSeconds(spec.activation_lag_seconds),
                    " s activationLagSeconds");
  }
  absl::StrAppend(&out, ")\n");
  return out;
}

std::string FormatCheckReportJson(const Evaluation& evaluation) {
  const TriggerSpec& spec = *evaluation.trigger.spec;
  const LagReport& report = evaluation.report;
  nlohmann::json partitions = nlohmann::json::array();
  for (const PartitionLag& p : report.partitions) {
    partitions.push_back({{"topic", p.topic},
                          {"partition", p.partition},
                          {"committed", p.committed.has_value() ? nlohmann::json(*p.committed)
                                                                : nlohmann::json(nullptr)},
                          {"log_start", p.log_start},
                          {"end", p.end},
                          {"lag", p.lag},
                          {"lag_seconds", OptionalJson(p.lag_seconds)},
                          {"persistent", p.persistent}});
  }
  const nlohmann::json out = {
      {"consumer_group", spec.consumer_group},
      {"topics", spec.topics},
      {"partitions", std::move(partitions)},
      {"total_lag", report.total_lag_with_persistent},
      {"metric_lag", report.total_lag},
      {"partitions_with_lag", report.partitions_with_lag},
      {"max_lag_seconds", OptionalJson(report.max_lag_seconds)},
      {"keda",
       {{"metric_name", evaluation.trigger.metric_name},
        {"metric_value", report.metric_value},
        {"target", spec.lag_threshold},
        {"active", report.active},
        {"activation_lag_threshold", spec.activation_lag_threshold},
        {"activation_lag_seconds", OptionalJson(spec.activation_lag_seconds)}}}};
  // Replace, not throw, on bytes that are not UTF-8 (topic names come from the broker).
  return out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

absl::Status ResolveFromEnv(const EnvLookup& env, Metadata* metadata) {
  for (auto& [key, value] : *metadata) {
    if (!absl::EndsWith(key, "FromEnv") || key.size() == 7) continue;
    std::optional<std::string> resolved = env(value);
    if (!resolved.has_value()) {
      return absl::InvalidArgumentError(absl::StrCat(key, " names the environment variable ",
                                                     kafka::QuoteValue(value),
                                                     ", which is not set in this environment"));
    }
    value = *std::move(resolved);
  }
  return absl::OkStatus();
}

}  // namespace klag::scaler
