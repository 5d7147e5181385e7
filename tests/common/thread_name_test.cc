#include "common/thread_name.h"

#include <gtest/gtest.h>
#include <pthread.h>

#include <array>
#include <string>
#include <string_view>
#include <thread>

namespace klag {
namespace {

// The name as the kernel keeps it (what top -H, perf and /proc/PID/task/TID/comm show).
std::string CurrentThreadName() {
  std::array<char, 64> name{};
  EXPECT_EQ(pthread_getname_np(pthread_self(), name.data(), name.size()), 0);
  return std::string(name.data());
}

// The name a new thread has after NameThisThread(name).
std::string NameSeenInANewThread(std::string_view name) {
  std::string seen;
  std::thread worker([&] {
    NameThisThread(name);
    seen = CurrentThreadName();
  });
  worker.join();
  return seen;
}

TEST(ThreadNameTest, NamesTheCallingThreadOnly) {
  const std::string before = CurrentThreadName();
  EXPECT_EQ(NameSeenInANewThread("klag-test"), "klag-test");
  EXPECT_EQ(CurrentThreadName(), before);
}

TEST(ThreadNameTest, LongNamesAreCutToFifteenBytes) {
  // pthread_setname_np refuses names over 15 bytes (ERANGE) and leaves the old name: the helper
  // cuts them instead.
  EXPECT_EQ(NameSeenInANewThread("klag-a-much-longer-name-than-linux-keeps"), "klag-a-much-lon");
}

}  // namespace
}  // namespace klag
