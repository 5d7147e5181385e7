// Process-wide logging set-up: spdlog to stderr, as text or one JSON object per line.
//
//   klag::LogOptions opts{.format = klag::LogFormat::kJson, .level = "debug"};
//   RETURN_IF_ERROR(klag::ConfigureLogging(opts));
//   spdlog::info("serving on {}", address);
//
// Library code logs through spdlog's default logger; only main() calls ConfigureLogging.
//
// Messages often hold strings from requests (namespaces, names, metadata keys). In both formats a
// message is always exactly one line: JSON escapes as JSON does; text writes control characters
// as \n, \r, \t or \xNN, so a newline in a request cannot start a forged log line.
#pragma once

#include <spdlog/formatter.h>

#include <memory>
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

// The formatter ConfigureLogging installs for `format` (timestamps in UTC).
std::unique_ptr<spdlog::formatter> MakeLogFormatter(LogFormat format);

// Escapes `text` for use inside a JSON string literal (without the surrounding quotes).
std::string JsonEscape(absl::string_view text);

// `text` with every control character (below 0x20, and 0x7f) written as \n, \r, \t or \xNN;
// other bytes unchanged. The text log format's message escaping.
std::string EscapeControlCharacters(absl::string_view text);

}  // namespace klag
