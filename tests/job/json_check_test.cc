// IsJsonbDocument: a table of edge cases, then a differential run against nlohmann::json's
// parser on generated and mutated documents. PostgreSQL itself is the oracle in
// postgres_sink_test.cc (JsonbCheckAgreesWithPostgres).
#include "job/json_check.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "tests/job/jsonb_cases.h"

namespace klag::job {
namespace {

TEST(IsJsonbDocumentTest, Table) {
  for (const JsonbCase& c : JsonbEdgeCases()) {
    EXPECT_EQ(IsJsonbDocument(c.text), c.document) << c.text;
  }
}

TEST(IsJsonbDocumentTest, Limits) {
  EXPECT_TRUE(IsJsonbDocument(std::string(kMaxNumberDigits, '7')));
  EXPECT_FALSE(IsJsonbDocument(std::string(kMaxNumberDigits + 1, '7')));
  EXPECT_TRUE(IsJsonbDocument(absl::StrCat("0.", std::string(kMaxNumberDigits - 1, '1'))));
  EXPECT_FALSE(IsJsonbDocument(absl::StrCat("0.", std::string(kMaxNumberDigits, '1'))));
  EXPECT_TRUE(IsJsonbDocument(absl::StrCat("1e", kMaxNumberExponent)));
  EXPECT_TRUE(IsJsonbDocument(absl::StrCat("1e-000", kMaxNumberExponent)));
  EXPECT_FALSE(IsJsonbDocument(absl::StrCat("1e", kMaxNumberExponent + 1)));
  EXPECT_FALSE(IsJsonbDocument(absl::StrCat("1E-", kMaxNumberExponent + 1)));
  EXPECT_FALSE(IsJsonbDocument("0e99999999999999999999999999"));
  const auto nested = [](int depth) {
    return absl::StrCat(std::string(depth, '['), std::string(depth, ']'));
  };
  EXPECT_TRUE(IsJsonbDocument(nested(kMaxDepth)));
  EXPECT_FALSE(IsJsonbDocument(nested(kMaxDepth + 1)));
  EXPECT_FALSE(IsJsonbDocument(std::string(100000, '[')));  // no recursion to run out of stack
  std::string objects;
  for (int i = 0; i < kMaxDepth; ++i) objects += R"({"a":)";
  objects += "1";
  objects += std::string(kMaxDepth, '}');
  EXPECT_TRUE(IsJsonbDocument(objects));
}

// What jsonb takes by nlohmann's parser: a JSON text whose strings hold no NUL (\u0000) and whose
// numbers fit a double; nullopt when nlohmann refuses only because a number overflows a double
// (jsonb's numeric holds it: the case is left to the table and PostgreSQL).
std::optional<bool> ReferenceAnswer(const std::string& text) {
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(text);
  } catch (const nlohmann::json::out_of_range&) {
    return std::nullopt;
  } catch (const nlohmann::json::exception&) {
    return false;
  }
  bool has_nul = false;
  auto visit = [&has_nul](auto& self, const nlohmann::json& v) -> void {
    if (v.is_string()) {
      has_nul |= v.get_ref<const std::string&>().find('\0') != std::string::npos;
    } else if (v.is_object()) {
      for (const auto& [name, member] : v.items()) {
        has_nul |= name.find('\0') != std::string::npos;
        self(self, member);
      }
    } else if (v.is_array()) {
      for (const auto& e : v) self(self, e);
    }
  };
  visit(visit, doc);
  return !has_nul;
}

TEST(IsJsonbDocumentTest, AgreesWithNlohmannOnMutatedDocuments) {
  const std::vector<std::string> seeds = {
      R"({"symbol":"ACME","price":12.5,"volume":100,"timestamp":1700000000123})",
      R"([1,-2.5e3,true,false,null,"a\"b",{"k":[{}]}])",
      R"({"s":"\u00e9\uD83D\uDE00\n","n":-0.25E+2,"e":[]})",
      "\"caf\xC3\xA9 \xE2\x82\xAC\"",
      " [ 0 , 1 ] ",
  };
  // Bytes a mutation inserts or substitutes: JSON's punctuation, digits, escapes, whitespace
  // that is and is not JSON's, and bytes that break UTF-8.
  const std::string alphabet = "{}[],:\"\\/ubfnrt0123456789eE+-.aADd \t\n\r\f\x01\x7F\xC3\xA9\xED";
  std::mt19937 rng(20261203);
  int64_t compared = 0;
  int64_t documents = 0;
  for (int round = 0; round < 200000; ++round) {
    std::string text = seeds[rng() % seeds.size()];
    const int mutations = 1 + static_cast<int>(rng() % 3);
    for (int m = 0; m < mutations && !text.empty(); ++m) {
      const size_t at = rng() % text.size();
      switch (rng() % 3) {
        case 0:
          text.erase(at, 1);
          break;
        case 1:
          text.insert(at, 1, alphabet[rng() % alphabet.size()]);
          break;
        default:
          text[at] = alphabet[rng() % alphabet.size()];
      }
    }
    const std::optional<bool> want = ReferenceAnswer(text);
    if (!want.has_value()) continue;
    ++compared;
    documents += *want ? 1 : 0;
    ASSERT_EQ(IsJsonbDocument(text), *want) << text;
  }
  // The run compared both kinds in numbers (not a degenerate corpus).
  EXPECT_GT(compared, 190000);
  EXPECT_GT(documents, 10000);
  EXPECT_GT(compared - documents, 10000);
}

}  // namespace
}  // namespace klag::job
