// A WriteContext for sink tests that asks to abandon the write once `delay` has passed.
//
//   absl::Status s = sink.Write(batch, AbandonAfter(absl::Milliseconds(200)));  // kCancelled
#pragma once

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "job/sink.h"

namespace klag::job::testing {

class AbandonAfter final : public WriteContext {
 public:
  explicit AbandonAfter(absl::Duration delay) : at_(absl::Now() + delay) {}
  bool ShouldAbandon() const override { return absl::Now() >= at_; }

 private:
  absl::Time at_;
};

}  // namespace klag::job::testing
