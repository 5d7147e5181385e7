#include "job/exec_sink.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "job/record_json.h"

extern char** environ;

namespace klag::job {
namespace {

constexpr int kPollMs = 50;

// Closes a descriptor once.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() { Close(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

// The child's environment: ours without klag's own KLAG_* settings (they hold klag's secrets:
// KLAG_PASSWORD, KLAG_KEY, KLAG_POSTGRES_URI, ...) except the names in `pass`, plus
// KLAG_BATCH_RECORDS.
std::vector<std::string> ChildEnvironment(size_t records, const std::vector<std::string>& pass) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const absl::string_view entry(*e);
    const absl::string_view name = entry.substr(0, entry.find('='));
    if (absl::StartsWith(name, "KLAG_") &&
        std::find(pass.begin(), pass.end(), name) == pass.end()) {
      continue;
    }
    if (name == "KLAG_BATCH_RECORDS") continue;
    env.emplace_back(entry);
  }
  env.push_back(absl::StrCat("KLAG_BATCH_RECORDS=", records));
  return env;
}

// A running child in its own process group; killed and reaped unless it was reaped already.
class Child {
 public:
  explicit Child(pid_t pid) : pid_(pid) {
    // pidfd lets us wait for the exit with poll(); older kernels fall back to short sleeps.
    pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  }
  ~Child() {
    if (!reaped_) {
      Kill();
      int status;
      while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
    }
    if (pidfd_ >= 0) ::close(pidfd_);
  }
  void Kill() { ::kill(-pid_, SIGKILL); }

  // Waits up to `ms` for the exit; true with the wait status once it exited.
  bool WaitFor(int ms, int* status) {
    if (pidfd_ >= 0) {
      pollfd p{pidfd_, POLLIN, 0};
      ::poll(&p, 1, ms);
    }
    pid_t r = ::waitpid(pid_, status, WNOHANG);
    if (r == pid_) {
      reaped_ = true;
      return true;
    }
    if (pidfd_ < 0) ::usleep(static_cast<useconds_t>(std::min(ms, 5)) * 1000);
    return false;
  }

 private:
  pid_t pid_;
  int pidfd_ = -1;
  bool reaped_ = false;
};

// Blocks SIGPIPE in this thread while it lives, and swallows one raised meanwhile, so a command
// that exits without reading its stdin gives EPIPE instead of killing the process (whatever the
// process's SIGPIPE disposition).
class NoSigpipe {
 public:
  NoSigpipe() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    sigset_t pending;
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
  }
  ~NoSigpipe() {
    if (!was_pending_) {
      sigset_t pending;
      sigpending(&pending);
      if (sigismember(&pending, SIGPIPE) == 1) {
        timespec zero{0, 0};
        while (sigtimedwait(&pipe_, nullptr, &zero) < 0 && errno == EINTR) {
        }
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  NoSigpipe(const NoSigpipe&) = delete;
  NoSigpipe& operator=(const NoSigpipe&) = delete;

 private:
  sigset_t pipe_;
  sigset_t old_;
  bool was_pending_ = false;
};

}  // namespace

ExecSink::ExecSink(ExecSinkOptions options) : options_(std::move(options)) {}

absl::Status ExecSink::Write(absl::Span<const Record> records, const WriteContext& context) {
  buffer_.clear();
  for (const Record& r : records) AppendJsonLine(r, &buffer_);

  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    return absl::UnavailableError(absl::StrCat("exec sink: pipe: ", std::strerror(errno)));
  }
  Fd read_end(pipe_fds[0]);
  Fd write_end(pipe_fds[1]);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, read_end.get(), STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, STDERR_FILENO, STDOUT_FILENO);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t defaults;
  sigemptyset(&defaults);
  for (int sig : {SIGPIPE, SIGTERM, SIGINT, SIGHUP}) sigaddset(&defaults, sig);
  sigset_t empty;
  sigemptyset(&empty);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setsigmask(&attr, &empty);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP);

  std::vector<std::string> env = ChildEnvironment(records.size(), options_.pass_env);
  std::vector<char*> envp;
  for (std::string& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::string sh = "/bin/sh";
  std::string dash_c = "-c";
  std::string command = options_.command;
  char* argv[] = {sh.data(), dash_c.data(), command.data(), nullptr};

  pid_t pid;
  int rc = posix_spawn(&pid, "/bin/sh", &actions, &attr, argv, envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    return absl::UnavailableError(
        absl::StrCat("exec sink: cannot start /bin/sh: ", std::strerror(rc)));
  }
  Child child(pid);
  read_end.Close();

  const absl::Time deadline = absl::Now() + options_.timeout;
  auto interrupted = [&]() -> absl::Status {
    if (context.ShouldAbandon()) {
      child.Kill();
      return absl::CancelledError("exec sink: batch abandoned, the Job is stopping");
    }
    if (absl::Now() >= deadline) {
      child.Kill();
      return absl::DeadlineExceededError(absl::StrCat("exec sink: command ran longer than ",
                                                      absl::FormatDuration(options_.timeout),
                                                      " and was killed"));
    }
    return absl::OkStatus();
  };

  // Feed stdin without blocking, so a command that stops reading cannot hang the Job.
  ::fcntl(write_end.get(), F_SETFL, O_NONBLOCK);
  size_t done = 0;
  NoSigpipe no_sigpipe;
  while (done < buffer_.size()) {
    ssize_t n = ::write(write_end.get(), buffer_.data() + done, buffer_.size() - done);
    if (n >= 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EPIPE) break;  // it stopped reading; its exit status decides
    if (errno != EAGAIN) {
      child.Kill();
      return absl::UnavailableError(
          absl::StrCat("exec sink: writing the batch: ", std::strerror(errno)));
    }
    if (absl::Status s = interrupted(); !s.ok()) return s;
    pollfd p{write_end.get(), POLLOUT, 0};
    ::poll(&p, 1, kPollMs);
  }
  write_end.Close();

  int status = 0;
  while (!child.WaitFor(kPollMs, &status)) {
    if (absl::Status s = interrupted(); !s.ok()) return s;
  }
  if (WIFEXITED(status)) {
    int code = WEXITSTATUS(status);
    if (code == 0) return absl::OkStatus();
    if (code == 126 || code == 127) {
      return absl::FailedPreconditionError(
          absl::StrCat("exec sink: the shell could not run the command (exit status ", code, ")"));
    }
    return absl::InvalidArgumentError(absl::StrCat("exec sink: command exited with status ", code));
  }
  // Killed (the OOM killer, an operator, a crash): the handler did not judge the records.
  return absl::UnavailableError(absl::StrCat("exec sink: command died of signal ",
                                             WIFSIGNALED(status) ? WTERMSIG(status) : 0));
}

}  // namespace klag::job
