#include "kafka/rdkafka_version.h"

#include <librdkafka/rdkafka.h>

#include "absl/strings/str_cat.h"

namespace klag::kafka {
namespace {

// RD_KAFKA_VERSION is 0xMMmmrrpp (pp: pre-release id, 0xff for a release): any 2.8.0 build.
constexpr int kMinVersionHex = 0x02080000;
static_assert(RD_KAFKA_VERSION >= kMinVersionHex,
              "klag needs librdkafka >= 2.8.0 headers (scripts/librdkafka.sh installs them)");

}  // namespace

std::string LibrdkafkaVersion() { return rd_kafka_version_str(); }

absl::Status CheckLibrdkafkaVersion() {
  if (rd_kafka_version() >= kMinVersionHex) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "librdkafka ", rd_kafka_version_str(), " is loaded but klag needs >= ", kMinLibrdkafkaVersion,
      " (built against ", RD_KAFKA_VERSION >> 24, ".", (RD_KAFKA_VERSION >> 16) & 0xff, ".",
      (RD_KAFKA_VERSION >> 8) & 0xff, "): install the librdkafka1 package klag was built with"));
}

}  // namespace klag::kafka
