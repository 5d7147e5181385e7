#include "job/exec_sink.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "job/record_json.h"
#include "tests/job/abandon_after.h"

namespace klag::job {
namespace {

using ::klag::job::testing::AbandonAfter;

std::string TempPath(const std::string& name) {
  return "/tmp/klag-exec-" + std::to_string(getpid()) + "-" + name;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<Record> Batch(int n) {
  std::vector<Record> out;
  for (int i = 0; i < n; ++i) {
    out.push_back({.topic = "t",
                   .partition = 1,
                   .offset = i,
                   .key = "k",
                   .value = "value " + std::to_string(i)});
  }
  return out;
}

TEST(ExecSinkTest, ExitZeroAcknowledgesAndStdinHoldsTheBatchAsJsonLines) {
  const std::string out = TempPath("stdin");
  ExecSink sink({.command = "cat > " + out + "; echo \"$KLAG_BATCH_RECORDS\" > " + out + ".n"});
  std::vector<Record> batch = Batch(3);
  ASSERT_TRUE(sink.Write(batch, NeverAbandon()).ok());
  std::string expected;
  for (const Record& r : batch) AppendJsonLine(r, &expected);
  EXPECT_EQ(ReadAll(out), expected);
  EXPECT_EQ(ReadAll(out + ".n"), "3\n");
  ::unlink(out.c_str());
  ::unlink((out + ".n").c_str());
}

TEST(ExecSinkTest, NonZeroExitIsARejection) {
  ExecSink sink({.command = "cat >/dev/null; exit 3"});
  std::vector<Record> batch = Batch(2);
  absl::Status s = sink.Write(batch, NeverAbandon());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("status 3"), absl::string_view::npos) << s;
  EXPECT_TRUE(IsRecordRejection(s));
}

TEST(ExecSinkTest, DeathBySignalIsRetryableNotARejection) {
  ExecSink sink({.command = "kill -KILL $$"});
  std::vector<Record> batch = Batch(1);
  absl::Status s = sink.Write(batch, NeverAbandon());
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_NE(s.message().find("signal 9"), absl::string_view::npos) << s;
  EXPECT_FALSE(IsRecordRejection(s));
}

TEST(ExecSinkTest, TheCommandDoesNotInheritKlagsOwnSettingsUnlessNamed) {
  const std::string out = TempPath("env");
  ::setenv("KLAG_PASSWORD", "s3cret", 1);
  ::setenv("KLAG_POSTGRES_URI", "postgresql://u:s3cret@db/x", 1);
  ::setenv("KLAG_GROUP", "g", 1);
  ::setenv("KLAG_EXEC_TEST_OTHER", "kept", 1);
  ExecSink sink({.command = "cat >/dev/null; env > " + out, .pass_env = {"KLAG_GROUP"}});
  std::vector<Record> batch = Batch(2);
  absl::Status s = sink.Write(batch, NeverAbandon());
  ::unsetenv("KLAG_PASSWORD");
  ::unsetenv("KLAG_POSTGRES_URI");
  ::unsetenv("KLAG_GROUP");
  ::unsetenv("KLAG_EXEC_TEST_OTHER");
  ASSERT_TRUE(s.ok()) << s;
  const std::string env = ReadAll(out);
  ::unlink(out.c_str());
  EXPECT_EQ(env.find("s3cret"), std::string::npos) << env;
  EXPECT_EQ(env.find("KLAG_EXEC_TEST_OTHER"), std::string::npos) << env;
  EXPECT_NE(env.find("\nKLAG_GROUP=g\n"), std::string::npos) << env;
  EXPECT_NE(env.find("KLAG_BATCH_RECORDS=2\n"), std::string::npos) << env;
  EXPECT_NE(env.find("PATH="), std::string::npos) << env;  // the rest is inherited
}

TEST(ExecSinkTest, CommandNotFoundIsTheSinksFaultNotTheRecords) {
  ExecSink sink({.command = "/nonexistent/handler.py"});
  std::vector<Record> batch = Batch(1);
  absl::Status s = sink.Write(batch, NeverAbandon());
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_FALSE(IsRecordRejection(s));
}

TEST(ExecSinkTest, CommandThatIgnoresStdinStillDecidesByExitStatus) {
  // 2 MB of input to a command that never reads it: no deadlock, exit 0 acknowledges.
  ExecSink sink({.command = "exit 0"});
  std::vector<Record> batch;
  for (int i = 0; i < 2000; ++i) {
    batch.push_back({.topic = "t", .partition = 0, .offset = i, .value = std::string(1000, 'x')});
  }
  EXPECT_TRUE(sink.Write(batch, NeverAbandon()).ok());
}

TEST(ExecSinkTest, TimeoutKillsTheCommandGroup) {
  const std::string marker = TempPath("grandchild");
  ::unlink(marker.c_str());
  // The grandchild would create the marker after 2 s unless the whole group is killed.
  ExecSink sink({.command = "(sleep 2; touch " + marker + ") & sleep 30",
                 .timeout = absl::Milliseconds(300)});
  std::vector<Record> batch = Batch(1);
  const absl::Time start = absl::Now();
  absl::Status s = sink.Write(batch, NeverAbandon());
  const absl::Duration took = absl::Now() - start;
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
  EXPECT_FALSE(IsRecordRejection(s));  // a slow handler says nothing about the records
  EXPECT_GE(took, absl::Milliseconds(300));
  EXPECT_LT(took, absl::Seconds(2));
  absl::SleepFor(absl::Milliseconds(2500));
  EXPECT_NE(access(marker.c_str(), F_OK), 0) << "grandchild survived the kill";
}

TEST(ExecSinkTest, AbandonKillsTheCommandAndReportsCancelled) {
  ExecSink sink({.command = "sleep 30"});
  std::vector<Record> batch = Batch(1);
  const absl::Time start = absl::Now();
  absl::Status s = sink.Write(batch, AbandonAfter(absl::Milliseconds(200)));
  EXPECT_EQ(s.code(), absl::StatusCode::kCancelled) << s;
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
}

}  // namespace
}  // namespace klag::job
