// libFuzzer harness: the Job's JSON line for a record (job/record_json.h), as the jsonl sink writes
// it and the exec sink's handler reads it. Invariants: exactly one line; it parses as JSON
// (nlohmann::json); every field comes back: UTF-8 keys, values and header values as strings,
// anything else under "<field>_base64", null as null, the timestamp or null.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_split.h"
#include "job/record.h"
#include "job/record_json.h"
#include "tests/fuzz/fuzz_input.h"

namespace {

using klag::fuzz::Check;

// Checks field `name` of `object` against `bytes` (nullopt: null).
void CheckBytes(const nlohmann::json& object, const std::string& name,
                const std::optional<std::string>& bytes) {
  if (!bytes.has_value()) {
    Check(object.contains(name) && object[name].is_null(), "a null field is not null");
    return;
  }
  if (klag::job::IsValidUtf8(*bytes)) {
    Check(object.contains(name) && object[name].is_string() &&
              object[name].get<std::string>() == *bytes,
          "a UTF-8 field does not come back as the same string");
    return;
  }
  std::string decoded;
  Check(object.contains(name + "_base64") && object[name + "_base64"].is_string() &&
            absl::Base64Unescape(object[name + "_base64"].get<std::string>(), &decoded) &&
            decoded == *bytes,
        "a binary field does not come back from <field>_base64");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const klag::fuzz::Input input(data, size);
  // Fields from the NUL-separated parts: topic, key, value, then header key/value pairs; a part
  // starting with 0xff is null.
  std::vector<std::optional<std::string>> parts;
  for (absl::string_view part : absl::StrSplit(input.Text(), '\0')) {
    if (!part.empty() && static_cast<unsigned char>(part[0]) == 0xff) {
      parts.push_back(std::nullopt);
    } else {
      parts.emplace_back(part);
    }
  }
  auto part = [&](size_t i) -> std::optional<std::string> {
    return i < parts.size() ? parts[i] : std::nullopt;
  };
  klag::job::Record record;
  // Kafka topic names are [a-zA-Z0-9._-] (the broker refuses others): keep those bytes.
  for (char c : part(0).value_or("t")) {
    if (absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-') {
      record.topic.push_back(c);
    }
  }
  record.partition = static_cast<int32_t>(size % 7);
  record.offset = static_cast<int64_t>(size) * 1000003;
  if (size % 3 != 0) record.timestamp_ms = static_cast<int64_t>(size) * 1699999999;
  record.key = part(1);
  record.value = part(2);
  for (size_t i = 3; i + 1 < parts.size() && record.headers.size() < 8; i += 2) {
    record.headers.push_back({.key = part(i).value_or(""), .value = part(i + 1)});
  }
  std::string line;
  klag::job::AppendJsonLine(record, &line);
  Check(!line.empty() && line.back() == '\n', "no trailing newline");
  Check(line.find('\n') == line.size() - 1, "more than one line");
  const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  Check(j.is_object(), "the line does not parse as a JSON object");
  CheckBytes(j, "topic", record.topic);
  Check(j["partition"] == record.partition && j["offset"] == record.offset, "partition/offset");
  if (record.timestamp_ms.has_value()) {
    Check(j["timestamp"] == *record.timestamp_ms, "timestamp");
  } else {
    Check(j["timestamp"].is_null(), "timestamp not null");
  }
  CheckBytes(j, "key", record.key);
  CheckBytes(j, "value", record.value);
  Check(j["headers"].is_array() && j["headers"].size() == record.headers.size(), "headers");
  for (size_t i = 0; i < record.headers.size(); ++i) {
    CheckBytes(j["headers"][i], "key", record.headers[i].key);
    CheckBytes(j["headers"][i], "value", record.headers[i].value);
  }
  return 0;
}
