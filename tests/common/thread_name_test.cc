#include "common/thread_name.h"

#include <gtest/gtest.h>
#include <pthread.h>

#include <array>
#include <string>
#include <thread>

namespace klag {
namespace {

// The name as the kernel keeps it (what top -H, perf and /proc/PID/task/TID/comm show).
std::string CurrentThreadName() {
  std::array<char, 64> name{};
  EXPECT_EQ(pthread_getname_np(pthread_self(), name.data(), name.size()), 0);
  return std::string(name.data());
}

TEST(ThreadNameTest, NamesTheCallingThreadOnly) {
  const std::string before = CurrentThreadName();
  std::string inside;
  std::thread worker([&inside] {
    NameThisThread("klag-test");
    inside = CurrentThreadName();
  });
  worker.join();
  EXPECT_EQ(inside, "klag-test");
  EXPECT_EQ(CurrentThreadName(), before);
}

TEST(ThreadNameTest, LongNamesAreCutToFifteenBytes) {
  std::string inside;
  std::thread worker([&inside] {
    // pthread_setname_np refuses names over 15 bytes (ERANGE) and leaves the old name: the
    // helper cuts them instead.
    NameThisThread("klag-a-much-longer-name-than-linux-keeps");
    inside = CurrentThreadName();
  });
  worker.join();
  EXPECT_EQ(inside, "klag-a-much-lon");
}

}  // namespace
}  // namespace klag
