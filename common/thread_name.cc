#include "common/thread_name.h"

#include <pthread.h>

#include <string>

namespace klag {

void NameThisThread(std::string_view name) {
  constexpr size_t kMaxLength = 15;  // TASK_COMM_LEN (16) less the terminating NUL
  const std::string cut(name.substr(0, kMaxLength));
  pthread_setname_np(pthread_self(), cut.c_str());
}

}  // namespace klag
