#include "tests/testing/kafka_tools.h"

#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "kafka/rdkafka_handle.h"
#include "kafka/rdkafka_status.h"

namespace klag::testing {
namespace {

namespace rdk = kafka::rdkafka;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// "Partition:2\tOffset:17" (ConsoleConsumer's DefaultMessageFormatter with print.partition and
// print.offset, without the value) -> {2, 17}.
bool ParseConsumedLine(absl::string_view line, int32_t* partition, int64_t* offset) {
  std::vector<absl::string_view> fields = absl::StrSplit(line, '\t');
  if (fields.size() < 2) return false;
  return absl::ConsumePrefix(&fields[0], "Partition:") &&
         absl::ConsumePrefix(&fields[1], "Offset:") && absl::SimpleAtoi(fields[0], partition) &&
         absl::SimpleAtoi(fields[1], offset);
}

}  // namespace

std::string KafkaStateDir() {
  const char* state = std::getenv("KLAG_KAFKA_STATE");
  return state == nullptr ? "" : state;
}

std::string KafkaVersion(const std::string& state) {
  return std::string(absl::StripAsciiWhitespace(ReadAll(state + "/version")));
}

bool IsKafka4OrNewer(const std::string& version) {
  std::vector<absl::string_view> parts = absl::StrSplit(version, '.');
  int major = 0;
  return !parts.empty() && absl::SimpleAtoi(parts[0], &major) && major >= 4;
}

KafkaTools::KafkaTools(std::string kafka_sh, std::string state)
    : kafka_sh_(std::move(kafka_sh)), state_(std::move(state)) {}

absl::StatusOr<ToolResult> KafkaTools::RunClass(const std::string& java_class,
                                                const std::vector<std::string>& args,
                                                absl::Duration timeout) const {
  char dir_template[] = "/tmp/klag-kafka-tool-XXXXXX";
  if (mkdtemp(dir_template) == nullptr) return absl::InternalError("mkdtemp failed");
  const std::string dir = dir_template;
  const std::string out_path = dir + "/stdout";
  const std::string err_path = dir + "/stderr";
  // coreutils timeout signals the whole process group it starts in, so the JVM goes too.
  std::vector<std::string> argv = {
      "timeout",   "--kill-after=5", absl::StrCat(absl::ToInt64Seconds(timeout)),
      kafka_sh_,   "--state",        state_,
      "run-class", java_class};
  argv.insert(argv.end(), args.begin(), args.end());
  const pid_t pid = fork();
  if (pid < 0) return absl::InternalError("fork failed");
  if (pid == 0) {
    const int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    const int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    const int null = open("/dev/null", O_RDONLY);
    if (out < 0 || err < 0 || null < 0) _exit(127);
    dup2(null, 0);
    dup2(out, 1);
    dup2(err, 2);
    std::vector<char*> c_argv;
    for (std::string& a : argv) c_argv.push_back(a.data());
    c_argv.push_back(nullptr);
    execvp(c_argv[0], c_argv.data());
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
  }
  ToolResult result;
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (result.exit_code == 124 || result.exit_code == 137) result.exit_code = -1;  // timed out
  result.stdout_text = ReadAll(out_path);
  result.stderr_text = ReadAll(err_path);
  unlink(out_path.c_str());
  unlink(err_path.c_str());
  rmdir(dir.c_str());
  return result;
}

absl::StatusOr<ConsumedOffsets> KafkaTools::ConsumeWithConsumerProtocol(
    const std::string& bootstrap, const std::string& topic, const std::string& group,
    int max_messages, absl::Duration timeout, std::optional<absl::Duration> idle_exit) const {
  // --command-property / --formatter-property are Kafka 4's names (--consumer-property and
  // --property are deprecated there).
  absl::StatusOr<ToolResult> run = RunClass(
      "org.apache.kafka.tools.consumer.ConsoleConsumer",
      {"--bootstrap-server", bootstrap, "--topic", topic, "--group", group, "--command-property",
       "group.protocol=consumer", "--command-property", "auto.offset.reset=earliest",
       // One record per poll: the position (what auto-commit commits on close) never runs ahead
       // of the records printed.
       "--command-property", "max.poll.records=1", "--max-messages", absl::StrCat(max_messages),
       "--timeout-ms", absl::StrCat(absl::ToInt64Milliseconds(idle_exit.value_or(timeout / 2))),
       "--formatter-property", "print.partition=true", "--formatter-property", "print.offset=true",
       "--formatter-property", "print.value=false"},
      timeout);
  if (!run.ok()) return run.status();
  ConsumedOffsets consumed;
  int count = 0;
  for (absl::string_view line : absl::StrSplit(run->stdout_text, '\n')) {
    int32_t partition = 0;
    int64_t offset = 0;
    if (ParseConsumedLine(line, &partition, &offset)) {
      consumed[partition].push_back(offset);
      ++count;
    }
  }
  // On --timeout-ms the tool logs a TimeoutException and exits non-zero: expected with idle_exit.
  const bool idle_stop = idle_exit.has_value() && count < max_messages;
  if ((run->exit_code != 0 && !idle_stop) || (!idle_exit.has_value() && count != max_messages)) {
    return absl::InternalError(absl::StrCat("ConsoleConsumer (group.protocol=consumer) exited ",
                                            run->exit_code, " after ", count, " of ", max_messages,
                                            " records; stderr:\n", run->stderr_text));
  }
  return consumed;
}

namespace {

struct GroupListing {
  rd_kafka_consumer_group_type_t type = RD_KAFKA_CONSUMER_GROUP_TYPE_UNKNOWN;
  std::string state;
};

absl::StatusOr<GroupListing> ListGroup(const std::string& bootstrap, const std::string& group,
                                       absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  absl::StatusOr<rdk::HandlePtr> rk = rdk::NewHandle(
      RD_KAFKA_PRODUCER, {{"bootstrap.servers", bootstrap}, {"client.id", "klag-test-admin"}});
  if (!rk.ok()) return rk.status();
  absl::StatusOr<rdk::EventPtr> event = rdk::AwaitAdminResult(
      rk->get(), deadline, RD_KAFKA_EVENT_LISTCONSUMERGROUPS_RESULT, "ListConsumerGroups",
      [&](const rd_kafka_AdminOptions_t* options, rd_kafka_queue_t* queue) {
        rd_kafka_ListConsumerGroups(rk->get(), options, queue);
      });
  if (!event.ok()) return event.status();
  const rd_kafka_ListConsumerGroups_result_t* result =
      rd_kafka_event_ListConsumerGroups_result(event->get());
  size_t n = 0;
  const rd_kafka_ConsumerGroupListing_t** groups =
      rd_kafka_ListConsumerGroups_result_valid(result, &n);
  for (size_t i = 0; i < n; ++i) {
    if (group != rd_kafka_ConsumerGroupListing_group_id(groups[i])) continue;
    return GroupListing{.type = rd_kafka_ConsumerGroupListing_type(groups[i]),
                        .state = rd_kafka_consumer_group_state_name(
                            rd_kafka_ConsumerGroupListing_state(groups[i]))};
  }
  return absl::NotFoundError(absl::StrCat("ListConsumerGroups does not list group ", group));
}

}  // namespace

absl::StatusOr<std::string> GroupType(const std::string& bootstrap, const std::string& group,
                                      absl::Duration timeout) {
  absl::StatusOr<GroupListing> listing = ListGroup(bootstrap, group, timeout);
  if (!listing.ok()) return listing.status();
  switch (listing->type) {
    case RD_KAFKA_CONSUMER_GROUP_TYPE_CONSUMER:
      return std::string("consumer");
    case RD_KAFKA_CONSUMER_GROUP_TYPE_CLASSIC:
      return std::string("classic");
    default:
      return std::string("unknown");
  }
}

absl::StatusOr<std::string> GroupState(const std::string& bootstrap, const std::string& group,
                                       absl::Duration timeout) {
  absl::StatusOr<GroupListing> listing = ListGroup(bootstrap, group, timeout);
  if (!listing.ok()) return listing.status();
  return listing->state;
}

}  // namespace klag::testing
