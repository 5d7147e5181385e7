#pragma once

#include <string_view>

namespace klag {

// Names the calling thread as `top -H`, perf and /proc/PID/task/TID/comm show it. Linux keeps
// 15 bytes: a longer name is cut there. Threads klag starts carry a "klag-" name; librdkafka's
// own are "rdk:...", gRPC's are gRPC's.
void NameThisThread(std::string_view name);

}  // namespace klag
