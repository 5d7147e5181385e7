#include "tests/testing/live_consumer.h"

#include <librdkafka/rdkafka.h>

#include "kafka/rdkafka_handle.h"
#include "kafka/rdkafka_status.h"

namespace klag::testing {

struct LiveConsumer::Impl {
  kafka::rdkafka::HandlePtr rk;
};

LiveConsumer::LiveConsumer(const std::string& bootstrap, const std::string& group,
                           const std::vector<std::string>& topics, const std::string& client_id,
                           const kafka::RdkafkaProperties& extra)
    : impl_(std::make_unique<Impl>()) {
  kafka::RdkafkaProperties properties = {{"bootstrap.servers", bootstrap},
                                         {"group.id", group},
                                         {"client.id", client_id},
                                         {"enable.auto.commit", "false"}};
  properties.insert(properties.end(), extra.begin(), extra.end());
  absl::StatusOr<kafka::rdkafka::HandlePtr> rk =
      kafka::rdkafka::NewHandle(RD_KAFKA_CONSUMER, properties);
  if (!rk.ok()) {
    status_ = rk.status();
    return;
  }
  impl_->rk = *std::move(rk);
  rd_kafka_poll_set_consumer(impl_->rk.get());
  kafka::rdkafka::PartitionListPtr list(
      rd_kafka_topic_partition_list_new(static_cast<int>(topics.size())));
  for (const std::string& topic : topics) {
    rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), RD_KAFKA_PARTITION_UA);
  }
  status_ = kafka::RdkafkaStatus(rd_kafka_subscribe(impl_->rk.get(), list.get()),
                                 "test consumer: subscribe");
  if (!status_.ok()) return;
  poller_ = std::thread([this] {
    while (!stop_.load()) {
      if (rd_kafka_message_t* m = rd_kafka_consumer_poll(impl_->rk.get(), 100); m != nullptr) {
        rd_kafka_message_destroy(m);
      }
    }
  });
}

LiveConsumer::~LiveConsumer() {
  stop_.store(true);
  if (poller_.joinable()) poller_.join();
  if (impl_->rk != nullptr) rd_kafka_consumer_close(impl_->rk.get());
}

}  // namespace klag::testing
