#include "job/jsonl_sink.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "job/record_json.h"

namespace klag::job {
namespace {

absl::Status ErrnoStatus(int err, absl::string_view what) {
  std::string message = absl::StrCat(what, ": ", std::strerror(err));
  switch (err) {
    case ENOSPC:
    case EDQUOT:
      return absl::ResourceExhaustedError(message);
    case EACCES:
    case EPERM:
    case EROFS:
      return absl::PermissionDeniedError(message);
    case ENOENT:
    case ENOTDIR:
      return absl::NotFoundError(message);
    default:
      return absl::UnavailableError(message);
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<JsonlSink>> JsonlSink::Create(const std::string& path, SyncFn sync) {
  if (sync == nullptr) sync = [](int fd) { return ::fsync(fd); };
  if (path.empty() || path == "-") {
    return std::unique_ptr<JsonlSink>(new JsonlSink(STDOUT_FILENO, false, "stdout", sync));
  }
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("jsonl sink: open ", path));
  return std::unique_ptr<JsonlSink>(new JsonlSink(fd, true, path, std::move(sync)));
}

JsonlSink::JsonlSink(int fd, bool owns_fd, std::string name, SyncFn sync)
    : fd_(fd), owns_fd_(owns_fd), name_(std::move(name)), sync_(std::move(sync)) {
  struct stat st;
  regular_file_ = ::fstat(fd_, &st) == 0 && S_ISREG(st.st_mode);
}

JsonlSink::~JsonlSink() {
  if (owns_fd_) ::close(fd_);
}

absl::Status JsonlSink::Write(absl::Span<const Record> records, const WriteContext&) {
  buffer_.clear();
  for (const Record& r : records) AppendJsonLine(r, &buffer_);
  // A failed write of a file is cut back to where the batch began, so a retry does not leave a
  // torn line behind.
  off_t batch_start = regular_file_ ? ::lseek(fd_, 0, SEEK_END) : -1;
  size_t done = 0;
  while (done < buffer_.size()) {
    ssize_t n = ::write(fd_, buffer_.data() + done, buffer_.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      absl::Status error = ErrnoStatus(errno, absl::StrCat("jsonl sink: write ", name_));
      if (batch_start >= 0 && ::ftruncate(fd_, batch_start) != 0) {
        return absl::InternalError(absl::StrCat(error.message(),
                                                "; and cutting back the torn "
                                                "batch failed: ",
                                                std::strerror(errno)));
      }
      return error;
    }
    done += static_cast<size_t>(n);
  }
  // Pipes and terminals have nothing to sync; a regular file (also stdout redirected to one) is
  // on disk before the batch is acknowledged.
  if (regular_file_ && sync_(fd_) != 0) {
    return ErrnoStatus(errno, absl::StrCat("jsonl sink: fsync ", name_));
  }
  return absl::OkStatus();
}

}  // namespace klag::job
