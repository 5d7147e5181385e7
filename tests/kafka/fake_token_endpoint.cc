#include "tests/kafka/fake_token_endpoint.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "nlohmann/json.hpp"

namespace klag::kafka::testing {
namespace {

[[noreturn]] void Die(const char* what) {
  std::perror(what);
  std::abort();
}

absl::string_view Reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Status";
  }
}

// Reads until `fd` is closed, `out` holds `want` bytes, or 5 s pass without data.
bool ReadMore(int fd, std::string* out) {
  pollfd p{fd, POLLIN, 0};
  if (poll(&p, 1, 5000) <= 0) return false;
  char buffer[4096];
  const ssize_t n = read(fd, buffer, sizeof(buffer));
  if (n <= 0) return false;
  out->append(buffer, static_cast<size_t>(n));
  return true;
}

void WriteAll(int fd, absl::string_view data) {
  while (!data.empty()) {
    const ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return;  // the client went away (a timeout test): nothing to do
    data.remove_prefix(static_cast<size_t>(n));
  }
}

}  // namespace

FakeTokenEndpoint::FakeTokenEndpoint(Handler handler) : handler_(std::move(handler)) {
  listen_fd_ = socket(AF_INET, SOCK_STREAM, 0);
  if (listen_fd_ < 0) Die("socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) Die("bind");
  if (listen(listen_fd_, 16) != 0) Die("listen");
  socklen_t len = sizeof(addr);
  if (getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) Die("getsockname");
  port_ = ntohs(addr.sin_port);
  thread_ = std::thread([this] { Serve(); });
}

FakeTokenEndpoint::~FakeTokenEndpoint() {
  stop_.store(true);
  thread_.join();
  close(listen_fd_);
}

std::string FakeTokenEndpoint::url() const {
  return absl::StrCat("http://127.0.0.1:", port_, "/token");
}

void FakeTokenEndpoint::SetHandler(Handler handler) {
  absl::MutexLock lock(&mu_);
  handler_ = std::move(handler);
}

std::vector<HttpRequest> FakeTokenEndpoint::requests() const {
  absl::MutexLock lock(&mu_);
  return requests_;
}

bool FakeTokenEndpoint::WaitForRequests(size_t n, absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto enough = [this, n]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return requests_.size() >= n; };
  return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
}

void FakeTokenEndpoint::Serve() {
  while (!stop_.load()) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (poll(&p, 1, 50) <= 0) continue;
    const int fd = accept(listen_fd_, nullptr, nullptr);
    if (fd < 0) continue;
    HandleConnection(fd);
    close(fd);
  }
}

void FakeTokenEndpoint::HandleConnection(int fd) {
  std::string data;
  size_t header_end = std::string::npos;
  while ((header_end = data.find("\r\n\r\n")) == std::string::npos) {
    if (!ReadMore(fd, &data)) return;
  }
  HttpRequest request;
  std::vector<std::string> lines = absl::StrSplit(data.substr(0, header_end), "\r\n");
  std::vector<std::string> first = absl::StrSplit(lines[0], ' ');
  if (first.size() >= 2) {
    request.method = first[0];
    request.target = first[1];
  }
  size_t content_length = 0;
  for (size_t i = 1; i < lines.size(); ++i) {
    const size_t colon = lines[i].find(':');
    if (colon == std::string::npos) continue;
    std::string name = absl::AsciiStrToLower(lines[i].substr(0, colon));
    std::string value(absl::StripAsciiWhitespace(lines[i].substr(colon + 1)));
    if (name == "content-length") (void)absl::SimpleAtoi(value, &content_length);
    request.headers[name] = value;
  }
  std::string body = data.substr(header_end + 4);
  while (body.size() < content_length) {
    if (!ReadMore(fd, &body)) return;
  }
  request.body = body.substr(0, content_length);
  Handler handler;
  {
    absl::MutexLock lock(&mu_);
    requests_.push_back(request);
    handler = handler_;
  }
  const HttpResponse response = handler(request);
  const absl::Time answer_at = absl::Now() + response.delay;
  while (absl::Now() < answer_at && !stop_.load()) absl::SleepFor(absl::Milliseconds(10));
  WriteAll(fd, absl::StrCat("HTTP/1.1 ", response.status, " ", Reason(response.status),
                            "\r\nContent-Type: ", response.content_type, "\r\nContent-Length: ",
                            response.body.size(), "\r\nConnection: close\r\n\r\n", response.body));
}

std::string UnsecuredJwt(const std::string& sub, absl::Time issued_at, absl::Time expires_at,
                         const std::string& scope) {
  nlohmann::json claims = {{"sub", sub},
                           {"iat", absl::ToUnixSeconds(issued_at)},
                           {"exp", absl::ToUnixSeconds(expires_at)}};
  if (!scope.empty()) claims["scope"] = scope;
  return absl::StrCat(absl::WebSafeBase64Escape(R"({"alg":"none"})"), ".",
                      absl::WebSafeBase64Escape(claims.dump()), ".");
}

}  // namespace klag::kafka::testing
