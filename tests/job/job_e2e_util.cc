#include "tests/job/job_e2e_util.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "job/rdkafka_record.h"
#include "kafka/rdkafka_group_describe.h"
#include "kafka/rdkafka_handle.h"
#include "kafka/rdkafka_status.h"
#include "tests/testing/kafka_admin.h"

extern char** environ;

namespace klag::job::testing {

namespace rdk = kafka::rdkafka;

std::string KlagJobBinary() { return KLAG_JOB_BINARY; }
std::string KlagProduceBinary() { return KLAG_PRODUCE_BINARY; }

TempDir::TempDir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "klag-job-e2e-XXXXXX").string();
  char* made = mkdtemp(pattern.data());
  path_ = made == nullptr ? "/tmp" : made;
}

TempDir::~TempDir() {
  std::error_code ignored;
  if (path_ != "/tmp") std::filesystem::remove_all(path_, ignored);
}

namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::optional<nlohmann::json> LastJsonObject(const std::string& text) {
  std::vector<std::string> lines = absl::StrSplit(text, '\n', absl::SkipEmpty());
  for (auto it = lines.rbegin(); it != lines.rend(); ++it) {
    if (it->empty() || (*it)[0] != '{') continue;
    nlohmann::json j = nlohmann::json::parse(*it, nullptr, /*allow_exceptions=*/false);
    if (j.is_object() && j.contains("exit_reason")) return j;
  }
  return std::nullopt;
}

}  // namespace

nlohmann::json ProcessResult::Summary() const {
  if (auto j = LastJsonObject(stdout_text); j.has_value()) return *j;
  if (auto j = LastJsonObject(stderr_text); j.has_value()) return *j;
  return nlohmann::json::object();
}

absl::StatusOr<std::unique_ptr<Process>> Process::Start(
    const std::vector<std::string>& argv,
    const std::vector<std::pair<std::string, std::string>>& env) {
  static int counter = 0;
  std::unique_ptr<Process> p(new Process());
  const std::string base = absl::StrCat(std::filesystem::temp_directory_path().string(),
                                        "/klag-proc-", getpid(), "-", ++counter);
  p->out_path_ = base + ".out";
  p->err_path_ = base + ".err";
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, p->out_path_.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, p->err_path_.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
  for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (std::string& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = argv;
  std::vector<char*> argp;
  for (std::string& a : args) argp.push_back(a.data());
  argp.push_back(nullptr);
  p->start_ = absl::Now();
  int rc = posix_spawn(&p->pid_, args[0].c_str(), &actions, nullptr, argp.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    return absl::InternalError(absl::StrCat("posix_spawn ", args[0], ": ", std::strerror(rc)));
  }
  return p;
}

Process::~Process() {
  if (pid_ > 0 && !reaped_) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &status_, 0);
  }
  ::unlink(out_path_.c_str());
  ::unlink(err_path_.c_str());
}

void Process::Signal(int sig) {
  if (!reaped_) ::kill(pid_, sig);
}

bool Process::Running() {
  if (reaped_) return false;
  if (::waitpid(pid_, &status_, WNOHANG) == pid_) reaped_ = true;
  return !reaped_;
}

ProcessResult Process::Wait(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (Running() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(10));
  ProcessResult r;
  if (!reaped_) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &status_, 0);
    reaped_ = true;
    r.stderr_text = "[test: killed after timeout]\n";
  }
  r.took = absl::Now() - start_;
  if (WIFEXITED(status_)) r.exit_code = WEXITSTATUS(status_);
  if (WIFSIGNALED(status_)) r.signal = WTERMSIG(status_);
  r.stdout_text = ReadFile(out_path_);
  r.stderr_text += ReadFile(err_path_);
  return r;
}

ProcessResult RunJob(const std::vector<std::string>& args, absl::Duration timeout) {
  std::vector<std::string> argv = {KlagJobBinary()};
  argv.insert(argv.end(), args.begin(), args.end());
  absl::StatusOr<std::unique_ptr<Process>> p = Process::Start(argv);
  if (!p.ok()) {
    ProcessResult r;
    r.stderr_text = std::string(p.status().message());
    return r;
  }
  return (*p)->Wait(timeout);
}

std::vector<JsonlRecord> ReadJsonl(const std::string& path) {
  std::vector<JsonlRecord> out;
  const std::string text = ReadFile(path);
  size_t begin = 0;
  while (true) {
    size_t nl = text.find('\n', begin);
    if (nl == std::string::npos) break;  // no newline: torn last line
    nlohmann::json j = nlohmann::json::parse(text.substr(begin, nl - begin), nullptr, false);
    begin = nl + 1;
    if (!j.is_object()) {
      ADD_FAILURE() << "not a JSON line in " << path;
      continue;
    }
    JsonlRecord r;
    r.topic = j["topic"].get<std::string>();
    r.partition = j["partition"].get<int32_t>();
    r.offset = j["offset"].get<int64_t>();
    if (j.contains("value") && j["value"].is_string()) r.value = j["value"].get<std::string>();
    out.push_back(std::move(r));
  }
  return out;
}

std::map<std::pair<int32_t, int64_t>, int> CountByRecord(const std::vector<JsonlRecord>& records) {
  std::map<std::pair<int32_t, int64_t>, int> out;
  for (const JsonlRecord& r : records) ++out[{r.partition, r.offset}];
  return out;
}

std::map<std::pair<int32_t, int64_t>, int> ExpectedOnce(const std::map<int32_t, int64_t>& from,
                                                        const std::map<int32_t, int64_t>& to) {
  std::map<std::pair<int32_t, int64_t>, int> out;
  for (const auto& [p, end] : to) {
    auto it = from.find(p);
    for (int64_t o = it == from.end() ? 0 : it->second; o < end; ++o) out[{p, o}] = 1;
  }
  return out;
}

absl::StatusOr<std::vector<Record>> ReadTopic(const std::string& bootstrap,
                                              const std::string& topic, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  absl::StatusOr<rdk::HandlePtr> rk =
      rdk::NewHandle(RD_KAFKA_CONSUMER, {{"bootstrap.servers", bootstrap},
                                         {"group.id", "klag-e2e-reader"},
                                         {"enable.auto.commit", "false"},
                                         {"isolation.level", "read_committed"},
                                         {"enable.partition.eof", "true"}});
  if (!rk.ok()) return rk.status();
  rd_kafka_t* h = rk->get();
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(h, topic.c_str(), nullptr);
  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_resp_err_t err = rd_kafka_metadata(h, 0, rkt, &md, rdk::RemainingMs(deadline));
  rd_kafka_topic_destroy(rkt);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) return kafka::RdkafkaStatus(err, "metadata");
  rdk::MetadataPtr metadata(md);
  if (md->topic_cnt != 1 || md->topics[0].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return absl::NotFoundError(absl::StrCat("topic ", topic));
  }
  rdk::PartitionListPtr ends(rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt));
  for (int i = 0; i < md->topics[0].partition_cnt; ++i) {
    rd_kafka_topic_partition_list_add(ends.get(), topic.c_str(), md->topics[0].partitions[i].id)
        ->offset = RD_KAFKA_OFFSET_END;
  }
  err = rd_kafka_offsets_for_times(h, ends.get(), rdk::RemainingMs(deadline));
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) return kafka::RdkafkaStatus(err, "end offsets");
  rdk::PartitionListPtr assignment(rd_kafka_topic_partition_list_new(ends->cnt));
  int remaining = 0;
  for (int i = 0; i < ends->cnt; ++i) {
    rd_kafka_topic_partition_list_add(assignment.get(), topic.c_str(), ends->elems[i].partition)
        ->offset = RD_KAFKA_OFFSET_BEGINNING;
    remaining += ends->elems[i].offset > 0 ? 1 : 0;
  }
  err = rd_kafka_assign(h, assignment.get());
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) return kafka::RdkafkaStatus(err, "assign");
  std::vector<Record> out;
  std::map<int32_t, bool> done;
  while (remaining > 0) {
    if (absl::Now() >= deadline) return absl::DeadlineExceededError("reading " + topic);
    rd_kafka_message_t* m = rd_kafka_consumer_poll(h, 100);
    if (m == nullptr) continue;
    std::unique_ptr<rd_kafka_message_t, void (*)(rd_kafka_message_t*)> owned(
        m, &rd_kafka_message_destroy);
    int64_t end = 0;
    for (int i = 0; i < ends->cnt; ++i) {
      if (ends->elems[i].partition == m->partition) end = ends->elems[i].offset;
    }
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      if (m->offset >= end && !done[m->partition] && end > 0) {
        done[m->partition] = true;
        --remaining;
      }
      continue;
    }
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) continue;
    if (m->offset >= end) continue;
    out.push_back(RecordFrom(m));
    if (m->offset + 1 >= end && !done[m->partition]) {
      done[m->partition] = true;
      --remaining;
    }
  }
  rd_kafka_consumer_close(h);
  return out;
}

absl::StatusOr<GroupState> DescribeGroup(const std::string& bootstrap, const std::string& group,
                                         absl::Duration timeout) {
  kafka::ConnectionConfig connection;
  connection.bootstrap_servers = bootstrap;
  absl::StatusOr<kafka::GroupDescription> g =
      kafka::DescribeGroup(connection, group, absl::Now() + timeout);
  if (!g.ok()) return g.status();
  return GroupState{
      .state = g->state, .simple = g->simple, .members = static_cast<int>(g->members.size())};
}

std::string PostgresUri() {
  const char* uri = std::getenv("KLAG_TEST_POSTGRES");
  return uri == nullptr ? "" : uri;
}

absl::StatusOr<int64_t> PostgresScalar(const std::string& uri, const std::string& sql) {
  PGconn* conn = PQconnectdb(uri.c_str());
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string message = PQerrorMessage(conn);
    PQfinish(conn);
    return absl::UnavailableError(message);
  }
  PGresult* res = PQexec(conn, sql.c_str());
  absl::StatusOr<int64_t> out = absl::InternalError(PQresultErrorMessage(res));
  int64_t value = 0;
  if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
      absl::SimpleAtoi(PQgetvalue(res, 0, 0), &value)) {
    out = value;
  }
  PQclear(res);
  PQfinish(conn);
  return out;
}

std::string Diagnostics(const ProcessResult& r) {
  return absl::StrCat("exit ", r.exit_code, " signal ", r.signal, " after ",
                      absl::FormatDuration(r.took), "\nstdout:\n", r.stdout_text, "\nstderr:\n",
                      r.stderr_text);
}

void ProduceEach(const std::string& bootstrap, const std::string& topic, int partitions,
                 int count) {
  for (int p = 0; p < partitions; ++p) {
    absl::StatusOr<std::vector<int64_t>> offsets =
        ::klag::testing::Produce(bootstrap, topic, p, count);
    ASSERT_TRUE(offsets.ok()) << offsets.status();
    ASSERT_EQ(offsets->size(), static_cast<size_t>(count));
  }
}

std::map<int32_t, int64_t> Committed(const std::string& bootstrap, const std::string& group,
                                     const std::string& topic) {
  absl::StatusOr<std::map<int32_t, int64_t>> c =
      ::klag::testing::CommittedOffsets(bootstrap, group, topic);
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? *c : std::map<int32_t, int64_t>{};
}

std::map<int32_t, int64_t> Ends(const std::string& bootstrap, const std::string& topic) {
  absl::StatusOr<std::map<int32_t, int64_t>> e = ::klag::testing::EndOffsets(bootstrap, topic);
  EXPECT_TRUE(e.ok()) << e.status();
  return e.ok() ? *e : std::map<int32_t, int64_t>{};
}

}  // namespace klag::job::testing
