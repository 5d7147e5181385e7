// Process-wide logging set-up: spdlog to stderr, as text or one JSON object per line.
//
//   klag::LogOptions opts{.format = klag::LogFormat::kJson, .level = "debug"};
//   RETURN_IF_ERROR(klag::ConfigureLogging(opts));
//   spdlog::info("serving on {}", address);
//
// Library code logs through spdlog's default logger; only main() calls ConfigureLogging.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace klag {

enum class LogFormat { kText, kJson };

struct LogOptions {
  LogFormat format = LogFormat::kText;
  std::string level = "info";  // trace, debug, info, warn, error, critical, off
};

// Parses "text" or "json". Errors: kInvalidArgument naming the value.
absl::Status ParseLogFormat(absl::string_view text, LogFormat* out);

// Replaces spdlog's default logger with a stderr logger in the given format and level.
// Errors: kInvalidArgument for an unknown level. Not thread-safe: call once at start-up.
absl::Status ConfigureLogging(const LogOptions& options);

// Escapes `text` for use inside a JSON string literal (without the surrounding quotes).
std::string JsonEscape(absl::string_view text);

}  // namespace klag
