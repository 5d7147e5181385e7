#include "job/record.h"

namespace klag::job {
namespace {

int64_t SizeOf(const std::optional<std::string>& bytes) {
  return bytes.has_value() ? static_cast<int64_t>(bytes->size()) : 0;
}

}  // namespace

int64_t Record::ByteSize() const {
  int64_t n = SizeOf(key) + SizeOf(value);
  for (const RecordHeader& h : headers) n += static_cast<int64_t>(h.key.size()) + SizeOf(h.value);
  return n;
}

}  // namespace klag::job
