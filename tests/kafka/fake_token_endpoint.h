// A tiny HTTP/1.1 server on 127.0.0.1:0 that stands in for an OAuth 2.0 token endpoint in
// tests: it records every request and answers with what the test's handler returns. One
// connection at a time, "Connection: close" after each answer.
//
//   FakeTokenEndpoint idp([](const HttpRequest& r) {
//     return HttpResponse{200, R"({"access_token":"t","token_type":"Bearer","expires_in":60})"};
//   });
//   // ... POST to idp.url() ...
//   EXPECT_EQ(idp.requests()[0].body, "grant_type=client_credentials");
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace klag::kafka::testing {

struct HttpRequest {
  std::string method;
  std::string target;                          // "/token"
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
};

struct HttpResponse {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  absl::Duration delay = absl::ZeroDuration();  // wait this long before answering
};

class FakeTokenEndpoint {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest&)>;

  // Starts serving at once. Aborts the test process if no socket can be opened.
  explicit FakeTokenEndpoint(Handler handler);
  ~FakeTokenEndpoint();
  FakeTokenEndpoint(const FakeTokenEndpoint&) = delete;
  FakeTokenEndpoint& operator=(const FakeTokenEndpoint&) = delete;

  // "http://127.0.0.1:<port>/token".
  std::string url() const;
  int port() const { return port_; }

  void SetHandler(Handler handler);
  // Every request so far, in order. Thread-safe.
  std::vector<HttpRequest> requests() const;
  // Waits up to `timeout` until at least `n` requests arrived; returns whether they did.
  bool WaitForRequests(size_t n, absl::Duration timeout) const;

 private:
  void Serve();
  void HandleConnection(int fd);

  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  mutable absl::Mutex mu_;
  Handler handler_ ABSL_GUARDED_BY(mu_);
  std::vector<HttpRequest> requests_ ABSL_GUARDED_BY(mu_);
};

// An unsecured JWS (header {"alg":"none"}, empty signature) with the claims Kafka's default
// OAUTHBEARER validator (OAuthBearerUnsecuredJws) checks: sub, iat, exp (seconds) and, when
// given, scope.
std::string UnsecuredJwt(const std::string& sub, absl::Time issued_at, absl::Time expires_at,
                         const std::string& scope = "");

}  // namespace klag::kafka::testing
