// IsJsonbDocument: whether PostgreSQL's jsonb input takes a record value as it is, decided by
// IsValidUtf8 and then one grammar pass over the bytes, without building anything (the postgres
// sink asks it of every record; a general JSON parser spent 40% of klag-job's CPU there).
//
//   if (IsJsonbDocument(value)) { /* value_json = value */ } else { /* value_json = NULL */ }
//
// True for one JSON text (RFC 8259: one value, JSON's four whitespace characters around it) in
// valid UTF-8 that jsonb stores, which is narrower than JSON in these ways (each checked
// against PostgreSQL 15 in tests/job/postgres_sink_test.cc):
//   - no \u0000 escape (jsonb: "unsupported Unicode escape sequence"), and a \uD800-\uDBFF escape
//     only directly followed by a \uDC00-\uDFFF one (and no low surrogate alone);
//   - numbers become `numeric`, which overflows past about 131,072 integer digits or 16,383
//     fraction digits; nesting is bounded by the server's stack depth. So that a value near
//     those limits never fails a whole batch, numbers with more than kMaxNumberDigits digits or
//     an exponent beyond +-kMaxNumberExponent, and nesting deeper than kMaxDepth, count as not
//     a document (value_json NULL; the value itself is stored either way).
#pragma once

#include "absl/strings/string_view.h"

namespace klag::job {

inline constexpr int kMaxNumberDigits = 1000;
inline constexpr int kMaxNumberExponent = 1000;
inline constexpr int kMaxDepth = 1000;

bool IsJsonbDocument(absl::string_view text);

}  // namespace klag::job
