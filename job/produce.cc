#include "job/produce.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "job/options.h"
#include "job/rdkafka_producer.h"
#include "spdlog/spdlog.h"

namespace klag::job {

absl::StatusOr<ProduceOptions> ParseProduceOptions(const std::vector<std::string>& args,
                                                   const EnvLookup& env, std::string* usage) {
  ProduceOptions o;
  FlagSet flags("klag-produce",
                "klag-produce: publishes synthetic ListedStockPrice JSON records\n"
                "({\"symbol\",\"price\",\"volume\",\"timestamp\"}) for demos and benchmarks.");
  ConnectionFlags connection;
  RegisterConnectionFlags(flags, &connection);
  flags.String("topic", "KLAG_TOPIC", "topic to write (required)", &o.topic);
  flags.Int("count", "KLAG_PRODUCE_COUNT", "records to produce (0: until --duration or SIGTERM)",
            &o.count);
  flags.Double("rate", "KLAG_PRODUCE_RATE", "records per second (0: as fast as possible)", &o.rate);
  absl::Duration duration = absl::ZeroDuration();
  flags.Duration("duration", "KLAG_PRODUCE_DURATION", "stop after this long (0: no limit)",
                 &duration);
  flags.Int("partitions", "KLAG_PRODUCE_PARTITIONS",
            "spread records round-robin over this many partitions (0: partition by symbol key)",
            &o.partitions);
  flags.Bool("transactional", "KLAG_PRODUCE_TRANSACTIONAL", "write in transactions",
             &o.transactional);
  flags.Int("transaction-size", "KLAG_PRODUCE_TRANSACTION_SIZE", "records per transaction",
            &o.transaction_size);
  flags.Int("value-size", "KLAG_PRODUCE_VALUE_SIZE",
            "pad each JSON value to this many bytes when it is shorter (benchmarks)",
            &o.value_size);
  std::string symbols = "ACME,GLOBEX,INITECH,UMBRELLA,HOOLI,STARK,WAYNE,WONKA";
  flags.String("symbols", "KLAG_PRODUCE_SYMBOLS", "comma-separated stock symbols", &symbols);
  int64_t seed = 1;
  flags.Int("seed", "KLAG_PRODUCE_SEED", "random seed (prices and volumes)", &seed);
  std::string kafka_properties;
  flags.String("kafka-properties", "KLAG_KAFKA_PROPERTIES",
               "extra librdkafka producer properties, key=value,key=value", &kafka_properties);
  flags.String("log-level", "KLAG_LOG_LEVEL", "trace, debug, info, warn, error", &o.log_level);
  ASSIGN_OR_RETURN(o.help, ParseFlagsOnly(flags, args, env, usage));
  if (o.help) return o;
  ASSIGN_OR_RETURN(o.connection, ConnectionFromFlags(connection));
  if (o.topic.empty()) return absl::InvalidArgumentError("--topic (KLAG_TOPIC) is required");
  if (o.count < 0) return absl::InvalidArgumentError("--count: expected 0 or more");
  if (o.rate < 0 || !std::isfinite(o.rate)) {
    return absl::InvalidArgumentError("--rate: expected 0 or more records per second");
  }
  if (o.partitions < 0) return absl::InvalidArgumentError("--partitions: expected 0 or more");
  if (o.transaction_size < 1) {
    return absl::InvalidArgumentError("--transaction-size: expected 1 or more");
  }
  if (o.value_size < 0) return absl::InvalidArgumentError("--value-size: expected 0 or more");
  o.duration = duration == absl::ZeroDuration() ? absl::InfiniteDuration() : duration;
  o.symbols = SplitCommaList(symbols);
  if (o.symbols.empty()) return absl::InvalidArgumentError("--symbols: expected at least one");
  o.seed = static_cast<uint64_t>(seed);
  ASSIGN_OR_RETURN(o.kafka_properties, ParsePropertyList(kafka_properties));
  return o;
}

StockPriceGenerator::StockPriceGenerator(std::vector<std::string> symbols, uint64_t seed,
                                         int64_t value_size)
    : symbols_(std::move(symbols)), rng_(seed), value_size_(value_size) {
  std::uniform_real_distribution<double> start(10, 500);
  for (size_t i = 0; i < symbols_.size(); ++i) prices_.push_back(start(rng_));
}

StockPriceGenerator::Item StockPriceGenerator::Next(int64_t timestamp_ms) {
  const size_t i = std::uniform_int_distribution<size_t>(0, symbols_.size() - 1)(rng_);
  // A random walk of at most 1% a tick, never below a cent.
  prices_[i] =
      std::max(0.01, prices_[i] * (1 + std::uniform_real_distribution<double>(-0.01, 0.01)(rng_)));
  const int64_t volume = std::uniform_int_distribution<int64_t>(1, 100)(rng_) * 100;
  Item item{symbols_[i],
            absl::StrFormat(R"({"symbol":"%s","price":%.2f,"volume":%d,"timestamp":%d)",
                            symbols_[i], prices_[i], volume, timestamp_ms)};
  // {...,"pad":"xxx"} : the pad field costs 10 bytes besides its x's (incl. the closing brace).
  const int64_t pad = value_size_ - static_cast<int64_t>(item.value.size()) - 10;
  if (pad > 0) absl::StrAppend(&item.value, R"(,"pad":")", std::string(pad, 'x'), "\"");
  item.value.push_back('}');
  return item;
}

int RunProduce(const ProduceOptions& o, const std::atomic<bool>& stop) {
  const absl::Time start = absl::Now();
  auto fail = [](const absl::Status& s) {
    spdlog::error("klag-produce failed: {}", std::string(s.message()));
    return 1;
  };
  absl::StatusOr<kafka::RdkafkaProperties> connection = kafka::ToRdkafkaProperties(o.connection);
  if (!connection.ok()) return fail(connection.status());
  kafka::RdkafkaProperties extra = {{"linger.ms", "5"}};
  extra.insert(extra.end(), o.kafka_properties.begin(), o.kafka_properties.end());
  absl::StatusOr<std::unique_ptr<RdkafkaProducer>> producer = RdkafkaProducer::Create(
      {.connection = *connection,
       .client_id = "klag-produce",
       .transactional_id =
           o.transactional ? absl::StrCat("klag-produce-", o.topic, "-", getpid()) : "",
       .extra = extra});
  if (!producer.ok()) return fail(producer.status());
  RdkafkaProducer& p = **producer;

  StockPriceGenerator generator(o.symbols, o.seed, o.value_size);
  int64_t produced = 0;
  int64_t bytes = 0;
  int64_t in_transaction = 0;
  const absl::Time end =
      o.duration == absl::InfiniteDuration() ? absl::InfiniteFuture() : start + o.duration;
  const absl::Duration flush_timeout = absl::Seconds(30);
  while (!stop.load() && (o.count == 0 || produced < o.count) && absl::Now() < end) {
    if (o.rate > 0) {
      // Pace by schedule (record i at start + i/rate), so the rate holds on average.
      const absl::Time due = start + absl::Seconds(static_cast<double>(produced) / o.rate);
      while (absl::Now() < due && !stop.load()) {
        std::this_thread::sleep_for(
            absl::ToChronoMicroseconds(std::min(due - absl::Now(), absl::Milliseconds(50))));
      }
      if (stop.load()) break;
    }
    if (o.transactional && in_transaction == 0) {
      if (absl::Status s = p.BeginTransaction(); !s.ok()) return fail(s);
    }
    StockPriceGenerator::Item item = generator.Next(absl::ToUnixMillis(absl::Now()));
    OutgoingRecord r{.topic = o.topic, .key = item.key, .value = std::move(item.value)};
    if (o.partitions > 0) r.partition = static_cast<int32_t>(produced % o.partitions);
    bytes += static_cast<int64_t>(r.key->size() + r.value->size());
    if (absl::Status s = p.Produce(r, absl::Now() + flush_timeout); !s.ok()) return fail(s);
    ++produced;
    if (o.transactional && ++in_transaction >= o.transaction_size) {
      if (absl::Status s = p.CommitTransaction(absl::Now() + flush_timeout); !s.ok()) {
        return fail(s);
      }
      in_transaction = 0;
    }
  }
  if (o.transactional && in_transaction > 0) {
    if (absl::Status s = p.CommitTransaction(absl::Now() + flush_timeout); !s.ok()) {
      return fail(s);
    }
  }
  if (absl::Status s = p.Flush(absl::Now() + flush_timeout); !s.ok()) return fail(s);
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  std::printf("{\"records\":%lld,\"bytes\":%lld,\"duration_s\":%.3f,\"rate\":%.0f}\n",
              static_cast<long long>(produced), static_cast<long long>(bytes), seconds,
              seconds > 0 ? static_cast<double>(produced) / seconds : 0.0);
  std::fflush(stdout);
  return 0;
}

}  // namespace klag::job
