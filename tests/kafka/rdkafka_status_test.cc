// kafka/rdkafka_status: librdkafka error codes -> absl::Status, and which "unknown" answers
// prove nothing (RdkafkaTransientStatus). Label unit.
#include "kafka/rdkafka_status.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <vector>

namespace klag::kafka {
namespace {

using ::testing::HasSubstr;

TEST(RdkafkaStatusTest, MapsCodes) {
  struct Case {
    rd_kafka_resp_err_t err;
    absl::StatusCode code;
  };
  for (const Case& c : std::vector<Case>{
           {RD_KAFKA_RESP_ERR_NO_ERROR, absl::StatusCode::kOk},
           {RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART, absl::StatusCode::kNotFound},
           {RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_ID, absl::StatusCode::kNotFound},
           {RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED, absl::StatusCode::kPermissionDenied},
           {RD_KAFKA_RESP_ERR__AUTHENTICATION, absl::StatusCode::kUnauthenticated},
           {RD_KAFKA_RESP_ERR__TIMED_OUT, absl::StatusCode::kDeadlineExceeded},
           {RD_KAFKA_RESP_ERR__TRANSPORT, absl::StatusCode::kUnavailable},
           {RD_KAFKA_RESP_ERR_NOT_COORDINATOR, absl::StatusCode::kUnavailable},
           {RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS, absl::StatusCode::kUnavailable},
           {RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE, absl::StatusCode::kUnavailable},
           {RD_KAFKA_RESP_ERR_INVALID_GROUP_ID, absl::StatusCode::kInvalidArgument},
           {RD_KAFKA_RESP_ERR_UNSUPPORTED_VERSION, absl::StatusCode::kUnimplemented},
       }) {
    EXPECT_EQ(RdkafkaStatusCode(c.err), c.code) << rd_kafka_err2name(c.err);
  }
  EXPECT_EQ(RdkafkaStatusCode(RD_KAFKA_RESP_ERR__TIMED_OUT, BrokerReachability::kUnreachable),
            absl::StatusCode::kUnavailable);
}

TEST(RdkafkaStatusTest, UnknownAnswersAreTransientWhereMetadataHasNotConfirmedThem) {
  for (rd_kafka_resp_err_t err :
       {RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART, RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_ID,
        RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC, RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION,
        RD_KAFKA_RESP_ERR__UNKNOWN_GROUP, RD_KAFKA_RESP_ERR_GROUP_ID_NOT_FOUND}) {
    EXPECT_TRUE(IsUnknownTopicPartitionOrGroup(err)) << rd_kafka_err2name(err);
    EXPECT_EQ(RdkafkaStatus(err, "ctx").code(), absl::StatusCode::kNotFound);
    const absl::Status status = RdkafkaTransientStatus(err, "cluster c: topic t: ListOffsets");
    EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
    EXPECT_THAT(status.message(), HasSubstr("cluster c: topic t: ListOffsets: "));
    EXPECT_THAT(status.message(), HasSubstr(rd_kafka_err2name(err)));
    EXPECT_THAT(status.message(), HasSubstr("transient"));
  }
  // Everything else maps as RdkafkaStatus does, detail included.
  for (rd_kafka_resp_err_t err :
       {RD_KAFKA_RESP_ERR_NO_ERROR, RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
        RD_KAFKA_RESP_ERR__TIMED_OUT, RD_KAFKA_RESP_ERR_NOT_COORDINATOR}) {
    EXPECT_FALSE(IsUnknownTopicPartitionOrGroup(err)) << rd_kafka_err2name(err);
    EXPECT_EQ(RdkafkaTransientStatus(err, "ctx", "why"), RdkafkaStatus(err, "ctx", "why"));
  }
  EXPECT_EQ(RdkafkaTransientStatus(RD_KAFKA_RESP_ERR__TIMED_OUT, "ctx", "",
                                   BrokerReachability::kUnreachable)
                .code(),
            absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace klag::kafka
