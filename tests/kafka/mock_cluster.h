// Test helper: librdkafka's in-process mock cluster (rdkafka_mock.h), for fault injection that a
// real broker cannot do on demand (downed brokers, slow responses, request errors, moved
// leaders). Needs no external broker. (The mock cannot CreateTopics or DescribeConsumerGroups,
// and never names a controller: topics come from rd_kafka_mock_topic_create.)
//
//   testing::MockCluster cluster(3);  // brokers 1..3
//   const std::string topic = cluster.Topic(3, {3, 0, 5});  // records per partition
//   rd_kafka_mock_push_request_errors(cluster.get(), testing::kOffsetFetch, 1, err);
#pragma once

#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tests/testing/kafka_admin.h"
#include "tests/testing/test_env.h"

namespace klag::testing {

// Kafka protocol API keys (rdkafka_protocol.h is not installed).
inline constexpr int16_t kListOffsets = 2;
inline constexpr int16_t kOffsetFetch = 9;

class MockCluster {
 public:
  explicit MockCluster(int brokers) {
    char errstr[256];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "2", errstr, sizeof(errstr));
    rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    mcluster_ = rd_kafka_mock_cluster_new(rk_, brokers);
  }
  ~MockCluster() {
    rd_kafka_mock_cluster_destroy(mcluster_);
    rd_kafka_destroy(rk_);
  }
  MockCluster(const MockCluster&) = delete;
  MockCluster& operator=(const MockCluster&) = delete;

  rd_kafka_mock_cluster_t* get() const { return mcluster_; }
  std::string bootstrap() const { return rd_kafka_mock_cluster_bootstraps(mcluster_); }

  // A topic with `partitions` partitions and `records[p]` records in partition p.
  std::string Topic(int partitions, const std::vector<int>& records = {}) {
    const std::string topic = UniqueName("mock-topic");
    EXPECT_EQ(rd_kafka_mock_topic_create(mcluster_, topic.c_str(), partitions, 1),
              RD_KAFKA_RESP_ERR_NO_ERROR);
    for (size_t p = 0; p < records.size(); ++p) {
      if (records[p] == 0) continue;
      absl::StatusOr<std::vector<int64_t>> produced =
          Produce(bootstrap(), topic, static_cast<int32_t>(p), records[p]);
      EXPECT_TRUE(produced.ok()) << produced.status();
    }
    return topic;
  }

 private:
  rd_kafka_t* rk_ = nullptr;
  rd_kafka_mock_cluster_t* mcluster_ = nullptr;
};

}  // namespace klag::testing
