// The librdkafka klag runs on: its version for start-up logs, and the check that it is recent
// enough. klag needs librdkafka >= 2.8.0 (SCRAM logins to Kafka 4.x brokers were fixed in 2.6.1;
// the admin APIs and built-in OIDC it relies on came with 2.x releases up to 2.8), and builds
// only against such headers; this checks the shared library actually loaded at run time, which
// may differ from the headers (an image or host with Debian 12's 2.0.2).
//
//   spdlog::info("klag-job starting (librdkafka {})", kafka::LibrdkafkaVersion());
//   if (absl::Status s = kafka::CheckLibrdkafkaVersion(); !s.ok()) { ... exit 1 ... }
//
// This header does not include librdkafka.
#pragma once

#include <string>

#include "absl/status/status.h"

namespace klag::kafka {

// The minimum librdkafka version, as text ("2.8.0").
inline constexpr char kMinLibrdkafkaVersion[] = "2.8.0";

// The version string of the librdkafka shared library loaded at run time (rd_kafka_version_str),
// e.g. "2.8.0".
std::string LibrdkafkaVersion();

// OK when the loaded librdkafka is at least kMinLibrdkafkaVersion; kFailedPrecondition naming
// both versions otherwise.
absl::Status CheckLibrdkafkaVersion();

}  // namespace klag::kafka
