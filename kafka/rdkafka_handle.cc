#include "kafka/rdkafka_handle.h"

#include <climits>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "kafka/rdkafka_status.h"
#include "spdlog/spdlog.h"

namespace klag::kafka::rdkafka {

int RemainingMs(absl::Time deadline) {
  const absl::Duration left = deadline - absl::Now();
  if (left <= absl::ZeroDuration()) return 0;
  const double ms = std::ceil(absl::ToDoubleMilliseconds(left));
  return ms >= static_cast<double>(INT_MAX) ? INT_MAX : static_cast<int>(ms);
}

absl::StatusOr<ConfPtr> NewConf(const RdkafkaProperties& properties) {
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
  return conf;
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
  auto conf = NewConf(properties);
  if (!conf.ok()) return conf.status();
  rd_kafka_conf_set_log_cb(conf->get(), &LogToSpdlog);
  if (customize) customize(conf->get());
  char errstr[512];
  rd_kafka_t* rk = rd_kafka_new(type, conf->get(), errstr, sizeof(errstr));
  if (rk == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("cannot create librdkafka client: ", errstr));
  }
  (void)conf->release();  // rd_kafka_new took ownership.
  return HandlePtr(rk);
}

absl::StatusOr<EventPtr> AwaitAdminResult(
    rd_kafka_t* rk, absl::Time deadline, rd_kafka_event_type_t type, absl::string_view context,
    absl::FunctionRef<void(const rd_kafka_AdminOptions_t*, rd_kafka_queue_t*)> start,
    absl::FunctionRef<bool()> brokers_unreachable) {
  auto reachability = [&] {
    return brokers_unreachable() ? BrokerReachability::kUnreachable
                                 : BrokerReachability::kReachable;
  };
  const int timeout_ms = RemainingMs(deadline);
  if (timeout_ms <= 0) {
    return RdkafkaStatus(RD_KAFKA_RESP_ERR__TIMED_OUT, context,
                         "deadline passed before the request", reachability());
  }
  AdminOptionsPtr options(rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_ANY));
  char errstr[256];
  if (rd_kafka_AdminOptions_set_request_timeout(options.get(), timeout_ms, errstr,
                                                sizeof(errstr)) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return absl::InvalidArgumentError(absl::StrCat(context, ": ", errstr));
  }
  // Operation timeout applies to CreateTopics/DeleteTopics/DeleteRecords (waiting for the
  // controller); other requests ignore it.
  rd_kafka_AdminOptions_set_operation_timeout(options.get(), timeout_ms, errstr, sizeof(errstr));
  QueuePtr queue(rd_kafka_queue_new(rk));
  start(options.get(), queue.get());

  // librdkafka times the request out itself at request_timeout; we stop waiting at the deadline
  // either way.
  EventPtr event(rd_kafka_queue_poll(queue.get(), RemainingMs(deadline)));
  if (event == nullptr) {
    return RdkafkaStatus(RD_KAFKA_RESP_ERR__TIMED_OUT, context, "", reachability());
  }
  if (rd_kafka_event_type(event.get()) != type) {
    return absl::InternalError(
        absl::StrCat(context, ": unexpected librdkafka event ", rd_kafka_event_name(event.get())));
  }
  const rd_kafka_resp_err_t err = rd_kafka_event_error(event.get());
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    const char* detail = rd_kafka_event_error_string(event.get());
    return RdkafkaStatus(err, context, detail == nullptr ? "" : detail, reachability());
  }
  return event;
}

}  // namespace klag::kafka::rdkafka
