// JsonlSink: writes each record as one JSON line (job/record_json.h) to stdout or a file, and
// acknowledges a batch only after it is written out and, when the output is a regular file,
// fsynced.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<JsonlSink> sink, JsonlSink::Create("/data/out.jsonl"));
//   RETURN_IF_ERROR(sink->Write(batch, NeverAbandon()));  // durable on disk when OK
//
// A file is opened for appending (created 0644 when missing), so a redelivered batch after a
// crash appears twice: consumers deduplicate on (topic, partition, offset).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "job/sink.h"

namespace klag::job {

class JsonlSink final : public Sink {
 public:
  // Syncs a file descriptor to stable storage (fsync's contract); injectable for tests.
  using SyncFn = std::function<int(int fd)>;

  // `path` "-" or "" writes to stdout. Errors: the file cannot be opened (kPermissionDenied,
  // kNotFound for a missing directory, else kUnavailable), message naming the path.
  static absl::StatusOr<std::unique_ptr<JsonlSink>> Create(const std::string& path,
                                                           SyncFn sync = nullptr);
  ~JsonlSink() override;

  // Errors: kResourceExhausted (disk full), kUnavailable (other write or fsync failures, closed
  // stdout). Never kInvalidArgument: every record can be written.
  absl::Status Write(absl::Span<const Record> records, const WriteContext& context) override;

 private:
  JsonlSink(int fd, bool owns_fd, std::string name, SyncFn sync);

  int fd_;
  bool owns_fd_;
  std::string name_;
  SyncFn sync_;
  bool regular_file_;
  std::string buffer_;
};

}  // namespace klag::job
