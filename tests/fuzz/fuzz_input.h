// Turns a fuzzer's bytes into the maps klag parses from requests.
//
//   klag::fuzz::Input in(data, size);
//   klag::scaler::Metadata md = in.Map();  // "key\0value\0key\0value..." pairs
//
// Test-only; no dependency on libFuzzer itself.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

#include "absl/strings/string_view.h"

namespace klag::fuzz {

class Input {
 public:
  Input(const uint8_t* data, size_t size) : text_(reinterpret_cast<const char*>(data), size) {}

  // The bytes as one string.
  absl::string_view Text() const { return text_; }

  // The bytes split at NUL into alternating keys and values (a trailing key without a value gets
  // ""); later duplicates replace earlier ones, as a map from a request would hold them.
  std::map<std::string, std::string, std::less<>> Map() const {
    std::map<std::string, std::string, std::less<>> out;
    size_t pos = 0;
    while (pos < text_.size()) {
      const size_t key_end = Find(pos);
      std::string key(text_.substr(pos, key_end - pos));
      pos = key_end + 1;
      std::string value;
      if (pos <= text_.size()) {
        const size_t value_end = Find(pos);
        value = std::string(text_.substr(pos, value_end - pos));
        pos = value_end + 1;
      }
      out[std::move(key)] = std::move(value);
    }
    return out;
  }

 private:
  size_t Find(size_t from) const {
    const size_t at = text_.find('\0', from);
    return at == absl::string_view::npos ? text_.size() : at;
  }

  absl::string_view text_;
};

// Aborts with `what` when `condition` is false: a broken invariant is a finding.
void Check(bool condition, const char* what);

}  // namespace klag::fuzz
