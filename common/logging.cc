#include "common/logging.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"

namespace klag {
namespace {

// The fields of the ScopedLogFields alive on this thread, outermost first.
std::vector<std::pair<std::string, std::string>>& ThreadFields() {
  thread_local std::vector<std::pair<std::string, std::string>> fields;
  return fields;
}

// Writes this thread's fields as JSON members: ,"key":"value" for each.
class JsonFieldsFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg&, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    for (const auto& [key, value] : ThreadFields()) {
      const std::string member =
          absl::StrCat(",\"", JsonEscape(key), "\":\"", JsonEscape(value), "\"");
      dest.append(member.data(), member.data() + member.size());
    }
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<JsonFieldsFlag>();
  }
};

// Writes this thread's fields as text: ` key=value` for each; a value that is empty or holds a
// space, '"' or '=' is written quoted with '"' and '\' escaped; control characters as \n, \xNN.
class TextFieldsFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg&, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    for (const auto& [key, value] : ThreadFields()) {
      const bool quote = value.empty() || value.find_first_of(" \"=") != std::string::npos;
      const std::string escaped = quote
                                      ? absl::StrCat("\"",
                                                     EscapeControlCharacters(absl::StrReplaceAll(
                                                         value, {{"\\", "\\\\"}, {"\"", "\\\""}})),
                                                     "\"")
                                      : EscapeControlCharacters(value);
      const std::string field = absl::StrCat(" ", key, "=", escaped);
      dest.append(field.data(), field.data() + field.size());
    }
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<TextFieldsFlag>();
  }
};

// Writes the message payload JSON-escaped, so a log line stays one valid JSON object whatever
// the message holds.
class JsonMessageFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    std::string escaped = JsonEscape(absl::string_view(msg.payload.data(), msg.payload.size()));
    dest.append(escaped.data(), escaped.data() + escaped.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<JsonMessageFlag>();
  }
};

// Writes the message payload with control characters escaped, so a log line stays one line
// whatever the message holds.
class TextMessageFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    const absl::string_view payload(msg.payload.data(), msg.payload.size());
    // The common case, nothing to escape, copies nothing extra.
    if (std::none_of(payload.begin(), payload.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; })) {
      dest.append(payload.data(), payload.data() + payload.size());
      return;
    }
    std::string escaped = EscapeControlCharacters(payload);
    dest.append(escaped.data(), escaped.data() + escaped.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<TextMessageFlag>();
  }
};

}  // namespace

ScopedLogFields::ScopedLogFields(
    std::initializer_list<std::pair<absl::string_view, absl::string_view>> fields)
    : previous_size_(ThreadFields().size()) {
  for (const auto& [key, value] : fields) ThreadFields().emplace_back(key, value);
}

ScopedLogFields::~ScopedLogFields() { ThreadFields().resize(previous_size_); }

absl::Status ParseLogFormat(absl::string_view text, LogFormat* out) {
  if (text == "text") {
    *out = LogFormat::kText;
  } else if (text == "json") {
    *out = LogFormat::kJson;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("log format must be text or json, got \"", text, "\""));
  }
  return absl::OkStatus();
}

absl::Status ConfigureLogging(const LogOptions& options) {
  spdlog::level::level_enum level = spdlog::level::from_str(options.level);
  // from_str maps anything unknown to off; only accept "off" when it was asked for.
  if (level == spdlog::level::off && options.level != "off") {
    return absl::InvalidArgumentError(absl::StrCat(
        "log level must be one of trace, debug, info, warn, error, critical, off; got \"",
        options.level, "\""));
  }
  auto logger =
      std::make_shared<spdlog::logger>("klag", std::make_shared<spdlog::sinks::stderr_sink_mt>());
  logger->set_formatter(MakeLogFormatter(options.format));
  logger->set_level(level);
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(std::move(logger));
  return absl::OkStatus();
}

std::unique_ptr<spdlog::formatter> MakeLogFormatter(LogFormat format) {
  auto formatter = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
  if (format == LogFormat::kJson) {
    formatter->add_flag<JsonMessageFlag>('*').add_flag<JsonFieldsFlag>('&').set_pattern(
        R"({"time":"%Y-%m-%dT%H:%M:%S.%fZ","level":"%l"%&,"msg":"%*"})");
  } else {
    formatter->add_flag<TextMessageFlag>('*').add_flag<TextFieldsFlag>('&').set_pattern(
        "%Y-%m-%dT%H:%M:%S.%eZ %L %*%&");
  }
  return formatter;
}

std::string EscapeControlCharacters(absl::string_view text) {
  std::string out;
  out.reserve(text.size() + 8);
  for (unsigned char c : text) {
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      absl::StrAppendFormat(&out, "\\x%02x", c);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out;
}

std::string JsonEscape(absl::string_view text) {
  std::string out;
  out.reserve(text.size() + 8);
  for (unsigned char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          absl::StrAppendFormat(&out, "\\u%04x", c);
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  return out;
}

}  // namespace klag
