// Helpers for the Job's end-to-end tests: run the built klag-job/klag-produce binaries as child
// processes, read what the jsonl sink wrote, read topics and group state from the real broker,
// and query the PostgreSQL server of scripts/postgres.sh.
//
//   KLAG_REQUIRE_BROKER(bootstrap);
//   ProcessResult r = RunJob({"--bootstrap-servers", bootstrap, "--group", g, "--topic", t,
//                             "--jsonl-path", path});
//   EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
//   std::map<Tp, int64_t> lines = CountByRecord(ReadJsonl(path));
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "job/record.h"
#include "nlohmann/json.hpp"

namespace klag::job::testing {

// Paths of the binaries under test (compile definitions set by tests/job/CMakeLists.txt).
std::string KlagJobBinary();
std::string KlagProduceBinary();

// A fresh directory for one test's files; removed by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

struct ProcessResult {
  int exit_code = -1;  // -1 when killed by a signal
  int signal = 0;
  std::string stdout_text;
  std::string stderr_text;
  absl::Duration took;
  // The last line of stdout (or stderr) that parses as a JSON object: klag-job's summary.
  nlohmann::json Summary() const;
};

// A child process with stdout/stderr captured to files.
class Process {
 public:
  // Starts `argv` (argv[0] is the binary path). `env` entries are added to the environment.
  static absl::StatusOr<std::unique_ptr<Process>> Start(
      const std::vector<std::string>& argv,
      const std::vector<std::pair<std::string, std::string>>& env = {});
  ~Process();  // kills and reaps a process still running

  pid_t pid() const { return pid_; }
  void Signal(int sig);
  // Waits for the exit; after `timeout` kills it (SIGKILL) and reports that.
  ProcessResult Wait(absl::Duration timeout);
  bool Running();

 private:
  Process() = default;
  pid_t pid_ = -1;
  bool reaped_ = false;
  int status_ = 0;
  absl::Time start_;
  std::string out_path_;
  std::string err_path_;
};

// A finished process's exit code, signal, run time and output, for assertion messages.
std::string Diagnostics(const ProcessResult& r);

// Runs klag-job with `args` to completion (killed after `timeout`).
ProcessResult RunJob(const std::vector<std::string>& args,
                     absl::Duration timeout = absl::Seconds(90));

// One line of the jsonl sink's output.
struct JsonlRecord {
  std::string topic;
  int32_t partition = 0;
  int64_t offset = 0;
  std::optional<std::string> value;
};

// Every complete line of a jsonl file (a torn last line from a killed writer is ignored).
std::vector<JsonlRecord> ReadJsonl(const std::string& path);

// How often each (partition, offset) appears.
std::map<std::pair<int32_t, int64_t>, int> CountByRecord(const std::vector<JsonlRecord>& records);

// Every (partition, offset) with partition p's offsets in [from[p], to[p]).
std::map<std::pair<int32_t, int64_t>, int> ExpectedOnce(const std::map<int32_t, int64_t>& from,
                                                        const std::map<int32_t, int64_t>& to);

// Reads every record of `topic` (all partitions, from the beginning up to the end offsets at
// the time of the call), with headers.
absl::StatusOr<std::vector<Record>> ReadTopic(const std::string& bootstrap,
                                              const std::string& topic,
                                              absl::Duration timeout = absl::Seconds(30));

struct GroupState {
  std::string state;    // "Empty", "Stable", "Dead", ...
  bool simple = false;  // no member ever joined with a protocol (offsets only)
  int members = 0;
};
// The group as the broker describes it (admin DescribeConsumerGroups).
absl::StatusOr<GroupState> DescribeGroup(const std::string& bootstrap, const std::string& group,
                                         absl::Duration timeout = absl::Seconds(30));

// `count` records into each of partitions 0 .. partitions-1 of `topic` (fails the test
// otherwise; check with ASSERT_NO_FATAL_FAILURE).
void ProduceEach(const std::string& bootstrap, const std::string& topic, int partitions, int count);
// The group's committed offset per partition of `topic`, and the topic's end offsets: empty
// (and a failed expectation) when the broker does not answer.
std::map<int32_t, int64_t> Committed(const std::string& bootstrap, const std::string& group,
                                     const std::string& topic);
std::map<int32_t, int64_t> Ends(const std::string& bootstrap, const std::string& topic);

// PostgreSQL from scripts/postgres.sh: the URI in KLAG_TEST_POSTGRES, or "".
std::string PostgresUri();
// Runs a query returning one integer (e.g. SELECT count(*) ...).
absl::StatusOr<int64_t> PostgresScalar(const std::string& uri, const std::string& sql);

}  // namespace klag::job::testing

// Declares `std::string var` with the PostgreSQL URI. Without KLAG_TEST_POSTGRES the test is
// skipped with a message saying how to start the server; when CI=true it fails instead (the
// same rule as KLAG_REQUIRE_BROKER).
#define KLAG_REQUIRE_POSTGRES(var)                                                           \
  const std::string var = ::klag::job::testing::PostgresUri();                               \
  if (var.empty()) {                                                                         \
    if (::klag::testing::InCi()) {                                                           \
      FAIL() << "KLAG_TEST_POSTGRES is unset but CI=true: the postgres sink suite must run"; \
    }                                                                                        \
    GTEST_SKIP() << "KLAG_TEST_POSTGRES is unset; run: export KLAG_TEST_POSTGRES=\"$("       \
                    "scripts/postgres.sh start)\"";                                          \
  }
