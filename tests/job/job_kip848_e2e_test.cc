// klag-job and the KIP-848 consumer group protocol (label kafka4; needs a Kafka >= 4.0 broker:
// KLAG_TEST_BOOTSTRAP and KLAG_KAFKA_STATE): the built binary drains a group that Kafka's own
// Java consumer made with group.protocol=consumer (scripts/kafka.sh run-class), with the default
// classic protocol and with --group-protocol consumer, and --group-protocol consumer drains topics
// to their end, alone and with a second Job sharing the partitions.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "tests/job/job_e2e_util.h"
#include "tests/testing/kafka_admin.h"
#include "tests/testing/kafka_tools.h"
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

std::vector<std::string> JobArgs(const std::string& bootstrap, const std::string& group,
                                 const std::string& topic, std::vector<std::string> extra) {
  std::vector<std::string> args = {
      "--bootstrap-servers", bootstrap, "--group", group, "--topic", topic,
      "--progress-interval", "1s"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

std::string GroupType(const std::string& bootstrap, const std::string& group) {
  absl::StatusOr<std::string> type = ::klag::testing::GroupType(bootstrap, group);
  return type.ok() ? *type : std::string(type.status().message());
}

// A topic of 3 partitions x 50 records; Kafka's Java console consumer (group.protocol=consumer)
// reads 60 of them in `group` and commits, then leaves: an empty group of type "consumer".
// Returns the group's committed offsets (the first unread offset of every partition).
std::map<int32_t, int64_t> GroupMadeByAJavaConsumer(const std::string& bootstrap,
                                                    const std::string& state,
                                                    const std::string& topic,
                                                    const std::string& group) {
  EXPECT_TRUE(::klag::testing::CreateTopic(bootstrap, topic, 3).ok());
  ProduceEach(bootstrap, topic, 3, 50);
  const ::klag::testing::KafkaTools tools(KLAG_SOURCE_DIR "/scripts/kafka.sh", state);
  absl::StatusOr<::klag::testing::ConsumedOffsets> consumed =
      tools.ConsumeWithConsumerProtocol(bootstrap, topic, group, 60);
  EXPECT_TRUE(consumed.ok()) << consumed.status();
  EXPECT_EQ(GroupType(bootstrap, group), "consumer");
  std::map<int32_t, int64_t> committed = Committed(bootstrap, group, topic);
  int64_t read = 0;
  for (int32_t p = 0; p < 3; ++p) {
    const int64_t position =
        consumed.ok() && consumed->contains(p) ? static_cast<int64_t>(consumed->at(p).size()) : 0;
    EXPECT_EQ(committed.contains(p) ? committed.at(p) : 0, position) << "partition " << p;
    committed[p] = position;  // no commit and a commit of 0 both start at 0 under earliest
    read += position;
  }
  EXPECT_EQ(read, 60);
  return committed;
}

// Drains `group` (made by GroupMadeByAJavaConsumer) with `protocol_args` and checks the Job
// delivered exactly the records the Java consumer left, each once, and committed the end.
void DrainsWhatTheJavaConsumerLeft(const std::vector<std::string>& protocol_args,
                                   const std::string& type_after) {
  KLAG_REQUIRE_KAFKA4(bootstrap, state);
  const std::string topic = ::klag::testing::UniqueName("kip848-job");
  const std::string group = ::klag::testing::UniqueName("kip848-job-g");
  const std::map<int32_t, int64_t> committed_before =
      GroupMadeByAJavaConsumer(bootstrap, state, topic, group);
  if (::testing::Test::HasFailure()) return;

  TempDir dir;
  std::vector<std::string> extra = {"--jsonl-path", dir.File("out.jsonl")};
  extra.insert(extra.end(), protocol_args.begin(), protocol_args.end());
  ProcessResult r = RunJob(JobArgs(bootstrap, group, topic, extra));
  ASSERT_EQ(r.exit_code, 0) << Diagnostics(r);
  const nlohmann::json summary = r.Summary();
  EXPECT_EQ(summary["exit_reason"], "drained") << summary;
  EXPECT_EQ(summary["records"], 150 - 60) << summary;

  const std::map<int32_t, int64_t> ends = Ends(bootstrap, topic);
  EXPECT_EQ(ends, (std::map<int32_t, int64_t>{{0, 50}, {1, 50}, {2, 50}}));
  EXPECT_EQ(CountByRecord(ReadJsonl(dir.File("out.jsonl"))), ExpectedOnce(committed_before, ends));
  EXPECT_EQ(Committed(bootstrap, group, topic), ends);
  EXPECT_EQ(GroupType(bootstrap, group), type_after);
}

TEST(JobKip848E2eTest, ClassicJobDrainsAnEmptyGroupAJavaConsumerMadeWithTheConsumerProtocol) {
  // Kafka 4.4 (group.consumer.migration.policy=bidirectional) admits the classic join into the
  // empty consumer-protocol group and converts the group to a classic one.
  DrainsWhatTheJavaConsumerLeft({}, "classic");
}

TEST(JobKip848E2eTest, ConsumerProtocolJobDrainsAnEmptyGroupAJavaConsumerMade) {
  DrainsWhatTheJavaConsumerLeft({"--group-protocol", "consumer"}, "consumer");
}

// A group with a live consumer-protocol member (Kafka's Java consumer, idle on topic A) and a
// Job draining topic B in the same group: the Job joins a non-empty KIP-848 group (with the
// classic protocol that makes it a mixed group), drains B exactly, and the group stays a
// "consumer" group with the Java member in it.
void DrainsBesideALiveJavaMember(const std::vector<std::string>& protocol_args) {
  KLAG_REQUIRE_KAFKA4(bootstrap, state);
  const std::string idle_topic = ::klag::testing::UniqueName("kip848-mixed-a");
  const std::string topic = ::klag::testing::UniqueName("kip848-mixed-b");
  const std::string group = ::klag::testing::UniqueName("kip848-mixed-g");
  ASSERT_TRUE(::klag::testing::CreateTopic(bootstrap, idle_topic, 1).ok());
  ASSERT_TRUE(::klag::testing::CreateTopic(bootstrap, topic, 2).ok());
  ProduceEach(bootstrap, idle_topic, 1, 5);
  ProduceEach(bootstrap, topic, 2, 100);

  const ::klag::testing::KafkaTools tools(KLAG_SOURCE_DIR "/scripts/kafka.sh", state);
  absl::StatusOr<::klag::testing::ConsumedOffsets> consumed;
  std::thread member([&] {
    consumed = tools.ConsumeWithConsumerProtocol(bootstrap, idle_topic, group, 1000,
                                                 absl::Seconds(120), absl::Seconds(25));
  });
  // Wait until the Java consumer is a member that has read and committed topic A.
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  std::string group_state;
  std::map<int32_t, int64_t> committed_a;
  while (absl::Now() < deadline &&
         (group_state != "Stable" || committed_a != std::map<int32_t, int64_t>{{0, 5}})) {
    absl::SleepFor(absl::Milliseconds(500));
    group_state = ::klag::testing::GroupState(bootstrap, group).value_or("");
    committed_a = ::klag::testing::CommittedOffsets(bootstrap, group, idle_topic)
                      .value_or(std::map<int32_t, int64_t>{});
  }
  EXPECT_EQ(group_state, "Stable");
  EXPECT_EQ(GroupType(bootstrap, group), "consumer");

  TempDir dir;
  std::vector<std::string> extra = {"--jsonl-path", dir.File("out.jsonl"), "--assignment-timeout",
                                    "30s"};
  extra.insert(extra.end(), protocol_args.begin(), protocol_args.end());
  ProcessResult r = RunJob(JobArgs(bootstrap, group, topic, extra));
  EXPECT_EQ(r.exit_code, 0) << Diagnostics(r);
  EXPECT_EQ(r.Summary()["exit_reason"], "drained") << Diagnostics(r);
  const std::map<int32_t, int64_t> ends = {{0, 100}, {1, 100}};
  EXPECT_EQ(CountByRecord(ReadJsonl(dir.File("out.jsonl"))), ExpectedOnce({}, ends));
  EXPECT_EQ(Committed(bootstrap, group, topic), ends);
  // The Java member is still in the group, which is still a consumer-protocol group. Right after
  // the Job leaves, the group reconciles (KIP-848 states that librdkafka 2.8 lists as "Unknown");
  // it settles back to Stable.
  EXPECT_EQ(GroupType(bootstrap, group), "consumer");
  const absl::Time settle = absl::Now() + absl::Seconds(15);
  group_state = "";
  while (absl::Now() < settle && group_state != "Stable") {
    group_state = ::klag::testing::GroupState(bootstrap, group).value_or("");
    if (group_state != "Stable") absl::SleepFor(absl::Milliseconds(500));
  }
  EXPECT_EQ(group_state, "Stable");

  member.join();
  ASSERT_TRUE(consumed.ok()) << consumed.status();
  EXPECT_EQ(*consumed, (::klag::testing::ConsumedOffsets{{0, {0, 1, 2, 3, 4}}}));
}

TEST(JobKip848E2eTest, ClassicJobJoinsAGroupWhileAConsumerProtocolMemberIsInIt) {
  DrainsBesideALiveJavaMember({});
}

TEST(JobKip848E2eTest, ConsumerProtocolJobJoinsAGroupWhileAJavaMemberIsInIt) {
  DrainsBesideALiveJavaMember({"--group-protocol", "consumer"});
}

TEST(JobKip848E2eTest, ConsumerProtocolJobDrainsATopicToItsEnd) {
  KLAG_REQUIRE_KAFKA4(bootstrap, state);
  const std::string topic = ::klag::testing::UniqueName("kip848-drain");
  const std::string group = ::klag::testing::UniqueName("kip848-drain-g");
  ASSERT_TRUE(::klag::testing::CreateTopic(bootstrap, topic, 4).ok());
  ProduceEach(bootstrap, topic, 4, 1000);

  TempDir dir;
  ProcessResult r = RunJob(JobArgs(bootstrap, group, topic,
                                   {"--group-protocol", "consumer", "--jsonl-path",
                                    dir.File("out.jsonl"), "--batch-size", "200"}));
  ASSERT_EQ(r.exit_code, 0) << Diagnostics(r);
  EXPECT_NE(r.stderr_text.find("with the consumer group protocol"), std::string::npos);
  const nlohmann::json summary = r.Summary();
  EXPECT_EQ(summary["exit_reason"], "drained") << summary;
  EXPECT_EQ(summary["records"], 4000) << summary;

  const std::map<int32_t, int64_t> ends = Ends(bootstrap, topic);
  EXPECT_EQ(ends, (std::map<int32_t, int64_t>{{0, 1000}, {1, 1000}, {2, 1000}, {3, 1000}}));
  EXPECT_EQ(CountByRecord(ReadJsonl(dir.File("out.jsonl"))), ExpectedOnce({}, ends));
  EXPECT_EQ(Committed(bootstrap, group, topic), ends);
  EXPECT_EQ(GroupType(bootstrap, group), "consumer");
}

TEST(JobKip848E2eTest, TwoConsumerProtocolJobsShareTheDrainAndDeliverEveryRecordOnce) {
  KLAG_REQUIRE_KAFKA4(bootstrap, state);
  const std::string topic = ::klag::testing::UniqueName("kip848-two");
  const std::string group = ::klag::testing::UniqueName("kip848-two-g");
  ASSERT_TRUE(::klag::testing::CreateTopic(bootstrap, topic, 6).ok());
  ProduceEach(bootstrap, topic, 6, 300);

  // A slow sink (at least 0.1 s per batch of 20: 9 s for one Job alone) keeps the first Job busy
  // while the second joins, so the coordinator moves partitions from the first member to the
  // second: an incremental revoke (committed in the callback) and an incremental assign.
  TempDir dir;
  std::vector<std::unique_ptr<Process>> jobs;
  for (int i = 0; i < 2; ++i) {
    const std::string out = dir.File(absl::StrCat("job", i, ".jsonl"));
    std::vector<std::string> argv = {testing::KlagJobBinary()};
    for (const std::string& a : JobArgs(bootstrap, group, topic,
                                        {"--group-protocol", "consumer", "--sink", "exec",
                                         "--exec-command", absl::StrCat("sleep 0.1; cat >> ", out),
                                         "--batch-size", "20", "--batch-linger", "10ms"})) {
      argv.push_back(a);
    }
    absl::StatusOr<std::unique_ptr<Process>> p = Process::Start(argv);
    ASSERT_TRUE(p.ok()) << p.status();
    jobs.push_back(*std::move(p));
  }
  std::vector<testing::JsonlRecord> all;
  int jobs_with_records = 0;
  for (int i = 0; i < 2; ++i) {
    ProcessResult r = jobs[i]->Wait(absl::Seconds(120));
    EXPECT_EQ(r.exit_code, 0) << "job " << i << ": " << Diagnostics(r);
    std::vector<testing::JsonlRecord> mine = ReadJsonl(dir.File(absl::StrCat("job", i, ".jsonl")));
    if (!mine.empty()) ++jobs_with_records;
    all.insert(all.end(), mine.begin(), mine.end());
  }
  EXPECT_EQ(jobs_with_records, 2) << "one Job drained everything: the partitions never moved";
  const std::map<int32_t, int64_t> ends = Ends(bootstrap, topic);
  const RecordCounts counts = CountByRecord(all);
  const RecordCounts expected = ExpectedOnce({}, ends);
  int missing = 0;
  int duplicated = 0;
  for (const auto& [record, n] : expected) missing += counts.contains(record) ? 0 : 1;
  for (const auto& [record, n] : counts) duplicated += n > 1 ? 1 : 0;
  EXPECT_EQ(missing, 0);
  EXPECT_EQ(counts.size(), expected.size()) << "records outside the topic's range";
  // Revoked partitions are committed in the revocation callback before they move.
  EXPECT_EQ(duplicated, 0);
  EXPECT_EQ(Committed(bootstrap, group, topic), ends);
}

}  // namespace
}  // namespace klag::job
