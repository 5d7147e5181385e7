// klag-job against the real broker (scripts/kafka.sh) and, for the postgres sink, the real
// PostgreSQL server (scripts/postgres.sh): the "Done when" list, one test each, run on
// the built binaries as a Kubernetes Job would run them.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "tests/job/job_e2e_util.h"
#include "tests/testing/kafka_admin.h"
#include "tests/testing/test_env.h"

namespace klag::job {
namespace {

using ::klag::job::testing::Committed;
using ::klag::job::testing::CountByRecord;
using ::klag::job::testing::Diagnostics;
using ::klag::job::testing::Ends;
using ::klag::job::testing::ExpectedOnce;
using ::klag::job::testing::Process;
using ::klag::job::testing::ProcessResult;
using ::klag::job::testing::ProduceEach;
using ::klag::job::testing::ReadJsonl;
using ::klag::job::testing::RunJob;
using ::klag::job::testing::TempDir;
using RecordCounts = std::map<std::pair<int32_t, int64_t>, int>;

// Settings that keep the tests quick: a crashed member's partitions move after 6 s (the
// broker's minimum session timeout), progress every second.
std::vector<std::string> JobArgs(const std::string& bootstrap, const std::string& group,
                                 const std::string& topic, std::vector<std::string> extra) {
  std::vector<std::string> args = {"--bootstrap-servers",
                                   bootstrap,
                                   "--group",
                                   group,
                                   "--topic",
                                   topic,
                                   "--session-timeout",
                                   "6s",
                                   "--progress-interval",
                                   "1s"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

std::unique_ptr<Process> StartJob(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {testing::KlagJobBinary()};
  argv.insert(argv.end(), args.begin(), args.end());
  absl::StatusOr<std::unique_ptr<Process>> p = Process::Start(argv);
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? std::move(*p) : nullptr;
}

void CreateTopic(const std::string& bootstrap, const std::string& topic, int partitions) {
  absl::Status s = ::klag::testing::CreateTopic(bootstrap, topic, partitions);
  ASSERT_TRUE(s.ok()) << s;
}

// Per-partition "end" (end offset at assignment) from a summary.
std::map<int32_t, int64_t> SummaryEnds(const nlohmann::json& summary) {
  std::map<int32_t, int64_t> out;
  for (const auto& p : summary["partitions"]) out[p["partition"]] = p["end"];
  return out;
}

// Waits until `path` holds at least `lines` complete lines; false on timeout.
bool WaitForLines(const std::string& path, size_t lines, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (ReadJsonl(path).size() >= lines) return true;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return false;
}

TEST(JobE2eTest, DrainsExactlyTheLagSeenAtStartAndLeavesLaterRecordsForTheNextJob) {
  KLAG_REQUIRE_BROKER(bootstrap);
  const std::string topic = ::klag::testing::UniqueName("job-drain");
  const std::string group = ::klag::testing::UniqueName("job-drain-g");
  CreateTopic(bootstrap, topic, 3);
  ProduceEach(bootstrap, topic, 3, 2000);

  // Records keep arriving while the Job drains.
  std::atomic<bool> stop_producing{false};
  std::atomic<int> produced_during{0};
  std::thread producer([&] {
    while (!stop_producing.load()) {
      for (int p = 0; p < 3; ++p) {
        if (::klag::testing::Produce(bootstrap, topic, p, 5).ok()) produced_during += 5;
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
  });
  TempDir dir;
  ProcessResult r = RunJob(JobArgs(bootstrap, group, topic,
                                   {"--jsonl-path", dir.File("out.jsonl"), "--batch-size", "100"}));
  // At least one batch whose Produce call started after the Job was done (so certainly after its
  // assignment) lands: on a busy machine the Job could otherwise drain before the producer's
  // first batch. A call in flight at exit may add 5 records written earlier; 10 more means at
  // least one call that started after the exit completed.
  const int produced_at_exit = produced_during.load();
  const absl::Time produce_deadline = absl::Now() + absl::Seconds(30);
  while (produced_during.load() < produced_at_exit + 10 && absl::Now() < produce_deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  stop_producing = true;
  producer.join();
  ASSERT_EQ(r.exit_code, 0) << Diagnostics(r);
  nlohmann::json summary = r.Summary();
  EXPECT_EQ(summary["exit_reason"], "drained") << summary;

  // Committed == the end offsets the Job saw at assignment; the sink holds exactly the records
  // below them, each once.
  const std::map<int32_t, int64_t> ends_at_start = SummaryEnds(summary);
  ASSERT_EQ(ends_at_start.size(), 3u) << summary;
  for (const auto& [p, end] : ends_at_start) EXPECT_GE(end, 2000) << "partition " << p;
  EXPECT_EQ(Committed(bootstrap, group, topic), ends_at_start);
  const RecordCounts first = CountByRecord(ReadJsonl(dir.File("out.jsonl")));
  EXPECT_EQ(first, ExpectedOnce({}, ends_at_start));
  int64_t delivered = 0;
  for (const auto& [p, end] : ends_at_start) delivered += end;
  EXPECT_EQ(summary["records"], delivered);

  // What was produced after the Job's assignment is lag for the next Job, which takes exactly it.
  const std::map<int32_t, int64_t> ends_now = Ends(bootstrap, topic);
  int64_t left = 0;
  for (const auto& [p, end] : ends_now) left += end - ends_at_start.at(p);
  EXPECT_GT(left, 0) << "nothing was produced after the Job's assignment; the test proves "
                        "nothing (produced during: "
                     << produced_during << ")";
  ProcessResult next =
      RunJob(JobArgs(bootstrap, group, topic, {"--jsonl-path", dir.File("next.jsonl")}));
  ASSERT_EQ(next.exit_code, 0) << Diagnostics(next);
  EXPECT_EQ(next.Summary()["records"], left);
  EXPECT_EQ(CountByRecord(ReadJsonl(dir.File("next.jsonl"))),
            ExpectedOnce(ends_at_start, ends_now));
  EXPECT_EQ(Committed(bootstrap, group, topic), ends_now);
}

TEST(JobE2eTest, ThreeJobsStartedTogetherDeliverEveryRecordOnce) {
  KLAG_REQUIRE_BROKER(bootstrap);
  const std::string topic = ::klag::testing::UniqueName("job-three");
  const std::string group = ::klag::testing::UniqueName("job-three-g");
  CreateTopic(bootstrap, topic, 6);
  ProduceEach(bootstrap, topic, 6, 1500);
  TempDir dir;
  std::vector<std::unique_ptr<Process>> jobs;
  for (int i = 0; i < 3; ++i) {
    jobs.push_back(StartJob(JobArgs(
        bootstrap, group, topic,
        {"--jsonl-path", dir.File(absl::StrCat("job", i, ".jsonl")), "--batch-size", "50"})));
    ASSERT_NE(jobs.back(), nullptr);
  }
  std::vector<testing::JsonlRecord> all;
  for (int i = 0; i < 3; ++i) {
    ProcessResult r = jobs[i]->Wait(absl::Seconds(90));
    EXPECT_EQ(r.exit_code, 0) << "job " << i << ": " << Diagnostics(r);
    std::vector<testing::JsonlRecord> mine = ReadJsonl(dir.File(absl::StrCat("job", i, ".jsonl")));
    all.insert(all.end(), mine.begin(), mine.end());
  }
  const std::map<int32_t, int64_t> ends = Ends(bootstrap, topic);
  const RecordCounts counts = CountByRecord(all);
  const RecordCounts expected = ExpectedOnce({}, ends);
  int missing = 0;
  int duplicated = 0;
  for (const auto& [record, n] : expected) missing += counts.contains(record) ? 0 : 1;
  for (const auto& [record, n] : counts) duplicated += n > 1 ? 1 : 0;
  EXPECT_EQ(missing, 0);
  EXPECT_EQ(counts.size(), expected.size()) << "records outside the topic's range";
  // At-least-once allows duplicates; a clean cooperative hand-over (commit on revoke) gives none.
  EXPECT_EQ(duplicated, 0);
  EXPECT_EQ(Committed(bootstrap, group, topic), ends);
}

TEST(JobE2eTest, KilledMidDrainThenANewJobLosesNothingAndRepeatsOnlyUncommittedRecords) {
  KLAG_REQUIRE_BROKER(bootstrap);
  const std::string topic = ::klag::testing::UniqueName("job-kill");
  const std::string group = ::klag::testing::UniqueName("job-kill-g");
  CreateTopic(bootstrap, topic, 2);
  // Enough records that the drain outlasts the wait for its first commit and 2,000 lines: with
  // librdkafka 2.8, 2 x 20,000 drained in about 2 s and the Job was sometimes done before the kill.
  constexpr int kPerPartition = 100000;
  ProduceEach(bootstrap, topic, 2, kPerPartition);
  TempDir dir;
  // Small batches: one fsync each, so the drain takes a while.
  std::unique_ptr<Process> first =
      StartJob(JobArgs(bootstrap, group, topic,
                       {"--jsonl-path", dir.File("first.jsonl"), "--batch-size", "20",
                        "--commit-interval", "100ms"}));
  ASSERT_NE(first, nullptr);
  // Kill it once it has committed something and written more.
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (absl::Now() < deadline && first->Running()) {
    absl::StatusOr<std::map<int32_t, int64_t>> c =
        ::klag::testing::CommittedOffsets(bootstrap, group, topic);
    if (c.ok() && !c->empty()) break;
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_TRUE(WaitForLines(dir.File("first.jsonl"), 2000, absl::Seconds(60)));
  ASSERT_TRUE(first->Running()) << "the Job finished before it could be killed mid-drain";
  first->Signal(SIGKILL);
  ProcessResult killed = first->Wait(absl::Seconds(10));
  ASSERT_EQ(killed.signal, SIGKILL);
  const std::map<int32_t, int64_t> committed_at_kill = Committed(bootstrap, group, topic);
  const std::vector<testing::JsonlRecord> before = ReadJsonl(dir.File("first.jsonl"));

  ProcessResult second =
      RunJob(JobArgs(bootstrap, group, topic, {"--jsonl-path", dir.File("second.jsonl")}));
  ASSERT_EQ(second.exit_code, 0) << Diagnostics(second);
  const std::map<int32_t, int64_t> ends = {{0, kPerPartition}, {1, kPerPartition}};
  EXPECT_EQ(Committed(bootstrap, group, topic), ends);

  // The killed Job wrote each record at most once, and everything below its commits.
  const RecordCounts first_counts = CountByRecord(before);
  for (const auto& [record, n] : first_counts) EXPECT_EQ(n, 1);
  for (const auto& [record, n] : ExpectedOnce({}, committed_at_kill)) {
    EXPECT_TRUE(first_counts.contains(record)) << "committed but never written";
  }
  // The new Job started at the commits: it wrote exactly [committed, end).
  EXPECT_EQ(CountByRecord(ReadJsonl(dir.File("second.jsonl"))),
            ExpectedOnce(committed_at_kill, ends));
  // So nothing is missing, and the duplicates (records both Jobs wrote) are exactly the killed
  // Job's records past its last commit: written, never committed.
  const RecordCounts second_counts = CountByRecord(ReadJsonl(dir.File("second.jsonl")));
  RecordCounts duplicates;
  RecordCounts uncommitted_written;
  for (const auto& [record, n] : first_counts) {
    if (second_counts.contains(record)) duplicates[record] = 1;
    const int64_t committed =
        committed_at_kill.contains(record.first) ? committed_at_kill.at(record.first) : 0;
    if (record.second >= committed) uncommitted_written[record] = 1;
  }
  EXPECT_EQ(duplicates, uncommitted_written);
  EXPECT_LT(uncommitted_written.size(), before.size()) << "the killed Job had committed nothing";
}

TEST(JobE2eTest, KilledMidDrainWithThePostgresSinkLeavesExactlyOneRowPerRecord) {
  KLAG_REQUIRE_BROKER(bootstrap);
  KLAG_REQUIRE_POSTGRES(postgres);
  const std::string topic = ::klag::testing::UniqueName("job-pg");
  const std::string group = ::klag::testing::UniqueName("job-pg-g");
  std::string table = ::klag::testing::UniqueName("prices");
  for (char& c : table) c = c == '-' ? '_' : c;
  CreateTopic(bootstrap, topic, 2);
  ProduceEach(bootstrap, topic, 2, 30000);
  const std::vector<std::string> sink = {
      "--sink",       "postgres", "--postgres-uri",    postgres, "--postgres-table", table,
      "--batch-size", "100",      "--commit-interval", "100ms"};
  std::unique_ptr<Process> first = StartJob(JobArgs(bootstrap, group, topic, sink));
  ASSERT_NE(first, nullptr);
  const std::string count_sql = absl::StrCat("SELECT count(*) FROM \"", table, "\"");
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  int64_t rows = 0;
  while (absl::Now() < deadline && rows < 5000) {
    absl::StatusOr<int64_t> n = testing::PostgresScalar(postgres, count_sql);
    rows = n.ok() ? *n : 0;
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_GE(rows, 5000);
  ASSERT_TRUE(first->Running()) << "the Job finished before it could be killed mid-drain";
  first->Signal(SIGKILL);
  ASSERT_EQ(first->Wait(absl::Seconds(10)).signal, SIGKILL);
  absl::StatusOr<int64_t> at_kill = testing::PostgresScalar(postgres, count_sql);
  ASSERT_TRUE(at_kill.ok()) << at_kill.status();
  EXPECT_LT(*at_kill, 60000) << "the killed Job had already loaded everything";

  ProcessResult second = RunJob(JobArgs(bootstrap, group, topic, sink));
  ASSERT_EQ(second.exit_code, 0) << Diagnostics(second);
  absl::StatusOr<int64_t> total = testing::PostgresScalar(postgres, count_sql);
  ASSERT_TRUE(total.ok()) << total.status();
  EXPECT_EQ(*total, 60000);
  absl::StatusOr<int64_t> distinct = testing::PostgresScalar(
      postgres, absl::StrCat("SELECT count(DISTINCT (\"partition\", \"offset\")) FROM \"", table,
                             "\" WHERE \"offset\" < 30000 AND \"partition\" IN (0, 1)"));
  ASSERT_TRUE(distinct.ok());
  EXPECT_EQ(*distinct, 60000);
  EXPECT_EQ(Committed(bootstrap, group, topic),
            (std::map<int32_t, int64_t>{{0, 30000}, {1, 30000}}));
}

TEST(JobE2eTest, SigtermMidDrainCommitsEverythingAcknowledgedAndExitsWithinTheGracePeriod) {
  KLAG_REQUIRE_BROKER(bootstrap);
  const std::string topic = ::klag::testing::UniqueName("job-term");
  const std::string group = ::klag::testing::UniqueName("job-term-g");
  CreateTopic(bootstrap, topic, 2);
  ProduceEach(bootstrap, topic, 2, 1000);
  TempDir dir;
  const std::string out = dir.File("out.jsonl");
  std::unique_ptr<Process> job = StartJob(
      JobArgs(bootstrap, group, topic,
              {"--sink", "exec", "--exec-command", absl::StrCat("cat >> ", out, "; sleep 0.1"),
               "--batch-size", "50", "--shutdown-timeout", "5s"}));
  ASSERT_NE(job, nullptr);
  ASSERT_TRUE(WaitForLines(out, 200, absl::Seconds(60)));
  ASSERT_TRUE(job->Running());
  const absl::Time signalled = absl::Now();
  job->Signal(SIGTERM);
  ProcessResult r = job->Wait(absl::Seconds(30));
  const absl::Duration to_exit = absl::Now() - signalled;
  EXPECT_EQ(r.exit_code, 3) << Diagnostics(r);
  EXPECT_LT(to_exit, absl::Seconds(5)) << "grace period exceeded";
  EXPECT_EQ(r.Summary()["exit_reason"], "signal");
  // Everything the handler took was acknowledged and committed; nothing else was committed.
  const std::map<int32_t, int64_t> committed = Committed(bootstrap, group, topic);
  int64_t committed_total = 0;
  for (const auto& [p, c] : committed) committed_total += c;
  EXPECT_LT(committed_total, 2000) << "the Job drained everything before SIGTERM";
  EXPECT_EQ(CountByRecord(ReadJsonl(out)), ExpectedOnce({}, committed));
  EXPECT_EQ(r.Summary()["records"], committed_total);
  // It left the group on its way out.
  absl::StatusOr<testing::GroupState> state = testing::DescribeGroup(bootstrap, group);
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->members, 0);
}

TEST(JobE2eTest, SigtermAbandonsABatchThatWouldOutlastTheGracePeriod) {
  KLAG_REQUIRE_BROKER(bootstrap);
  const std::string topic = ::klag::testing::UniqueName("job-hang");
  const std::string group = ::klag::testing::UniqueName("job-hang-g");
  CreateTopic(bootstrap, topic, 1);
  ProduceEach(bootstrap, topic, 1, 10);
  TempDir dir;
  const std::string started = dir.File("started");
  std::unique_ptr<Process> job = StartJob(JobArgs(
      bootstrap, group, topic,
      {"--sink", "exec", "--exec-command",
       absl::StrCat("touch ", started, "; cat >/dev/null; sleep 60"), "--shutdown-timeout", "4s"}));
  ASSERT_NE(job, nullptr);
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (access(started.c_str(), F_OK) != 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_EQ(access(started.c_str(), F_OK), 0) << "the handler never started";
  const absl::Time signalled = absl::Now();
  job->Signal(SIGTERM);
  ProcessResult r = job->Wait(absl::Seconds(30));
  const absl::Duration to_exit = absl::Now() - signalled;
  EXPECT_EQ(r.exit_code, 3) << Diagnostics(r);
  EXPECT_GE(to_exit, absl::Seconds(2)) << "the batch gets half the shutdown budget";
  EXPECT_LT(to_exit, absl::Seconds(4));
  // At most the start position (0: the group had no commit) was committed, nothing of the batch.
  for (const auto& [p, c] : Committed(bootstrap, group, topic)) {
    EXPECT_EQ(c, 0) << "an abandoned batch was committed on partition " << p;
  }
}

TEST(JobE2eTest, FailingExecSinkCommitsNothingPastTheFailedBatch) {
  KLAG_REQUIRE_BROKER(bootstrap);
  const std::string topic = ::klag::testing::UniqueName("job-execfail");
  const std::string group = ::klag::testing::UniqueName("job-execfail-g");
  CreateTopic(bootstrap, topic, 1);
  ProduceEach(bootstrap, topic, 1, 100);
  TempDir dir;
  const std::string out = dir.File("out.jsonl");
  const std::string calls = dir.File("calls");
  // Accepts three batches, then fails every call.
  const std::string handler =
      absl::StrCat("n=$(cat ", calls, " 2>/dev/null || echo 0); echo $((n+1)) > ", calls,
                   "; [ \"$n\" -lt 3 ] || exit 1; cat >> ", out);
  ProcessResult r = RunJob(JobArgs(bootstrap, group, topic,
                                   {"--sink", "exec", "--exec-command", handler, "--batch-size",
                                    "10", "--max-attempts", "2", "--retry-backoff", "50ms"}));
  EXPECT_EQ(r.exit_code, 1) << Diagnostics(r);
  EXPECT_EQ(r.Summary()["exit_reason"], "failed");
  EXPECT_EQ(Committed(bootstrap, group, topic), (std::map<int32_t, int64_t>{{0, 30}}));
  EXPECT_EQ(CountByRecord(ReadJsonl(out)), ExpectedOnce({}, {{0, 30}}));
  std::ifstream count_file(calls);
  int count = 0;
  count_file >> count;
  EXPECT_EQ(count, 5) << "3 good batches + 2 attempts of the failing one";
}

TEST(JobE2eTest, PoisonRecordGoesToTheDeadLetterTopicAndTheRestIsDelivered) {
  KLAG_REQUIRE_BROKER(bootstrap);
  const std::string topic = ::klag::testing::UniqueName("job-poison");
  const std::string dlq = topic + ".dlq";
  const std::string group = ::klag::testing::UniqueName("job-poison-g");
  CreateTopic(bootstrap, topic, 1);
  CreateTopic(bootstrap, dlq, 1);
  std::vector<std::string> values;
  for (int i = 0; i < 40; ++i) values.push_back(i == 17 ? "POISON" : absl::StrCat("v", i));
  ASSERT_TRUE(::klag::testing::Produce(bootstrap, topic, 0, values).ok());
  TempDir dir;
  const std::string out = dir.File("out.jsonl");
  const std::string handler = absl::StrCat(
      "input=$(cat); if printf '%s' \"$input\" | grep -q POISON; then exit 1; fi; "
      "printf '%s\\n' \"$input\" >> ",
      out);
  ProcessResult r = RunJob(
      JobArgs(bootstrap, group, topic,
              {"--sink", "exec", "--exec-command", handler, "--batch-size", "8", "--max-attempts",
               "2", "--retry-backoff", "10ms", "--dead-letter-topic", dlq}));
  ASSERT_EQ(r.exit_code, 0) << Diagnostics(r);
  EXPECT_EQ(r.Summary()["dead_lettered"], 1);
  EXPECT_EQ(r.Summary()["records"], 40);
  RecordCounts expected = ExpectedOnce({}, {{0, 40}});
  expected.erase({0, 17});
  EXPECT_EQ(CountByRecord(ReadJsonl(out)), expected);
  EXPECT_EQ(Committed(bootstrap, group, topic), (std::map<int32_t, int64_t>{{0, 40}}));

  absl::StatusOr<std::vector<Record>> dead = testing::ReadTopic(bootstrap, dlq);
  ASSERT_TRUE(dead.ok()) << dead.status();
  ASSERT_EQ(dead->size(), 1u);
  EXPECT_EQ((*dead)[0].value, "POISON");
  std::map<std::string, std::string> headers;
  for (const RecordHeader& h : (*dead)[0].headers) headers[h.key] = h.value.value_or("");
  EXPECT_EQ(headers["klag.original.topic"], topic);
  EXPECT_EQ(headers["klag.original.partition"], "0");
  EXPECT_EQ(headers["klag.original.offset"], "17");
  EXPECT_TRUE(absl::StrContains(headers["klag.error"], "status 1")) << headers["klag.error"];
}

TEST(JobE2eTest, TransactionalTopicDrainsToLagZero) {
  KLAG_REQUIRE_BROKER(bootstrap);
  for (const std::string isolation : {"read_committed", "read_uncommitted"}) {
    SCOPED_TRACE(isolation);
    const std::string topic = ::klag::testing::UniqueName("job-txn");
    const std::string group = ::klag::testing::UniqueName("job-txn-g");
    CreateTopic(bootstrap, topic, 2);
    RecordCounts committed_records;
    RecordCounts all_records;
    for (int p = 0; p < 2; ++p) {
      for (auto [count, end] : {std::pair{30, ::klag::testing::TransactionEnd::kCommit},
                                std::pair{10, ::klag::testing::TransactionEnd::kAbort},
                                std::pair{20, ::klag::testing::TransactionEnd::kCommit}}) {
        absl::StatusOr<std::vector<int64_t>> offsets =
            ::klag::testing::ProduceTransactional(bootstrap, topic, p, count, end);
        ASSERT_TRUE(offsets.ok()) << offsets.status();
        for (int64_t o : *offsets) {
          all_records[{p, o}] = 1;
          if (end == ::klag::testing::TransactionEnd::kCommit) committed_records[{p, o}] = 1;
        }
      }
    }
    TempDir dir;
    ProcessResult r =
        RunJob(JobArgs(bootstrap, group, topic,
                       {"--jsonl-path", dir.File("out.jsonl"), "--isolation-level", isolation}));
    ASSERT_EQ(r.exit_code, 0) << Diagnostics(r);
    EXPECT_EQ(r.Summary()["exit_reason"], "drained");
    // Committed positions step over the markers: equal to the high watermark, lag 0.
    const std::map<int32_t, int64_t> ends = Ends(bootstrap, topic);
    EXPECT_EQ(Committed(bootstrap, group, topic), ends);
    EXPECT_EQ(ends.at(0), 63);  // 60 records + 3 markers
    EXPECT_EQ(CountByRecord(ReadJsonl(dir.File("out.jsonl"))),
              isolation == "read_committed" ? committed_records : all_records);
    // And the next Job finds no work.
    ProcessResult next =
        RunJob(JobArgs(bootstrap, group, topic,
                       {"--jsonl-path", dir.File("next.jsonl"), "--isolation-level", isolation}));
    EXPECT_EQ(next.exit_code, 0) << Diagnostics(next);
    EXPECT_EQ(next.Summary()["exit_reason"], "no_work");
  }
}

TEST(JobE2eTest, NoWorkExitsAtOnceWithoutJoiningTheGroup) {
  KLAG_REQUIRE_BROKER(bootstrap);
  const std::string topic = ::klag::testing::UniqueName("job-nowork");
  CreateTopic(bootstrap, topic, 2);
  ProduceEach(bootstrap, topic, 2, 10);
  TempDir dir;

  // A group whose commits are at the end: no lag.
  const std::string idle = ::klag::testing::UniqueName("job-nowork-idle");
  ASSERT_TRUE(
      ::klag::testing::CommitOffsets(bootstrap, idle, {{topic, 0, 10}, {topic, 1, 10}}).ok());
  ProcessResult r = RunJob(JobArgs(bootstrap, idle, topic, {"--jsonl-path", dir.File("a")}));
  EXPECT_EQ(r.exit_code, 0) << Diagnostics(r);
  EXPECT_EQ(r.Summary()["exit_reason"], "no_work");
  EXPECT_EQ(r.Summary()["records"], 0);
  EXPECT_EQ(r.Summary()["commits"], 0);
  EXPECT_LT(r.took, absl::Seconds(3));
  // The fast exit (the offset reader's client left running, the process ended at once) still
  // delivers the whole summary line and touches neither the sink nor the commits.
  EXPECT_FALSE(std::filesystem::exists(dir.File("a")));
  EXPECT_EQ(Committed(bootstrap, idle, topic), (std::map<int32_t, int64_t>{{0, 10}, {1, 10}}));
  absl::StatusOr<testing::GroupState> idle_state = testing::DescribeGroup(bootstrap, idle);
  ASSERT_TRUE(idle_state.ok()) << idle_state.status();
  // No member ever joined: the group is still the "simple" one the commits created.
  EXPECT_TRUE(idle_state->simple) << idle_state->state;
  EXPECT_EQ(idle_state->members, 0);

  // The control: a group with lag is joined, and the broker remembers that.
  const std::string busy = ::klag::testing::UniqueName("job-nowork-busy");
  ASSERT_TRUE(
      ::klag::testing::CommitOffsets(bootstrap, busy, {{topic, 0, 5}, {topic, 1, 10}}).ok());
  ProcessResult joined = RunJob(JobArgs(bootstrap, busy, topic, {"--jsonl-path", dir.File("b")}));
  EXPECT_EQ(joined.exit_code, 0) << Diagnostics(joined);
  EXPECT_EQ(joined.Summary()["records"], 5);
  absl::StatusOr<testing::GroupState> busy_state = testing::DescribeGroup(bootstrap, busy);
  ASSERT_TRUE(busy_state.ok()) << busy_state.status();
  EXPECT_FALSE(busy_state->simple) << "the state check cannot tell a join from none";
}

TEST(JobE2eTest, ExitsZeroWhenOtherJobsHoldEveryPartition) {
  KLAG_REQUIRE_BROKER(bootstrap);
  const std::string topic = ::klag::testing::UniqueName("job-held");
  const std::string group = ::klag::testing::UniqueName("job-held-g");
  CreateTopic(bootstrap, topic, 1);
  ProduceEach(bootstrap, topic, 1, 100);
  TempDir dir;
  const std::string started = dir.File("started");
  std::unique_ptr<Process> holder = StartJob(JobArgs(
      bootstrap, group, topic,
      {"--sink", "exec", "--exec-command",
       absl::StrCat("touch ", started, "; cat >/dev/null; sleep 0.5"), "--batch-size", "1"}));
  ASSERT_NE(holder, nullptr);
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (access(started.c_str(), F_OK) != 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_EQ(access(started.c_str(), F_OK), 0);

  ProcessResult second =
      RunJob(JobArgs(bootstrap, group, topic,
                     {"--jsonl-path", dir.File("second.jsonl"), "--assignment-timeout", "3s"}));
  EXPECT_EQ(second.exit_code, 0) << Diagnostics(second);
  EXPECT_EQ(second.Summary()["exit_reason"], "nothing_assigned");
  EXPECT_EQ(second.Summary()["records"], 0);
  EXPECT_LT(second.took, absl::Seconds(15));
  ASSERT_TRUE(holder->Running()) << "the holder finished; the test proves nothing";
  holder->Signal(SIGTERM);
  EXPECT_EQ(holder->Wait(absl::Seconds(30)).exit_code, 3);
}

TEST(JobE2eTest, UnreachableBrokerFailsWithinTheKafkaTimeout) {
  ProcessResult r = RunJob({"--bootstrap-servers", "127.0.0.1:1", "--group", "g", "--topic", "t",
                            "--kafka-timeout", "2s"},
                           absl::Seconds(30));
  EXPECT_EQ(r.exit_code, 1) << Diagnostics(r);
  EXPECT_LT(r.took, absl::Seconds(6));
  EXPECT_TRUE(absl::StrContains(r.Summary().value("error", ""), "UNAVAILABLE")) << r.Summary();
}

TEST(JobE2eTest, BadFlagsExitTwoBeforeAnyKafkaWork) {
  ProcessResult r = RunJob({"--group", "g", "--topic", "t"}, absl::Seconds(30));
  EXPECT_EQ(r.exit_code, 2) << Diagnostics(r);
  EXPECT_TRUE(absl::StrContains(r.stderr_text, "bootstrapServers")) << r.stderr_text;
}

TEST(JobE2eTest, KlagProduceWritesTransactionalStockPricesThatAJobDrains) {
  KLAG_REQUIRE_BROKER(bootstrap);
  const std::string topic = ::klag::testing::UniqueName("job-produce");
  const std::string group = ::klag::testing::UniqueName("job-produce-g");
  CreateTopic(bootstrap, topic, 2);
  absl::StatusOr<std::unique_ptr<Process>> producer = Process::Start(
      {testing::KlagProduceBinary(), "--bootstrap-servers", bootstrap, "--topic", topic, "--count",
       "250", "--partitions", "2", "--transactional", "--transaction-size", "40"});
  ASSERT_TRUE(producer.ok()) << producer.status();
  ProcessResult produced = (*producer)->Wait(absl::Seconds(60));
  ASSERT_EQ(produced.exit_code, 0) << Diagnostics(produced);
  EXPECT_TRUE(absl::StrContains(produced.stdout_text, "\"records\":250")) << produced.stdout_text;

  TempDir dir;
  ProcessResult r =
      RunJob(JobArgs(bootstrap, group, topic, {"--jsonl-path", dir.File("out.jsonl")}));
  ASSERT_EQ(r.exit_code, 0) << Diagnostics(r);
  std::vector<testing::JsonlRecord> records = ReadJsonl(dir.File("out.jsonl"));
  ASSERT_EQ(records.size(), 250u);
  for (const testing::JsonlRecord& rec : records) {
    ASSERT_TRUE(rec.value.has_value());
    nlohmann::json v = nlohmann::json::parse(*rec.value);
    EXPECT_TRUE(v.contains("symbol") && v.contains("price") && v.contains("volume") &&
                v.contains("timestamp"))
        << *rec.value;
  }
  EXPECT_EQ(Committed(bootstrap, group, topic), Ends(bootstrap, topic));
}

}  // namespace
}  // namespace klag::job
