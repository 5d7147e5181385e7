// klag-produce: synthetic ListedStockPrice records for demos and benchmarks. See job/README.md.
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "common/flags.h"
#include "common/logging.h"
#include "common/version.h"
#include "job/produce.h"
#include "job/stop_signal.h"
#include "kafka/rdkafka_version.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  // `--version` before the end of the flags, ahead of the parser (which refuses unknown flags).
  for (const std::string& arg : args) {
    if (arg == "--") break;
    if (arg == "--version") {
      std::cout << klag::VersionText("klag-produce",
                                     {{"librdkafka", klag::kafka::LibrdkafkaVersion()}});
      return 0;
    }
  }
  std::string usage;
  absl::StatusOr<klag::job::ProduceOptions> options =
      klag::job::ParseProduceOptions(args, klag::ProcessEnv(), &usage);
  if (!options.ok()) {
    std::fprintf(stderr, "klag-produce: %s\n", std::string(options.status().message()).c_str());
    return 2;
  }
  if (options->help) {
    std::cout << usage;
    return 0;
  }
  if (absl::Status s = klag::ConfigureLogging({.level = options->log_level}); !s.ok()) {
    std::fprintf(stderr, "klag-produce: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  const std::atomic<bool>& stop = klag::job::InstallStopSignalHandlers();
  return klag::job::RunProduce(*options, stop);
}
