// One record as one line of JSON: the format of the jsonl sink's output and of the exec sink's
// stdin.
//
//   {"topic":"prices","partition":0,"offset":42,"timestamp":1700000000000,
//    "key":"ACME","value":"{\"price\":12.5}","headers":[{"key":"trace","value":"abc"}]}
//
// Keys, values and header values that are valid UTF-8 appear as JSON strings; a null one is
// null; anything else (binary data) appears base64-encoded under "<field>_base64" instead:
// {"key_base64":"AAEC"}. A record without a timestamp has "timestamp":null.
#pragma once

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "job/record.h"

namespace klag::job {

// Appends the JSON object for `record` and a '\n' to `out`.
void AppendJsonLine(const Record& record, std::string* out);

// Appends the "headers" array alone: [{"key":"trace","value":"abc"}, ...].
void AppendHeadersJson(const std::vector<RecordHeader>& headers, std::string* out);

// True when `bytes` is well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing
// above U+10FFFF).
bool IsValidUtf8(absl::string_view bytes);

}  // namespace klag::job
