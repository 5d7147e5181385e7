#include "job/produce.h"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>

#include "nlohmann/json.hpp"

namespace klag::job {
namespace {

TEST(StockPriceGeneratorTest, RecordsAreListedStockPriceJsonKeyedBySymbol) {
  StockPriceGenerator g({"ACME", "GLOBEX"}, 7, 0);
  std::set<std::string> keys;
  for (int i = 0; i < 50; ++i) {
    StockPriceGenerator::Item item = g.Next(1700000000000 + i);
    nlohmann::json j = nlohmann::json::parse(item.value);
    EXPECT_EQ(j.size(), 4u) << item.value;
    EXPECT_EQ(j["symbol"], item.key);
    EXPECT_GT(j["price"].get<double>(), 0);
    EXPECT_GT(j["volume"].get<int64_t>(), 0);
    EXPECT_EQ(j["timestamp"], 1700000000000 + i);
    keys.insert(item.key);
  }
  EXPECT_EQ(keys, (std::set<std::string>{"ACME", "GLOBEX"}));
}

TEST(StockPriceGeneratorTest, SameSeedSameRecords) {
  StockPriceGenerator a({"A", "B", "C"}, 42, 0);
  StockPriceGenerator b({"A", "B", "C"}, 42, 0);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(a.Next(i).value, b.Next(i).value);
}

TEST(StockPriceGeneratorTest, ValueSizePadsExactly) {
  StockPriceGenerator g({"ACME"}, 1, 300);
  for (int i = 0; i < 10; ++i) {
    StockPriceGenerator::Item item = g.Next(i);
    EXPECT_EQ(item.value.size(), 300u);
    nlohmann::json j = nlohmann::json::parse(item.value);
    EXPECT_TRUE(j.contains("pad"));
  }
}

TEST(ProduceOptionsTest, ParsesAndValidates) {
  std::string usage;
  auto env = [](absl::string_view) -> std::optional<std::string> { return std::nullopt; };
  absl::StatusOr<ProduceOptions> o = ParseProduceOptions(
      {"--bootstrap-servers", "h:1", "--topic", "ListedStockPrice", "--count", "100", "--rate",
       "50", "--transactional", "--partitions", "3", "--symbols", "X,Y"},
      env, &usage);
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->count, 100);
  EXPECT_DOUBLE_EQ(o->rate, 50);
  EXPECT_TRUE(o->transactional);
  EXPECT_EQ(o->partitions, 3);
  EXPECT_EQ(o->symbols, (std::vector<std::string>{"X", "Y"}));
  EXPECT_EQ(o->duration, absl::InfiniteDuration());

  EXPECT_FALSE(ParseProduceOptions({"--bootstrap-servers", "h:1"}, env, &usage).ok());
  EXPECT_FALSE(ParseProduceOptions({"--bootstrap-servers", "h:1", "--topic", "t", "--rate", "-1"},
                                   env, &usage)
                   .ok());
}

}  // namespace
}  // namespace klag::job
