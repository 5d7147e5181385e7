// Table tests for scaler/lag/trigger_spec: one row per metadata rule of KEDA's `kafka` trigger
// (v2.20.2, pkg/scalers/kafka_scaler.go) and each klag difference. Error rows check the message
// names the key and the value, and that no secret ever appears in it.
#include "scaler/lag/trigger_spec.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace klag::scaler {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

Metadata With(const Metadata& extra) {
  Metadata md = {{"bootstrapServers", "kafka:9092"}, {"consumerGroup", "my-group"}};
  for (const auto& [k, v] : extra) md[k] = v;
  return md;
}

Metadata WithTopic(const Metadata& extra) {
  Metadata md = With({{"topic", "my-topic"}});
  for (const auto& [k, v] : extra) md[k] = v;
  return md;
}

// The spec of With({}): KEDA's defaults.
TriggerSpec Defaults() {
  TriggerSpec spec;
  spec.connection.bootstrap_servers = "kafka:9092";
  spec.consumer_group = "my-group";
  return spec;
}

void ExpectSpecEq(const TriggerSpec& got, const TriggerSpec& want) {
  EXPECT_EQ(got.connection, want.connection);
  EXPECT_EQ(got.consumer_group, want.consumer_group);
  EXPECT_EQ(got.topics, want.topics);
  EXPECT_EQ(got.partition_limitation, want.partition_limitation);
  EXPECT_EQ(got.lag_threshold, want.lag_threshold);
  EXPECT_EQ(got.activation_lag_threshold, want.activation_lag_threshold);
  EXPECT_EQ(got.offset_reset_policy, want.offset_reset_policy);
  EXPECT_EQ(got.allow_idle_consumers, want.allow_idle_consumers);
  EXPECT_EQ(got.exclude_persistent_lag, want.exclude_persistent_lag);
  EXPECT_EQ(got.scale_to_zero_on_invalid_offset, want.scale_to_zero_on_invalid_offset);
  EXPECT_EQ(got.limit_to_partitions_with_lag, want.limit_to_partitions_with_lag);
  EXPECT_EQ(got.ensure_even_distribution_of_partitions,
            want.ensure_even_distribution_of_partitions);
  EXPECT_EQ(got.isolation_level, want.isolation_level);
  EXPECT_EQ(got.version, want.version);
  EXPECT_EQ(got.unknown_keys, want.unknown_keys);
}

// ---------------------------------------------------------------------------------------------
// Valid metadata.

struct OkRow {
  std::string name;
  Metadata metadata;
  std::function<void(TriggerSpec&)> expect;  // edits Defaults() into the expected spec
};

void PrintTo(const OkRow& row, std::ostream* os) { *os << row.name; }

std::vector<OkRow> OkRows() {
  return {
      {"Defaults", With({}), [](TriggerSpec&) {}},
      {"ConsumerGroupFromEnv",
       {{"bootstrapServers", "kafka:9092"}, {"consumerGroupFromEnv", " other-group "}},
       [](TriggerSpec& s) { s.consumer_group = "other-group"; }},
      {"ConsumerGroupEmptyDefersToFromEnv",
       {{"bootstrapServers", "kafka:9092"},
        {"consumerGroup", ""},
        {"consumerGroupFromEnv", "other-group"}},
       [](TriggerSpec& s) { s.consumer_group = "other-group"; }},
      // topic
      {"TopicOne", With({{"topic", "my-topic"}}), [](TriggerSpec& s) { s.topics = {"my-topic"}; }},
      {"TopicFromEnv", With({{"topicFromEnv", "orders.v1"}}),
       [](TriggerSpec& s) { s.topics = {"orders.v1"}; }},
      {"TopicListTrimmedInOrder", With({{"topic", " b , a,c_1 "}}),
       [](TriggerSpec& s) {
         s.topics = {"b", "a", "c_1"};
       }},
      {"TopicDuplicatesDropped", With({{"topic", "a,b,a, b"}}),
       [](TriggerSpec& s) {
         s.topics = {"a", "b"};
       }},
      {"TopicLongestLegalName", With({{"topic", std::string(249, 'x')}}),
       [](TriggerSpec& s) { s.topics = {std::string(249, 'x')}; }},
      {"TopicWhitespaceOnlyIsAbsent", With({{"topic", "  "}}), [](TriggerSpec&) {}},
      // partitionLimitation
      {"PartitionLimitationIdsAndRanges", WithTopic({{"partitionLimitation", "1,2,10-20"}}),
       [](TriggerSpec& s) {
         s.topics = {"my-topic"};
         s.partition_limitation = {{1, 1}, {2, 2}, {10, 20}};
       }},
      {"PartitionLimitationSpaces", WithTopic({{"partitionLimitation", " 1 , 3 - 5 ,7-7"}}),
       [](TriggerSpec& s) {
         s.topics = {"my-topic"};
         s.partition_limitation = {{1, 1}, {3, 5}, {7, 7}};
       }},
      {"PartitionLimitationZeroAndMaxId", WithTopic({{"partitionLimitation", "0,2147483647"}}),
       [](TriggerSpec& s) {
         s.topics = {"my-topic"};
         s.partition_limitation = {{0, 0}, {2147483647, 2147483647}};
       }},
      {"PartitionLimitationIgnoredWithoutTopic", With({{"partitionLimitation", "1,2,3,4,5,6"}}),
       [](TriggerSpec&) {}},
      {"PartitionLimitationWhitespaceOnly", WithTopic({{"partitionLimitation", "   "}}),
       [](TriggerSpec& s) { s.topics = {"my-topic"}; }},
      // thresholds
      {"LagThresholdOne", With({{"lagThreshold", "1"}}),
       [](TriggerSpec& s) { s.lag_threshold = 1; }},
      {"LagThresholdLarge", With({{"lagThreshold", "1000000"}}),
       [](TriggerSpec& s) { s.lag_threshold = 1000000; }},
      {"LagThresholdFromEnv", With({{"lagThresholdFromEnv", " 25 "}}),
       [](TriggerSpec& s) { s.lag_threshold = 25; }},
      {"LagThresholdEmptyIsDefault", With({{"lagThreshold", ""}}), [](TriggerSpec&) {}},
      {"ActivationZero", With({{"activationLagThreshold", "0"}}), [](TriggerSpec&) {}},
      {"ActivationThree", With({{"activationLagThreshold", "3"}}),
       [](TriggerSpec& s) { s.activation_lag_threshold = 3; }},
      {"ActivationSeconds", With({{"activationLagSeconds", "300"}}),
       [](TriggerSpec& s) { s.activation_lag_seconds = 300; }},
      {"ActivationSecondsFraction", With({{"activationLagSeconds", "1.5"}}),
       [](TriggerSpec& s) { s.activation_lag_seconds = 1.5; }},
      {"ActivationSecondsEmptyIsUnset", With({{"activationLagSecondsFromEnv", ""}}),
       [](TriggerSpec&) {}},
      {"ActivationSecondsZero", With({{"activationLagSecondsFromEnv", "0"}}),
       [](TriggerSpec& s) { s.activation_lag_seconds = 0; }},
      {"ActivationSecondsTenYears", With({{"activationLagSeconds", "315360000"}}),
       [](TriggerSpec& s) { s.activation_lag_seconds = 315360000; }},
      // enums
      {"OffsetResetLatest", With({{"offsetResetPolicy", "latest"}}), [](TriggerSpec&) {}},
      {"OffsetResetEarliest", With({{"offsetResetPolicy", "earliest"}}),
       [](TriggerSpec& s) { s.offset_reset_policy = OffsetResetPolicy::kEarliest; }},
      {"IsolationReadCommitted", With({{"isolationLevel", "read_committed"}}),
       [](TriggerSpec& s) { s.isolation_level = kafka::IsolationLevel::kReadCommitted; }},
      {"IsolationReadUncommitted", With({{"isolationLevelFromEnv", "read_uncommitted"}}),
       [](TriggerSpec&) {}},
      // booleans (strconv.ParseBool spellings)
      {"AllowIdleConsumersTrue", With({{"allowIdleConsumers", "true"}}),
       [](TriggerSpec& s) { s.allow_idle_consumers = true; }},
      {"AllowIdleConsumersFalse", With({{"allowIdleConsumers", "false"}}), [](TriggerSpec&) {}},
      {"ExcludePersistentLagOne", With({{"excludePersistentLag", "1"}}),
       [](TriggerSpec& s) { s.exclude_persistent_lag = true; }},
      {"ScaleToZeroTitleCase", With({{"scaleToZeroOnInvalidOffset", "True"}}),
       [](TriggerSpec& s) { s.scale_to_zero_on_invalid_offset = true; }},
      {"LimitToPartitionsWithLagWithTopic", WithTopic({{"limitToPartitionsWithLag", "T"}}),
       [](TriggerSpec& s) {
         s.topics = {"my-topic"};
         s.limit_to_partitions_with_lag = true;
       }},
      {"EnsureEvenWithTopic", WithTopic({{"ensureEvenDistributionOfPartitionsFromEnv", "TRUE"}}),
       [](TriggerSpec& s) {
         s.topics = {"my-topic"};
         s.ensure_even_distribution_of_partitions = true;
       }},
      {"AllowIdleWithLimitFalse",
       WithTopic({{"allowIdleConsumers", "true"}, {"limitToPartitionsWithLag", "false"}}),
       [](TriggerSpec& s) {
         s.topics = {"my-topic"};
         s.allow_idle_consumers = true;
       }},
      {"AllowIdleWithEnsureEven",
       WithTopic({{"allowIdleConsumers", "true"}, {"ensureEvenDistributionOfPartitions", "true"}}),
       [](TriggerSpec& s) {
         s.topics = {"my-topic"};
         s.allow_idle_consumers = true;
         s.ensure_even_distribution_of_partitions = true;
       }},
      // version
      {"VersionPost1", With({{"version", "2.8.1"}}), [](TriggerSpec& s) { s.version = "2.8.1"; }},
      {"VersionPre1", With({{"version", "0.10.2.1"}}),
       [](TriggerSpec& s) { s.version = "0.10.2.1"; }},
      {"VersionTwoDigits", With({{"version", " 10.0.0 "}}),
       [](TriggerSpec& s) { s.version = "10.0.0"; }},
      // connection keys reach spec.connection
      {"Connection",
       With({{"sasl", "scram_sha512"},
             {"usernameFromEnv", "admin"},
             {"passwordFromEnv", "pw-SECRET"},
             {"tls", "enable"}}),
       [](TriggerSpec& s) {
         s.connection.tls.enabled = true;
         s.connection.sasl.mechanism = kafka::SaslMechanism::kScramSha512;
         s.connection.sasl.username = "admin";
         s.connection.sasl.password = "pw-SECRET";
       }},
      // keys KEDA forwards for itself, klag's authProfile and inert KEDA kafka keys are known;
      // everything else is listed, sorted, without failing.
      {"KnownButIgnoredKeys",
       With({{"scalerAddress", "klag:6000"},
             {"enableTLS", "false"},
             {"unsafeSsl", "false"},
             {"caCert", "x"},
             {"tlsClientCert", "x"},
             {"tlsClientKey", "x"},
             {"authProfile", "prod"},
             {"kerberosConfig", "x"},
             {"kerberosDisableFAST", "true"},
             {"awsRegion", "eu-west-1"},
             {"awsRegionFromEnv", "eu-west-1"}}),
       [](TriggerSpec&) {}},
      {"UnknownKeysSorted",
       With({{"lagTreshold", "5"},
             {"Topic", "x"},
             {"fooFromEnv", "y"},
             {"scalerAddressFromEnv", "z"},
             {"FromEnv", ""}}),
       [](TriggerSpec& s) {
         s.unknown_keys = {"FromEnv", "Topic", "fooFromEnv", "lagTreshold", "scalerAddressFromEnv"};
       }},
  };
}

class ParseTriggerSpecOkTest : public ::testing::TestWithParam<OkRow> {};

TEST_P(ParseTriggerSpecOkTest, BuildsTheExactSpec) {
  const OkRow& row = GetParam();
  absl::StatusOr<TriggerSpec> spec = ParseTriggerSpec(row.metadata);
  ASSERT_TRUE(spec.ok()) << spec.status();
  TriggerSpec want = Defaults();
  row.expect(want);
  ExpectSpecEq(*spec, want);
}

INSTANTIATE_TEST_SUITE_P(Rules, ParseTriggerSpecOkTest, ::testing::ValuesIn(OkRows()),
                         [](const auto& info) { return info.param.name; });

// ---------------------------------------------------------------------------------------------
// Invalid metadata.

struct ErrorRow {
  std::string name;
  Metadata metadata;
  std::string fragment;  // must appear in the message
};

void PrintTo(const ErrorRow& row, std::ostream* os) { *os << row.name; }

std::vector<ErrorRow> ErrorRows() {
  return {
      // required keys
      {"BootstrapServersMissing",
       {{"consumerGroup", "g"}},
       "bootstrapServers (or bootstrapServersFromEnv) is required"},
      {"ConsumerGroupMissing",
       {{"bootstrapServers", "kafka:9092"}},
       "consumerGroup (or consumerGroupFromEnv) is required"},
      {"ConsumerGroupWhitespace",
       {{"bootstrapServers", "kafka:9092"}, {"consumerGroup", " "}},
       "consumerGroup (or consumerGroupFromEnv) is required"},
      {"ConsumerGroupBothForms", With({{"consumerGroupFromEnv", "other"}}),
       "both consumerGroup and consumerGroupFromEnv are given"},
      // topic
      {"TopicEmptyEntry", With({{"topic", "a,,b"}}), "topic \"a,,b\" has an empty entry"},
      {"TopicTrailingComma", With({{"topic", "a,"}}), "topic \"a,\" has an empty entry"},
      {"TopicIllegalCharacter", With({{"topic", "my topic"}}),
       "topic entry \"my topic\" is not a Kafka topic name"},
      {"TopicDotDot", With({{"topic", ".."}}), "topic entry \"..\" is not a Kafka topic name"},
      {"TopicTooLong", With({{"topic", std::string(250, 'x')}}), "is not a Kafka topic name"},
      {"TopicFromEnvIllegal", With({{"topicFromEnv", "a/b"}}),
       "topicFromEnv entry \"a/b\" is not a Kafka topic name"},
      {"TopicBothForms", With({{"topic", "a"}, {"topicFromEnv", "b"}}),
       "both topic and topicFromEnv are given"},
      // partitionLimitation (KEDA's own test rows: "a,b,c,d"; and the brief's forms)
      {"PartitionLimitationThreeBounds", WithTopic({{"partitionLimitation", "1-2-3"}}),
       "partitionLimitation \"1-2-3\" has a bad entry \"1-2-3\": a range is first-last"},
      {"PartitionLimitationNegative", WithTopic({{"partitionLimitation", "-1"}}),
       "partitionLimitation \"-1\" has a bad entry \"-1\": a range is first-last with "
       "non-negative ids"},
      {"PartitionLimitationLetter", WithTopic({{"partitionLimitation", "a"}}),
       "partitionLimitation \"a\" has a bad entry \"a\": not a partition id"},
      {"PartitionLimitationLetters", WithTopic({{"partitionLimitation", "a,b,c,d"}}),
       "has a bad entry \"a\": not a partition id"},
      {"PartitionLimitationReversed", WithTopic({{"partitionLimitation", "1,5-2"}}),
       "partitionLimitation \"1,5-2\" has a bad entry \"5-2\": the range is reversed"},
      {"PartitionLimitationEmptyEntry", WithTopic({{"partitionLimitation", "1,,2"}}),
       "partitionLimitation \"1,,2\" has a bad entry \"\": empty"},
      {"PartitionLimitationOpenRange", WithTopic({{"partitionLimitation", "3-"}}),
       "has a bad entry \"3-\": a range is first-last with non-negative ids"},
      {"PartitionLimitationOverflow", WithTopic({{"partitionLimitation", "2147483648"}}),
       "has a bad entry \"2147483648\": not a partition id"},
      {"PartitionLimitationSigned", WithTopic({{"partitionLimitation", "+1"}}),
       "has a bad entry \"+1\": not a partition id"},
      {"PartitionLimitationCheckedWithoutTopic", With({{"partitionLimitation", "1-2-3"}}),
       "partitionLimitation \"1-2-3\" has a bad entry"},
      // lagThreshold / activationLagThreshold
      {"LagThresholdZero", With({{"lagThreshold", "0"}}),
       "lagThreshold must be positive number, got \"0\""},
      {"LagThresholdNegative", With({{"lagThreshold", "-1"}}),
       "lagThreshold must be positive number, got \"-1\""},
      {"LagThresholdNotInteger", With({{"lagThreshold", "abc"}}),
       "lagThreshold must be an integer, got \"abc\""},
      {"LagThresholdFraction", With({{"lagThreshold", "1.5"}}),
       "lagThreshold must be an integer, got \"1.5\""},
      {"LagThresholdExponent", With({{"lagThreshold", "1e3"}}),
       "lagThreshold must be an integer, got \"1e3\""},
      {"LagThresholdOverflow", With({{"lagThreshold", "9223372036854775808"}}),
       "lagThreshold must be an integer, got \"9223372036854775808\""},
      {"LagThresholdFromEnvZero", With({{"lagThresholdFromEnv", "0"}}),
       "lagThresholdFromEnv must be positive number, got \"0\""},
      {"ActivationNegative", With({{"activationLagThreshold", "-1"}}),
       "activationLagThreshold must be a non-negative number, got \"-1\""},
      {"ActivationNotInteger", With({{"activationLagThreshold", "AA"}}),
       "activationLagThreshold must be an integer, got \"AA\""},
      {"ActivationSecondsNegative", With({{"activationLagSeconds", "-1"}}),
       "activationLagSeconds must be a number of seconds >= 0 (at most 10 years), got \"-1\""},
      {"ActivationSecondsExponent", With({{"activationLagSeconds", "1e3"}}),
       "activationLagSeconds must be a number of seconds >= 0 (at most 10 years), got \"1e3\""},
      {"ActivationSecondsUnit", With({{"activationLagSeconds", "30s"}}),
       "activationLagSeconds must be a number of seconds >= 0 (at most 10 years), got \"30s\""},
      {"ActivationSecondsNoDigitsAfterDot", With({{"activationLagSeconds", "5."}}),
       "activationLagSeconds must be a number of seconds >= 0 (at most 10 years), got \"5.\""},
      {"ActivationSecondsNoDigitsBeforeDot", With({{"activationLagSeconds", ".5"}}),
       "activationLagSeconds must be a number of seconds >= 0 (at most 10 years), got \".5\""},
      {"ActivationSecondsNan", With({{"activationLagSeconds", "nan"}}),
       "activationLagSeconds must be a number of seconds >= 0 (at most 10 years), got \"nan\""},
      {"ActivationSecondsTooLarge", With({{"activationLagSeconds", "315360001"}}),
       "activationLagSeconds must be a number of seconds >= 0 (at most 10 years), got "
       "\"315360001\""},
      // enums
      {"OffsetResetUnknown", With({{"offsetResetPolicy", "foo"}}),
       "offsetResetPolicy must be one of latest, earliest; got \"foo\""},
      {"OffsetResetCaseSensitive", With({{"offsetResetPolicy", "Latest"}}),
       "offsetResetPolicy must be one of latest, earliest; got \"Latest\""},
      {"IsolationUnknown", With({{"isolationLevel", "committed"}}),
       "isolationLevel must be one of read_uncommitted, read_committed; got \"committed\""},
      // booleans
      {"AllowIdleConsumersNotBool", With({{"allowIdleConsumers", "notvalid"}}),
       "allowIdleConsumers must be true or false, got \"notvalid\""},
      {"ExcludePersistentLagNotBool", With({{"excludePersistentLag", "notvalid"}}),
       "excludePersistentLag must be true or false, got \"notvalid\""},
      {"ScaleToZeroNotBool", With({{"scaleToZeroOnInvalidOffset", "yes"}}),
       "scaleToZeroOnInvalidOffset must be true or false, got \"yes\""},
      {"LimitToPartitionsWithLagNotBool", WithTopic({{"limitToPartitionsWithLag", "notvalid"}}),
       "limitToPartitionsWithLag must be true or false, got \"notvalid\""},
      {"EnsureEvenNotBool", WithTopic({{"ensureEvenDistributionOfPartitions", "on"}}),
       "ensureEvenDistributionOfPartitions must be true or false, got \"on\""},
      // version (sarama.ParseKafkaVersion's format)
      {"VersionFourPartsPost1", With({{"version", "1.2.3.4"}}),
       "version \"1.2.3.4\" is not a Kafka version"},
      {"VersionThreePartsPre1", With({{"version", "0.10.2"}}),
       "version \"0.10.2\" is not a Kafka version"},
      {"VersionTooShort", With({{"version", "1.0"}}), "version \"1.0\" is not a Kafka version"},
      {"VersionPrefixV", With({{"version", "v1.0.0"}}),
       "version \"v1.0.0\" is not a Kafka version"},
      {"VersionLeadingZeroNotPre1", With({{"version", "01.0.0"}}),
       "version \"01.0.0\" is not a Kafka version"},
      {"VersionLetter", With({{"version", "1.0.a"}}), "version \"1.0.a\" is not a Kafka version"},
      // KEDA's contradictions
      {"AllowIdleWithLimit",
       WithTopic({{"allowIdleConsumers", "true"}, {"limitToPartitionsWithLag", "true"}}),
       "allowIdleConsumers \"true\" and limitToPartitionsWithLag \"true\" cannot be set "
       "simultaneously"},
      {"LimitWithoutTopic", With({{"limitToPartitionsWithLag", "true"}}),
       "limitToPartitionsWithLag \"true\" needs topic (or topicFromEnv)"},
      {"LimitWithEnsureEven",
       WithTopic(
           {{"limitToPartitionsWithLag", "true"}, {"ensureEvenDistributionOfPartitions", "true"}}),
       "limitToPartitionsWithLag \"true\" and ensureEvenDistributionOfPartitions \"true\" cannot "
       "be set simultaneously"},
      {"EnsureEvenWithoutTopic", With({{"ensureEvenDistributionOfPartitions", "true"}}),
       "ensureEvenDistributionOfPartitions \"true\" needs topic (or topicFromEnv)"},
      // connection keys, and secrets stay out of messages
      {"SaslWithoutUsername", With({{"sasl", "plaintext"}, {"password", "pw-SECRET"}}),
       "sasl plaintext needs username"},
      {"PasswordBothForms",
       With({{"sasl", "plaintext"},
             {"username", "u"},
             {"password", "pw-SECRET"},
             {"passwordFromEnv", "pw-SECRET"}}),
       "both password and passwordFromEnv are given"},
      {"AwsMskIamRefused",
       With({{"sasl", "oauthbearer"}, {"saslTokenProvider", "aws_msk_iam"}, {"tls", "enable"}}),
       "saslTokenProvider \"aws_msk_iam\" is not implemented"},
  };
}

class ParseTriggerSpecErrorTest : public ::testing::TestWithParam<ErrorRow> {};

TEST_P(ParseTriggerSpecErrorTest, FailsNamingKeyAndValue) {
  const ErrorRow& row = GetParam();
  absl::StatusOr<TriggerSpec> spec = ParseTriggerSpec(row.metadata);
  ASSERT_FALSE(spec.ok()) << "expected an error";
  EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(spec.status().message()), HasSubstr(row.fragment));
  EXPECT_THAT(std::string(spec.status().message()), Not(HasSubstr("SECRET")));
}

INSTANTIATE_TEST_SUITE_P(Rules, ParseTriggerSpecErrorTest, ::testing::ValuesIn(ErrorRows()),
                         [](const auto& info) { return info.param.name; });

// ---------------------------------------------------------------------------------------------
// MetricName and PartitionAllowed.

struct NameRow {
  std::string name;
  Metadata metadata;
  std::string metric_name;
};

void PrintTo(const NameRow& row, std::ostream* os) { *os << row.name; }

class MetricNameTest : public ::testing::TestWithParam<NameRow> {};

TEST_P(MetricNameTest, IsKedasNormalizedName) {
  absl::StatusOr<TriggerSpec> spec = ParseTriggerSpec(GetParam().metadata);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(MetricName(*spec), GetParam().metric_name);
}

// KEDA's kafka_scaler_test.go expects "s0-kafka-my-topic" and "s1-kafka-my-group-topics"; the
// "sN-" prefix is KEDA's own, added on its side.
INSTANTIATE_TEST_SUITE_P(
    Names, MetricNameTest,
    ::testing::Values(NameRow{"Topic", With({{"topic", "my-topic"}}), "kafka-my-topic"},
                      NameRow{"NoTopic", With({}), "kafka-my-group-topics"},
                      NameRow{"DotsInTopic", With({{"topic", "orders.v1"}}), "kafka-orders-v1"},
                      NameRow{
                          "GroupNormalized",
                          {{"bootstrapServers", "kafka:9092"}, {"consumerGroup", "a/b:c%d(e).f"}},
                          "kafka-a-b-c-d-e--f-topics"},
                      NameRow{"TopicList", With({{"topic", "a, b.c"}}), "kafka-a,b-c"}),
    [](const auto& info) { return info.param.name; });

TEST(PartitionAllowedTest, FollowsTheLimitation) {
  absl::StatusOr<TriggerSpec> spec =
      ParseTriggerSpec(WithTopic({{"partitionLimitation", "1,2,10-20"}}));
  ASSERT_TRUE(spec.ok()) << spec.status();
  std::vector<int32_t> allowed;
  for (int32_t id = 0; id <= 22; ++id) {
    if (spec->PartitionAllowed(id)) allowed.push_back(id);
  }
  EXPECT_THAT(allowed, ElementsAre(1, 2, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20));
}

TEST(PartitionAllowedTest, AllowsEverythingWithoutLimitation) {
  TriggerSpec spec;
  EXPECT_THAT(spec.partition_limitation, IsEmpty());
  EXPECT_TRUE(spec.PartitionAllowed(0));
  EXPECT_TRUE(spec.PartitionAllowed(2147483647));
}

// ---------------------------------------------------------------------------------------------
// A megabyte-long value is echoed cut (kafka::QuoteValue), never whole.

TEST(TriggerSpecErrorLengthTest, MegabyteValuesAreCutInMessages) {
  const std::string big(1 << 20, '7');
  const std::string cut = "\"" + std::string(64, '7') + "\"... (1048576 bytes)";
  for (const Metadata& metadata : std::vector<Metadata>{
           With({{"lagThreshold", big}}),
           With({{"lagThreshold", "x" + big}}),
           With({{"activationLagThreshold", "-" + big}}),
           With({{"offsetResetPolicy", big}}),
           With({{"isolationLevel", big}}),
           With({{"allowIdleConsumers", big}}),
           With({{"version", big}}),
           With({{"topic", big + "!"}}),
           With({{"topic", "a,," + big}}),
           WithTopic({{"partitionLimitation", "x" + big}}),
       }) {
    absl::StatusOr<TriggerSpec> spec = ParseTriggerSpec(metadata);
    ASSERT_FALSE(spec.ok());
    EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument);
    const std::string message(spec.status().message());
    EXPECT_LT(message.size(), 600u) << message.substr(0, 200);
    EXPECT_THAT(message, HasSubstr("(10485")) << message.substr(0, 200);
  }
  absl::StatusOr<TriggerSpec> spec = ParseTriggerSpec(With({{"lagThreshold", "x" + big}}));
  EXPECT_THAT(std::string(spec.status().message()), Not(HasSubstr(cut)));  // "x" then 63 sevens
  spec = ParseTriggerSpec(With({{"version", big}}));
  EXPECT_EQ(std::string(spec.status().message()),
            "version " + cut + " is not a Kafka version (x.y.z, or 0.x.y.z before 1.0)");
}

TEST(TriggerSpecErrorLengthTest, UnknownKeysAreBoundedForTheLog) {
  Metadata metadata = With({});
  const std::string long_key(1 << 20, 'k');
  metadata[long_key] = "v";
  absl::StatusOr<TriggerSpec> spec = ParseTriggerSpec(metadata);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_THAT(spec->unknown_keys,
              ElementsAre("\"" + std::string(64, 'k') + "\"... (1048576 bytes)"));

  for (int i = 0; i < 1000; ++i) metadata["unknown" + std::to_string(1000 + i)] = "v";
  spec = ParseTriggerSpec(metadata);
  ASSERT_TRUE(spec.ok()) << spec.status();
  ASSERT_EQ(spec->unknown_keys.size(), TriggerSpec::kMaxUnknownKeys + 1);
  EXPECT_EQ(spec->unknown_keys.front(), "\"" + std::string(64, 'k') + "\"... (1048576 bytes)");
  EXPECT_EQ(spec->unknown_keys[1], "unknown1000");
  EXPECT_EQ(spec->unknown_keys.back(), "... (1001 keys)");
}

// ---------------------------------------------------------------------------------------------
// The operator's connection policy reaches the connection parser.

TEST(TriggerSpecPolicyTest, GssapiKeytabNeedsTheOperatorsDirectory) {
  const Metadata metadata = With({{"sasl", "gssapi"},
                                  {"username", "svc"},
                                  {"realm", "EXAMPLE.COM"},
                                  {"keytab", "/etc/klag/keytabs/svc.keytab"}});
  absl::StatusOr<TriggerSpec> refused = ParseTriggerSpec(metadata);
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(std::string(refused.status().message()),
              HasSubstr("no keytab directory is configured"));
  absl::StatusOr<TriggerSpec> spec =
      ParseTriggerSpec(metadata, {.kerberos_keytab_dir = "/etc/klag/keytabs"});
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->connection.sasl.keytab_path, "/etc/klag/keytabs/svc.keytab");
  absl::StatusOr<TriggerSpec> injected =
      ParseTriggerSpec(With({{"sasl", "gssapi"},
                             {"username", "a;touch /tmp/x;#"},
                             {"realm", "R"},
                             {"keytab", "/etc/klag/keytabs/svc.keytab"}}),
                       {.kerberos_keytab_dir = "/etc/klag/keytabs"});
  ASSERT_FALSE(injected.ok());
  EXPECT_EQ(injected.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(injected.status().message()), Not(HasSubstr("touch")));
}

}  // namespace
}  // namespace klag::scaler
