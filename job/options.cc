#include "job/options.h"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"
#include "job/postgres_sink.h"

namespace klag::job {
namespace {

// bootstrapServers -> bootstrap-servers
std::string Kebab(absl::string_view key) {
  std::string out;
  for (char c : key) {
    if (absl::ascii_isupper(static_cast<unsigned char>(c))) {
      out.push_back('-');
      out.push_back(absl::ascii_tolower(static_cast<unsigned char>(c)));
    } else {
      out.push_back(c);
    }
  }
  return out;
}

// bootstrap-servers -> KLAG_BOOTSTRAP_SERVERS
std::string EnvName(absl::string_view flag) {
  std::string out = absl::StrCat("KLAG_", flag);
  for (char& c : out) c = c == '-' ? '_' : absl::ascii_toupper(static_cast<unsigned char>(c));
  return out;
}

absl::StatusOr<std::string> ReadFile(const std::string& flag, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(absl::StrCat("--", flag, ": cannot read \"", path, "\""));
  }
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

bool IsIdentifier(absl::string_view s) {
  if (s.empty() || absl::ascii_isdigit(static_cast<unsigned char>(s[0]))) return false;
  for (char c : s) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  }
  return true;
}

// ConnectionFlags::values slot of --kerberos-keytab-dir: an operator setting, not a KEDA key, so
// ConnectionFromFlags hands it to the parser as kafka::ConnectionPolicy, not as a setting.
constexpr char kKerberosKeytabDirSlot[] = "--kerberos-keytab-dir";

}  // namespace

std::vector<std::string> SplitCommaList(absl::string_view text) {
  std::vector<std::string> out;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    part = absl::StripAsciiWhitespace(part);
    if (!part.empty()) out.emplace_back(part);
  }
  return out;
}

absl::StatusOr<bool> ParseFlagsOnly(FlagSet& flags, const std::vector<std::string>& args,
                                    const EnvLookup& env, std::string* usage) {
  *usage = flags.Usage();
  ASSIGN_OR_RETURN(std::vector<std::string> positional, flags.Parse(args, env));
  if (flags.help_requested()) return true;
  if (!positional.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("unexpected argument \"", positional[0], "\" (see --help)"));
  }
  return false;
}

bool JobOptions::SummaryOnStderr() const {
  return sink == SinkKind::kJsonl && (jsonl_path.empty() || jsonl_path == "-");
}

absl::StatusOr<kafka::RdkafkaProperties> ParsePropertyList(absl::string_view text) {
  kafka::RdkafkaProperties out;
  for (const std::string& entry : SplitCommaList(text)) {
    std::pair<std::string, std::string> kv = absl::StrSplit(entry, absl::MaxSplits('=', 1));
    absl::StripAsciiWhitespace(&kv.first);
    if (kv.first.empty() || !absl::StrContains(entry, '=')) {
      return absl::InvalidArgumentError(
          absl::StrCat("--kafka-properties: expected key=value entries separated by commas, got \"",
                       entry, "\""));
    }
    out.push_back(std::move(kv));
  }
  return out;
}

void RegisterConnectionFlags(FlagSet& flags, ConnectionFlags* out) {
  for (const std::string& key : kafka::ConnectionSettingKeys()) out->values[key] = "";
  for (const char* key : {"ca", "cert", "key"}) out->files[key] = "";
  // std::map nodes are stable: the pointers below stay valid while *out lives.
  for (const std::string& key : kafka::ConnectionSettingKeys()) {
    const std::string flag = Kebab(key);
    flags.String(flag, EnvName(flag),
                 absl::StrCat("Kafka connection setting `", key, "`, as in KEDA's kafka trigger"),
                 &out->values[key]);
  }
  for (auto& [key, path] : out->files) {
    const std::string flag = absl::StrCat(key, "-file");
    flags.String(flag, EnvName(flag), absl::StrCat("read --", key, " (PEM) from this file"), &path);
  }
  flags.String("kerberos-keytab-dir", "KLAG_KERBEROS_KEYTAB_DIR",
               "sasl gssapi: directory the --keytab file must be under (absolute, normalised); "
               "without it a keytab is refused, as in klag-scaler",
               &out->values[kKerberosKeytabDirSlot]);
}

absl::StatusOr<kafka::ConnectionConfig> ConnectionFromFlags(const ConnectionFlags& flags) {
  kafka::SettingMap settings;
  kafka::ConnectionPolicy policy;
  for (const auto& [key, value] : flags.values) {
    if (key == kKerberosKeytabDirSlot) {
      policy.kerberos_keytab_dir = value;
    } else if (!value.empty()) {
      settings[key] = value;
    }
  }
  RETURN_IF_ERROR(kafka::ValidateKerberosKeytabDir(policy.kerberos_keytab_dir));
  for (const auto& [key, path] : flags.files) {
    if (path.empty()) continue;
    if (settings.contains(key)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", key, " and --", key, "-file both given; use one"));
    }
    ASSIGN_OR_RETURN(settings[key], ReadFile(absl::StrCat(key, "-file"), path));
  }
  absl::StatusOr<kafka::ConnectionConfig> config = kafka::ParseConnectionConfig(settings, policy);
  if (!config.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Kafka connection: ", config.status().message(),
        " (each setting is a kebab-case flag or KLAG_ variable, e.g. bootstrapServers is "
        "--bootstrap-servers or KLAG_BOOTSTRAP_SERVERS)"));
  }
  return *std::move(config);
}

absl::StatusOr<JobOptions> ParseJobOptions(const std::vector<std::string>& args,
                                           const EnvLookup& env, std::string* usage) {
  JobOptions o;
  FlagSet flags("klag-job",
                "klag-job: drains a Kafka consumer group's lag into a sink, commits, exits.\n"
                "Exit codes: 0 drained (or no work), 3 stopped early with progress committed\n"
                "(SIGTERM, --max-records, --max-duration), 1 fatal error, 2 bad options.");

  ConnectionFlags connection;
  RegisterConnectionFlags(flags, &connection);
  flags.String("group", "KLAG_GROUP", "consumer group (required)", &o.group);
  std::string topics;
  flags.String("topic", "KLAG_TOPIC", "topic or comma-separated topics (required)", &topics);
  std::string isolation = "read_committed";
  flags.Choice("isolation-level", "KLAG_ISOLATION_LEVEL",
               "read_committed skips aborted transactions and stops at the last stable offset",
               {"read_committed", "read_uncommitted"}, &isolation);
  std::string reset = "earliest";
  flags.Choice("offset-reset", "KLAG_OFFSET_RESET",
               "where to begin on a partition without a committed offset", {"earliest", "latest"},
               &reset);
  flags.Duration("kafka-timeout", "KLAG_KAFKA_TIMEOUT",
                 "bound of each Kafka request and of tolerating unreachable brokers",
                 &o.kafka_timeout);
  flags.Duration("session-timeout", "KLAG_SESSION_TIMEOUT",
                 "group session timeout: a crashed Job's partitions move after this long",
                 &o.session_timeout);
  std::string group_protocol = "classic";
  flags.Choice("group-protocol", "KLAG_GROUP_PROTOCOL",
               "consumer group protocol: classic works on every broker; consumer is KIP-848 "
               "(Kafka >= 4.0): the broker assigns partitions and its "
               "group.consumer.session.timeout.ms replaces --session-timeout",
               {"classic", "consumer"}, &group_protocol);
  std::string kafka_properties;
  flags.String("kafka-properties", "KLAG_KAFKA_PROPERTIES",
               "extra librdkafka properties, key=value,key=value (commit and assignment "
               "settings are reserved)",
               &kafka_properties);
  flags.Bool("no-work-check", "KLAG_NO_WORK_CHECK",
             "compare committed and end offsets before joining; exit 0 at once when no lag",
             &o.no_work_check);

  std::string sink = "jsonl";
  flags.Choice("sink", "KLAG_SINK", "where records go", {"jsonl", "exec", "postgres"}, &sink);
  flags.String("jsonl-path", "KLAG_JSONL_PATH",
               "jsonl sink: file to append to, or - for stdout (the summary then goes to stderr)",
               &o.jsonl_path);
  flags.String("exec-command", "KLAG_EXEC_COMMAND",
               "exec sink: command run with /bin/sh -c per batch, records as JSON lines on stdin",
               &o.exec_command);
  flags.Duration("exec-timeout", "KLAG_EXEC_TIMEOUT", "exec sink: time limit per batch",
                 &o.exec_timeout);
  std::string exec_pass_env;
  flags.String("exec-pass-env", "KLAG_EXEC_PASS_ENV",
               "exec sink: comma-separated KLAG_* variables the command still receives (it gets "
               "none of klag-job's own KLAG_* settings otherwise: they hold its secrets)",
               &exec_pass_env);
  flags.String("postgres-uri", "KLAG_POSTGRES_URI",
               "postgres sink: libpq connection URI or key=value string (PGPASSWORD etc. apply)",
               &o.postgres_uri);
  flags.String("postgres-table", "KLAG_POSTGRES_TABLE",
               "postgres sink: table, created if missing ([schema.]name)", &o.postgres_table);
  flags.Choice("postgres-conflict-key", "KLAG_POSTGRES_CONFLICT_KEY",
               "postgres sink: upsert key: offset = one row per record (topic, partition, "
               "offset); key = one row per record key (topic, key), latest wins",
               {"offset", "key"}, &o.postgres_conflict_key);
  int64_t postgres_connections = o.postgres_connections;
  flags.Int("postgres-connections", "KLAG_POSTGRES_CONNECTIONS",
            "postgres sink: connections a large batch is loaded over at once (1 to 16; each is a "
            "PostgreSQL backend and its own transaction)",
            &postgres_connections);

  int64_t batch_size = 0;  // the sink's own
  flags.Int("batch-size", "KLAG_BATCH_SIZE",
            "records per sink batch; 0: the sink's default, 5000 for postgres (loaded in parts "
            "over its connections), 500 for the others",
            &batch_size);
  flags.Duration("batch-linger", "KLAG_BATCH_LINGER",
                 "longest wait for a batch to fill before it is delivered", &o.drain.batch_linger);
  flags.Int("max-records", "KLAG_MAX_RECORDS", "stop after this many records (0: no limit)",
            &o.drain.max_records);
  absl::Duration max_duration = absl::ZeroDuration();
  flags.Duration("max-duration", "KLAG_MAX_DURATION", "stop after this long (0: no limit)",
                 &max_duration);
  flags.Duration("commit-interval", "KLAG_COMMIT_INTERVAL", "periodic commit interval",
                 &o.drain.commit_interval);
  flags.Duration("assignment-timeout", "KLAG_ASSIGNMENT_TIMEOUT",
                 "exit 0 when no partition is assigned for this long (keep it above "
                 "--session-timeout so a crashed Job's partitions are taken over)",
                 &o.drain.assignment_timeout);
  flags.Duration("shutdown-timeout", "KLAG_SHUTDOWN_TIMEOUT",
                 "after SIGTERM: finish or abandon the batch, commit and leave within this long "
                 "(keep it below the pod's terminationGracePeriodSeconds)",
                 &o.drain.shutdown_timeout);
  flags.Duration("progress-interval", "KLAG_PROGRESS_INTERVAL", "progress log interval",
                 &o.drain.progress_interval);

  int64_t max_attempts = o.delivery.max_attempts;
  flags.Int("max-attempts", "KLAG_MAX_ATTEMPTS", "sink attempts per batch before giving up",
            &max_attempts);
  flags.Duration("retry-backoff", "KLAG_RETRY_BACKOFF",
                 "first back-off between attempts (doubles each time)", &o.delivery.backoff);
  flags.Duration("max-backoff", "KLAG_MAX_BACKOFF", "longest back-off", &o.delivery.max_backoff);
  flags.String("dead-letter-topic", "KLAG_DEAD_LETTER_TOPIC",
               "topic for records the sink keeps rejecting", &o.dead_letter_topic);
  std::string on_poison = "auto";
  flags.Choice("on-poison", "KLAG_ON_POISON",
               "a batch the sink keeps rejecting: dead-letter the poison records and move on, "
               "or fail (exit 1, batch not committed); auto: dead-letter when "
               "--dead-letter-topic is set",
               {"auto", "dead-letter", "fail"}, &on_poison);

  flags.Choice("log-format", "KLAG_LOG_FORMAT", "stderr log format", {"text", "json"},
               &o.log_format);
  flags.String("log-level", "KLAG_LOG_LEVEL", "trace, debug, info, warn, error", &o.log_level);

  ASSIGN_OR_RETURN(o.help, ParseFlagsOnly(flags, args, env, usage));
  if (o.help) return o;

  ASSIGN_OR_RETURN(o.connection, ConnectionFromFlags(connection));

  if (o.group.empty()) return absl::InvalidArgumentError("--group (KLAG_GROUP) is required");
  o.topics = SplitCommaList(topics);
  if (o.topics.empty()) return absl::InvalidArgumentError("--topic (KLAG_TOPIC) is required");
  o.drain.topics = o.topics;
  o.isolation = isolation == "read_committed" ? kafka::IsolationLevel::kReadCommitted
                                              : kafka::IsolationLevel::kReadUncommitted;
  o.reset = reset == "earliest" ? OffsetReset::kEarliest : OffsetReset::kLatest;
  o.group_protocol =
      group_protocol == "consumer" ? GroupProtocol::kConsumer : GroupProtocol::kClassic;
  ASSIGN_OR_RETURN(o.kafka_properties, ParsePropertyList(kafka_properties));

  if (sink == "jsonl") {
    o.sink = SinkKind::kJsonl;
  } else if (sink == "exec") {
    o.sink = SinkKind::kExec;
    if (o.exec_command.empty()) {
      return absl::InvalidArgumentError("--sink exec needs --exec-command (KLAG_EXEC_COMMAND)");
    }
  } else {
    o.sink = SinkKind::kPostgres;
    if (o.postgres_uri.empty()) {
      return absl::InvalidArgumentError("--sink postgres needs --postgres-uri (KLAG_POSTGRES_URI)");
    }
  }
  for (absl::string_view name : absl::StrSplit(exec_pass_env, ',', absl::SkipWhitespace())) {
    name = absl::StripAsciiWhitespace(name);
    if (!absl::StartsWith(name, "KLAG_") || name == "KLAG_BATCH_RECORDS") {
      return absl::InvalidArgumentError(absl::StrCat(
          "--exec-pass-env: expected KLAG_* variable names, got \"", name.substr(0, 64), "\""));
    }
    o.exec_pass_env.emplace_back(name);
  }
  std::vector<std::string> table_parts = absl::StrSplit(o.postgres_table, '.');
  if (table_parts.size() > 2 || !IsIdentifier(table_parts[0]) ||
      (table_parts.size() == 2 && !IsIdentifier(table_parts[1]))) {
    return absl::InvalidArgumentError(
        absl::StrCat("--postgres-table: expected [schema.]name of letters, digits and _, got \"",
                     o.postgres_table, "\""));
  }

  if (postgres_connections < 1 || postgres_connections > PostgresSink::kMaxConnections) {
    return absl::InvalidArgumentError(absl::StrCat("--postgres-connections: expected 1 to ",
                                                   PostgresSink::kMaxConnections, ", got ",
                                                   postgres_connections));
  }
  o.postgres_connections = static_cast<int>(postgres_connections);
  if (batch_size == 0) {
    batch_size =
        o.sink == SinkKind::kPostgres ? PostgresSink::kDefaultBatchSize : o.drain.batch_size;
  }
  if (batch_size < 1 || batch_size > 1000000) {
    return absl::InvalidArgumentError(
        absl::StrCat("--batch-size: expected 1 to 1000000, got ", batch_size));
  }
  o.drain.batch_size = static_cast<int>(batch_size);
  if (o.drain.max_records < 0) {
    return absl::InvalidArgumentError("--max-records: expected 0 (no limit) or more");
  }
  o.drain.max_duration =
      max_duration == absl::ZeroDuration() ? absl::InfiniteDuration() : max_duration;
  if (o.drain.shutdown_timeout < absl::Seconds(2)) {
    return absl::InvalidArgumentError("--shutdown-timeout: expected at least 2s");
  }
  for (const auto& [name, d] :
       {std::pair<const char*, absl::Duration>{"kafka-timeout", o.kafka_timeout},
        {"commit-interval", o.drain.commit_interval},
        {"progress-interval", o.drain.progress_interval},
        {"session-timeout", o.session_timeout}}) {
    if (d <= absl::ZeroDuration()) {
      return absl::InvalidArgumentError(absl::StrCat("--", name, ": expected more than 0"));
    }
  }
  o.drain.kafka_timeout = o.kafka_timeout;

  if (max_attempts < 1 || max_attempts > 100) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max-attempts: expected 1 to 100, got ", max_attempts));
  }
  o.delivery.max_attempts = static_cast<int>(max_attempts);
  if (on_poison == "dead-letter" && o.dead_letter_topic.empty()) {
    return absl::InvalidArgumentError(
        "--on-poison dead-letter needs --dead-letter-topic (KLAG_DEAD_LETTER_TOPIC)");
  }
  o.delivery.on_poison = on_poison == "fail" || o.dead_letter_topic.empty()
                             ? PoisonPolicy::kFail
                             : PoisonPolicy::kDeadLetter;
  for (const std::string& t : o.topics) {
    if (t == o.dead_letter_topic) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--dead-letter-topic \"", t, "\" is also a consumed topic: poison would loop"));
    }
  }
  return o;
}

absl::Duration MaxPollInterval(const JobOptions& o) {
  const absl::Duration attempt = o.sink == SinkKind::kExec ? o.exec_timeout : absl::Minutes(5);
  const absl::Duration longest =
      attempt * o.delivery.max_attempts + o.delivery.max_backoff * (o.delivery.max_attempts - 1);
  // Margin for the poll and the commit around the delivery.
  return std::max(absl::Minutes(5), longest + absl::Minutes(1));
}

}  // namespace klag::job
