#include "kafka/rdkafka_client.h"

#include <algorithm>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/thread_name.h"
#include "kafka/rdkafka_status.h"
#include "nlohmann/json.hpp"
#include "spdlog/spdlog.h"

namespace klag::kafka::rdkafka {

absl::StatusOr<std::unique_ptr<Client>> Client::Create(const RdkafkaProperties& properties,
                                                       bool statistics) {
  std::unique_ptr<Client> client(new Client());
  absl::StatusOr<HandlePtr> rk =
      NewHandle(RD_KAFKA_CONSUMER, properties, [&client, statistics](rd_kafka_conf_t* conf) {
        rd_kafka_conf_set_opaque(conf, client.get());
        rd_kafka_conf_set_error_cb(conf, &Client::OnError);
        if (statistics) rd_kafka_conf_set_stats_cb(conf, &Client::OnStats);
      });
  if (!rk.ok()) return rk.status();
  client->rk_ = *std::move(rk);
  client->poller_ = std::thread([c = client.get()] {
    NameThisThread("klag-rk-poll");
    c->PollLoop();
  });
  return client;
}

Client::~Client() {
  stop_.store(true);
  // Create() may fail before the handle or the poller exists (e.g. a wrong keyPassword makes
  // rd_kafka_new fail): only stop what was started.
  if (rk_ != nullptr) rd_kafka_yield(rk_.get());
  if (poller_.joinable()) poller_.join();
}

void Client::MarkReachable() {
  absl::MutexLock lock(&mu_);
  last_up_ = ++seq_;
}

bool Client::Reachable() const {
  absl::MutexLock lock(&mu_);
  return last_down_ <= last_up_;
}

absl::Status Client::TimeoutStatus(absl::string_view context) const {
  absl::MutexLock lock(&mu_);
  if (last_down_ > last_up_) return UnreachableStatusLocked(context);
  return RdkafkaStatus(RD_KAFKA_RESP_ERR__TIMED_OUT, context);
}

absl::Status Client::UnreachableStatus(absl::string_view context) const {
  absl::MutexLock lock(&mu_);
  return UnreachableStatusLocked(context);
}

absl::Status Client::ErrorStatus(rd_kafka_resp_err_t err, absl::string_view context,
                                 absl::string_view detail) const {
  if (err == RD_KAFKA_RESP_ERR__TIMED_OUT || err == RD_KAFKA_RESP_ERR__TIMED_OUT_QUEUE) {
    return TimeoutStatus(context);
  }
  return RdkafkaTransientStatus(err, context, detail);
}

absl::StatusOr<MetadataPtr> Client::Metadata(rd_kafka_topic_t* rkt, absl::Time deadline,
                                             absl::Duration probe, absl::string_view context,
                                             std::atomic<int64_t>& requests) {
  // While the news is bad, one caller at a time probes; the others answer at once (see header).
  bool prober = false;
  {
    absl::MutexLock lock(&mu_);
    if (last_down_ > last_up_) {
      const bool recent_failure =
          failed_probe_seq_ > last_up_ && (probing_ || absl::Now() - failed_probe_at_ < probe);
      if (recent_failure) {
        probe_fast_failures_.fetch_add(1);
        return UnreachableStatusLocked(context);
      }
      if (!probing_) {
        probing_ = true;
        prober = true;
      }
    }
  }
  absl::StatusOr<MetadataPtr> result = MetadataAttempts(rkt, deadline, probe, context, requests);
  // Any call that found no usable broker counts as a failed probe, the first of an outage too
  // (it waited before the news turned bad).
  const bool unreachable =
      absl::IsUnavailable(result.status()) || absl::IsUnauthenticated(result.status());
  if (prober || unreachable) {
    absl::MutexLock lock(&mu_);
    probes_.fetch_add(1);
    if (prober) probing_ = false;
    if (unreachable) {
      failed_probe_at_ = absl::Now();
      failed_probe_seq_ = ++seq_;
    }
  }
  return result;
}

absl::Status Client::EnsureReachable(absl::Time deadline, absl::Duration probe,
                                     absl::string_view context, std::atomic<int64_t>& requests) {
  if (Reachable()) return absl::OkStatus();
  return Metadata(nullptr, deadline, probe, absl::StrCat(context, ": Metadata"), requests).status();
}

absl::StatusOr<MetadataPtr> Client::MetadataAttempts(rd_kafka_topic_t* rkt, absl::Time deadline,
                                                     absl::Duration probe,
                                                     absl::string_view context,
                                                     std::atomic<int64_t>& requests) {
  // Whether a request went out unanswered: a broker was usable, so wait on for the answer.
  bool sent_unanswered = false;
  while (true) {
    if (RemainingMs(deadline) <= 0) return TimeoutStatus(context);
    const bool known_down = !Reachable();
    // Wait for a usable broker at most one probe at a time (or the rest of the deadline).
    const absl::Time wait_end =
        sent_unanswered ? deadline : std::min(deadline, absl::Now() + probe);
    requests.fetch_add(1);
    const rd_kafka_metadata_t* raw = nullptr;
    const rd_kafka_resp_err_t err =
        rd_kafka_metadata(rk_.get(), /*all_topics=*/0, rkt, &raw, RemainingMs(wait_end));
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      MetadataPtr metadata(raw);
      MarkReachable();
      return metadata;
    }
    // rd_kafka_metadata reports "no usable broker within the timeout" as __TRANSPORT: nothing
    // was sent. Bad news before or during the wait: the cluster is down; otherwise (no news yet,
    // e.g. the first connection is still being set up) wait on while the deadline allows.
    if (err == RD_KAFKA_RESP_ERR__TRANSPORT) {
      requests.fetch_sub(1);
      if (known_down || !Reachable() || RemainingMs(deadline) <= 0) {
        return UnreachableStatus(context);
      }
      continue;
    }
    // Sent, but no answer within a probe: a usable yet slow broker; ask once more with the rest
    // of the deadline (only the deadline may end in kDeadlineExceeded).
    if ((err == RD_KAFKA_RESP_ERR__TIMED_OUT || err == RD_KAFKA_RESP_ERR__TIMED_OUT_QUEUE) &&
        !sent_unanswered && RemainingMs(deadline) > 0) {
      sent_unanswered = true;
      continue;
    }
    return ErrorStatus(err, context);
  }
}

absl::Status Client::UnreachableStatusLocked(absl::string_view context) const {
  return RdkafkaStatus(last_connection_err_, context,
                       absl::StrCat("no broker is reachable: ", last_connection_error_.empty()
                                                                    ? "no connection is up"
                                                                    : last_connection_error_));
}

void Client::PollLoop() {
  while (!stop_.load()) rd_kafka_poll(rk_.get(), 200);
}

void Client::OnError(rd_kafka_t* rk, int err_int, const char* reason, void* opaque) {
  auto* self = static_cast<Client*>(opaque);
  const auto err = static_cast<rd_kafka_resp_err_t>(err_int);
  spdlog::debug("librdkafka {} error: {} ({})", rd_kafka_name(rk), reason, rd_kafka_err2name(err));
  switch (err) {
    case RD_KAFKA_RESP_ERR__TRANSPORT:
    case RD_KAFKA_RESP_ERR__RESOLVE:
    case RD_KAFKA_RESP_ERR__SSL:
    case RD_KAFKA_RESP_ERR__AUTHENTICATION: {
      absl::MutexLock lock(&self->mu_);
      self->last_down_ = ++self->seq_;
      self->last_connection_err_ = err;
      self->last_connection_error_ = reason;
      break;
    }
    case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN: {
      absl::MutexLock lock(&self->mu_);
      self->last_down_ = ++self->seq_;
      if (self->last_connection_error_.empty()) {
        self->last_connection_err_ = err;
        self->last_connection_error_ = reason;
      }
      break;
    }
    default:
      break;
  }
}

namespace {

// SAX events of librdkafka's statistics JSON: {..., "brokers": {"<name>": {"source": ...,
// "state": ..., "tx": ..., <nested objects>}, ...}, "topics": ...}. Stops the parser (returns
// false) at the end of "brokers".
class BrokerStatsReader final : public nlohmann::json_sax<nlohmann::json> {
 public:
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t value) override { return Number(value); }
  bool number_unsigned(number_unsigned_t value) override {
    return Number(static_cast<int64_t>(value));
  }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t& value) override {
    if (InBrokerFields()) {
      if (key_ == "source") source_ = value;
      if (key_ == "state") state_ = value;
    }
    return true;
  }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override {
    ++depth_;
    if (depth_ == 2 && key_ == "brokers") in_brokers_ = true;
    if (depth_ == 3 && in_brokers_) {  // one broker
      source_.clear();
      state_.clear();
      tx_ = 0;
    }
    return true;
  }
  bool key(string_t& value) override {
    if (depth_ <= 1 || InBrokerFields()) key_ = value;
    return true;
  }
  bool end_object() override {
    if (depth_ == 3 && in_brokers_ && source_ != "internal" && source_ != "logical") {
      stats_.any_real = true;
      if (state_ == "UP") stats_.any_up = true;
      stats_.requests += tx_;
    }
    if (depth_ == 2 && in_brokers_) {
      found_ = true;
      return false;  // the rest is not needed
    }
    --depth_;
    return true;
  }
  bool start_array(std::size_t) override {
    ++depth_;
    return true;
  }
  bool end_array() override {
    --depth_;
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override {
    return false;
  }

  std::optional<BrokerStats> result() const {
    return found_ ? std::optional<BrokerStats>(stats_) : std::nullopt;
  }

 private:
  bool InBrokerFields() const { return in_brokers_ && depth_ == 3; }
  bool Number(int64_t value) {
    if (InBrokerFields() && key_ == "tx") tx_ = value;
    return true;
  }

  int depth_ = 0;
  bool in_brokers_ = false;
  bool found_ = false;
  std::string key_;
  std::string source_;
  std::string state_;
  int64_t tx_ = 0;
  BrokerStats stats_;
};

}  // namespace

std::optional<BrokerStats> SummarizeStatistics(std::string_view json) {
  BrokerStatsReader reader;
  nlohmann::json::sax_parse(json.begin(), json.end(), &reader, nlohmann::json::input_format_t::json,
                            /*strict=*/false);
  return reader.result();
}

int Client::OnStats(rd_kafka_t* /*rk*/, char* json, size_t json_len, void* opaque) {
  auto* self = static_cast<Client*>(opaque);
  const std::optional<BrokerStats> stats = SummarizeStatistics(std::string_view(json, json_len));
  if (!stats.has_value()) return 0;
  self->broker_requests_.store(stats->requests);
  if (stats->any_real) {
    absl::MutexLock lock(&self->mu_);
    if (stats->any_up) {
      self->last_up_ = ++self->seq_;
    } else {
      self->last_down_ = ++self->seq_;
      if (self->last_connection_error_.empty()) {
        self->last_connection_error_ = "no broker connection is up";
      }
    }
  }
  return 0;  // librdkafka frees `json`
}

}  // namespace klag::kafka::rdkafka
