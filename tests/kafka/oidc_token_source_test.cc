// OidcTokenSource against a local token endpoint (tests/kafka/fake_token_endpoint.h), and the
// sasl.oauthbearer.config text form of its settings (kafka/oidc_config.h). Label unit.
#include "kafka/oidc_token_source.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "kafka/oidc_config.h"
#include "tests/kafka/fake_token_endpoint.h"

namespace klag::kafka {
namespace {

using ::klag::kafka::testing::FakeTokenEndpoint;
using ::klag::kafka::testing::HttpRequest;
using ::klag::kafka::testing::HttpResponse;
using ::klag::kafka::testing::UnsecuredJwt;
using ::testing::HasSubstr;
using ::testing::Not;

// Characters that form encoding changes, so the test sees the encoding.
constexpr char kSecret[] = "s3cr+t/SECRET=x y";

OidcClientConfig Config(const std::string& url) {
  return {.token_endpoint = url,
          .client_id = "klag client",
          .client_secret = kSecret,
          .scopes = {"kafka", "offsets.read"}};
}

std::unique_ptr<OidcTokenSource> Source(const std::string& url,
                                        OidcTokenSourceOptions options = {}) {
  absl::StatusOr<std::unique_ptr<OidcTokenSource>> source =
      OidcTokenSource::Create(Config(url), options);
  EXPECT_TRUE(source.ok()) << source.status();
  return source.ok() ? *std::move(source) : nullptr;
}

HttpResponse Json(int status, const std::string& body) { return HttpResponse{status, body}; }

void ExpectNoSecret(const absl::Status& status) {
  const std::string message(status.message());
  EXPECT_THAT(message, Not(HasSubstr("SECRET"))) << message;
  EXPECT_THAT(message, Not(HasSubstr(absl::Base64Escape("klag+client:s3cr%2Bt%2FSECRET%3Dx+y"))))
      << message;
}

TEST(OidcTokenSourceTest, PostsClientCredentialsWithBasicAuthAndScope) {
  const absl::Time now = absl::Now();
  const std::string jwt = UnsecuredJwt("svc-account", now, now + absl::Minutes(10), "kafka");
  FakeTokenEndpoint idp([&](const HttpRequest&) {
    return Json(200, absl::StrCat(R"({"access_token":")", jwt,
                                  R"(","token_type":"Bearer","expires_in":300})"));
  });
  auto source = Source(idp.url());
  ASSERT_NE(source, nullptr);
  const absl::Time before = absl::Now();
  absl::StatusOr<OidcToken> token = source->Fetch();
  const absl::Time after = absl::Now();
  ASSERT_TRUE(token.ok()) << token.status();

  ASSERT_EQ(idp.requests().size(), 1u);
  const HttpRequest request = idp.requests()[0];
  EXPECT_EQ(request.method, "POST");
  EXPECT_EQ(request.target, "/token");
  // RFC 6749 section 2.3.1: id and secret form-encoded, then Basic (as golang.org/x/oauth2).
  EXPECT_EQ(request.headers.at("authorization"),
            "Basic " + absl::Base64Escape("klag+client:s3cr%2Bt%2FSECRET%3Dx+y"));
  EXPECT_EQ(request.headers.at("content-type"), "application/x-www-form-urlencoded");
  EXPECT_EQ(request.body, "grant_type=client_credentials&scope=kafka+offsets.read");

  EXPECT_EQ(token->value, jwt);
  EXPECT_EQ(token->principal, "svc-account");  // the JWT's sub
  // expires_in wins over the JWT's exp.
  EXPECT_GE(token->expires_at, before + absl::Seconds(300));
  EXPECT_LE(token->expires_at, after + absl::Seconds(300));
}

TEST(OidcTokenSourceTest, NoScopesSendsOnlyTheGrantType) {
  FakeTokenEndpoint idp(
      [](const HttpRequest&) { return Json(200, R"({"access_token":"opaque","expires_in":60})"); });
  OidcClientConfig config = Config(idp.url());
  config.scopes.clear();
  absl::StatusOr<std::unique_ptr<OidcTokenSource>> source = OidcTokenSource::Create(config);
  ASSERT_TRUE(source.ok()) << source.status();
  ASSERT_TRUE((*source)->Fetch().ok());
  EXPECT_EQ(idp.requests().at(0).body, "grant_type=client_credentials");
}

TEST(OidcTokenSourceTest, ExpiryFromJwtExpWithoutExpiresIn) {
  const absl::Time exp = absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now()) + 900);
  const std::string jwt = UnsecuredJwt("from-jwt", absl::Now(), exp);
  FakeTokenEndpoint idp([&](const HttpRequest&) {
    return Json(200, absl::StrCat(R"({"access_token":")", jwt, R"(","token_type":"bearer"})"));
  });
  absl::StatusOr<OidcToken> token = Source(idp.url())->Fetch();
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(token->expires_at, exp);
  EXPECT_EQ(token->principal, "from-jwt");
}

TEST(OidcTokenSourceTest, OpaqueTokenTakesTheClientIdAsPrincipalAndStringExpiresIn) {
  FakeTokenEndpoint idp([](const HttpRequest&) {
    return Json(200, R"({"access_token":"not-a-jwt","token_type":"Bearer","expires_in":"3599"})");
  });
  const absl::Time before = absl::Now();
  absl::StatusOr<OidcToken> token = Source(idp.url())->Fetch();
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(token->value, "not-a-jwt");
  EXPECT_EQ(token->principal, "klag client");
  EXPECT_GE(token->expires_at, before + absl::Seconds(3599));
}

struct ErrorRow {
  std::string name;
  HttpResponse response;
  absl::StatusCode code;
  std::string fragment;
};

void PrintTo(const ErrorRow& row, std::ostream* os) { *os << row.name; }

class OidcTokenSourceErrorTest : public ::testing::TestWithParam<ErrorRow> {};

TEST_P(OidcTokenSourceErrorTest, MapsTheAnswerNamingTheEndpointNeverTheSecret) {
  const ErrorRow& row = GetParam();
  FakeTokenEndpoint idp([&](const HttpRequest&) { return row.response; });
  absl::StatusOr<OidcToken> token = Source(idp.url())->Fetch();
  ASSERT_FALSE(token.ok());
  EXPECT_EQ(token.status().code(), row.code) << token.status();
  EXPECT_THAT(std::string(token.status().message()),
              HasSubstr("OAuth token endpoint " + idp.url() + ": "));
  EXPECT_THAT(std::string(token.status().message()), HasSubstr(row.fragment));
  ExpectNoSecret(token.status());
}

INSTANTIATE_TEST_SUITE_P(
    Answers, OidcTokenSourceErrorTest,
    ::testing::Values(
        ErrorRow{"Http401",
                 Json(401, R"({"error":"invalid_client","error_description":"bad secret"})"),
                 absl::StatusCode::kUnauthenticated,
                 "refused the client credentials of client \"klag client\" (HTTP 401: "
                 "invalid_client: bad secret)"},
        ErrorRow{"Http401NotJson", HttpResponse{401, "nope", "text/plain"},
                 absl::StatusCode::kUnauthenticated, "(HTTP 401)"},
        ErrorRow{"Http400InvalidGrant", Json(400, R"({"error":"invalid_grant"})"),
                 absl::StatusCode::kUnauthenticated, "HTTP 400: invalid_grant"},
        ErrorRow{"Http400InvalidScope", Json(400, R"({"error":"invalid_scope"})"),
                 absl::StatusCode::kInvalidArgument,
                 "refused the token request (HTTP 400: invalid_scope)"},
        ErrorRow{"Http403", Json(403, "{}"), absl::StatusCode::kPermissionDenied, "HTTP 403"},
        ErrorRow{"Http503", HttpResponse{503, "down", "text/plain"}, absl::StatusCode::kUnavailable,
                 "unavailable (HTTP 503)"},
        ErrorRow{"BadJson", HttpResponse{200, "<html>login</html>", "text/html"},
                 absl::StatusCode::kUnknown, "HTTP 200 answer is not a JSON object (18 bytes)"},
        ErrorRow{"JsonNotObject", Json(200, R"(["access_token"])"), absl::StatusCode::kUnknown,
                 "not a JSON object"},
        ErrorRow{"NoAccessToken", Json(200, R"({"token_type":"Bearer","expires_in":60})"),
                 absl::StatusCode::kUnknown, "answer has no access_token"},
        ErrorRow{"NotBearer",
                 Json(200, R"({"access_token":"t","token_type":"mac","expires_in":60})"),
                 absl::StatusCode::kUnknown, "token_type is \"mac\", not Bearer"},
        ErrorRow{"NegativeExpiresIn", Json(200, R"({"access_token":"t","expires_in":-5})"),
                 absl::StatusCode::kUnknown, "expires_in is -5, not a positive number"},
        ErrorRow{"NoExpiry", Json(200, R"({"access_token":"opaque"})"), absl::StatusCode::kUnknown,
                 "no expires_in and the token is not a JWT"},
        // A server that echoes what it got (the Authorization header, the secret) in its error:
        // the message keeps the endpoint's words but not the credentials.
        ErrorRow{"EchoedCredentialsRedacted",
                 Json(401, absl::StrCat(R"({"error":"invalid_client","error_description":"got )",
                                        "Basic ",
                                        absl::Base64Escape("klag+client:s3cr%2Bt%2FSECRET%3Dx+y"),
                                        R"( and s3cr+t/SECRET=x y"})")),
                 absl::StatusCode::kUnauthenticated, "got Basic <redacted> and <redacted>"}),
    [](const auto& info) { return info.param.name; });

TEST(OidcTokenSourceTest, UnreachableEndpointIsUnavailable) {
  int closed_port = 0;
  {
    FakeTokenEndpoint gone([](const HttpRequest&) { return HttpResponse{}; });
    closed_port = gone.port();
  }
  auto source = Source(absl::StrCat("http://127.0.0.1:", closed_port, "/token"));
  const absl::Time start = absl::Now();
  absl::StatusOr<OidcToken> token = source->Fetch();
  EXPECT_EQ(token.status().code(), absl::StatusCode::kUnavailable) << token.status();
  EXPECT_THAT(std::string(token.status().message()), HasSubstr("request failed"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
}

TEST(OidcTokenSourceTest, SlowEndpointIsDeadlineExceededAtTheTimeout) {
  FakeTokenEndpoint idp([](const HttpRequest&) {
    HttpResponse slow = Json(200, R"({"access_token":"t","expires_in":60})");
    slow.delay = absl::Seconds(3);
    return slow;
  });
  auto source = Source(idp.url(), {.timeout = absl::Milliseconds(500)});
  const absl::Time start = absl::Now();
  absl::StatusOr<OidcToken> token = source->Fetch();
  const absl::Duration took = absl::Now() - start;
  EXPECT_EQ(token.status().code(), absl::StatusCode::kDeadlineExceeded) << token.status();
  EXPECT_GE(took, absl::Milliseconds(450));
  EXPECT_LT(took, absl::Milliseconds(1500));
}

TEST(OidcTokenSourceTest, CreateRefusesBadSettings) {
  OidcClientConfig ftp = Config("ftp://idp/token");
  EXPECT_EQ(OidcTokenSource::Create(ftp).status().code(), absl::StatusCode::kInvalidArgument);
  OidcClientConfig no_secret = Config("https://idp/token");
  no_secret.client_secret.clear();
  absl::Status status = OidcTokenSource::Create(no_secret).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("client secret"));
}

TEST(FormUrlEncodeTest, EncodesAsGoQueryEscape) {
  EXPECT_EQ(internal::FormUrlEncode("aZ09-._~"), "aZ09-._~");
  EXPECT_EQ(internal::FormUrlEncode("a b+c/d=e&f%"), "a+b%2Bc%2Fd%3De%26f%25");
  EXPECT_EQ(internal::FormUrlEncode("\xc3\xa9"), "%C3%A9");
}

// ---------------------------------------------------------------------------------------------
// sasl.oauthbearer.config text.

TEST(OauthbearerConfigTest, RoundTripsEveryField) {
  const OidcClientConfig config{.token_endpoint = "https://idp.example.com/t?x=1&y=2",
                                .client_id = "id with space",
                                .client_secret = "p=w %20 SECRET",
                                .scopes = {"a", "b.c"},
                                .extensions = {{"logicalCluster", "lkc-1"}, {"pool", "p 2=x"}}};
  const std::string text = FormatOauthbearerConfig(config);
  EXPECT_TRUE(IsKlagOauthbearerConfig(text));
  EXPECT_THAT(text, ::testing::StartsWith("klag-oidc-client-credentials token_endpoint=https%3A"));
  EXPECT_THAT(text, Not(HasSubstr("p=w")));  // values are encoded: no '=' or ' ' inside
  absl::StatusOr<OidcClientConfig> back = ParseOauthbearerConfig(text);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, config);
}

TEST(OauthbearerConfigTest, ParseErrorsNeverEchoValues) {
  EXPECT_FALSE(IsKlagOauthbearerConfig("principal=admin"));
  for (const std::string& text :
       {std::string("principal=admin"), std::string("klag-oidc-client-credentials SECRET"),
        std::string("klag-oidc-client-credentials client_secret=SECRET%zz"),
        std::string("klag-oidc-client-credentials client_id=a client_secret=SECRET"),
        std::string("klag-oidc-client-credentials token_endpoint=x client_id=a "
                    "client_secret=SECRET client_secret=SECRET2"),
        std::string("klag-oidc-client-credentials token_endpoint=x client_id=a "
                    "client_secret=SECRET color=SECRET")}) {
    absl::StatusOr<OidcClientConfig> config = ParseOauthbearerConfig(text);
    ASSERT_FALSE(config.ok()) << text;
    EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(config.status().message()), HasSubstr("sasl.oauthbearer.config: "));
    EXPECT_THAT(std::string(config.status().message()), Not(HasSubstr("SECRET"))) << text;
  }
}

}  // namespace
}  // namespace klag::kafka
