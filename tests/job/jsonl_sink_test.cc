#include "job/jsonl_sink.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "job/record_json.h"

namespace klag::job {
namespace {

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return std::string(dir != nullptr ? dir : "/tmp") + "/klag-jsonl-" + std::to_string(getpid()) +
         "-" + name;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<Record> Batch(int n, int64_t first_offset) {
  std::vector<Record> out;
  for (int i = 0; i < n; ++i) {
    out.push_back({.topic = "t",
                   .partition = 0,
                   .offset = first_offset + i,
                   .value = "v" + std::to_string(first_offset + i)});
  }
  return out;
}

TEST(JsonlSinkTest, AppendsOneLinePerRecordAndSyncsBeforeAcknowledging) {
  const std::string path = TempPath("sync");
  ::unlink(path.c_str());
  std::vector<off_t> size_at_sync;
  auto sink = JsonlSink::Create(path, [&](int fd) {
    struct stat st;
    fstat(fd, &st);
    size_at_sync.push_back(st.st_size);
    return 0;
  });
  ASSERT_TRUE(sink.ok()) << sink.status();
  std::vector<Record> first = Batch(3, 0);
  ASSERT_TRUE((*sink)->Write(first, NeverAbandon()).ok());
  std::vector<Record> second = Batch(2, 3);
  ASSERT_TRUE((*sink)->Write(second, NeverAbandon()).ok());

  std::string expected;
  for (const Record& r : first) AppendJsonLine(r, &expected);
  const off_t after_first = static_cast<off_t>(expected.size());
  for (const Record& r : second) AppendJsonLine(r, &expected);
  EXPECT_EQ(ReadAll(path), expected);
  // One sync per batch, each after the whole batch was in the file.
  EXPECT_EQ(size_at_sync, (std::vector<off_t>{after_first, static_cast<off_t>(expected.size())}));
  ::unlink(path.c_str());
}

TEST(JsonlSinkTest, FailedSyncIsNotAnAck) {
  const std::string path = TempPath("syncfail");
  ::unlink(path.c_str());
  auto sink = JsonlSink::Create(path, [](int) {
    errno = EIO;
    return -1;
  });
  ASSERT_TRUE(sink.ok());
  std::vector<Record> batch = Batch(1, 0);
  absl::Status s = (*sink)->Write(batch, NeverAbandon());
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_NE(s.message().find("fsync"), absl::string_view::npos) << s;
  ::unlink(path.c_str());
}

TEST(JsonlSinkTest, UnwritablePathFailsAtCreate) {
  auto sink = JsonlSink::Create("/nonexistent-dir/x/out.jsonl");
  EXPECT_EQ(sink.status().code(), absl::StatusCode::kNotFound) << sink.status();
}

TEST(JsonlSinkTest, FullDiskIsResourceExhaustedAndNotBlamedOnTheRecords) {
  if (access("/dev/full", W_OK) != 0) GTEST_SKIP() << "no /dev/full";
  auto sink = JsonlSink::Create("/dev/full");
  ASSERT_TRUE(sink.ok());
  std::vector<Record> batch = Batch(1, 0);
  absl::Status s = (*sink)->Write(batch, NeverAbandon());
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_FALSE(IsRecordRejection(s));
}

}  // namespace
}  // namespace klag::job
