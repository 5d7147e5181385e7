#include "kafka/rdkafka_handle.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "kafka/rdkafka_oauth.h"
#include "kafka/rdkafka_status.h"
#include "spdlog/spdlog.h"

namespace klag::kafka::rdkafka {

int RemainingMs(absl::Time deadline) {
  const absl::Duration left = deadline - absl::Now();
  if (left <= absl::ZeroDuration()) return 0;
  const double ms = std::ceil(absl::ToDoubleMilliseconds(left));
  return ms >= static_cast<double>(INT_MAX) ? INT_MAX : static_cast<int>(ms);
}

namespace {

// NewConf, also telling whether the properties ask for klag's OIDC token refresh.
absl::StatusOr<ConfPtr> NewConfWithOidc(const RdkafkaProperties& properties, bool* oidc) {
  absl::StatusOr<std::optional<OidcClientConfig>> oidc_settings = OidcSettings(properties);
  if (!oidc_settings.ok()) return oidc_settings.status();
  *oidc = oidc_settings->has_value();
  ConfPtr conf(rd_kafka_conf_new());
  char errstr[512];
  for (const auto& [name, value] : properties) {
    if (rd_kafka_conf_set(conf.get(), name.c_str(), value.c_str(), errstr, sizeof(errstr)) !=
        RD_KAFKA_CONF_OK) {
      // librdkafka's reason names the property; it does not echo the value of a sensitive one,
      // and we never add it.
      return absl::InvalidArgumentError(
          absl::StrCat("librdkafka property \"", name, "\" rejected: ", errstr));
    }
  }
  if (*oidc) InstallOidcTokenRefresh(conf.get());
  return conf;
}

}  // namespace

absl::StatusOr<ConfPtr> NewConf(const RdkafkaProperties& properties) {
  bool oidc = false;
  return NewConfWithOidc(properties, &oidc);
}

void LogToSpdlog(const rd_kafka_t* rk, int level, const char* facility, const char* message) {
  const char* name = rk == nullptr ? "rdkafka" : rd_kafka_name(rk);
  spdlog::level::level_enum spd_level = spdlog::level::debug;
  if (level <= 3) {
    spd_level = spdlog::level::err;
  } else if (level == 4) {
    spd_level = spdlog::level::warn;
  } else if (level <= 6) {
    spd_level = spdlog::level::info;
  }
  spdlog::log(spd_level, "librdkafka {} {}: {}", name, facility, message);
}

absl::StatusOr<HandlePtr> NewHandle(rd_kafka_type_t type, const RdkafkaProperties& properties,
                                    const std::function<void(rd_kafka_conf_t*)>& customize) {
  bool oidc = false;
  auto conf = NewConfWithOidc(properties, &oidc);
  if (!conf.ok()) return conf.status();
  rd_kafka_conf_set_log_cb(conf->get(), &LogToSpdlog);
  if (customize) customize(conf->get());
  char errstr[512];
  rd_kafka_t* rk = rd_kafka_new(type, conf->get(), errstr, sizeof(errstr));
  if (rk == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("cannot create librdkafka client: ", errstr));
  }
  (void)conf->release();  // rd_kafka_new took ownership.
  HandlePtr handle(rk);
  if (oidc) {
    absl::Status background = EnableBackgroundTokenRefresh(rk);
    if (!background.ok()) return background;
  }
  return handle;
}

AdminCall StartAdmin(rd_kafka_t* rk, absl::Time deadline, rd_kafka_event_type_t type,
                     absl::FunctionRef<void(rd_kafka_AdminOptions_t*, rd_kafka_queue_t*)> start,
                     std::optional<absl::Duration> request_timeout) {
  AdminCall call{QueuePtr(rd_kafka_queue_new(rk)), type};
  // At least 1 ms: a zero timeout is valid for librdkafka but would mean "none" to a reader of
  // this code; AwaitAdmin reports the timeout either way.
  const int timeout_ms = std::max(
      1, request_timeout.has_value() ? static_cast<int>(std::min<int64_t>(
                                           absl::ToInt64Milliseconds(*request_timeout), INT_MAX))
                                     : RemainingMs(deadline));
  AdminOptionsPtr options(rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_ANY));
  char errstr[256];
  // Both setters only fail for values outside [0, 3600000] ms; longer deadlines are clamped.
  const int clamped_ms = std::min(timeout_ms, 3600 * 1000);
  (void)rd_kafka_AdminOptions_set_request_timeout(options.get(), clamped_ms, errstr,
                                                  sizeof(errstr));
  // The operation timeout applies to CreateTopics/DeleteTopics/DeleteRecords (waiting for the
  // controller); other requests ignore it.
  (void)rd_kafka_AdminOptions_set_operation_timeout(options.get(), clamped_ms, errstr,
                                                    sizeof(errstr));
  start(options.get(), call.queue.get());
  return call;
}

AdminOutcome AwaitAdmin(AdminCall& call, absl::Time deadline) {
  AdminOutcome outcome;
  // librdkafka times the request out itself at its request timeout; we stop waiting at the
  // deadline either way.
  outcome.event.reset(rd_kafka_queue_poll(call.queue.get(), RemainingMs(deadline)));
  if (outcome.event == nullptr) {
    outcome.err = RD_KAFKA_RESP_ERR__TIMED_OUT;
    return outcome;
  }
  if (rd_kafka_event_type(outcome.event.get()) != call.type) {
    outcome.err = RD_KAFKA_RESP_ERR__FAIL;
    outcome.detail =
        absl::StrCat("unexpected librdkafka event ", rd_kafka_event_name(outcome.event.get()));
    outcome.event.reset();
    return outcome;
  }
  outcome.err = rd_kafka_event_error(outcome.event.get());
  if (outcome.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    const char* detail = rd_kafka_event_error_string(outcome.event.get());
    outcome.detail = detail == nullptr ? "" : detail;
    outcome.event.reset();
  }
  return outcome;
}

absl::StatusOr<EventPtr> AwaitAdminResult(
    rd_kafka_t* rk, absl::Time deadline, rd_kafka_event_type_t type, absl::string_view context,
    absl::FunctionRef<void(rd_kafka_AdminOptions_t*, rd_kafka_queue_t*)> start,
    std::optional<absl::Duration> request_timeout) {
  if (RemainingMs(deadline) <= 0) {
    return RdkafkaStatus(RD_KAFKA_RESP_ERR__TIMED_OUT, context,
                         "deadline passed before the request");
  }
  AdminCall call = StartAdmin(rk, deadline, type, start, request_timeout);
  AdminOutcome outcome = AwaitAdmin(call, deadline);
  if (outcome.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return RdkafkaStatus(outcome.err, context, outcome.detail);
  }
  return std::move(outcome.event);
}

}  // namespace klag::kafka::rdkafka
