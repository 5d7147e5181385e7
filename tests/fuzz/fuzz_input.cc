#include "tests/fuzz/fuzz_input.h"

#include <cstdio>
#include <cstdlib>

namespace klag::fuzz {

void Check(bool condition, const char* what) {
  if (condition) return;
  std::fprintf(stderr, "fuzz invariant broken: %s\n", what);
  std::abort();
}

}  // namespace klag::fuzz
