#include "job/options.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/strip.h"

namespace klag::job {
namespace {

EnvLookup Env(std::map<std::string, std::string> vars) {
  return [vars](absl::string_view name) -> std::optional<std::string> {
    auto it = vars.find(std::string(name));
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

const std::vector<std::string> kRequired = {
    "--bootstrap-servers", "127.0.0.1:9092", "--group", "g", "--topic", "t"};

std::vector<std::string> With(std::vector<std::string> extra) {
  std::vector<std::string> args = kRequired;
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

absl::StatusOr<JobOptions> Parse(const std::vector<std::string>& args,
                                 std::map<std::string, std::string> env = {}) {
  std::string usage;
  return ParseJobOptions(args, Env(std::move(env)), &usage);
}

TEST(JobOptionsTest, DefaultsAreTheDocumentedOnes) {
  absl::StatusOr<JobOptions> o = Parse(kRequired);
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->connection.bootstrap_servers, "127.0.0.1:9092");
  EXPECT_FALSE(o->connection.tls.enabled);
  EXPECT_EQ(o->group, "g");
  EXPECT_EQ(o->topics, std::vector<std::string>{"t"});
  EXPECT_EQ(o->drain.topics, std::vector<std::string>{"t"});
  EXPECT_EQ(o->isolation, kafka::IsolationLevel::kReadCommitted);
  EXPECT_EQ(o->reset, OffsetReset::kEarliest);
  EXPECT_EQ(o->sink, SinkKind::kJsonl);
  EXPECT_EQ(o->jsonl_path, "-");
  EXPECT_TRUE(o->SummaryOnStderr());
  EXPECT_EQ(o->drain.batch_size, 500);
  EXPECT_EQ(o->postgres_connections, 2);
  EXPECT_EQ(o->drain.commit_interval, absl::Seconds(1));
  EXPECT_EQ(o->drain.assignment_timeout, absl::Seconds(15));
  EXPECT_EQ(o->drain.shutdown_timeout, absl::Seconds(20));
  EXPECT_EQ(o->drain.max_duration, absl::InfiniteDuration());
  EXPECT_EQ(o->drain.max_records, 0);
  EXPECT_EQ(o->kafka_timeout, absl::Seconds(10));
  EXPECT_EQ(o->drain.kafka_timeout, absl::Seconds(10));
  EXPECT_EQ(o->delivery.max_attempts, 3);
  EXPECT_EQ(o->delivery.on_poison, PoisonPolicy::kFail);
  EXPECT_TRUE(o->no_work_check);
  EXPECT_EQ(o->group_protocol, GroupProtocol::kClassic);
  EXPECT_TRUE(o->exec_pass_env.empty());
}

TEST(JobOptionsTest, ExecPassEnvTakesOnlyKlagVariableNames) {
  absl::StatusOr<JobOptions> o = Parse(With(
      {"--sink", "exec", "--exec-command", "cat", "--exec-pass-env", "KLAG_GROUP, KLAG_TOPIC"}));
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->exec_pass_env, (std::vector<std::string>{"KLAG_GROUP", "KLAG_TOPIC"}));
  for (const char* bad : {"PATH", "KLAG_BATCH_RECORDS"}) {
    absl::StatusOr<JobOptions> b = Parse(With({"--exec-pass-env", bad}));
    EXPECT_EQ(b.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(b.status().message().find("--exec-pass-env"), absl::string_view::npos) << b.status();
  }
}

TEST(JobOptionsTest, MaxPollIntervalOutlastsTheLongestDeliveryOfABatch) {
  // Defaults: 3 attempts of up to 5 minutes (librdkafka's default covers one), 30 s back-off
  // cap: 15 min + 2 x 30 s + 1 min margin.
  absl::StatusOr<JobOptions> jsonl = Parse(kRequired);
  ASSERT_TRUE(jsonl.ok()) << jsonl.status();
  EXPECT_EQ(MaxPollInterval(*jsonl), absl::Minutes(17));
  absl::StatusOr<JobOptions> exec =
      Parse(With({"--sink", "exec", "--exec-command", "cat", "--exec-timeout", "20m",
                  "--max-attempts", "2", "--max-backoff", "10s"}));
  ASSERT_TRUE(exec.ok()) << exec.status();
  EXPECT_EQ(MaxPollInterval(*exec), absl::Minutes(40) + absl::Seconds(10) + absl::Minutes(1));
  // Never below librdkafka's default.
  absl::StatusOr<JobOptions> quick = Parse(With(
      {"--sink", "exec", "--exec-command", "cat", "--exec-timeout", "1s", "--max-attempts", "1"}));
  ASSERT_TRUE(quick.ok()) << quick.status();
  EXPECT_EQ(MaxPollInterval(*quick), absl::Minutes(5));
}

TEST(JobOptionsTest, GroupProtocolFromFlagOrEnvironment) {
  absl::StatusOr<JobOptions> flag = Parse(With({"--group-protocol", "consumer"}));
  ASSERT_TRUE(flag.ok()) << flag.status();
  EXPECT_EQ(flag->group_protocol, GroupProtocol::kConsumer);

  absl::StatusOr<JobOptions> env = Parse(kRequired, {{"KLAG_GROUP_PROTOCOL", "consumer"}});
  ASSERT_TRUE(env.ok()) << env.status();
  EXPECT_EQ(env->group_protocol, GroupProtocol::kConsumer);

  absl::StatusOr<JobOptions> flag_wins =
      Parse(With({"--group-protocol=classic"}), {{"KLAG_GROUP_PROTOCOL", "consumer"}});
  ASSERT_TRUE(flag_wins.ok()) << flag_wins.status();
  EXPECT_EQ(flag_wins->group_protocol, GroupProtocol::kClassic);
}

TEST(JobOptionsTest, EnvironmentFillsInAndFlagsWin) {
  absl::StatusOr<JobOptions> o = Parse({"--group", "from-flag", "--max-records=7"},
                                       {{"KLAG_BOOTSTRAP_SERVERS", "10.0.0.1:9092,10.0.0.2:9092"},
                                        {"KLAG_GROUP", "from-env"},
                                        {"KLAG_TOPIC", "a, b ,c"},
                                        {"KLAG_SHUTDOWN_TIMEOUT", "7s"},
                                        {"KLAG_ISOLATION_LEVEL", "read_uncommitted"}});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->connection.bootstrap_servers, "10.0.0.1:9092,10.0.0.2:9092");
  EXPECT_EQ(o->group, "from-flag");
  EXPECT_EQ(o->topics, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(o->drain.max_records, 7);
  EXPECT_EQ(o->drain.shutdown_timeout, absl::Seconds(7));
  EXPECT_EQ(o->isolation, kafka::IsolationLevel::kReadUncommitted);
}

TEST(JobOptionsTest, ConnectionSettingsUseKedasKeysThroughTheSharedParser) {
  absl::StatusOr<JobOptions> o = Parse(
      With({"--sasl", "scram_sha512", "--username", "u", "--password", "p", "--tls", "enable"}));
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->connection.sasl.mechanism, kafka::SaslMechanism::kScramSha512);
  EXPECT_EQ(o->connection.sasl.username, "u");
  EXPECT_TRUE(o->connection.tls.enabled);

  absl::StatusOr<JobOptions> bad = Parse(With({"--sasl", "plaintext"}));  // no username
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("Kafka connection"), absl::string_view::npos);
}

TEST(JobOptionsTest, CaFileIsReadIntoTheCaSetting) {
  const std::string path = "/tmp/klag-options-test-ca-" + std::to_string(getpid()) + ".pem";
  const std::string pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
  std::ofstream(path) << pem;
  absl::StatusOr<JobOptions> o = Parse(With({"--tls", "enable", "--ca-file", path}));
  ::unlink(path.c_str());
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->connection.tls.ca_pem, absl::StripTrailingAsciiWhitespace(pem));  // as KEDA trims

  absl::StatusOr<JobOptions> missing = Parse(With({"--tls", "enable", "--ca-file", path}));
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(JobOptionsTest, Errors) {
  struct Case {
    std::vector<std::string> args;
    std::string message;  // part of the error
  };
  const std::vector<Case> cases = {
      {{"--group", "g", "--topic", "t"}, "bootstrapServers"},
      {{"--bootstrap-servers", "h:1", "--topic", "t"}, "--group"},
      {{"--bootstrap-servers", "h:1", "--group", "g"}, "--topic"},
      {With({"--sink", "exec"}), "--exec-command"},
      {With({"--sink", "postgres"}), "--postgres-uri"},
      {With({"--sink", "kafka"}), "--sink"},
      {With({"--group-protocol", "streams"}), "--group-protocol"},
      {With({"--on-poison", "dead-letter"}), "--dead-letter-topic"},
      {With({"--dead-letter-topic", "t"}), "poison would loop"},
      {With({"--batch-size", "-1"}), "--batch-size"},
      {With({"--max-attempts", "0"}), "--max-attempts"},
      {With({"--shutdown-timeout", "1s"}), "--shutdown-timeout"},
      {With({"--commit-interval", "0s"}), "--commit-interval"},
      {With({"--kafka-properties", "fetch.min.bytes"}), "key=value"},
      {With({"--postgres-table", "drop table;"}), "--postgres-table"},
      {With({"--postgres-connections", "0"}), "--postgres-connections: expected 1 to 16, got 0"},
      {With({"--postgres-connections", "17"}), "--postgres-connections"},
      {With({"--max-duration", "soon"}), "--max-duration"},
      {With({"--no-such-flag"}), "unknown flag"},
      {With({"stray"}), "unexpected argument"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<JobOptions> o = Parse(c.args);
    ASSERT_FALSE(o.ok()) << c.message;
    EXPECT_EQ(o.status().code(), absl::StatusCode::kInvalidArgument) << c.message;
    EXPECT_NE(o.status().message().find(c.message), absl::string_view::npos)
        << "expected \"" << c.message << "\" in: " << o.status().message();
  }
}

TEST(JobOptionsTest, SinkSettingsAndPoisonPolicy) {
  absl::StatusOr<JobOptions> o =
      Parse(With({"--sink", "postgres", "--postgres-uri", "postgresql://x@h/db", "--postgres-table",
                  "public.prices", "--postgres-connections", "4", "--dead-letter-topic", "t.dlq",
                  "--kafka-properties", "fetch.min.bytes=1, queued.min.messages=1000"}));
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->sink, SinkKind::kPostgres);
  EXPECT_FALSE(o->SummaryOnStderr());
  EXPECT_EQ(o->postgres_table, "public.prices");
  EXPECT_EQ(o->postgres_connections, 4);
  EXPECT_EQ(o->drain.batch_size, 5000);  // the postgres sink's default
  absl::StatusOr<JobOptions> given = Parse(
      With({"--sink", "postgres", "--postgres-uri", "postgresql://x@h/db", "--batch-size", "700"}));
  ASSERT_TRUE(given.ok()) << given.status();
  EXPECT_EQ(given->drain.batch_size, 700);
  EXPECT_EQ(o->delivery.on_poison, PoisonPolicy::kDeadLetter);
  EXPECT_EQ(o->kafka_properties,
            (kafka::RdkafkaProperties{{"fetch.min.bytes", "1"}, {"queued.min.messages", "1000"}}));

  absl::StatusOr<JobOptions> fail =
      Parse(With({"--dead-letter-topic", "t.dlq", "--on-poison", "fail"}));
  ASSERT_TRUE(fail.ok());
  EXPECT_EQ(fail->delivery.on_poison, PoisonPolicy::kFail);

  absl::StatusOr<JobOptions> file = Parse(With({"--jsonl-path", "/data/out.jsonl"}));
  ASSERT_TRUE(file.ok());
  EXPECT_FALSE(file->SummaryOnStderr());
}

TEST(JobOptionsTest, HelpListsFlagsWithTheirVariables) {
  std::string usage;
  absl::StatusOr<JobOptions> o = ParseJobOptions({"--help"}, Env({}), &usage);
  ASSERT_TRUE(o.ok());
  EXPECT_TRUE(o->help);
  for (const char* expected :
       {"--bootstrap-servers", "KLAG_BOOTSTRAP_SERVERS", "--sasl-token-provider",
        "KLAG_SASL_TOKEN_PROVIDER", "--ca-file", "--group", "KLAG_GROUP", "--shutdown-timeout",
        "--dead-letter-topic", "--group-protocol", "KLAG_GROUP_PROTOCOL", "Exit codes"}) {
    EXPECT_NE(usage.find(expected), std::string::npos) << expected;
  }
}

}  // namespace
}  // namespace klag::job
