// klag's OIDC token refresh inside librdkafka clients (kafka/rdkafka_oauth.h, wired by
// rdkafka::NewConf/NewHandle), against a local token endpoint; and GSSAPI's mapping against the
// installed librdkafka. No broker (label unit): the e2e test (rdkafka_auth_e2e_test) logs in
// with these tokens.
#include "kafka/rdkafka_oauth.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "kafka/connection_config.h"
#include "kafka/rdkafka_handle.h"
#include "tests/kafka/fake_token_endpoint.h"

namespace klag::kafka {
namespace {

using ::klag::kafka::testing::FakeTokenEndpoint;
using ::klag::kafka::testing::HttpRequest;
using ::klag::kafka::testing::HttpResponse;
using ::klag::kafka::testing::UnsecuredJwt;
using ::testing::HasSubstr;
using ::testing::Not;

// A port nothing listens on: the clients never reach a broker; token refreshes do not need one.
int ClosedPort() {
  FakeTokenEndpoint gone([](const HttpRequest&) { return HttpResponse{}; });
  return gone.port();
}

RdkafkaProperties OAuthProperties(const std::string& endpoint) {
  const SettingMap keda = {{"bootstrapServers", absl::StrCat("127.0.0.1:", ClosedPort())},
                           {"sasl", "oauthbearer"},
                           {"username", "klag-client"},
                           {"password", "pw-SECRET"},
                           {"oauthTokenEndpointUri", endpoint},
                           {"scopes", "kafka,offsets"},
                           {"oauthExtensions", "logicalCluster=lkc-1"}};
  absl::StatusOr<ConnectionConfig> config = ParseConnectionConfig(keda);
  EXPECT_TRUE(config.ok()) << config.status();
  absl::StatusOr<RdkafkaProperties> props = ToRdkafkaProperties(*config);
  EXPECT_TRUE(props.ok()) << props.status();
  return *props;
}

TEST(RdkafkaOAuthTest, NewHandleFetchesATokenInTheBackgroundWithoutPolling) {
  const absl::Time now = absl::Now();
  FakeTokenEndpoint idp([&](const HttpRequest&) {
    return HttpResponse{
        200, absl::StrCat(R"({"access_token":")", UnsecuredJwt("klag", now, now + absl::Hours(1)),
                          R"(","token_type":"Bearer","expires_in":3600})")};
  });
  absl::StatusOr<rdkafka::HandlePtr> rk =
      rdkafka::NewHandle(RD_KAFKA_CONSUMER, OAuthProperties(idp.url()));
  ASSERT_TRUE(rk.ok()) << rk.status();
  // Nobody calls rd_kafka_poll: librdkafka's background thread runs the refresh callback.
  ASSERT_TRUE(idp.WaitForRequests(1, absl::Seconds(10)));
  const HttpRequest request = idp.requests()[0];
  EXPECT_EQ(request.headers.at("authorization"),
            "Basic " + absl::Base64Escape("klag-client:pw-SECRET"));
  EXPECT_EQ(request.body, "grant_type=client_credentials&scope=kafka+offsets");
  // One token for its lifetime: no second request right away.
  absl::SleepFor(absl::Milliseconds(500));
  EXPECT_EQ(idp.requests().size(), 1u);
}

struct ErrorLog {
  absl::Mutex mu;
  std::vector<std::pair<rd_kafka_resp_err_t, std::string>> errors ABSL_GUARDED_BY(mu);
};

void OnError(rd_kafka_t* /*rk*/, int err, const char* reason, void* opaque) {
  auto* log = static_cast<ErrorLog*>(opaque);
  absl::MutexLock lock(&log->mu);
  log->errors.emplace_back(static_cast<rd_kafka_resp_err_t>(err), reason);
}

TEST(RdkafkaOAuthTest, RefusedCredentialsReachTheErrorCallbackAsAuthenticationWithoutSecret) {
  FakeTokenEndpoint idp([](const HttpRequest&) {
    return HttpResponse{401, R"({"error":"invalid_client"})"};
  });
  ErrorLog log;
  absl::StatusOr<rdkafka::HandlePtr> rk = rdkafka::NewHandle(
      RD_KAFKA_CONSUMER, OAuthProperties(idp.url()), [&log](rd_kafka_conf_t* conf) {
        rd_kafka_conf_set_opaque(conf, &log);
        rd_kafka_conf_set_error_cb(conf, &OnError);
      });
  ASSERT_TRUE(rk.ok()) << rk.status();
  std::string reason;
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (reason.empty() && absl::Now() < give_up) {
    rd_kafka_poll(rk->get(), 100);  // the error callback is served here
    absl::MutexLock lock(&log.mu);
    for (const auto& [err, text] : log.errors) {
      if (err == RD_KAFKA_RESP_ERR__AUTHENTICATION) reason = text;
    }
  }
  ASSERT_FALSE(reason.empty()) << "no __AUTHENTICATION error within 10 s";
  EXPECT_THAT(reason, HasSubstr("OAUTHBEARER token"));
  EXPECT_THAT(reason, HasSubstr("OAuth token endpoint " + idp.url()));
  EXPECT_THAT(reason, HasSubstr("refused the client credentials of client \"klag-client\""));
  EXPECT_THAT(reason, Not(HasSubstr("SECRET")));
}

TEST(RdkafkaOAuthTest, NewConfRefusesBrokenOidcSettingsWithoutEchoingThem) {
  const RdkafkaProperties props = {
      {"bootstrap.servers", "127.0.0.1:9092"},
      {"security.protocol", "SASL_PLAINTEXT"},
      {"sasl.mechanisms", "OAUTHBEARER"},
      {"sasl.oauthbearer.config",
       FormatOauthbearerConfig(
           {.token_endpoint = "ftp://idp/t", .client_id = "c", .client_secret = "pw-SECRET"})}};
  absl::StatusOr<rdkafka::ConfPtr> conf = rdkafka::NewConf(props);
  ASSERT_FALSE(conf.ok());
  EXPECT_EQ(conf.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(conf.status().message()), HasSubstr("not an http:// or https:// URL"));
  EXPECT_THAT(std::string(conf.status().message()), Not(HasSubstr("SECRET")));
}

TEST(RdkafkaOAuthTest, OtherOauthbearerConfigsAreLeftToLibrdkafka) {
  // librdkafka's own unsecured-JWT settings are not klag's: no callback, no validation.
  absl::StatusOr<std::optional<OidcClientConfig>> settings = rdkafka::OidcSettings(
      {{"sasl.mechanisms", "OAUTHBEARER"}, {"sasl.oauthbearer.config", "principal=admin"}});
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_FALSE(settings->has_value());
}

// ---------------------------------------------------------------------------------------------
// GSSAPI: no KDC here, so only what the installed librdkafka says about the mapping.

TEST(RdkafkaGssapiTest, LibrdkafkaHasGssapiAndAcceptsTheMappedProperties) {
  rdkafka::ConfPtr conf(rd_kafka_conf_new());
  char features[512];
  size_t size = sizeof(features);
  ASSERT_EQ(rd_kafka_conf_get(conf.get(), "builtin.features", features, &size), RD_KAFKA_CONF_OK);
  EXPECT_TRUE(absl::StrContains(absl::StrCat(",", features, ","), ",sasl_gssapi,")) << features;

  absl::StatusOr<ConnectionConfig> config =
      ParseConnectionConfig({{"bootstrapServers", absl::StrCat("127.0.0.1:", ClosedPort())},
                             {"sasl", "gssapi"},
                             {"username", "klag"},
                             {"realm", "EXAMPLE.COM"},
                             {"keytab", "/etc/klag/klag.keytab"},
                             {"kerberosServiceName", "kafka"}},
                            {.kerberos_keytab_dir = "/etc/klag"});
  ASSERT_TRUE(config.ok()) << config.status();
  absl::StatusOr<RdkafkaProperties> props = ToRdkafkaProperties(*config);
  ASSERT_TRUE(props.ok()) << props.status();
  char errstr[512];
  for (const auto& [name, value] : *props) {
    EXPECT_EQ(rd_kafka_conf_set(conf.get(), name.c_str(), value.c_str(), errstr, sizeof(errstr)),
              RD_KAFKA_CONF_OK)
        << name << ": " << errstr;
  }
  // librdkafka creates the client (it runs `kinit` for the keytab in the background, which
  // fails here without Kerberos tools; that is logged, not an error of rd_kafka_new).
  absl::StatusOr<rdkafka::HandlePtr> rk = rdkafka::NewHandle(RD_KAFKA_CONSUMER, *props);
  EXPECT_TRUE(rk.ok()) << rk.status();
}

}  // namespace
}  // namespace klag::kafka
