// job/examples/exec-sink/handler.py, the exec-sink handler the docs point to, run by the real
// ExecSink with Debian's python3 as its image runs it: a batch of klag-produce stock prices is
// acknowledged and loaded as CSV rows keyed by (topic, partition, offset); a record that is not a
// stock price rejects the whole batch and loads nothing.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "job/exec_sink.h"

namespace klag::job {
namespace {

constexpr char kHandler[] = KLAG_SOURCE_DIR "/job/examples/exec-sink/handler.py";

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

Record Price(int64_t offset, const std::string& symbol, const std::string& price) {
  return {.topic = "ListedStockPrice",
          .partition = 2,
          .offset = offset,
          .key = symbol,
          .value = R"({"symbol":")" + symbol + R"(","price":)" + price +
                   R"(,"volume":300,"timestamp":1700000000000})"};
}

class ExecSinkExampleTest : public ::testing::Test {
 protected:
  void TearDown() override { ::unlink(output_.c_str()); }
  ExecSink Sink() {
    return ExecSink({.command = "HANDLER_OUTPUT=" + output_ + " /usr/bin/python3 " + kHandler});
  }
  const std::string output_ = "/tmp/klag-exec-example-" + std::to_string(getpid()) + ".csv";
};

TEST_F(ExecSinkExampleTest, StockPricesAreAcknowledgedAndLoadedWithTheirOffsets) {
  ExecSink sink = Sink();
  std::vector<Record> batch = {Price(7, "ACME", "12.5"), Price(8, "INIT", "301.25")};
  absl::Status s = sink.Write(batch, NeverAbandon());
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(ReadAll(output_),
            "ListedStockPrice,2,7,ACME,12.5,300,1700000000000\r\n"
            "ListedStockPrice,2,8,INIT,301.25,300,1700000000000\r\n");
}

TEST_F(ExecSinkExampleTest, ARecordThatIsNotAStockPriceRejectsTheBatchAndLoadsNothing) {
  ExecSink sink = Sink();
  std::vector<Record> batch = {
      Price(7, "ACME", "12.5"),
      {.topic = "ListedStockPrice", .partition = 2, .offset = 8, .key = "x", .value = "not json"}};
  absl::Status s = sink.Write(batch, NeverAbandon());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("status 65"), absl::string_view::npos) << s;
  EXPECT_TRUE(IsRecordRejection(s));
  EXPECT_EQ(ReadAll(output_), "");
}

}  // namespace
}  // namespace klag::job
