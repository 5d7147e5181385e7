// SASL/OAUTHBEARER with OIDC client credentials for librdkafka clients, done by klag (not by
// librdkafka's `sasl.oauthbearer.method=oidc`: kafka/oidc_token_source.h says why).
// ToRdkafkaProperties puts the OIDC settings into `sasl.oauthbearer.config`
// (kafka/oidc_config.h); rdkafka::NewConf / NewHandle (kafka/rdkafka_handle.h) call these
// functions, so every client they make fetches its own tokens:
//
//   NewConf:   OidcSettings(properties) -> InstallOidcTokenRefresh(conf)
//   NewHandle: rd_kafka_new(...) -> EnableBackgroundTokenRefresh(rk)
//   librdkafka (background thread, at start and at 80% of each token's lifetime):
//     OidcTokenRefresh -> OidcTokenSource::Fetch -> rd_kafka_oauthbearer_set_token
//                         (or rd_kafka_oauthbearer_set_token_failure with the reason)
//
// A failed refresh reaches the client's error callback as RD_KAFKA_RESP_ERR__AUTHENTICATION
// ("Failed to acquire SASL OAUTHBEARER token: OAuth token endpoint <url>: ..."), which the
// offset reader reports as kUnauthenticated; librdkafka tries again 10 s later. Included only by
// rdkafka_*.cc files and tests.
#pragma once

#include <librdkafka/rdkafka.h>

#include <optional>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kafka/connection_config.h"
#include "kafka/oidc_config.h"

namespace klag::kafka::rdkafka {

// The OIDC settings in `properties` (a `sasl.oauthbearer.config` made by
// FormatOauthbearerConfig; when the property is given more than once, the last one, as
// librdkafka applies them), or nullopt when there are none. Errors: kInvalidArgument when they
// do not parse or an OidcTokenSource refuses them (the message never holds the value).
absl::StatusOr<std::optional<OidcClientConfig>> OidcSettings(const RdkafkaProperties& properties);

// Sets OidcTokenRefresh as `conf`'s token refresh callback and gives SASL callbacks a queue of
// their own (rd_kafka_conf_enable_sasl_queue), for EnableBackgroundTokenRefresh.
void InstallOidcTokenRefresh(rd_kafka_conf_t* conf);

// Serves `rk`'s SASL queue from librdkafka's background thread, so tokens are fetched whether
// or not (and however seldom) the application polls. `rk` must come from a conf prepared by
// InstallOidcTokenRefresh. Errors: kInternal with librdkafka's reason.
absl::Status EnableBackgroundTokenRefresh(rd_kafka_t* rk);

// The token refresh callback: parses `oauthbearer_config`, fetches a token (blocking up to
// OidcTokenSourceOptions::timeout, 10 s) and hands it to librdkafka with the extensions from
// the settings, or reports the failure. Never logs or reports the secret or the token.
void OidcTokenRefresh(rd_kafka_t* rk, const char* oauthbearer_config, void* opaque);

}  // namespace klag::kafka::rdkafka
