#include "common/logging.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"

namespace klag {
namespace {

// What one spdlog::info call writes with the formatter ConfigureLogging installs.
std::string LogOnce(LogFormat format, const std::string& message) {
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_st>(out);
  spdlog::logger logger("test", sink);
  logger.set_formatter(MakeLogFormatter(format));
  logger.info("trigger {}: bad metadata", message);
  logger.flush();
  return out.str();
}

constexpr char kForged[] = "ns/job\n2026-01-01T00:00:00Z I forged\rline\x1b[31m\x7f";

TEST(LoggingTest, TextFormatKeepsARequestStringOnOneLine) {
  const std::string line = LogOnce(LogFormat::kText, kForged);
  std::vector<std::string> lines = absl::StrSplit(line, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 1u) << line;
  EXPECT_EQ(line.find('\r'), std::string::npos);
  EXPECT_EQ(line.find('\x1b'), std::string::npos);
  EXPECT_NE(line.find("trigger ns/job\\n2026-01-01T00:00:00Z I forged\\rline\\x1b[31m\\x7f: bad "
                      "metadata\n"),
            std::string::npos)
      << line;
  // The line itself still ends in a newline and starts with the timestamp.
  EXPECT_EQ(line.back(), '\n');
  EXPECT_EQ(line[4], '-');
}

TEST(LoggingTest, TextFormatLeavesOrdinaryMessagesAlone) {
  const std::string line = LogOnce(LogFormat::kText, "data/stock-job#ab \"q\" \\ ü");
  EXPECT_NE(line.find(" I trigger data/stock-job#ab \"q\" \\ ü: bad metadata\n"), std::string::npos)
      << line;
}

TEST(LoggingTest, JsonFormatIsOneObjectPerLine) {
  const std::string line = LogOnce(LogFormat::kJson, kForged);
  std::vector<std::string> lines = absl::StrSplit(line, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 1u) << line;
  EXPECT_NE(line.find(R"(ns/job\n2026-01-01T00:00:00Z I forged\rline\u001b[31m)"),
            std::string::npos)
      << line;
}

TEST(LoggingTest, JsonFieldsAreMembersAndValuesAreEscaped) {
  std::string line;
  {
    ScopedLogFields outer({{"namespace", "team-a"}, {"scaledjob", kForged}});
    ScopedLogFields inner({{"metric", "kafka-orders"}});
    line = LogOnce(LogFormat::kJson, "x");
  }
  const nlohmann::json j = nlohmann::json::parse(line);
  EXPECT_EQ(j["namespace"], "team-a");
  EXPECT_EQ(j["scaledjob"], kForged);  // parsed back exactly: escaped, not cut
  EXPECT_EQ(j["metric"], "kafka-orders");
  EXPECT_EQ(j["msg"], "trigger x: bad metadata");
  EXPECT_EQ(j["level"], "info");
  // Scopes ended: no fields on later lines.
  const nlohmann::json after = nlohmann::json::parse(LogOnce(LogFormat::kJson, "y"));
  EXPECT_FALSE(after.contains("namespace"));
  EXPECT_FALSE(after.contains("metric"));
}

TEST(LoggingTest, TextFieldsFollowTheMessageOnTheSameLine) {
  std::string line;
  {
    ScopedLogFields fields({{"namespace", "team-a"},
                            {"scaledjob", "a b=\"c\"\\"},
                            {"metric", "m\nI forged"},
                            {"empty", ""}});
    line = LogOnce(LogFormat::kText, "x");
  }
  std::vector<std::string> lines = absl::StrSplit(line, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 1u) << line;
  EXPECT_NE(line.find(" I trigger x: bad metadata namespace=team-a scaledjob=\"a b=\\\"c\\\"\\\\\" "
                      "metric=\"m\\nI forged\" empty=\"\"\n"),
            std::string::npos)
      << line;
  EXPECT_EQ(LogOnce(LogFormat::kText, "y").find("namespace="), std::string::npos);
}

TEST(LoggingTest, EscapeControlCharacters) {
  EXPECT_EQ(EscapeControlCharacters("a\nb\rc\td\x01"), "a\\nb\\rc\\td\\x01");
  EXPECT_EQ(EscapeControlCharacters(std::string("\0", 1)), "\\x00");
  EXPECT_EQ(EscapeControlCharacters("plain text"), "plain text");
}

}  // namespace
}  // namespace klag
