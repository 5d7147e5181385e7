// JSON texts at the edges of jsonb's input, each with whether it is a document jsonb takes:
// the one list json_check_test.cc checks IsJsonbDocument against and postgres_sink_test.cc
// checks against PostgreSQL itself (so the expectations here are PostgreSQL's).
#pragma once

#include <string>
#include <vector>

namespace klag::job {

struct JsonbCase {
  std::string text;
  bool document;
};

inline std::vector<JsonbCase> JsonbEdgeCases() {
  return {
      {R"({"symbol":"ACME","price":12.5,"volume":100})", true},
      {" \t\r\n[1, -0, 0.5, 1e5, 1E-5, 2e+3, true, false, null, \"\", {}, []] \n", true},
      {R"({"a":{"b":[{"c":null}]},"d":"\"\\\/\b\f\n\r\t\u00e9\uD83D\uDE00"})", true},
      {R"({"a":1,"a":2})", true},  // duplicate names: jsonb keeps the last
      {"\"caf\xC3\xA9\"", true},
      {"0", true},
      {"-0.0e-0", true},
      {R"("\\u0000")", true},  // an escaped backslash, then the text u0000
      {"", false},
      {" ", false},
      {"{", false},
      {"}", false},
      {"[1,]", false},
      {"[,1]", false},
      {R"({"a":1,})", false},
      {R"({"a" 1})", false},
      {R"({1:2})", false},
      {"[1 2]", false},
      {"[]x", false},
      {"[] []", false},
      {"01", false},
      {"1.", false},
      {".5", false},
      {"+1", false},
      {"1e", false},
      {"1e+", false},
      {"-", false},
      {"tru", false},
      {"nul", false},
      {"True", false},
      {"NaN", false},
      {"\f1", false},    // form feed is not JSON whitespace
      {"1\x0B", false},  // nor vertical tab
      {"\"a\tb\"", false},
      {R"("\x")", false},
      {R"("\u12")", false},
      {R"("\u12G4")", false},
      {R"("\u0000")", false},        // jsonb: unsupported Unicode escape sequence
      {R"("\uD800")", false},        // a high surrogate alone
      {R"("\uD800x")", false},       // followed by something else
      {R"("\uD800\n")", false},      // followed by another escape
      {R"("\uD800\uD800")", false},  // followed by another high surrogate
      {R"("\uDC00")", false},        // a low surrogate alone
      {"\"\xC3\"", false},           // invalid UTF-8 in a string
      {"\"\xED\xA0\x80\"", false},   // an encoded surrogate
      {"\xEF\xBB\xBF{}", false},     // a byte order mark
      {std::string("\"a\0b\"", 5), false},
      {std::string("[1]\0", 4), false},
      {"'a'", false},
  };
}

}  // namespace klag::job
