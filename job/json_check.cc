#include "job/json_check.h"

#include <array>
#include <cstddef>
#include <cstdint>

#include "job/record_json.h"

namespace klag::job {
namespace {

// A cursor over the text; every Scan* returns false on the first byte the grammar refuses.
class Scanner {
 public:
  explicit Scanner(absl::string_view text)
      : p_(reinterpret_cast<const unsigned char*>(text.data())), end_(p_ + text.size()) {}

  bool AtEnd() const { return p_ == end_; }
  // The next byte, or 0 at the end (0 never starts a valid token).
  unsigned char Peek() const { return p_ == end_ ? 0 : *p_; }
  void Skip() { ++p_; }

  void SkipWhitespace() {
    while (p_ != end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) ++p_;
  }

  bool ScanLiteral(absl::string_view word) {
    if (static_cast<size_t>(end_ - p_) < word.size()) return false;
    for (char c : word) {
      if (*p_++ != static_cast<unsigned char>(c)) return false;
    }
    return true;
  }

  // After the opening quote, through the closing one.
  bool ScanString() {
    bool want_low_surrogate = false;
    while (true) {
      if (p_ == end_) return false;
      const unsigned char c = *p_++;
      if (want_low_surrogate && c != '\\') return false;
      if (c == '"') return true;
      if (c < 0x20) return false;  // control characters must be escaped
      if (c != '\\') continue;     // UTF-8 was checked before
      if (p_ == end_) return false;
      const unsigned char e = *p_++;
      if (e == 'u') {
        uint32_t unit = 0;
        if (!ScanHex4(&unit)) return false;
        if (want_low_surrogate) {
          if (unit < 0xDC00 || unit > 0xDFFF) return false;
          want_low_surrogate = false;
        } else if (unit >= 0xD800 && unit <= 0xDBFF) {
          want_low_surrogate = true;
        } else if ((unit >= 0xDC00 && unit <= 0xDFFF) || unit == 0) {
          return false;  // a low surrogate alone; \u0000, which jsonb refuses
        }
        continue;
      }
      if (want_low_surrogate) return false;
      switch (e) {
        case '"':
        case '\\':
        case '/':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
          break;
        default:
          return false;
      }
    }
  }

  // -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?, within the digit and exponent bounds.
  bool ScanNumber() {
    if (Peek() == '-') Skip();
    int digits = 0;
    if (Peek() == '0') {
      Skip();
      digits = 1;
    } else if (!ScanDigits(&digits)) {
      return false;
    }
    if (Peek() == '.') {
      Skip();
      if (!ScanDigits(&digits)) return false;
    }
    if (digits > kMaxNumberDigits) return false;
    if (Peek() == 'e' || Peek() == 'E') {
      Skip();
      if (Peek() == '+' || Peek() == '-') Skip();
      int64_t exponent = 0;
      const unsigned char* start = p_;
      while (p_ != end_ && *p_ >= '0' && *p_ <= '9') {
        if (exponent <= kMaxNumberExponent) exponent = exponent * 10 + (*p_ - '0');
        ++p_;
      }
      if (p_ == start || exponent > kMaxNumberExponent) return false;
    }
    return true;
  }

 private:
  bool ScanHex4(uint32_t* unit) {
    if (end_ - p_ < 4) return false;
    for (int i = 0; i < 4; ++i) {
      const unsigned char h = *p_++;
      uint32_t v;
      if (h >= '0' && h <= '9') {
        v = h - '0';
      } else if (h >= 'a' && h <= 'f') {
        v = h - 'a' + 10;
      } else if (h >= 'A' && h <= 'F') {
        v = h - 'A' + 10;
      } else {
        return false;
      }
      *unit = (*unit << 4) | v;
    }
    return true;
  }

  // One or more digits, counted into *digits.
  bool ScanDigits(int* digits) {
    const unsigned char* start = p_;
    while (p_ != end_ && *p_ >= '0' && *p_ <= '9') ++p_;
    *digits += static_cast<int>(p_ - start);
    return p_ != start;
  }

  const unsigned char* p_;
  const unsigned char* end_;
};

}  // namespace

bool IsJsonbDocument(absl::string_view text) {
  if (!IsValidUtf8(text)) return false;
  Scanner s(text);
  // `"name"` and the colon of an object member, and the whitespace after them.
  auto scan_name = [&s] {
    if (s.Peek() != '"') return false;
    s.Skip();
    if (!s.ScanString()) return false;
    s.SkipWhitespace();
    if (s.Peek() != ':') return false;
    s.Skip();
    s.SkipWhitespace();
    return true;
  };
  // Open containers, innermost last: true for an object.
  std::array<bool, kMaxDepth> is_object;
  int depth = 0;
  s.SkipWhitespace();
  while (true) {
    // A value.
    switch (s.Peek()) {
      case '{':
      case '[': {
        const bool object = s.Peek() == '{';
        if (depth == kMaxDepth) return false;
        is_object[depth++] = object;
        s.Skip();
        s.SkipWhitespace();
        if (s.Peek() == (object ? '}' : ']')) {
          s.Skip();
          --depth;
          break;  // an empty container is a complete value
        }
        if (object && !scan_name()) return false;
        continue;  // the first member's value
      }
      case '"':
        s.Skip();
        if (!s.ScanString()) return false;
        break;
      case 't':
        if (!s.ScanLiteral("true")) return false;
        break;
      case 'f':
        if (!s.ScanLiteral("false")) return false;
        break;
      case 'n':
        if (!s.ScanLiteral("null")) return false;
        break;
      default:
        if (s.Peek() != '-' && (s.Peek() < '0' || s.Peek() > '9')) return false;
        if (!s.ScanNumber()) return false;
    }
    // After a complete value: close containers, or go on to the next member.
    while (true) {
      s.SkipWhitespace();
      if (depth == 0) return s.AtEnd();
      const bool object = is_object[depth - 1];
      if (s.Peek() == (object ? '}' : ']')) {
        s.Skip();
        --depth;
        continue;
      }
      if (s.Peek() != ',') return false;
      s.Skip();
      s.SkipWhitespace();
      if (object && !scan_name()) return false;
      break;  // the next value
    }
  }
}

}  // namespace klag::job
