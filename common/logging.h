// Process-wide logging set-up: spdlog to stderr, as text or one JSON object per line.
//
//   klag::LogOptions opts{.format = klag::LogFormat::kJson, .level = "debug"};
//   RETURN_IF_ERROR(klag::ConfigureLogging(opts));
//   spdlog::info("serving on {}", address);
//
// Library code logs through spdlog's default logger; only main() calls ConfigureLogging.
//
// Fields: the request's namespace, scaledjob and metric go into a ScopedLogFields around the
// spdlog call, not into the message. JSON writes each as its own member after "level"; text
// appends them as ` key=value` (control characters escaped, values with spaces or quotes quoted):
//
//   klag::ScopedLogFields fields({{"namespace", ns}, {"scaledjob", name}});
//   spdlog::warn("GetMetrics: {}", status.ToString());
//   // {"time":"...","level":"warning","namespace":"data","scaledjob":"load","msg":"GetMetrics:
//   ..."}
//
// Fields are per thread and apply to every line the thread writes while the scope lives (spdlog
// formats on the calling thread: the logger is synchronous).
//
// Messages often hold strings from requests (namespaces, names, metadata keys). In both formats a
// message is always exactly one line: JSON escapes as JSON does; text writes control characters
// as \n, \r, \t or \xNN, so a newline in a request cannot start a forged log line.
#pragma once

#include <spdlog/formatter.h>

#include <initializer_list>
#include <memory>
#include <string>
#include <utility>

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

// Adds fields to every log line this thread writes until destruction (scopes nest; inner fields
// come after outer ones). Keys must be fixed identifiers chosen by the code (values may come
// from requests: they are escaped). Not movable: a scope belongs to one stack frame.
class ScopedLogFields {
 public:
  explicit ScopedLogFields(
      std::initializer_list<std::pair<absl::string_view, absl::string_view>> fields);
  ~ScopedLogFields();
  ScopedLogFields(const ScopedLogFields&) = delete;
  ScopedLogFields& operator=(const ScopedLogFields&) = delete;

 private:
  size_t previous_size_;
};

// Escapes `text` for use inside a JSON string literal (without the surrounding quotes).
std::string JsonEscape(absl::string_view text);

// `text` with every control character (below 0x20, and 0x7f) written as \n, \r, \t or \xNN;
// other bytes unchanged. The text log format's message escaping.
std::string EscapeControlCharacters(absl::string_view text);

}  // namespace klag
