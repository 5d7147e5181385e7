#include "job/delivery.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

namespace klag::job {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

std::vector<Record> Batch(int n) {
  std::vector<Record> out;
  for (int i = 0; i < n; ++i) {
    out.push_back(
        {.topic = "t", .partition = 0, .offset = 100 + i, .value = "v" + std::to_string(i)});
  }
  return out;
}

// A sink whose answer is computed from the batch; records every call.
class FakeSink final : public Sink {
 public:
  explicit FakeSink(std::function<absl::Status(absl::Span<const Record>)> answer)
      : answer_(std::move(answer)) {}
  absl::Status Write(absl::Span<const Record> records, const WriteContext&) override {
    std::vector<int64_t> offsets;
    for (const Record& r : records) offsets.push_back(r.offset);
    calls.push_back(offsets);
    absl::Status s = answer_(records);
    if (s.ok()) {
      for (const Record& r : records) delivered.push_back(r.offset);
    }
    return s;
  }
  std::vector<std::vector<int64_t>> calls;
  std::vector<int64_t> delivered;

 private:
  std::function<absl::Status(absl::Span<const Record>)> answer_;
};

class FakeDeadLetters final : public DeadLetterQueue {
 public:
  absl::Status Send(const Record& record, const absl::Status& error) override {
    offsets.push_back(record.offset);
    errors.push_back(error);
    return answer;
  }
  std::vector<int64_t> offsets;
  std::vector<absl::Status> errors;
  absl::Status answer;
};

// Rejects any batch holding one of `poison`.
std::function<absl::Status(absl::Span<const Record>)> RejectOffsets(std::vector<int64_t> poison) {
  return [poison](absl::Span<const Record> records) {
    for (const Record& r : records) {
      for (int64_t p : poison) {
        if (r.offset == p) return absl::InvalidArgumentError("bad record");
      }
    }
    return absl::OkStatus();
  };
}

struct SleepLog {
  std::vector<absl::Duration> sleeps;
  bool interrupt = false;
  Sleeper sleeper() {
    return [this](absl::Duration d) {
      sleeps.push_back(d);
      return !interrupt;
    };
  }
};

TEST(DeliveryTest, SuccessAcksEveryRecordInOneWrite) {
  FakeSink sink([](absl::Span<const Record>) { return absl::OkStatus(); });
  SleepLog log;
  Delivery delivery(sink, nullptr, {}, log.sleeper());
  std::vector<Record> batch = Batch(3);
  Delivery::Result r = delivery.Deliver(batch, NeverAbandon());
  EXPECT_TRUE(r.status.ok());
  EXPECT_THAT(r.acked, ElementsAre(0, 1, 2));
  EXPECT_EQ(r.attempts, 1);
  EXPECT_THAT(log.sleeps, IsEmpty());
}

TEST(DeliveryTest, RetriesWithDoublingCappedBackoffThenSucceeds) {
  int calls = 0;
  FakeSink sink([&](absl::Span<const Record>) {
    return ++calls < 4 ? absl::UnavailableError("down") : absl::OkStatus();
  });
  SleepLog log;
  Delivery delivery(
      sink, nullptr,
      {.max_attempts = 4, .backoff = absl::Seconds(1), .max_backoff = absl::Seconds(3)},
      log.sleeper());
  std::vector<Record> batch = Batch(2);
  Delivery::Result r = delivery.Deliver(batch, NeverAbandon());
  EXPECT_TRUE(r.status.ok()) << r.status;
  EXPECT_THAT(r.acked, ElementsAre(0, 1));
  EXPECT_EQ(r.attempts, 4);
  EXPECT_THAT(log.sleeps, ElementsAre(absl::Seconds(1), absl::Seconds(2), absl::Seconds(3)));
}

TEST(DeliveryTest, FailPolicyAcksNothingAfterMaxAttempts) {
  FakeSink sink(RejectOffsets({101}));
  SleepLog log;
  FakeDeadLetters dlq;
  Delivery delivery(sink, &dlq, {.max_attempts = 3, .on_poison = PoisonPolicy::kFail},
                    log.sleeper());
  std::vector<Record> batch = Batch(4);
  Delivery::Result r = delivery.Deliver(batch, NeverAbandon());
  EXPECT_EQ(r.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.acked, IsEmpty());
  EXPECT_EQ(r.attempts, 3);
  EXPECT_THAT(dlq.offsets, IsEmpty());
  EXPECT_THAT(sink.delivered, IsEmpty());
}

TEST(DeliveryTest, DeadLetterPolicyIsolatesThePoisonRecordAndDeliversTheRest) {
  FakeSink sink(RejectOffsets({105}));
  SleepLog log;
  FakeDeadLetters dlq;
  Delivery delivery(sink, &dlq, {.max_attempts = 2, .on_poison = PoisonPolicy::kDeadLetter},
                    log.sleeper());
  std::vector<Record> batch = Batch(8);  // offsets 100..107
  Delivery::Result r = delivery.Deliver(batch, NeverAbandon());
  EXPECT_TRUE(r.status.ok()) << r.status;
  EXPECT_THAT(r.acked, ElementsAre(0, 1, 2, 3, 4, 5, 6, 7));
  EXPECT_EQ(r.dead_lettered, 1);
  EXPECT_THAT(dlq.offsets, ElementsAre(105));
  EXPECT_EQ(dlq.errors[0].code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(sink.delivered, ElementsAre(100, 101, 102, 103, 104, 106, 107));
  // The batch twice; [100..103] once, ok; [104..107] once, fails; [104,105] once, fails;
  // [104] once, ok; [105] twice, fails: dead letter; [106,107] once, ok.
  EXPECT_EQ(r.attempts, 2 + 1 + 1 + 1 + 1 + 2 + 1);
}

TEST(DeliveryTest, TwoPoisonRecordsBothGoToTheDeadLetterQueue) {
  FakeSink sink(RejectOffsets({100, 104}));
  SleepLog log;
  FakeDeadLetters dlq;
  Delivery delivery(sink, &dlq, {.max_attempts = 1, .on_poison = PoisonPolicy::kDeadLetter},
                    log.sleeper());
  std::vector<Record> batch = Batch(5);
  Delivery::Result r = delivery.Deliver(batch, NeverAbandon());
  EXPECT_TRUE(r.status.ok()) << r.status;
  EXPECT_THAT(dlq.offsets, ElementsAre(100, 104));
  EXPECT_THAT(sink.delivered, ElementsAre(101, 102, 103));
  EXPECT_EQ(r.acked.size(), 5u);
}

TEST(DeliveryTest, BisectionCostIsBoundedForAnAllPoisonBatch) {
  FakeSink sink([](absl::Span<const Record>) { return absl::InvalidArgumentError("all bad"); });
  SleepLog log;
  FakeDeadLetters dlq;
  const int n = 16;
  const int max_attempts = 3;
  Delivery delivery(sink, &dlq,
                    {.max_attempts = max_attempts, .on_poison = PoisonPolicy::kDeadLetter},
                    log.sleeper());
  std::vector<Record> batch = Batch(n);
  Delivery::Result r = delivery.Deliver(batch, NeverAbandon());
  EXPECT_TRUE(r.status.ok());
  EXPECT_EQ(r.dead_lettered, n);
  // Root: max_attempts; inner nodes of the bisection tree (sizes 8,4,2): 14 single tries;
  // leaves: max_attempts each.
  EXPECT_EQ(r.attempts, max_attempts + 14 + n * max_attempts);
}

TEST(DeliveryTest, SinkOutageIsNeverDeadLettered) {
  FakeSink sink([](absl::Span<const Record>) { return absl::UnavailableError("db down"); });
  SleepLog log;
  FakeDeadLetters dlq;
  Delivery delivery(sink, &dlq, {.max_attempts = 2, .on_poison = PoisonPolicy::kDeadLetter},
                    log.sleeper());
  std::vector<Record> batch = Batch(4);
  Delivery::Result r = delivery.Deliver(batch, NeverAbandon());
  EXPECT_EQ(r.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(r.acked, IsEmpty());
  EXPECT_THAT(dlq.offsets, IsEmpty());
  EXPECT_EQ(r.attempts, 2);
}

TEST(DeliveryTest, SinkTimeoutsAndKilledHandlersAreNeverDeadLettered) {
  for (absl::Status error : {absl::DeadlineExceededError("exec sink: command ran longer than 5m"),
                             absl::UnavailableError("exec sink: command died of signal 9")}) {
    FakeSink sink([&](absl::Span<const Record>) { return error; });
    SleepLog log;
    FakeDeadLetters dlq;
    Delivery delivery(sink, &dlq, {.max_attempts = 3, .on_poison = PoisonPolicy::kDeadLetter},
                      log.sleeper());
    std::vector<Record> batch = Batch(4);
    Delivery::Result r = delivery.Deliver(batch, NeverAbandon());
    EXPECT_EQ(r.status.code(), error.code());
    EXPECT_THAT(r.acked, IsEmpty()) << error;
    EXPECT_THAT(dlq.offsets, IsEmpty()) << error;
    EXPECT_EQ(r.attempts, 3) << error;  // retried, not bisected
    EXPECT_FALSE(IsRecordRejection(error));
  }
}

TEST(DeliveryTest, OutageDuringBisectionStopsWithWhatWasAcked) {
  int calls = 0;
  FakeSink sink([&](absl::Span<const Record> records) -> absl::Status {
    ++calls;
    if (records.size() == 4) return absl::InvalidArgumentError("bad");  // whole batch
    if (records[0].offset == 100) return absl::OkStatus();              // first half
    return absl::UnavailableError("db down");                           // second half
  });
  SleepLog log;
  FakeDeadLetters dlq;
  Delivery delivery(sink, &dlq, {.max_attempts = 1, .on_poison = PoisonPolicy::kDeadLetter},
                    log.sleeper());
  std::vector<Record> batch = Batch(4);
  Delivery::Result r = delivery.Deliver(batch, NeverAbandon());
  EXPECT_EQ(r.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(r.acked, ElementsAre(0, 1));
  EXPECT_THAT(dlq.offsets, IsEmpty());
}

TEST(DeliveryTest, DeadLetterFailureIsFatalAndThePoisonRecordStaysUnacked) {
  FakeSink sink(RejectOffsets({101}));
  SleepLog log;
  FakeDeadLetters dlq;
  dlq.answer = absl::UnavailableError("dlq down");
  Delivery delivery(sink, &dlq, {.max_attempts = 1, .on_poison = PoisonPolicy::kDeadLetter},
                    log.sleeper());
  std::vector<Record> batch = Batch(2);
  Delivery::Result r = delivery.Deliver(batch, NeverAbandon());
  EXPECT_EQ(r.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(r.status.message().find("dead-letter"), absl::string_view::npos);
  EXPECT_THAT(r.acked, ElementsAre(0));
  EXPECT_EQ(r.dead_lettered, 0);
}

TEST(DeliveryTest, InterruptedBackoffAbandonsTheBatch) {
  FakeSink sink([](absl::Span<const Record>) { return absl::UnavailableError("down"); });
  SleepLog log;
  log.interrupt = true;
  Delivery delivery(sink, nullptr, {.max_attempts = 5}, log.sleeper());
  std::vector<Record> batch = Batch(1);
  Delivery::Result r = delivery.Deliver(batch, NeverAbandon());
  EXPECT_EQ(r.status.code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(r.attempts, 1);
  EXPECT_THAT(r.acked, IsEmpty());
}

}  // namespace
}  // namespace klag::job
