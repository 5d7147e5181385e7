// Credentials end to end: KEDA's connection keys -> kafka::ParseConnectionConfig ->
// RdkafkaOffsetReader -> a secured Kafka broker (scripts/kafka.sh start --security, started
// once per test process in a temporary state dir, of the version in KLAG_KAFKA_VERSION: the
// version matrix of scripts/test.sh runs this suite against 3.9.x and 4.x). Covers SASL PLAIN /
// SCRAM-SHA-256 / SCRAM-SHA-512 (and SCRAM over TLS), wrong passwords, TLS with a CA, unsafeSsl, no
// CA, mutual TLS (plain and encrypted keys), ACL denials, and OAUTHBEARER with OIDC client
// credentials from a local token endpoint minting unsecured JWTs. Every error message is checked
// for secrets. Label e2e: runs with the real-broker suite (KLAG_TEST_BOOTSTRAP set), although it
// talks to its own broker only.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "kafka/connection_config.h"
#include "kafka/rdkafka_handle.h"
#include "kafka/rdkafka_offset_reader.h"
#include "tests/kafka/fake_token_endpoint.h"
#include "tests/testing/kafka_admin.h"
#include "tests/testing/test_env.h"

namespace klag::kafka {
namespace {

using ::klag::kafka::testing::FakeTokenEndpoint;
using ::klag::kafka::testing::HttpRequest;
using ::klag::kafka::testing::HttpResponse;
using ::klag::kafka::testing::UnsecuredJwt;
using ::klag::testing::UniqueName;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr absl::Duration kDeadline = absl::Seconds(10);
// Failures are expected to come at the latest at the deadline: a short one keeps the suite fast.
constexpr absl::Duration kFailDeadline = absl::Seconds(4);
// What "at the deadline" may overrun by on 2 busy cores.
constexpr absl::Duration kSlack = absl::Milliseconds(500);

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Runs scripts/kafka.sh with `state`; returns whether it exited 0 (stderr goes to a file there).
bool KafkaSh(const std::string& state, const std::string& args) {
  const std::string command =
      absl::StrCat("'", KLAG_SOURCE_DIR, "/scripts/kafka.sh' --state '", state, "' ", args,
                   " >/dev/null 2>>'", state, "/kafka-sh.err'");
  return std::system(command.c_str()) == 0;
}

// The secured broker of this test process: started on first use, stopped (and its state dir
// removed) when the process ends.
class SecuredBroker {
 public:
  static SecuredBroker& Get() {
    static SecuredBroker* broker = new SecuredBroker();
    return *broker;
  }
  static void StopIfStarted() {
    if (started_ != nullptr) started_->Stop();
  }

  bool ok() const { return ok_; }
  const std::string& error() const { return error_; }
  // A value from <state>/listeners ("" when absent).
  std::string L(const std::string& key) const {
    auto it = listeners_.find(key);
    return it == listeners_.end() ? "" : it->second;
  }
  std::string Pem(const std::string& key) const { return ReadFile(L(key)); }

 private:
  SecuredBroker() {
    char dir[] = "/tmp/klag-auth-broker-XXXXXX";
    state_ = mkdtemp(dir);
    const absl::Time start = absl::Now();
    ok_ = KafkaSh(state_, "start --fresh --security");
    if (!ok_) {
      error_ = ReadFile(state_ + "/kafka-sh.err");
      return;
    }
    // The version leg of scripts/test.sh must test the broker version it names.
    const std::string version(absl::StripAsciiWhitespace(ReadFile(state_ + "/version")));
    const char* wanted = std::getenv("KLAG_KAFKA_VERSION");
    if (wanted != nullptr && *wanted != '\0' && version != wanted) {
      ok_ = false;
      error_ = absl::StrCat("KLAG_KAFKA_VERSION=", wanted, " but the broker runs Kafka ", version);
      Stop();
      return;
    }
    for (absl::string_view line : absl::StrSplit(ReadFile(state_ + "/listeners"), '\n')) {
      std::pair<std::string, std::string> kv = absl::StrSplit(line, absl::MaxSplits('=', 1));
      if (!kv.first.empty()) listeners_[kv.first] = kv.second;
    }
    std::printf("secured Kafka %s broker up in %.1f s: %s\n", version.c_str(),
                absl::ToDoubleSeconds(absl::Now() - start),
                ReadFile(state_ + "/listeners").c_str());
    started_ = this;
  }
  void Stop() {
    (void)KafkaSh(state_, "stop");
    std::error_code ignored;
    std::filesystem::remove_all(state_, ignored);
  }

  static inline SecuredBroker* started_ = nullptr;
  std::string state_;
  bool ok_ = false;
  std::string error_;
  std::map<std::string, std::string> listeners_;
};

class StopBrokerAtExit : public ::testing::Environment {
 public:
  void TearDown() override { SecuredBroker::StopIfStarted(); }
};
const ::testing::Environment* const kStopBroker =
    ::testing::AddGlobalTestEnvironment(new StopBrokerAtExit);

// Declares `broker` (a started SecuredBroker&), or skips/fails like KLAG_REQUIRE_BROKER.
#define KLAG_REQUIRE_SECURED_BROKER(broker)     \
  KLAG_REQUIRE_BROKER(shared_bootstrap_unused); \
  (void)shared_bootstrap_unused;                \
  SecuredBroker& broker = SecuredBroker::Get(); \
  ASSERT_TRUE(broker.ok()) << "kafka.sh start --security failed: " << broker.error()

// ---------------------------------------------------------------------------------------------
// ACLs through the admin API on the PLAINTEXT port (ANONYMOUS is a super user there).

using AclBindingPtr = std::unique_ptr<rd_kafka_AclBinding_t, void (*)(rd_kafka_AclBinding_t*)>;

struct Resource {
  rd_kafka_ResourceType_t type;
  std::string name;
};

// Allows DESCRIBE (all the reader needs: Metadata, ListOffsets, FindCoordinator, OffsetFetch)
// on `resources` to `principal`, and waits until the broker's authorizer lists the ACLs.
absl::Status AllowDescribe(const std::string& plaintext, const std::string& principal,
                           const std::vector<Resource>& resources) {
  absl::StatusOr<rdkafka::HandlePtr> rk =
      rdkafka::NewHandle(RD_KAFKA_PRODUCER, {{"bootstrap.servers", plaintext}});
  if (!rk.ok()) return rk.status();
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  std::vector<AclBindingPtr> owned;
  std::vector<rd_kafka_AclBinding_t*> acls;
  char errstr[256];
  for (const Resource& r : resources) {
    owned.emplace_back(
        rd_kafka_AclBinding_new(r.type, r.name.c_str(), RD_KAFKA_RESOURCE_PATTERN_LITERAL,
                                principal.c_str(), "*", RD_KAFKA_ACL_OPERATION_DESCRIBE,
                                RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW, errstr, sizeof(errstr)),
        &rd_kafka_AclBinding_destroy);
    if (owned.back() == nullptr) return absl::InvalidArgumentError(errstr);
    acls.push_back(owned.back().get());
  }
  absl::StatusOr<rdkafka::EventPtr> created = rdkafka::AwaitAdminResult(
      rk->get(), deadline, RD_KAFKA_EVENT_CREATEACLS_RESULT, "CreateAcls",
      [&](const rd_kafka_AdminOptions_t* options, rd_kafka_queue_t* queue) {
        rd_kafka_CreateAcls(rk->get(), acls.data(), acls.size(), options, queue);
      });
  if (!created.ok()) return created.status();
  size_t count = 0;
  const rd_kafka_acl_result_t** results =
      rd_kafka_CreateAcls_result_acls(rd_kafka_event_CreateAcls_result(created->get()), &count);
  for (size_t i = 0; i < count; ++i) {
    if (const rd_kafka_error_t* error = rd_kafka_acl_result_error(results[i])) {
      return absl::InternalError(absl::StrCat("CreateAcls: ", rd_kafka_error_string(error)));
    }
  }
  // The authorizer applies ACLs from the metadata log; DescribeAcls answers from it.
  AclBindingPtr filter(
      rd_kafka_AclBindingFilter_new(RD_KAFKA_RESOURCE_ANY, nullptr, RD_KAFKA_RESOURCE_PATTERN_ANY,
                                    principal.c_str(), nullptr, RD_KAFKA_ACL_OPERATION_ANY,
                                    RD_KAFKA_ACL_PERMISSION_TYPE_ANY, errstr, sizeof(errstr)),
      &rd_kafka_AclBinding_destroy);
  while (absl::Now() < deadline) {
    absl::StatusOr<rdkafka::EventPtr> described = rdkafka::AwaitAdminResult(
        rk->get(), deadline, RD_KAFKA_EVENT_DESCRIBEACLS_RESULT, "DescribeAcls",
        [&](const rd_kafka_AdminOptions_t* options, rd_kafka_queue_t* queue) {
          rd_kafka_DescribeAcls(rk->get(), filter.get(), options, queue);
        });
    if (!described.ok()) return described.status();
    size_t listed = 0;
    (void)rd_kafka_DescribeAcls_result_acls(rd_kafka_event_DescribeAcls_result(described->get()),
                                            &listed);
    if (listed >= resources.size()) return absl::OkStatus();
    absl::SleepFor(absl::Milliseconds(100));
  }
  return absl::DeadlineExceededError("ACLs not visible after 30 s");
}

// ---------------------------------------------------------------------------------------------
// Data: one topic, two partitions, a group with commits; readers must see exactly this.

struct Data {
  std::string topic;
  std::string group;
  std::vector<PartitionOffsets> expected;
};

Data MakeData(const std::string& plaintext, const std::string& prefix) {
  Data d{UniqueName(prefix + "-topic"), UniqueName(prefix + "-group"), {}};
  EXPECT_TRUE(klag::testing::CreateTopic(plaintext, d.topic, 2).ok());
  EXPECT_TRUE(klag::testing::Produce(plaintext, d.topic, 0, 5).ok());
  EXPECT_TRUE(klag::testing::Produce(plaintext, d.topic, 1, 3).ok());
  EXPECT_TRUE(
      klag::testing::CommitOffsets(plaintext, d.group, {{d.topic, 0, 2}, {d.topic, 1, 3}}).ok());
  d.expected = {PartitionOffsets{d.topic, 0, 2, 0, 5}, PartitionOffsets{d.topic, 1, 3, 0, 3}};
  return d;
}

// ---------------------------------------------------------------------------------------------
// One evaluation through KEDA's keys, timed.

struct Outcome {
  absl::StatusOr<GroupOffsets> offsets;
  absl::Duration took;
};

Outcome Evaluate(const SettingMap& keys, const Data& data, absl::Duration deadline) {
  absl::StatusOr<ConnectionConfig> config = ParseConnectionConfig(keys);
  if (!config.ok()) return {config.status(), absl::ZeroDuration()};
  absl::StatusOr<std::unique_ptr<RdkafkaOffsetReader>> reader =
      RdkafkaOffsetReader::Create(*config);
  if (!reader.ok()) return {reader.status(), absl::ZeroDuration()};
  const absl::Time start = absl::Now();
  absl::StatusOr<GroupOffsets> offsets =
      (*reader)->ReadOffsets({.group = data.group, .topics = {data.topic}}, start + deadline);
  return {std::move(offsets), absl::Now() - start};
}

void Print(const std::string& name, const Outcome& o) {
  std::printf("%-44s %-18s %6.0f ms  %s\n", name.c_str(),
              absl::StatusCodeToString(o.offsets.status().code()).c_str(),
              absl::ToDoubleMilliseconds(o.took),
              o.offsets.ok() ? "" : std::string(o.offsets.status().message()).c_str());
}

// No secret of the secured broker (nor `extra`) in a message.
void ExpectNoSecrets(const SecuredBroker& b, const absl::Status& status,
                     const std::vector<std::string>& extra = {}) {
  const std::string message(status.message());
  std::vector<std::string> secrets = {b.L("password"), b.L("admin_password"),
                                      b.L("client_key_password"), "BEGIN", "PRIVATE KEY"};
  secrets.insert(secrets.end(), extra.begin(), extra.end());
  for (const std::string& secret : secrets) {
    if (secret.empty()) continue;
    EXPECT_THAT(message, Not(HasSubstr(secret))) << "secret in: " << message;
  }
}

// The offsets without PartitionOffsets::unconsumed_since (an estimate from the reader's history,
// tested in lag_seconds_e2e_test), for exact comparisons.
std::vector<PartitionOffsets> WithoutEstimates(std::vector<PartitionOffsets> partitions) {
  for (PartitionOffsets& p : partitions) p.unconsumed_since.reset();
  return partitions;
}

void ExpectExact(const std::string& name, const Outcome& o, const Data& data) {
  Print(name, o);
  ASSERT_TRUE(o.offsets.ok()) << name << ": " << o.offsets.status();
  EXPECT_EQ(WithoutEstimates(o.offsets->partitions), data.expected) << name;
}

SettingMap Sasl(const std::string& bootstrap, const std::string& mechanism, const std::string& user,
                const std::string& password) {
  return {{"bootstrapServers", bootstrap},
          {"sasl", mechanism},
          {"username", user},
          {"password", password}};
}

// ---------------------------------------------------------------------------------------------

TEST(RdkafkaAuthE2eTest, SaslPlainAndScramReadExactOffsets) {
  KLAG_REQUIRE_SECURED_BROKER(b);
  const Data data = MakeData(b.L("plaintext"), "auth-sasl");
  ASSERT_TRUE(
      AllowDescribe(b.L("plaintext"), "User:" + b.L("user"),
                    {{RD_KAFKA_RESOURCE_TOPIC, data.topic}, {RD_KAFKA_RESOURCE_GROUP, data.group}})
          .ok());
  for (const std::string mechanism : {"plaintext", "scram_sha256", "scram_sha512"}) {
    ExpectExact("SASL_PLAINTEXT " + mechanism,
                Evaluate(Sasl(b.L("sasl_plaintext"), mechanism, b.L("user"), b.L("password")), data,
                         kDeadline),
                data);
  }
  // SCRAM over TLS (SASL_SSL), the CA given as PEM text as KEDA passes it.
  SettingMap sasl_ssl = Sasl(b.L("sasl_ssl"), "scram_sha512", b.L("user"), b.L("password"));
  sasl_ssl["tls"] = "enable";
  sasl_ssl["ca"] = b.Pem("ca");
  ExpectExact("SASL_SSL scram_sha512 + ca", Evaluate(sasl_ssl, data, kDeadline), data);
}

TEST(RdkafkaAuthE2eTest, WrongPasswordIsUnauthenticatedByTheDeadline) {
  KLAG_REQUIRE_SECURED_BROKER(b);
  const Data data = MakeData(b.L("plaintext"), "auth-wrong");
  const std::string wrong = "wrong-pw-9f2c";
  for (const std::string mechanism : {"plaintext", "scram_sha256", "scram_sha512"}) {
    const Outcome o =
        Evaluate(Sasl(b.L("sasl_plaintext"), mechanism, b.L("user"), wrong), data, kFailDeadline);
    Print("wrong password " + mechanism, o);
    EXPECT_EQ(o.offsets.status().code(), absl::StatusCode::kUnauthenticated) << o.offsets.status();
    EXPECT_THAT(std::string(o.offsets.status().message()), HasSubstr("Authentication failed"));
    EXPECT_THAT(std::string(o.offsets.status().message()), HasSubstr(b.L("sasl_plaintext")));
    EXPECT_LE(o.took, kFailDeadline + kSlack);
    ExpectNoSecrets(b, o.offsets.status(), {wrong});
  }
  // An unknown user is the same answer (no user enumeration, no different code).
  const Outcome unknown =
      Evaluate(Sasl(b.L("sasl_plaintext"), "scram_sha256", "mallory", wrong), data, kFailDeadline);
  Print("unknown user scram_sha256", unknown);
  EXPECT_EQ(unknown.offsets.status().code(), absl::StatusCode::kUnauthenticated);
}

TEST(RdkafkaAuthE2eTest, TlsWithCaUnsafeSslAndWithoutCa) {
  KLAG_REQUIRE_SECURED_BROKER(b);
  const Data data = MakeData(b.L("plaintext"), "auth-tls");
  // The SSL listener's clients are ANONYMOUS, a super user: no ACLs needed.
  ExpectExact("SSL tls=enable + ca",
              Evaluate({{"bootstrapServers", b.L("ssl")}, {"tls", "enable"}, {"ca", b.Pem("ca")}},
                       data, kDeadline),
              data);
  // unsafeSsl: the broker's certificate is signed by a CA the client does not know.
  ExpectExact("SSL tls=enable unsafeSsl=true, no ca",
              Evaluate({{"bootstrapServers", b.L("ssl")}, {"tls", "enable"}, {"unsafeSsl", "true"}},
                       data, kDeadline),
              data);
  // Without ca the system trust store cannot verify the broker: the handshake fails
  // (librdkafka __SSL "certificate verify failed"); klag reports the cluster unreachable.
  const Outcome no_ca =
      Evaluate({{"bootstrapServers", b.L("ssl")}, {"tls", "enable"}}, data, kFailDeadline);
  Print("SSL tls=enable, no ca", no_ca);
  EXPECT_EQ(no_ca.offsets.status().code(), absl::StatusCode::kUnavailable)
      << no_ca.offsets.status();
  EXPECT_THAT(std::string(no_ca.offsets.status().message()),
              HasSubstr("certificate verify failed"));
  EXPECT_LE(no_ca.took, kFailDeadline + kSlack);
  ExpectNoSecrets(b, no_ca.offsets.status());
}

TEST(RdkafkaAuthE2eTest, MutualTls) {
  KLAG_REQUIRE_SECURED_BROKER(b);
  const Data data = MakeData(b.L("plaintext"), "auth-mtls");
  ASSERT_TRUE(
      AllowDescribe(b.L("plaintext"), b.L("client_principal"),
                    {{RD_KAFKA_RESOURCE_TOPIC, data.topic}, {RD_KAFKA_RESOURCE_GROUP, data.group}})
          .ok());
  const SettingMap base = {
      {"bootstrapServers", b.L("mtls")}, {"tls", "enable"}, {"ca", b.Pem("ca")}};
  SettingMap mtls = base;
  mtls["cert"] = b.Pem("client_cert");
  mtls["key"] = b.Pem("client_key");
  ExpectExact("MTLS cert + key", Evaluate(mtls, data, kDeadline), data);

  SettingMap encrypted = base;
  encrypted["cert"] = b.Pem("client_cert");
  encrypted["key"] = b.Pem("client_key_encrypted");
  encrypted["keyPassword"] = b.L("client_key_password");
  ExpectExact("MTLS cert + encrypted key + keyPassword", Evaluate(encrypted, data, kDeadline),
              data);

  // No client certificate where the listener requires one: the broker ends the handshake.
  const Outcome no_cert = Evaluate(base, data, kFailDeadline);
  Print("MTLS without a client certificate", no_cert);
  EXPECT_EQ(no_cert.offsets.status().code(), absl::StatusCode::kUnavailable)
      << no_cert.offsets.status();
  EXPECT_THAT(std::string(no_cert.offsets.status().message()), HasSubstr("certificate"));
  EXPECT_LE(no_cert.took, kFailDeadline + kSlack);
  ExpectNoSecrets(b, no_cert.offsets.status());
}

// Regression: rd_kafka_new refuses the client (the key cannot be decrypted); the reader once
// destroyed a Client whose poller thread never started and std::terminate took the scaler down.
TEST(RdkafkaAuthE2eTest, MutualTlsWrongKeyPasswordIsInvalidArgumentWithoutSecrets) {
  KLAG_REQUIRE_SECURED_BROKER(b);
  const Data data = MakeData(b.L("plaintext"), "auth-keypw");
  const SettingMap wrong_password = {{"bootstrapServers", b.L("mtls")},
                                     {"tls", "enable"},
                                     {"ca", b.Pem("ca")},
                                     {"cert", b.Pem("client_cert")},
                                     {"key", b.Pem("client_key_encrypted")},
                                     {"keyPassword", "wrong-key-pw-71d0"}};
  // librdkafka cannot load the key, so the client is never created.
  const Outcome bad_key = Evaluate(wrong_password, data, kFailDeadline);
  Print("MTLS encrypted key, wrong keyPassword", bad_key);
  EXPECT_EQ(bad_key.offsets.status().code(), absl::StatusCode::kInvalidArgument)
      << bad_key.offsets.status();
  EXPECT_THAT(std::string(bad_key.offsets.status().message()), HasSubstr("ssl.key"));
  ExpectNoSecrets(b, bad_key.offsets.status(), {"wrong-key-pw-71d0"});
}

TEST(RdkafkaAuthE2eTest, TopicOrGroupWithoutAclIsPermissionDenied) {
  KLAG_REQUIRE_SECURED_BROKER(b);
  const Data data = MakeData(b.L("plaintext"), "auth-acl");
  const Data no_acl = MakeData(b.L("plaintext"), "auth-noacl");
  ASSERT_TRUE(
      AllowDescribe(b.L("plaintext"), "User:" + b.L("user"),
                    {{RD_KAFKA_RESOURCE_TOPIC, data.topic}, {RD_KAFKA_RESOURCE_GROUP, data.group}})
          .ok());
  const SettingMap alice =
      Sasl(b.L("sasl_plaintext"), "scram_sha256", b.L("user"), b.L("password"));
  ExpectExact("ACL: allowed topic and group", Evaluate(alice, data, kDeadline), data);

  const Data denied_topic{no_acl.topic, data.group, {}};
  const Outcome topic = Evaluate(alice, denied_topic, kDeadline);
  Print("ACL: topic without ACL", topic);
  EXPECT_EQ(topic.offsets.status().code(), absl::StatusCode::kPermissionDenied)
      << topic.offsets.status();
  EXPECT_THAT(std::string(topic.offsets.status().message()), HasSubstr(no_acl.topic));
  EXPECT_LT(topic.took, kDeadline);
  ExpectNoSecrets(b, topic.offsets.status());

  const Data denied_group{data.topic, no_acl.group, {}};
  const Outcome group = Evaluate(alice, denied_group, kDeadline);
  Print("ACL: group without ACL", group);
  EXPECT_EQ(group.offsets.status().code(), absl::StatusCode::kPermissionDenied)
      << group.offsets.status();
  EXPECT_THAT(std::string(group.offsets.status().message()), HasSubstr(no_acl.group));
  EXPECT_LT(group.took, kDeadline);
  ExpectNoSecrets(b, group.offsets.status());
}

TEST(RdkafkaAuthE2eTest, OAuthBearerWithOidcClientCredentials) {
  KLAG_REQUIRE_SECURED_BROKER(b);
  const Data data = MakeData(b.L("plaintext"), "auth-oauth");
  const std::string subject = UniqueName("klag-oauth");
  ASSERT_TRUE(
      AllowDescribe(b.L("plaintext"), "User:" + subject,
                    {{RD_KAFKA_RESOURCE_TOPIC, data.topic}, {RD_KAFKA_RESOURCE_GROUP, data.group}})
          .ok());
  const std::string client_secret = "oidc-client-SECRET-5e1a";
  // The identity provider: client credentials in, an unsecured JWT (alg none, as the broker's
  // default validator accepts) for `subject` out.
  FakeTokenEndpoint idp([&](const HttpRequest& request) {
    auto it = request.headers.find("authorization");
    if (it == request.headers.end() ||
        it->second != "Basic " + absl::Base64Escape("klag-scaler:" + client_secret)) {
      return HttpResponse{401, R"({"error":"invalid_client"})"};
    }
    const absl::Time now = absl::Now();
    return HttpResponse{200,
                        absl::StrCat(R"({"access_token":")",
                                     UnsecuredJwt(subject, now, now + absl::Minutes(5), "kafka"),
                                     R"(","token_type":"Bearer","expires_in":300})")};
  });
  const SettingMap oauth = {{"bootstrapServers", b.L("sasl_plaintext")},
                            {"sasl", "oauthbearer"},
                            {"username", "klag-scaler"},
                            {"password", client_secret},
                            {"oauthTokenEndpointUri", idp.url()},
                            {"scopes", "kafka"},
                            {"oauthExtensions", "traceId=abc"}};
  ExpectExact("SASL_PLAINTEXT oauthbearer (OIDC)", Evaluate(oauth, data, kDeadline), data);
  ASSERT_FALSE(idp.requests().empty());
  EXPECT_EQ(idp.requests()[0].body, "grant_type=client_credentials&scope=kafka");

  // The identity provider refuses the secret: UNAUTHENTICATED naming the endpoint.
  SettingMap refused = oauth;
  refused["password"] = "not-the-SECRET-c3";
  const Outcome denied = Evaluate(refused, data, kFailDeadline);
  Print("oauthbearer, IdP refuses the client secret", denied);
  EXPECT_EQ(denied.offsets.status().code(), absl::StatusCode::kUnauthenticated)
      << denied.offsets.status();
  EXPECT_THAT(std::string(denied.offsets.status().message()),
              HasSubstr("OAuth token endpoint " + idp.url()));
  EXPECT_LE(denied.took, kFailDeadline + kSlack);
  ExpectNoSecrets(b, denied.offsets.status(), {client_secret, "not-the-SECRET-c3"});

  // A token the broker refuses (expired by the time it arrives): the broker's SASL answer.
  FakeTokenEndpoint stale([&](const HttpRequest&) {
    const absl::Time past = absl::Now() - absl::Hours(1);
    return HttpResponse{200, absl::StrCat(R"({"access_token":")",
                                          UnsecuredJwt(subject, past, past + absl::Minutes(5)),
                                          R"(","expires_in":300})")};
  });
  SettingMap stale_keys = oauth;
  stale_keys["oauthTokenEndpointUri"] = stale.url();
  const Outcome expired = Evaluate(stale_keys, data, kFailDeadline);
  Print("oauthbearer, broker refuses an expired JWT", expired);
  EXPECT_EQ(expired.offsets.status().code(), absl::StatusCode::kUnauthenticated)
      << expired.offsets.status();
  EXPECT_LE(expired.took, kFailDeadline + kSlack);
  ExpectNoSecrets(b, expired.offsets.status(), {client_secret});
}

}  // namespace
}  // namespace klag::kafka
