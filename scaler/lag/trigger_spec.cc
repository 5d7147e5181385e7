#include "scaler/lag/trigger_spec.h"

#include <algorithm>
#include <array>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"

namespace klag::scaler {
namespace {

using kafka::LookupSetting;
using kafka::QuoteValue;
using kafka::Setting;

absl::Status Invalid(absl::string_view message) { return absl::InvalidArgumentError(message); }

// Keys of KEDA's `kafka` trigger read here (the connection keys are kafka::ConnectionSettingKeys).
constexpr std::array<absl::string_view, 14> kTriggerKeys = {
    "consumerGroup",
    "topic",
    "partitionLimitation",
    "lagThreshold",
    "activationLagThreshold",
    "offsetResetPolicy",
    "allowIdleConsumers",
    "excludePersistentLag",
    "scaleToZeroOnInvalidOffset",
    "limitToPartitionsWithLag",
    "ensureEvenDistributionOfPartitions",
    "version",
    "isolationLevel",        // klag extension
    "activationLagSeconds",  // klag extension
};

// Keys of KEDA's `kafka` trigger (v2.20.2) that have no effect here, accepted so they are not
// reported as unknown: kerberosConfig (librdkafka reads krb5.conf from the process: KRB5_CONFIG),
// kerberosDisableFAST (a gokrb5 option), awsRegion (only for aws_msk_iam, not implemented).
constexpr std::array<absl::string_view, 3> kIgnoredKafkaKeys = {"kerberosConfig",
                                                                "kerberosDisableFAST", "awsRegion"};

// Keys KEDA reads itself for `type: external` and forwards anyway, and klag's authProfile
// (resolved by the service layer before parsing). Known in their plain form only.
constexpr std::array<absl::string_view, 7> kPassThroughKeys = {
    "scalerAddress", "enableTLS",    "unsafeSsl",  "caCert",
    "tlsClientCert", "tlsClientKey", "authProfile"};

// A duration in seconds: a non-negative decimal number ("300", "1.5"), at most 10 years. No
// exponent, sign, unit or surrounding spaces, so a value means what it looks like.
absl::StatusOr<double> ParseSeconds(const Setting& setting) {
  constexpr double kMaxSeconds = 10.0 * 365 * 24 * 3600;
  const absl::string_view v = setting.value;
  const size_t dot = v.find('.');
  const absl::string_view whole = v.substr(0, dot);
  const absl::string_view fraction =
      dot == absl::string_view::npos ? absl::string_view() : v.substr(dot + 1);
  auto digits = [](absl::string_view d) {
    return std::all_of(d.begin(), d.end(),
                       [](char c) { return absl::ascii_isdigit(static_cast<unsigned char>(c)); });
  };
  double seconds = 0;
  if (whole.empty() || !digits(whole) || (dot != absl::string_view::npos && fraction.empty()) ||
      !digits(fraction) || !absl::SimpleAtod(v, &seconds) || seconds > kMaxSeconds) {
    return Invalid(absl::StrCat(setting.key,
                                " must be a number of seconds >= 0 (at most 10 years), got ",
                                QuoteValue(setting.value)));
  }
  return seconds;
}

bool IsKnownKey(absl::string_view key) {
  auto in = [](const auto& keys, absl::string_view k) {
    return std::find(keys.begin(), keys.end(), k) != keys.end();
  };
  if (in(kPassThroughKeys, key)) return true;
  absl::string_view base = key;
  absl::ConsumeSuffix(&base, "FromEnv");
  return in(kTriggerKeys, base) || in(kIgnoredKafkaKeys, base) ||
         in(kafka::ConnectionSettingKeys(), base);
}

// A partition id: digits only (so "-1" is refused), within int32.
bool ParsePartitionId(absl::string_view text, int32_t* id) {
  text = absl::StripAsciiWhitespace(text);
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
    return absl::ascii_isdigit(static_cast<unsigned char>(c));
  }) && absl::SimpleAtoi(text, id);
}

absl::StatusOr<std::vector<PartitionRange>> ParsePartitionLimitation(const Setting& setting) {
  std::vector<PartitionRange> ranges;
  for (absl::string_view raw : absl::StrSplit(setting.value, ',')) {
    const absl::string_view entry = absl::StripAsciiWhitespace(raw);
    auto bad = [&](absl::string_view why) {
      return Invalid(absl::StrCat(setting.key, " ", QuoteValue(setting.value), " has a bad entry ",
                                  QuoteValue(entry), ": ", why));
    };
    if (entry.empty()) return bad("empty");
    std::vector<absl::string_view> bounds = absl::StrSplit(entry, '-');
    PartitionRange range;
    if (bounds.size() == 1) {
      if (!ParsePartitionId(entry, &range.first)) return bad("not a partition id");
      range.last = range.first;
    } else if (bounds.size() == 2) {
      if (!ParsePartitionId(bounds[0], &range.first) || !ParsePartitionId(bounds[1], &range.last)) {
        return bad("a range is first-last with non-negative ids");
      }
      // KEDA v2.20.2 silently takes nothing from a reversed range (and then fails every poll if
      // nothing else is left); klag says so at once.
      if (range.first > range.last) return bad("the range is reversed");
    } else {
      return bad("a range is first-last");
    }
    ranges.push_back(range);
  }
  return ranges;
}

// Kafka's own rule for topic names (kafka.common.internals.Topic): [a-zA-Z0-9._-], 1 to 249
// characters, not "." or "..". A name outside it cannot exist on any broker.
bool IsLegalTopicName(absl::string_view name) {
  if (name.empty() || name.size() > 249 || name == "." || name == "..") return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
  });
}

absl::StatusOr<std::vector<std::string>> ParseTopics(const Setting& setting) {
  std::vector<std::string> topics;
  std::set<absl::string_view> seen;
  for (absl::string_view raw : absl::StrSplit(setting.value, ',')) {
    const absl::string_view topic = absl::StripAsciiWhitespace(raw);
    if (topic.empty()) {
      return Invalid(
          absl::StrCat(setting.key, " ", QuoteValue(setting.value), " has an empty entry"));
    }
    if (!IsLegalTopicName(topic)) {
      return Invalid(
          absl::StrCat(setting.key, " entry ", QuoteValue(topic),
                       " is not a Kafka topic name (letters, digits, '.', '_', '-'; at most 249)"));
    }
    // A repeated topic is dropped: counting its partitions twice would double its lag and the cap.
    if (seen.insert(topic).second) topics.emplace_back(topic);
  }
  return topics;
}

// sarama.ParseKafkaVersion's format check, which is all KEDA does with `version`: at least 5
// characters; "0.a.b.c" when it starts with '0', otherwise "a.b.c"; each part digits.
bool IsKafkaVersion(absl::string_view text) {
  if (text.size() < 5) return false;
  std::vector<absl::string_view> parts = absl::StrSplit(text, '.');
  const size_t want = text[0] == '0' ? 4 : 3;
  if (parts.size() != want) return false;
  if (want == 4 && parts[0] != "0") return false;
  return std::all_of(parts.begin(), parts.end(), [](absl::string_view part) {
    return !part.empty() && std::all_of(part.begin(), part.end(), [](char c) {
      return absl::ascii_isdigit(static_cast<unsigned char>(c));
    });
  });
}

absl::Status ParseBoolKey(const Metadata& metadata, absl::string_view key, bool* out) {
  ASSIGN_OR_RETURN(std::optional<Setting> setting, LookupSetting(metadata, key));
  if (setting.has_value()) {
    ASSIGN_OR_RETURN(*out, kafka::ParseKedaBool(*setting));
  }
  return absl::OkStatus();
}

}  // namespace

bool TriggerSpec::PartitionAllowed(int32_t id) const {
  if (partition_limitation.empty()) return true;
  return std::any_of(partition_limitation.begin(), partition_limitation.end(),
                     [id](const PartitionRange& r) { return r.first <= id && id <= r.last; });
}

absl::StatusOr<TriggerSpec> ParseTriggerSpec(const Metadata& metadata,
                                             const kafka::ConnectionPolicy& connection_policy) {
  TriggerSpec spec;
  ASSIGN_OR_RETURN(spec.connection, kafka::ParseConnectionConfig(metadata, connection_policy));

  ASSIGN_OR_RETURN(std::optional<Setting> group, LookupSetting(metadata, "consumerGroup"));
  if (!group.has_value()) return Invalid("consumerGroup (or consumerGroupFromEnv) is required");
  spec.consumer_group = group->value;

  ASSIGN_OR_RETURN(std::optional<Setting> topic, LookupSetting(metadata, "topic"));
  if (topic.has_value()) {
    ASSIGN_OR_RETURN(spec.topics, ParseTopics(*topic));
  }

  // Validated even without a topic (KEDA v2.20.2 does too), then dropped: KEDA ignores it then.
  ASSIGN_OR_RETURN(std::optional<Setting> limitation,
                   LookupSetting(metadata, "partitionLimitation"));
  if (limitation.has_value()) {
    ASSIGN_OR_RETURN(spec.partition_limitation, ParsePartitionLimitation(*limitation));
  }
  if (spec.topics.empty()) spec.partition_limitation.clear();

  ASSIGN_OR_RETURN(std::optional<Setting> threshold, LookupSetting(metadata, "lagThreshold"));
  if (threshold.has_value()) {
    ASSIGN_OR_RETURN(spec.lag_threshold, kafka::ParseKedaInteger(*threshold));
    if (spec.lag_threshold <= 0) {
      return Invalid(absl::StrCat(threshold->key, " must be positive number, got ",
                                  QuoteValue(threshold->value)));
    }
  }
  ASSIGN_OR_RETURN(std::optional<Setting> activation,
                   LookupSetting(metadata, "activationLagThreshold"));
  if (activation.has_value()) {
    ASSIGN_OR_RETURN(spec.activation_lag_threshold, kafka::ParseKedaInteger(*activation));
    if (spec.activation_lag_threshold < 0) {
      return Invalid(absl::StrCat(activation->key, " must be a non-negative number, got ",
                                  QuoteValue(activation->value)));
    }
  }

  ASSIGN_OR_RETURN(std::optional<Setting> activation_seconds,
                   LookupSetting(metadata, "activationLagSeconds"));
  if (activation_seconds.has_value()) {
    ASSIGN_OR_RETURN(spec.activation_lag_seconds, ParseSeconds(*activation_seconds));
  }

  ASSIGN_OR_RETURN(std::optional<Setting> policy, LookupSetting(metadata, "offsetResetPolicy"));
  if (policy.has_value()) {
    ASSIGN_OR_RETURN(size_t index, kafka::ParseEnum(*policy, {"latest", "earliest"}));
    spec.offset_reset_policy =
        index == 0 ? OffsetResetPolicy::kLatest : OffsetResetPolicy::kEarliest;
  }
  ASSIGN_OR_RETURN(std::optional<Setting> isolation, LookupSetting(metadata, "isolationLevel"));
  if (isolation.has_value()) {
    ASSIGN_OR_RETURN(size_t index,
                     kafka::ParseEnum(*isolation, {"read_uncommitted", "read_committed"}));
    spec.isolation_level = index == 0 ? kafka::IsolationLevel::kReadUncommitted
                                      : kafka::IsolationLevel::kReadCommitted;
  }

  RETURN_IF_ERROR(ParseBoolKey(metadata, "allowIdleConsumers", &spec.allow_idle_consumers));
  RETURN_IF_ERROR(ParseBoolKey(metadata, "excludePersistentLag", &spec.exclude_persistent_lag));
  RETURN_IF_ERROR(
      ParseBoolKey(metadata, "scaleToZeroOnInvalidOffset", &spec.scale_to_zero_on_invalid_offset));
  RETURN_IF_ERROR(
      ParseBoolKey(metadata, "limitToPartitionsWithLag", &spec.limit_to_partitions_with_lag));
  RETURN_IF_ERROR(ParseBoolKey(metadata, "ensureEvenDistributionOfPartitions",
                               &spec.ensure_even_distribution_of_partitions));

  ASSIGN_OR_RETURN(std::optional<Setting> version, LookupSetting(metadata, "version"));
  if (version.has_value()) {
    if (!IsKafkaVersion(version->value)) {
      return Invalid(absl::StrCat(version->key, " ", QuoteValue(version->value),
                                  " is not a Kafka version (x.y.z, or 0.x.y.z before 1.0)"));
    }
    spec.version = version->value;
  }

  // KEDA's contradictions, in KEDA's order.
  if (spec.allow_idle_consumers && spec.limit_to_partitions_with_lag) {
    return Invalid(
        "allowIdleConsumers \"true\" and limitToPartitionsWithLag \"true\" cannot be set "
        "simultaneously");
  }
  if (spec.limit_to_partitions_with_lag && spec.topics.empty()) {
    return Invalid("limitToPartitionsWithLag \"true\" needs topic (or topicFromEnv)");
  }
  if (spec.limit_to_partitions_with_lag && spec.ensure_even_distribution_of_partitions) {
    return Invalid(
        "limitToPartitionsWithLag \"true\" and ensureEvenDistributionOfPartitions \"true\" cannot "
        "be set simultaneously");
  }
  if (spec.ensure_even_distribution_of_partitions && spec.topics.empty()) {
    return Invalid("ensureEvenDistributionOfPartitions \"true\" needs topic (or topicFromEnv)");
  }

  size_t unknown = 0;
  for (const auto& [key, value] : metadata) {  // std::map: already sorted
    if (IsKnownKey(key)) continue;
    if (++unknown <= TriggerSpec::kMaxUnknownKeys) {
      spec.unknown_keys.push_back(key.size() > kafka::kQuotedValueLimit ? QuoteValue(key) : key);
    }
  }
  if (unknown > TriggerSpec::kMaxUnknownKeys) {
    spec.unknown_keys.push_back(absl::StrCat("... (", unknown, " keys)"));
  }
  return spec;
}

std::string MetricName(const TriggerSpec& spec) {
  std::string name = spec.topics.empty() ? absl::StrCat("kafka-", spec.consumer_group, "-topics")
                                         : absl::StrCat("kafka-", absl::StrJoin(spec.topics, ","));
  // KEDA's kedautil.NormalizeString.
  return absl::StrReplaceAll(
      name, {{"/", "-"}, {".", "-"}, {":", "-"}, {"%", "-"}, {"(", "-"}, {")", "-"}});
}

}  // namespace klag::scaler
