#include "job/dead_letter.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace klag::job {

OutgoingRecord DeadLetterRecord(const Record& record, const absl::Status& error,
                                const std::string& topic) {
  OutgoingRecord out;
  out.topic = topic;
  out.key = record.key;
  out.value = record.value;
  out.headers = record.headers;
  out.headers.push_back({"klag.original.topic", record.topic});
  out.headers.push_back({"klag.original.partition", absl::StrCat(record.partition)});
  out.headers.push_back({"klag.original.offset", absl::StrCat(record.offset)});
  if (record.timestamp_ms.has_value()) {
    out.headers.push_back({"klag.original.timestamp", absl::StrCat(*record.timestamp_ms)});
  }
  out.headers.push_back({"klag.error", error.ToString()});
  return out;
}

KafkaDeadLetterQueue::KafkaDeadLetterQueue(Producer& producer, std::string topic,
                                           absl::Duration timeout)
    : producer_(producer), topic_(std::move(topic)), timeout_(timeout) {}

absl::Status KafkaDeadLetterQueue::Send(const Record& record, const absl::Status& error) {
  const absl::Time deadline = absl::Now() + timeout_;
  if (absl::Status s = producer_.Produce(DeadLetterRecord(record, error, topic_), deadline);
      !s.ok()) {
    return s;
  }
  return producer_.Flush(deadline);
}

}  // namespace klag::job
