// No value of a GSSAPI setting reaches a shell: the built klag-scaler (`check`, the same parse
// and client creation as serving) and klag-job get shell metacharacters in each of username,
// realm, kerberosServiceName and keytab, and must refuse them with INVALID_ARGUMENT naming the
// key, without running anything. Before the fix, `username=a;touch MARKER;#` created MARKER:
// librdkafka pastes the principal and keytab into sasl.kerberos.kinit.cmd and runs it with
// system(). With valid values and a keytab under --kerberos-keytab-dir, klag-job creates the
// client and librdkafka's kinit failure (no KDC, usually no kinit) is logged, not a crash.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"

namespace klag {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

struct Result {
  bool exited = false;  // false: killed by a signal (or by the timeout below)
  int code = -1;
  std::string output;  // stdout and stderr
};

// Runs `argv` with stdout and stderr in a file; kills it after `timeout`.
Result RunProcess(const std::vector<std::string>& argv, std::chrono::seconds timeout) {
  const std::string out_path =
      (std::filesystem::temp_directory_path() / absl::StrCat("klag-gssapi-", getpid(), ".out"))
          .string();
  const pid_t pid = fork();
  if (pid == 0) {
    const int fd = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fd, 1);
    dup2(fd, 2);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  Result result;
  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  result.exited = WIFEXITED(status);
  result.code = result.exited ? WEXITSTATUS(status) : -1;
  std::ifstream in(out_path);
  std::stringstream text;
  text << in.rdbuf();
  result.output = text.str();
  std::filesystem::remove(out_path);
  return result;
}

class GssapiShellE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir_template[] = "/tmp/klag-gssapi-XXXXXX";
    ASSERT_NE(mkdtemp(dir_template), nullptr);
    dir_ = dir_template;
    keytab_dir_ = dir_ + "/keytabs";
    std::filesystem::create_directory(keytab_dir_);
    std::ofstream(keytab_dir_ + "/svc.keytab") << "not a real keytab";
    marker_ = dir_ + "/PWNED";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Values that each run `touch marker_` if they reach /bin/sh, whether pasted bare (the
  // principal in librdkafka's default command), inside double quotes (its keytab) or inside
  // single quotes (klag's command).
  std::vector<std::string> Payloads() const {
    return {absl::StrCat(";touch ", marker_, ";#"),  absl::StrCat("|touch ", marker_),
            absl::StrCat("&touch ", marker_, "&"),   absl::StrCat("$(touch ", marker_, ")"),
            absl::StrCat("`touch ", marker_, "`"),   absl::StrCat("\";touch ", marker_, ";\""),
            absl::StrCat("';touch ", marker_, ";'"), absl::StrCat("\ntouch ", marker_, "\n"),
            absl::StrCat(" ;touch ", marker_)};
  }

  // A valid value of `field`, into which a payload is inserted.
  std::string Valid(const std::string& field) const {
    if (field == "username") return "svc/host.example.com";
    if (field == "realm") return "EXAMPLE.COM";
    if (field == "kerberosServiceName") return "kafka";
    return keytab_dir_ + "/svc.keytab";
  }

  std::string dir_;
  std::string keytab_dir_;
  std::string marker_;
};

const std::vector<std::string> kFields = {"username", "realm", "kerberosServiceName", "keytab"};

TEST_F(GssapiShellE2eTest, ScalerCheckRefusesMetacharactersInEveryFieldAndRunsNothing) {
  for (const std::string& field : kFields) {
    for (const std::string& payload : Payloads()) {
      std::vector<std::string> argv = {
          KLAG_SCALER_BINARY, "check",   "--kafka-timeout", "2s", "bootstrapServers=127.0.0.1:1",
          "consumerGroup=g",  "topic=t", "sasl=gssapi"};
      for (const std::string& f : kFields) {
        const std::string value = f == field ? Valid(f) + payload + "x" : Valid(f);
        argv.push_back(absl::StrCat(f, "=", value));
      }
      const Result r = RunProcess(argv, std::chrono::seconds(30));
      SCOPED_TRACE(absl::StrCat(field, " += ", payload, "\n", r.output));
      EXPECT_FALSE(std::filesystem::exists(marker_));
      EXPECT_TRUE(r.exited);
      EXPECT_EQ(r.code, 1);
      EXPECT_THAT(r.output, HasSubstr(absl::StrCat("INVALID_ARGUMENT: ", field)));
      EXPECT_THAT(r.output, Not(HasSubstr("created librdkafka client")));
      EXPECT_THAT(r.output, Not(HasSubstr("touch")));  // the value is not echoed
      std::filesystem::remove(marker_);
    }
  }
}

// The exact command from the issue: now refused before any client (and kinit) exists.
TEST_F(GssapiShellE2eTest, ScalerCheckIssueReproductionRunsNothing) {
  const Result r =
      RunProcess({KLAG_SCALER_BINARY, "check", "--kafka-timeout", "2s",
                  "bootstrapServers=127.0.0.1:1", "consumerGroup=g", "topic=t", "sasl=gssapi",
                  "realm=R", "keytab=/k", absl::StrCat("username=a;touch ", marker_, ";#")},
                 std::chrono::seconds(30));
  SCOPED_TRACE(r.output);
  EXPECT_FALSE(std::filesystem::exists(marker_));
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.output, HasSubstr("INVALID_ARGUMENT: username must be a Kerberos principal name"));
}

// Without --kerberos-keytab-dir, a valid GSSAPI trigger is refused naming the option that
// would allow it.
TEST_F(GssapiShellE2eTest, ScalerCheckRefusesKeytabsWithoutAConfiguredDirectory) {
  std::vector<std::string> argv = {
      KLAG_SCALER_BINARY, "check",   "--kafka-timeout", "2s", "bootstrapServers=127.0.0.1:1",
      "consumerGroup=g",  "topic=t", "sasl=gssapi"};
  for (const std::string& f : kFields) argv.push_back(absl::StrCat(f, "=", Valid(f)));
  const Result r = RunProcess(argv, std::chrono::seconds(30));
  SCOPED_TRACE(r.output);
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.output, HasSubstr("INVALID_ARGUMENT: sasl gssapi with keytab is refused"));
  EXPECT_THAT(r.output, HasSubstr("--kerberos-keytab-dir (KLAG_KERBEROS_KEYTAB_DIR)"));
}

// With --kerberos-keytab-dir, the same metadata passes the checks, the client is created and
// librdkafka runs klag's kinit command with the checked, quoted values (it fails: no KDC).
TEST_F(GssapiShellE2eTest, ScalerCheckWithAKeytabDirCreatesTheClientAndLogsTheKinitFailure) {
  std::vector<std::string> argv = {KLAG_SCALER_BINARY,
                                   "--kerberos-keytab-dir",
                                   keytab_dir_,
                                   "check",
                                   "--kafka-timeout",
                                   "2s",
                                   "bootstrapServers=127.0.0.1:1",
                                   "consumerGroup=g",
                                   "topic=t",
                                   "sasl=gssapi"};
  for (const std::string& f : kFields) argv.push_back(absl::StrCat(f, "=", Valid(f)));
  const Result r = RunProcess(argv, std::chrono::seconds(60));
  SCOPED_TRACE(r.output);
  EXPECT_TRUE(r.exited) << "crashed or hung";
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.output, Not(HasSubstr("INVALID_ARGUMENT")));
  EXPECT_THAT(r.output,
              HasSubstr(absl::StrCat("Kerberos ticket refresh failed: kinit -R -t '", keytab_dir_,
                                     "/svc.keytab' -k 'svc/host.example.com@EXAMPLE.COM'")));
  EXPECT_FALSE(std::filesystem::exists(marker_));
}

TEST_F(GssapiShellE2eTest, ScalerRefusesAKeytabDirThatIsNotNormalised) {
  const Result r =
      RunProcess({KLAG_SCALER_BINARY, "--kerberos-keytab-dir", "/etc/klag/../tmp", "check",
                  "bootstrapServers=127.0.0.1:1", "consumerGroup=g", "topic=t"},
                 std::chrono::seconds(30));
  SCOPED_TRACE(r.output);
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.output, HasSubstr("--kerberos-keytab-dir (KLAG_KERBEROS_KEYTAB_DIR)"));
}

std::vector<std::string> JobArgs(const std::string& keytab_dir) {
  return {KLAG_JOB_BINARY,
          "--bootstrap-servers",
          "127.0.0.1:1",
          "--group",
          "g",
          "--topic",
          "t",
          "--sasl",
          "gssapi",
          "--kafka-timeout",
          "2s",
          "--kerberos-keytab-dir",
          keytab_dir};
}

std::string Flag(const std::string& field) {
  if (field == "kerberosServiceName") return "--kerberos-service-name";
  return "--" + field;
}

TEST_F(GssapiShellE2eTest, JobRefusesMetacharactersInEveryFieldAndRunsNothing) {
  for (const std::string& field : kFields) {
    for (const std::string& payload : Payloads()) {
      std::vector<std::string> argv = JobArgs(keytab_dir_);
      for (const std::string& f : kFields) {
        argv.push_back(Flag(f));
        argv.push_back(f == field ? Valid(f) + payload + "x" : Valid(f));
      }
      const Result r = RunProcess(argv, std::chrono::seconds(30));
      SCOPED_TRACE(absl::StrCat(field, " += ", payload, "\n", r.output));
      EXPECT_FALSE(std::filesystem::exists(marker_));
      EXPECT_TRUE(r.exited);
      EXPECT_EQ(r.code, 2);  // bad options
      EXPECT_THAT(r.output, HasSubstr(absl::StrCat("Kafka connection: ", field)));
      EXPECT_THAT(r.output, Not(HasSubstr("touch")));
      std::filesystem::remove(marker_);
    }
  }
}

TEST_F(GssapiShellE2eTest, JobRefusesAKeytabOutsideTheDirectory) {
  std::vector<std::string> argv = JobArgs(keytab_dir_);
  for (const std::string& f : kFields) {
    argv.push_back(Flag(f));
    argv.push_back(f == "keytab" ? keytab_dir_ + "/../svc.keytab" : Valid(f));
  }
  const Result r = RunProcess(argv, std::chrono::seconds(30));
  SCOPED_TRACE(r.output);
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.output, HasSubstr("Kafka connection: keytab must be an absolute, normalised path"));
}

TEST_F(GssapiShellE2eTest, JobWithValidValuesCreatesTheClientAndLogsTheKinitFailure) {
  std::vector<std::string> argv = JobArgs(keytab_dir_);
  for (const std::string& f : kFields) {
    argv.push_back(Flag(f));
    argv.push_back(Valid(f));
  }
  const Result r = RunProcess(argv, std::chrono::seconds(60));
  SCOPED_TRACE(r.output);
  EXPECT_TRUE(r.exited) << "crashed or hung";
  EXPECT_EQ(r.code, 1);  // no broker on the closed port: a fatal Kafka error, not bad options
  EXPECT_THAT(r.output, Not(HasSubstr("Kafka connection:")));
  // librdkafka ran klag's command (kKinitCommand) with the checked, single-quoted values; with
  // no KDC (and usually no kinit) it fails, and librdkafka logs that.
  EXPECT_THAT(r.output,
              HasSubstr(absl::StrCat("Kerberos ticket refresh failed: kinit -R -t '", keytab_dir_,
                                     "/svc.keytab' -k 'svc/host.example.com@EXAMPLE.COM'")));
}

}  // namespace
}  // namespace klag
