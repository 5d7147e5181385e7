#include "kafka/rdkafka_oauth.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "kafka/oidc_token_source.h"
#include "spdlog/spdlog.h"

namespace klag::kafka::rdkafka {

absl::StatusOr<std::optional<OidcClientConfig>> OidcSettings(const RdkafkaProperties& properties) {
  const std::string* text = nullptr;
  for (const auto& [name, value] : properties) {
    if (name == "sasl.oauthbearer.config") text = &value;
  }
  if (text == nullptr || !IsKlagOauthbearerConfig(*text)) return std::nullopt;
  absl::StatusOr<OidcClientConfig> config = ParseOauthbearerConfig(*text);
  if (!config.ok()) return config.status();
  // Create checks the endpoint URL and the credentials; the source itself is made per refresh.
  absl::StatusOr<std::unique_ptr<OidcTokenSource>> source = OidcTokenSource::Create(*config);
  if (!source.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("sasl.oauthbearer.config: ", source.status().message()));
  }
  return *std::move(config);
}

void InstallOidcTokenRefresh(rd_kafka_conf_t* conf) {
  rd_kafka_conf_set_oauthbearer_token_refresh_cb(conf, &OidcTokenRefresh);
  rd_kafka_conf_enable_sasl_queue(conf, 1);
}

absl::Status EnableBackgroundTokenRefresh(rd_kafka_t* rk) {
  rd_kafka_error_t* error = rd_kafka_sasl_background_callbacks_enable(rk);
  if (error == nullptr) return absl::OkStatus();
  absl::Status status = absl::InternalError(
      absl::StrCat("cannot serve OAUTHBEARER token refreshes in the background: ",
                   rd_kafka_error_string(error)));
  rd_kafka_error_destroy(error);
  return status;
}

void OidcTokenRefresh(rd_kafka_t* rk, const char* oauthbearer_config, void* /*opaque*/) {
  auto fail = [rk](const std::string& why) {
    spdlog::warn("librdkafka {}: OAUTHBEARER token refresh failed: {}", rd_kafka_name(rk), why);
    (void)rd_kafka_oauthbearer_set_token_failure(rk, why.c_str());
  };
  absl::StatusOr<OidcClientConfig> config =
      ParseOauthbearerConfig(oauthbearer_config == nullptr ? "" : oauthbearer_config);
  if (!config.ok()) return fail(std::string(config.status().message()));
  absl::StatusOr<std::unique_ptr<OidcTokenSource>> source = OidcTokenSource::Create(*config);
  if (!source.ok()) return fail(std::string(source.status().message()));
  const absl::Time start = absl::Now();
  absl::StatusOr<OidcToken> token = (*source)->Fetch();
  if (!token.ok()) return fail(std::string(token.status().message()));

  std::vector<const char*> extensions;
  for (const auto& [name, value] : config->extensions) {
    extensions.push_back(name.c_str());
    extensions.push_back(value.c_str());
  }
  char errstr[512] = {};
  const rd_kafka_resp_err_t err = rd_kafka_oauthbearer_set_token(
      rk, token->value.c_str(), absl::ToUnixMillis(token->expires_at), token->principal.c_str(),
      extensions.empty() ? nullptr : extensions.data(), extensions.size(), errstr, sizeof(errstr));
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return fail(absl::StrCat("OAuth token endpoint ", config->token_endpoint,
                             ": librdkafka refused the token: ", errstr));
  }
  spdlog::debug("librdkafka {}: OAUTHBEARER token for {} from {} in {:.0f} ms, valid for {:.0f} s",
                rd_kafka_name(rk), token->principal, config->token_endpoint,
                absl::ToDoubleMilliseconds(absl::Now() - start),
                absl::ToDoubleSeconds(token->expires_at - absl::Now()));
}

}  // namespace klag::kafka::rdkafka
