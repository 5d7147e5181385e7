#include "scaler/service/check_report.h"

#include <algorithm>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
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

// The record at the partition's first unconsumed offset, when check read one.
const kafka::RecordTimestamp* OldestRecord(const CheckContext& context, const PartitionLag& p) {
  if (!context.oldest_records.has_value() || !context.oldest_records->ok()) return nullptr;
  const auto& records = **context.oldest_records;
  auto it = records.find(kafka::TopicPartition{p.topic, p.partition});
  return it == records.end() ? nullptr : &it->second;
}

double AgeSeconds(const CheckContext& context, const kafka::RecordTimestamp& record) {
  return absl::ToDoubleSeconds(context.records_read_at - record.time);
}

// The oldest unconsumed record's age over the partitions with lag, from the records read.
std::optional<double> OldestAge(const Evaluation& evaluation, const CheckContext& context) {
  std::optional<double> oldest;
  for (const PartitionLag& p : evaluation.report.partitions) {
    if (const kafka::RecordTimestamp* r = OldestRecord(context, p); r != nullptr) {
      oldest = std::max(oldest.value_or(AgeSeconds(context, *r)), AgeSeconds(context, *r));
    }
  }
  return oldest;
}

// The trigger's topics: as configured, or (without `topic`) those the report found commits for.
std::set<std::string, std::less<>> TriggerTopics(const Evaluation& evaluation) {
  std::set<std::string, std::less<>> topics(evaluation.trigger.spec->topics.begin(),
                                            evaluation.trigger.spec->topics.end());
  if (topics.empty()) {
    for (const PartitionLag& p : evaluation.report.partitions) topics.insert(p.topic);
  }
  return topics;
}

// A member's assignment split into the trigger's topics and a count of the rest.
struct MemberPartitions {
  std::vector<kafka::TopicPartition> trigger;
  size_t other = 0;
};

MemberPartitions SplitAssignment(const kafka::GroupMember& member,
                                 const std::set<std::string, std::less<>>& topics) {
  MemberPartitions out;
  for (const kafka::TopicPartition& tp : member.assignment) {
    if (topics.contains(tp.topic)) {
      out.trigger.push_back(tp);
    } else {
      ++out.other;
    }
  }
  return out;
}

// "orders:0,1 payments:3" (the assignment is sorted by topic, then partition).
std::string FormatPartitions(const MemberPartitions& p) {
  std::string out;
  for (size_t i = 0; i < p.trigger.size(); ++i) {
    const bool new_topic = i == 0 || p.trigger[i].topic != p.trigger[i - 1].topic;
    absl::StrAppend(&out, new_topic ? (i == 0 ? "" : " ") : ",",
                    new_topic ? absl::StrCat(p.trigger[i].topic, ":") : "", p.trigger[i].partition);
  }
  // push_back, not `out = "-"`: GCC 12 at -O3 reports a false -Wrestrict on that assignment here
  // (GCC bug 105329).
  if (out.empty()) out.push_back('-');
  if (p.other > 0) absl::StrAppend(&out, " (+", p.other, " of other topics)");
  return out;
}

// Columns two spaces apart (right-aligned where `numeric`), each line prefixed with `indent`.
std::string FormatColumns(const std::vector<std::vector<std::string>>& rows,
                          absl::string_view indent, const std::vector<bool>& numeric) {
  std::vector<size_t> widths(rows.empty() ? 0 : rows[0].size(), 0);
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line(indent);
    for (size_t i = 0; i < row.size(); ++i) {
      absl::StrAppend(&line,
                      numeric[i] ? absl::StrFormat("%*s", widths[i], row[i])
                                 : absl::StrFormat("%-*s", widths[i], row[i]),
                      i + 1 < row.size() ? "  " : "");
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    absl::StrAppend(&out, line, "\n");
  }
  return out;
}

std::string FormatGroup(const Evaluation& evaluation,
                        const absl::StatusOr<kafka::GroupDescription>& group) {
  const std::string& name = evaluation.trigger.spec->consumer_group;
  if (!group.ok()) {
    return absl::StrCat("\nconsumer group ", name, ": not described (", group.status().ToString(),
                        ")\n");
  }
  if (group->type == kafka::GroupType::kConsumer) {
    return absl::StrCat("\nconsumer group ", name, ": consumer protocol (KIP-848), state ",
                        group->state,
                        "; members not described (librdkafka 2.8 describes classic groups only)\n");
  }
  std::string out = absl::StrCat("\nconsumer group ", name, ": state ", group->state);
  // What Kafka answers for a group id its coordinator has no state for (never used, or expired).
  if (group->type == kafka::GroupType::kUnknown) {
    absl::StrAppend(&out, " (the coordinator knows no such group)");
  }
  if (!group->partition_assignor.empty()) {
    absl::StrAppend(&out, ", assignor ", group->partition_assignor);
  }
  if (group->coordinator.has_value()) absl::StrAppend(&out, ", coordinator ", *group->coordinator);
  absl::StrAppend(&out, ", ", group->members.size(),
                  group->members.size() == 1 ? " member\n" : " members\n");
  if (group->members.empty()) {
    if (evaluation.report.total_lag_with_persistent > 0) {
      absl::StrAppend(&out, "  no live consumer: nothing consumes the lag until a Job starts\n");
    }
    return out;
  }
  const std::set<std::string, std::less<>> topics = TriggerTopics(evaluation);
  std::vector<std::vector<std::string>> rows = {{"CLIENT-ID", "HOST", "INSTANCE-ID", "PARTITIONS"}};
  for (const kafka::GroupMember& m : group->members) {
    rows.push_back({m.client_id, m.host, m.group_instance_id.value_or("-"),
                    FormatPartitions(SplitAssignment(m, topics))});
  }
  absl::StrAppend(&out, FormatColumns(rows, "  ", {false, false, false, false}));
  return out;
}

nlohmann::json GroupJson(const Evaluation& evaluation,
                         const absl::StatusOr<kafka::GroupDescription>& group) {
  if (!group.ok()) return {{"error", group.status().ToString()}};
  const std::set<std::string, std::less<>> topics = TriggerTopics(evaluation);
  nlohmann::json members = nlohmann::json::array();
  for (const kafka::GroupMember& m : group->members) {
    const MemberPartitions p = SplitAssignment(m, topics);
    nlohmann::json partitions = nlohmann::json::array();
    for (const kafka::TopicPartition& tp : p.trigger) {
      partitions.push_back({{"topic", tp.topic}, {"partition", tp.partition}});
    }
    members.push_back(
        {{"member_id", m.member_id},
         {"client_id", m.client_id},
         {"group_instance_id",
          m.group_instance_id.has_value() ? nlohmann::json(*m.group_instance_id) : nullptr},
         {"host", m.host},
         {"partitions", std::move(partitions)},
         {"other_partitions", p.other}});
  }
  return {{"type", kafka::GroupTypeName(group->type)},
          {"state", group->state},
          {"partition_assignor", group->partition_assignor},
          {"simple", group->simple},
          {"coordinator",
           group->coordinator.has_value() ? nlohmann::json(*group->coordinator) : nullptr},
          // null: not described (a consumer-protocol group), not "none".
          {"members", group->type == kafka::GroupType::kConsumer ? nlohmann::json(nullptr)
                                                                 : std::move(members)}};
}

}  // namespace

std::string FormatCheckReport(const Evaluation& evaluation, const CheckContext& context) {
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
    // With the records read, the age of the one at the first unconsumed offset; otherwise the
    // evaluation's estimate.
    std::optional<double> age = p.lag_seconds;
    if (context.oldest_records.has_value()) {
      const kafka::RecordTimestamp* r = OldestRecord(context, p);
      age = r == nullptr ? std::nullopt : std::optional<double>(AgeSeconds(context, *r));
    }
    rows.push_back({p.topic, absl::StrCat(p.partition),
                    p.committed.has_value() ? absl::StrCat(*p.committed) : "-",
                    absl::StrCat(p.log_start), absl::StrCat(p.end), absl::StrCat(p.lag),
                    FormatSeconds(age), note});
  }
  std::string out;
  if (!context.source.empty()) absl::StrAppend(&out, "trigger: ", context.source, "\n");
  for (const std::string& note : context.notes) absl::StrAppend(&out, "note: ", note, "\n");
  if (!out.empty()) out += "\n";
  absl::StrAppend(
      &out, "consumer group ", spec.consumer_group, ", topics ",
      spec.topics.empty() ? "(from the group's commits)" : absl::StrJoin(spec.topics, ","), "\n\n");
  // Numbers right-aligned, text left-aligned.
  absl::StrAppend(&out,
                  FormatColumns(rows, "", {false, true, true, true, true, true, true, false}));
  absl::StrAppend(&out, "\ntotal lag ", report.total_lag_with_persistent, " (metric lag ",
                  report.total_lag, ", ", report.partitions_with_lag, " of ",
                  report.partitions.size(), " partitions lagging)");
  if (!context.oldest_records.has_value()) {
    absl::StrAppend(&out, ", oldest unconsumed record ", FormatSeconds(report.max_lag_seconds),
                    " s old (estimated)\n");
  } else if (!context.oldest_records->ok()) {
    absl::StrAppend(&out, "\nreading the oldest unconsumed records failed: ",
                    context.oldest_records->status().message(), "\n");
  } else {
    const std::optional<double> oldest = OldestAge(evaluation, context);
    absl::StrAppend(&out, ", oldest unconsumed record ", FormatSeconds(oldest),
                    oldest.has_value() ? " s old (its timestamp)\n" : " (none readable)\n");
  }
  if (context.oldest_records.has_value() && spec.activation_lag_seconds.has_value()) {
    absl::StrAppend(&out,
                    "(activationLagSeconds uses the scaler's estimate from its history of end "
                    "offsets, ",
                    FormatSeconds(report.max_lag_seconds),
                    " s from check's single read: a lower bound until a running scaler has "
                    "watched the partitions)\n");
  }
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
  if (context.group.has_value()) absl::StrAppend(&out, FormatGroup(evaluation, *context.group));
  return out;
}

std::string FormatCheckReportJson(const Evaluation& evaluation, const CheckContext& context) {
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
    if (context.oldest_records.has_value() && context.oldest_records->ok()) {
      const kafka::RecordTimestamp* r = OldestRecord(context, p);
      partitions.back()["oldest_unconsumed"] =
          r == nullptr
              ? nlohmann::json(nullptr)
              : nlohmann::json{
                    {"offset", r->offset},
                    {"timestamp",
                     absl::FormatTime(absl::RFC3339_full, r->time, absl::UTCTimeZone())},
                    {"timestamp_type", r->log_append_time ? "LogAppendTime" : "CreateTime"},
                    {"age_seconds", AgeSeconds(context, *r)}};
    }
  }
  nlohmann::json out = {{"consumer_group", spec.consumer_group},
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
  if (!context.source.empty()) out["source"] = context.source;
  if (!context.notes.empty()) out["notes"] = context.notes;
  if (context.group.has_value()) out["group"] = GroupJson(evaluation, *context.group);
  if (context.oldest_records.has_value()) {
    if (context.oldest_records->ok()) {
      out["oldest_unconsumed_age_seconds"] = OptionalJson(OldestAge(evaluation, context));
    } else {
      out["oldest_unconsumed_error"] = std::string(context.oldest_records->status().message());
    }
  }
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
