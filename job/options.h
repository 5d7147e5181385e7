// klag-job's process options: one struct with defaults, filled from flags and KLAG_* environment
// variables (common/flags.h: default < environment < flag), then validated.
//
//   absl::StatusOr<JobOptions> options = ParseJobOptions(args, klag::ProcessEnv(), &usage);
//   if (!options.ok()) { std::cerr << options.status().message(); return kExitUsage; }
//   if (options->help) { std::cout << usage; return 0; }
//
// Kafka connection flags are KEDA's `kafka` trigger keys in kebab case (bootstrapServers ->
// --bootstrap-servers / KLAG_BOOTSTRAP_SERVERS, saslTokenProvider -> --sasl-token-provider /
// KLAG_SASL_TOKEN_PROVIDER, ...) and go through kafka::ParseConnectionConfig, the scaler's own
// parser; --ca-file, --cert-file and --key-file read the PEM from a file instead.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/flags.h"
#include "job/consumer.h"
#include "job/delivery.h"
#include "job/drain.h"
#include "job/rdkafka_consumer.h"
#include "kafka/connection_config.h"
#include "kafka/offsets.h"

namespace klag::job {

enum class SinkKind { kJsonl, kExec, kPostgres };

struct JobOptions {
  bool help = false;

  // Kafka connection, parsed by kafka::ParseConnectionConfig.
  kafka::ConnectionConfig connection;
  std::string group;
  std::vector<std::string> topics;
  kafka::IsolationLevel isolation = kafka::IsolationLevel::kReadCommitted;
  OffsetReset reset = OffsetReset::kEarliest;
  absl::Duration kafka_timeout = absl::Seconds(10);
  absl::Duration session_timeout = absl::Seconds(10);  // classic group protocol only
  GroupProtocol group_protocol = GroupProtocol::kClassic;
  kafka::RdkafkaProperties kafka_properties;  // extra librdkafka properties
  bool no_work_check = true;

  SinkKind sink = SinkKind::kJsonl;
  std::string jsonl_path = "-";  // "-": stdout
  std::string exec_command;
  absl::Duration exec_timeout = absl::Minutes(5);
  std::vector<std::string> exec_pass_env;  // KLAG_* variables the exec command still receives
  std::string postgres_uri;
  std::string postgres_table = "klag_records";
  std::string postgres_conflict_key = "offset";  // offset | key
  int postgres_connections = 2;                  // 1..PostgresSink::kMaxConnections

  DrainOptions drain;
  DeliveryOptions delivery;
  std::string dead_letter_topic;

  std::string log_format = "text";
  std::string log_level = "info";

  // True when the summary must go to stderr because the jsonl sink writes to stdout.
  bool SummaryOnStderr() const;
};

// max.poll.interval.ms: the drain loop does not poll while it delivers a batch, so the interval
// must outlast the longest delivery of one batch (every attempt with its back-off), or librdkafka
// leaves the group in the middle of a slow but healthy delivery and the partitions move. A sink
// without its own limit (jsonl, postgres) gets librdkafka's default, 5 minutes per attempt.
// Bisecting a batch for a poison record can take longer (delivery.h); it ends with the Job
// failing, not with a lost record.
absl::Duration MaxPollInterval(const JobOptions& o);

// Parses `args` (without the program name) and `env`. `usage` receives the help text. Errors:
// kInvalidArgument naming the flag (or variable) and what is wrong: unknown flags, bad values,
// missing --bootstrap-servers/--group/--topic, a sink without its settings, contradictions
// (--on-poison dead-letter without --dead-letter-topic), a --kafka-properties entry that is
// not key=value, or a --*-file that cannot be read.
absl::StatusOr<JobOptions> ParseJobOptions(const std::vector<std::string>& args,
                                           const EnvLookup& env, std::string* usage);

// The Kafka connection flags shared by klag-job and klag-produce: one string per KEDA key plus
// --ca-file/--cert-file/--key-file.
struct ConnectionFlags {
  std::map<std::string, std::string> values;  // by KEDA key
  std::map<std::string, std::string> files;   // ca, cert, key -> path
};

// Registers --bootstrap-servers, --tls, --ca, ... (and KLAG_* variables) into `flags`, bound to
// `*out`, which must outlive parsing.
void RegisterConnectionFlags(FlagSet& flags, ConnectionFlags* out);

// Builds the connection from parsed flags with kafka::ParseConnectionConfig. Errors:
// kInvalidArgument from the parser (prefixed "Kafka connection: "), both --x and --x-file
// given, or an unreadable file.
absl::StatusOr<kafka::ConnectionConfig> ConnectionFromFlags(const ConnectionFlags& flags);

// Splits "a, b ,c" at commas, trimming whitespace and dropping empty entries.
std::vector<std::string> SplitCommaList(absl::string_view text);

// Parses `args`/`env` into `flags` and writes the usage text to `usage`. Returns true when --help
// was asked for. Errors: those of FlagSet::Parse, or a positional argument (none are taken).
absl::StatusOr<bool> ParseFlagsOnly(FlagSet& flags, const std::vector<std::string>& args,
                                    const EnvLookup& env, std::string* usage);

// Parses "a=b,c=d" (for --kafka-properties). Errors: kInvalidArgument naming the bad entry.
absl::StatusOr<kafka::RdkafkaProperties> ParsePropertyList(absl::string_view text);

}  // namespace klag::job
