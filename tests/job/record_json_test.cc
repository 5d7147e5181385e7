#include "job/record_json.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "nlohmann/json.hpp"

namespace klag::job {
namespace {

TEST(IsValidUtf8Test, Table) {
  struct Case {
    std::string name;
    std::string bytes;
    bool valid;
  };
  const std::vector<Case> cases = {
      {"empty", "", true},
      {"ascii", "hello", true},
      {"two-byte", "caf\xC3\xA9", true},
      {"three-byte", "\xE2\x82\xAC", true},
      {"four-byte", "\xF0\x9F\x98\x80", true},
      {"embedded NUL", std::string("a\0b", 3), true},
      {"lone continuation", "\x80", false},
      {"truncated two-byte", "\xC3", false},
      {"truncated four-byte", "\xF0\x9F\x98", false},
      {"overlong slash", "\xC0\xAF", false},
      {"overlong three-byte", "\xE0\x80\xAF", false},
      {"surrogate", "\xED\xA0\x80", false},
      {"above U+10FFFF", "\xF4\x90\x80\x80", false},
      {"0xFF", "\xFF", false},
      {"bad continuation", "\xE2\x28\xA1", false},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(IsValidUtf8(c.bytes), c.valid) << c.name;
  }
}

// The eight-bytes-at-a-time ASCII scan: an invalid byte at every position of longer inputs.
TEST(IsValidUtf8Test, InvalidByteAtAnyPositionOfALongValue) {
  for (size_t len : {7u, 8u, 9u, 16u, 17u, 64u}) {
    const std::string ascii(len, 'a');
    EXPECT_TRUE(IsValidUtf8(ascii)) << len;
    for (size_t at = 0; at < len; ++at) {
      std::string bad = ascii;
      bad[at] = '\xFF';
      EXPECT_FALSE(IsValidUtf8(bad)) << len << " at " << at;
      std::string good = ascii;
      good.replace(at, 1, "\xC3\xA9");
      EXPECT_TRUE(IsValidUtf8(good)) << len << " at " << at;
    }
  }
}

// Every byte a JSON string must escape, in runs and alone: the line parses back to the bytes.
TEST(AppendJsonLineTest, EscapesRoundTripThroughAJsonParser) {
  std::string value = "plain run ";
  for (int c = 0; c < 0x80; ++c) value.push_back(static_cast<char>(c));
  value += "\xE2\x82\xAC tail \"quoted\" back\\slash";
  Record r{.topic = "t\"x", .partition = 1, .offset = 2, .key = "k\n", .value = value};
  std::string line;
  AppendJsonLine(r, &line);
  ASSERT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1) << "one line";
  nlohmann::json j = nlohmann::json::parse(line);
  EXPECT_EQ(j["topic"], "t\"x");
  EXPECT_EQ(j["key"], "k\n");
  EXPECT_EQ(j["value"].get<std::string>(), value);
  EXPECT_NE(line.find("\\u001f"), std::string::npos) << line;  // control bytes as \u00XX
}

TEST(RecordJsonTest, TextRecordIsOneJsonLine) {
  Record r{.topic = "prices",
           .partition = 2,
           .offset = 41,
           .timestamp_ms = 1700000000000,
           .key = "ACME",
           .value = "{\"price\":1.5}\nline \"two\"",
           .headers = {{"trace", "abc"}, {"empty", std::nullopt}}};
  std::string out;
  AppendJsonLine(r, &out);
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(out.back(), '\n');
  EXPECT_EQ(out.find('\n'), out.size() - 1) << "exactly one line";
  nlohmann::json j = nlohmann::json::parse(out);
  EXPECT_EQ(j["topic"], "prices");
  EXPECT_EQ(j["partition"], 2);
  EXPECT_EQ(j["offset"], 41);
  EXPECT_EQ(j["timestamp"], 1700000000000);
  EXPECT_EQ(j["key"], "ACME");
  EXPECT_EQ(j["value"], "{\"price\":1.5}\nline \"two\"");
  EXPECT_FALSE(j.contains("value_base64"));
  ASSERT_EQ(j["headers"].size(), 2u);
  EXPECT_EQ(j["headers"][0]["key"], "trace");
  EXPECT_EQ(j["headers"][0]["value"], "abc");
  EXPECT_TRUE(j["headers"][1]["value"].is_null());
}

TEST(RecordJsonTest, NonUtf8BytesAreBase64UnderTheirOwnField) {
  Record r{.topic = "t",
           .partition = 0,
           .offset = 0,
           .key = std::string("\x00\x01\xFF", 3),
           .value = std::string("\xC3\x28", 2),
           .headers = {{"bin", std::string("\xFE", 1)}}};
  std::string out;
  AppendJsonLine(r, &out);
  nlohmann::json j = nlohmann::json::parse(out);
  EXPECT_FALSE(j.contains("key"));
  EXPECT_EQ(j["key_base64"], "AAH/");
  EXPECT_FALSE(j.contains("value"));
  EXPECT_EQ(j["value_base64"], "wyg=");
  EXPECT_EQ(j["headers"][0]["value_base64"], "/g==");
}

TEST(RecordJsonTest, NullKeyValueAndTimestampAreNull) {
  Record r{.topic = "t", .partition = 1, .offset = 7};
  std::string out;
  AppendJsonLine(r, &out);
  EXPECT_EQ(out,
            "{\"topic\":\"t\",\"partition\":1,\"offset\":7,\"timestamp\":null,\"key\":null,"
            "\"value\":null,\"headers\":[]}\n");
}

TEST(RecordJsonTest, ControlCharactersAreEscaped) {
  Record r{.topic = "t", .partition = 0, .offset = 0, .value = std::string("a\x01\tb", 4)};
  std::string out;
  AppendJsonLine(r, &out);
  EXPECT_NE(out.find("\"value\":\"a\\u0001\\tb\""), std::string::npos) << out;
  EXPECT_EQ(nlohmann::json::parse(out)["value"], std::string("a\x01\tb", 4));
}

}  // namespace
}  // namespace klag::job
