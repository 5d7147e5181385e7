// klag-produce: a small producer for demos and benchmarks. Publishes synthetic ListedStockPrice
// records as JSON at a given rate or count, optionally in transactions.
//
//   {"symbol":"ACME","price":101.25,"volume":300,"timestamp":1700000000000}
//
//   ASSIGN_OR_RETURN(ProduceOptions o, ParseProduceOptions(args, klag::ProcessEnv(), &usage));
//   int code = RunProduce(o, stop);   // prints {"records":..,"bytes":..,"duration_s":..} on stdout
#pragma once

#include <atomic>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/flags.h"
#include "kafka/connection_config.h"

namespace klag::job {

struct ProduceOptions {
  bool help = false;
  kafka::ConnectionConfig connection;
  std::string topic;
  int64_t count = 0;  // 0: until --duration or SIGTERM
  double rate = 0;    // records/s; 0: as fast as possible
  absl::Duration duration = absl::InfiniteDuration();
  int64_t partitions = 0;  // > 0: record i goes to partition i % partitions
  bool transactional = false;
  int64_t transaction_size = 100;  // records per transaction
  int64_t value_size = 0;          // pad shorter values to this many bytes
  std::vector<std::string> symbols = {"ACME",  "GLOBEX", "INITECH", "UMBRELLA",
                                      "HOOLI", "STARK",  "WAYNE",   "WONKA"};
  uint64_t seed = 1;
  kafka::RdkafkaProperties kafka_properties;
  std::string log_level = "info";
};

// Errors: kInvalidArgument naming the flag.
absl::StatusOr<ProduceOptions> ParseProduceOptions(const std::vector<std::string>& args,
                                                   const EnvLookup& env, std::string* usage);

// Synthetic ListedStockPrice records, deterministic for a seed.
class StockPriceGenerator {
 public:
  StockPriceGenerator(std::vector<std::string> symbols, uint64_t seed, int64_t value_size);
  struct Item {
    std::string key;    // the symbol
    std::string value;  // the JSON document, padded with a "pad" field to value_size
  };
  Item Next(int64_t timestamp_ms);

 private:
  std::vector<std::string> symbols_;
  std::vector<double> prices_;
  std::mt19937_64 rng_;
  int64_t value_size_;
};

// Produces per `options` until the count is reached, the duration passes or `stop` is set;
// flushes (commits the open transaction) and prints a summary line on stdout. Returns the exit
// code: 0 done, 1 failed.
int RunProduce(const ProduceOptions& options, const std::atomic<bool>& stop);

}  // namespace klag::job
