// A live consumer-group member for tests against the real broker: a librdkafka consumer
// subscribed to topics and polling on its own thread until destroyed, so the group has a member
// with an assignment (DescribeGroups shows it).
//
//   testing::LiveConsumer consumer(bootstrap, "group", {"orders"}, "my-client-id");
//   ... the group becomes Stable with one member assigned orders' partitions ...
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "kafka/connection_config.h"

namespace klag::testing {

class LiveConsumer {
 public:
  // Subscribes at once; joining the group happens on the polling thread. Records are read and
  // dropped; nothing is committed. status() says whether the client could be set up. `extra`:
  // librdkafka properties set after the test's own, e.g. {{"group.protocol", "consumer"}} for a
  // KIP-848 member (Kafka >= 4.0).
  LiveConsumer(const std::string& bootstrap, const std::string& group,
               const std::vector<std::string>& topics, const std::string& client_id,
               const kafka::RdkafkaProperties& extra = {});
  // Stops polling and closes the consumer (it leaves the group).
  ~LiveConsumer();
  LiveConsumer(const LiveConsumer&) = delete;
  LiveConsumer& operator=(const LiveConsumer&) = delete;

  const absl::Status& status() const { return status_; }

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
  absl::Status status_;
  std::atomic<bool> stop_{false};
  std::thread poller_;
};

}  // namespace klag::testing
