#include "scaler/service/check_report.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace klag::scaler {

std::string FormatCheckReport(const Evaluation& evaluation) {
  const TriggerSpec& spec = *evaluation.trigger.spec;
  const LagReport& report = evaluation.report;

  std::vector<std::vector<std::string>> rows;
  rows.push_back({"TOPIC", "PARTITION", "COMMITTED", "LOG-START", "END", "LAG", "NOTE"});
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
                    absl::StrCat(p.log_start), absl::StrCat(p.end), absl::StrCat(p.lag), note});
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
      const bool numeric = i >= 1 && i <= 5;
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
                  report.partitions.size(), " partitions lagging)\n");
  absl::StrAppend(&out, "\nKEDA would receive:\n");
  absl::StrAppend(&out, "  metric name  ", evaluation.trigger.metric_name,
                  "   (KEDA prefixes s<trigger index>-)\n");
  absl::StrAppend(&out, "  metric value ", report.metric_value, "\n");
  absl::StrAppend(&out, "  target       ", spec.lag_threshold, "   (lagThreshold)\n");
  absl::StrAppend(&out, "  active       ", report.active ? "true" : "false", "   (lag ",
                  report.total_lag_with_persistent,
                  report.active ? " > " : " <= ", spec.activation_lag_threshold,
                  " activationLagThreshold)\n");
  return out;
}

}  // namespace klag::scaler
