// libFuzzer harness: common/logging's EscapeControlCharacters, which keeps names and keys from
// requests from forging log lines. Invariant: the output holds no control byte (below 0x20, or
// 0x7f), so no input can start a new line or move the cursor.
#include <cstddef>
#include <cstdint>

#include "common/logging.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const klag::fuzz::Input input(data, size);
  const std::string escaped = klag::EscapeControlCharacters(input.Text());
  for (char c : escaped) {
    const auto byte = static_cast<unsigned char>(c);
    klag::fuzz::Check(byte >= 0x20 && byte != 0x7f, "a control byte survived escaping");
  }
  return 0;
}
