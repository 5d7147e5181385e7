// PostgresSink against the real PostgreSQL of scripts/postgres.sh (KLAG_TEST_POSTGRES).
#include "job/postgres_sink.h"

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "job/json_check.h"
#include "tests/job/abandon_after.h"
#include "tests/job/job_e2e_util.h"
#include "tests/job/jsonb_cases.h"
#include "tests/testing/test_env.h"

namespace klag::job {
namespace {

using ::klag::job::testing::AbandonAfter;

using ::klag::job::testing::PostgresScalar;

std::string UniqueTable() {
  std::string t = ::klag::testing::UniqueName("sink");
  for (char& c : t) c = c == '-' ? '_' : c;
  return t;
}

// SELECT <expr> FROM <table> [WHERE <where>], one integer; -1 (and a test failure) on error.
int64_t Select(const std::string& uri, const std::string& table, const std::string& expr,
               const std::string& where = "") {
  absl::StatusOr<int64_t> v =
      PostgresScalar(uri, absl::StrCat("SELECT ", expr, " FROM \"", table, "\"",
                                       where.empty() ? "" : absl::StrCat(" WHERE ", where)));
  EXPECT_TRUE(v.ok()) << v.status();
  return v.ok() ? *v : -1;
}

// Opens a connection that holds an ACCESS EXCLUSIVE lock on `table` in an open transaction, so
// the sink's statements wait; ROLLBACK and PQfinish release it.
void LockTable(const std::string& uri, const std::string& table, PGconn** locker) {
  *locker = PQconnectdb(uri.c_str());
  ASSERT_EQ(PQstatus(*locker), CONNECTION_OK);
  PQclear(PQexec(*locker, "BEGIN"));
  PGresult* lock =
      PQexec(*locker, absl::StrCat("LOCK TABLE \"", table, "\" IN ACCESS EXCLUSIVE MODE").c_str());
  ASSERT_EQ(PQresultStatus(lock), PGRES_COMMAND_OK) << PQresultErrorMessage(lock);
  PQclear(lock);
}

std::vector<Record> Batch() {
  return {
      {.topic = "prices",
       .partition = 0,
       .offset = 10,
       .timestamp_ms = 1700000000123,
       .key = "ACME",
       .value = R"({"symbol":"ACME","price":12.5})",
       .headers = {{"trace", "abc"}}},
      {.topic = "prices",
       .partition = 0,
       .offset = 11,
       .key = std::string("\x00\xFF", 2),
       .value = "not json"},
      {.topic = "prices", .partition = 1, .offset = 10, .value = std::nullopt},
  };
}

TEST(PostgresSinkTest, RedeliveredBatchLeavesExactlyOneRowPerRecord) {
  KLAG_REQUIRE_POSTGRES(uri);
  const std::string table = UniqueTable();
  auto sink = PostgresSink::Create({.uri = uri, .table = table});
  ASSERT_TRUE(sink.ok()) << sink.status();
  std::vector<Record> batch = Batch();
  ASSERT_TRUE((*sink)->Write(batch, NeverAbandon()).ok());
  ASSERT_TRUE((*sink)->Write(batch, NeverAbandon()).ok());  // after a crash, say
  batch.push_back({.topic = "prices", .partition = 0, .offset = 12, .value = "[1,2]"});
  ASSERT_TRUE((*sink)->Write(batch, NeverAbandon()).ok());

  EXPECT_EQ(Select(uri, table, "count(*)"), 4);
  EXPECT_EQ(Select(uri, table, "count(value_json)", "value IS NOT NULL"), 2);
  EXPECT_EQ(Select(uri, table, "count(*)",
                   "\"offset\" = 11 AND key = '\\x00ff'::bytea "
                   "AND value = 'not json'::bytea"),
            1);
  EXPECT_EQ(Select(uri, table, "count(*)",
                   "\"offset\" = 10 AND \"partition\" = 0 AND "
                   "value_json->>'symbol' = 'ACME' AND headers->0->>'value' = 'abc' AND "
                   "\"timestamp\" = to_timestamp(1700000000.123)"),
            1);
  EXPECT_EQ(Select(uri, table, "count(*)", "value IS NULL AND \"partition\" = 1"), 1);
}

std::vector<Record> Offsets(int64_t first, int n) {
  std::vector<Record> batch;
  for (int64_t o = first; o < first + n; ++o) {
    batch.push_back({.topic = "prices",
                     .partition = 2,
                     .offset = o,
                     .key = absl::StrCat("k", o),
                     .value = absl::StrCat(R"({"o":)", o, "}")});
  }
  return batch;
}

TEST(PostgresSinkTest, NewRecordsAreCopiedAndARedeliveryIsUpserted) {
  KLAG_REQUIRE_POSTGRES(uri);
  const std::string table = UniqueTable();
  auto sink = PostgresSink::Create({.uri = uri, .table = table});
  ASSERT_TRUE(sink.ok()) << sink.status();
  EXPECT_TRUE((*sink)->copy_eligible());
  ASSERT_TRUE((*sink)->Write(Offsets(0, 10), NeverAbandon()).ok());
  EXPECT_EQ((*sink)->stats().copied_batches, 1);
  EXPECT_EQ((*sink)->stats().upserted_batches, 0);
  EXPECT_EQ(Select(uri, table, "count(*)"), 10);

  // Redelivered from offset 5 with new records after it: the copy meets offset 5 and writes
  // nothing; the upsert loads the batch.
  ASSERT_TRUE((*sink)->Write(Offsets(5, 10), NeverAbandon()).ok());
  EXPECT_EQ((*sink)->stats().copy_conflicts, 1);
  EXPECT_EQ((*sink)->stats().copied_batches, 1);
  EXPECT_EQ((*sink)->stats().upserted_batches, 1);
  EXPECT_EQ(Select(uri, table, "count(*)"), 15);
  EXPECT_EQ(Select(uri, table, "count(DISTINCT \"offset\")"), 15);

  // The next batches take the upsert too, then the copy again.
  for (int i = 0; i < PostgresSink::kUpsertBatchesAfterConflict; ++i) {
    ASSERT_TRUE((*sink)->Write(Offsets(15 + i, 1), NeverAbandon()).ok());
  }
  EXPECT_EQ((*sink)->stats().upserted_batches, 1 + PostgresSink::kUpsertBatchesAfterConflict);
  EXPECT_EQ((*sink)->stats().copied_batches, 1);
  const int64_t next = 15 + PostgresSink::kUpsertBatchesAfterConflict;
  ASSERT_TRUE((*sink)->Write(Offsets(next, 3), NeverAbandon()).ok());
  EXPECT_EQ((*sink)->stats().copied_batches, 2);
  EXPECT_EQ((*sink)->stats().copy_conflicts, 1);
  EXPECT_EQ(Select(uri, table, "count(*)"), next + 3);
  // Both ways stored the same columns.
  EXPECT_EQ(Select(uri, table, "count(*)",
                   "key = convert_to('k' || \"offset\", 'UTF8') AND (value_json->>'o')::bigint = "
                   "\"offset\" AND headers = '[]'::jsonb AND \"partition\" = 2"),
            next + 3);
}

TEST(PostgresSinkTest, TableWithOtherColumnTypesIsUpsertedWithItsCasts) {
  KLAG_REQUIRE_POSTGRES(uri);
  const std::string table = UniqueTable();
  // An operator's own table: key as text. COPY's binary bytea would land in it unconverted; the
  // INSERT stores bytea's text form, as it always did.
  absl::StatusOr<int64_t> created = PostgresScalar(
      uri, absl::StrCat("CREATE TABLE \"", table,
                        "\" (topic text NOT NULL, \"partition\" integer NOT NULL, \"offset\" "
                        "bigint NOT NULL, \"timestamp\" timestamptz, key text, value bytea, "
                        "value_json jsonb, headers jsonb NOT NULL DEFAULT '[]', loaded_at "
                        "timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (topic, \"partition\", "
                        "\"offset\")); SELECT 1"));
  ASSERT_TRUE(created.ok()) << created.status();
  auto sink = PostgresSink::Create({.uri = uri, .table = table});
  ASSERT_TRUE(sink.ok()) << sink.status();
  EXPECT_FALSE((*sink)->copy_eligible());
  ASSERT_TRUE((*sink)->Write(Offsets(0, 2), NeverAbandon()).ok());
  EXPECT_EQ((*sink)->stats().copied_batches, 0);
  EXPECT_EQ((*sink)->stats().upserted_batches, 1);
  EXPECT_EQ(Select(uri, table, "count(*)", "key = '\\x6b30'"), 1);  // 'k0' as bytea text

  // Under the key conflict key, later records of a key replace earlier ones: always upserted.
  auto by_key = PostgresSink::Create({.uri = uri, .table = UniqueTable(), .conflict_on_key = true});
  ASSERT_TRUE(by_key.ok()) << by_key.status();
  EXPECT_FALSE((*by_key)->copy_eligible());
}

TEST(PostgresSinkTest, ConflictOnKeyKeepsTheLatestRecordPerKey) {
  KLAG_REQUIRE_POSTGRES(uri);
  const std::string table = UniqueTable();
  auto sink = PostgresSink::Create({.uri = uri, .table = table, .conflict_on_key = true});
  ASSERT_TRUE(sink.ok()) << sink.status();
  std::vector<Record> batch = {
      {.topic = "prices", .partition = 0, .offset = 1, .key = "k1", .value = "old"},
      {.topic = "prices", .partition = 0, .offset = 2, .key = "k2", .value = "b"},
      {.topic = "prices", .partition = 0, .offset = 3, .key = "k1", .value = "new"},
  };
  ASSERT_TRUE((*sink)->Write(batch, NeverAbandon()).ok());
  EXPECT_EQ(Select(uri, table, "count(*)"), 2);
  EXPECT_EQ(Select(uri, table, "\"offset\"", "key = 'k1'::bytea"), 3);
  // An older record delivered again does not overwrite the newer one.
  std::vector<Record> stale = {batch[0]};
  ASSERT_TRUE((*sink)->Write(stale, NeverAbandon()).ok());
  EXPECT_EQ(Select(uri, table, "\"offset\"", "key = 'k1'::bytea"), 3);
  EXPECT_EQ(Select(uri, table, "count(*)", "value = 'new'::bytea"), 1);

  std::vector<Record> keyless = {{.topic = "prices", .partition = 0, .offset = 4, .value = "x"}};
  absl::Status s = (*sink)->Write(keyless, NeverAbandon());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_TRUE(IsRecordRejection(s));
}

TEST(PostgresSinkTest, RecordRepeatedWithinAndAcrossBatchesIsOneRow) {
  KLAG_REQUIRE_POSTGRES(uri);
  const std::string table = UniqueTable();
  auto sink = PostgresSink::Create({.uri = uri, .table = table});
  ASSERT_TRUE(sink.ok()) << sink.status();
  // One upsert may not touch a row twice: the sink writes a repeated record once.
  std::vector<Record> batch = Batch();
  batch.push_back(batch[0]);
  batch.push_back(batch[1]);
  ASSERT_TRUE((*sink)->Write(batch, NeverAbandon()).ok());
  std::vector<Record> again = {batch[1], batch[2], batch[1]};
  again.push_back({.topic = "prices", .partition = 1, .offset = 11, .value = "v"});
  ASSERT_TRUE((*sink)->Write(again, NeverAbandon()).ok());
  EXPECT_EQ(Select(uri, table, "count(*)"), 4);
  EXPECT_EQ(Select(uri, table, "count(*)", "\"partition\" = 1"), 2);
}

TEST(PostgresSinkTest, ConflictOnKeyAcrossBatchesKeepsTheHighestOffset) {
  KLAG_REQUIRE_POSTGRES(uri);
  const std::string table = UniqueTable();
  auto sink = PostgresSink::Create({.uri = uri, .table = table, .conflict_on_key = true});
  ASSERT_TRUE(sink.ok()) << sink.status();
  std::vector<Record> first = {
      {.topic = "prices", .partition = 0, .offset = 5, .key = "k1", .value = "a5"},
      {.topic = "prices", .partition = 0, .offset = 6, .key = "k2", .value = "b6"},
      {.topic = "prices", .partition = 0, .offset = 7, .key = "k1", .value = "a7"},
  };
  ASSERT_TRUE((*sink)->Write(first, NeverAbandon()).ok());
  // Redelivered from offset 6 with newer records after it, k2 twice in the batch.
  std::vector<Record> second = {
      first[1],
      first[2],
      {.topic = "prices", .partition = 0, .offset = 8, .key = "k2", .value = "b8"},
      {.topic = "prices", .partition = 0, .offset = 9, .key = "k2", .value = "b9"},
      {.topic = "other", .partition = 0, .offset = 1, .key = "k1", .value = "o1"},
  };
  ASSERT_TRUE((*sink)->Write(second, NeverAbandon()).ok());
  EXPECT_EQ(Select(uri, table, "count(*)"), 3);
  EXPECT_EQ(Select(uri, table, "\"offset\"", "topic = 'prices' AND key = 'k1'::bytea"), 7);
  EXPECT_EQ(Select(uri, table, "\"offset\"", "topic = 'prices' AND key = 'k2'::bytea"), 9);
  EXPECT_EQ(Select(uri, table, "count(*)", "topic = 'prices' AND value = 'b9'::bytea"), 1);
  EXPECT_EQ(Select(uri, table, "\"offset\"", "topic = 'other'"), 1);
}

TEST(PostgresSinkTest, LargeBatchLoadsEveryRecordByteForByte) {
  KLAG_REQUIRE_POSTGRES(uri);
  const std::string table = UniqueTable();
  auto sink = PostgresSink::Create({.uri = uri, .table = table});
  ASSERT_TRUE(sink.ok()) << sink.status();
  // More than one COPY chunk (1 MB), values of every kind: JSON, text, binary, empty, null.
  std::vector<Record> batch;
  for (int i = 0; i < 6000; ++i) {
    Record r{.topic = "bulk", .partition = i % 3, .offset = i, .timestamp_ms = 1700000000000 + i};
    switch (i % 5) {
      case 0:
        r.value = absl::StrCat(R"({"i":)", i, R"(,"pad":")", std::string(200, 'x'), R"("})");
        break;
      case 1:
        r.value = std::string(300, static_cast<char>('a' + i % 26));
        break;
      case 2:
        r.value = std::string("\x00\x01\xFE\xFF\n\\", 6);
        break;
      case 3:
        r.value = "";
        break;
      default:
        r.value = std::nullopt;
    }
    if (i % 2 == 0) r.key = absl::StrCat("k", i);
    if (i % 7 == 0) r.headers = {{"h", absl::StrCat("v", i)}, {"n", std::nullopt}};
    batch.push_back(std::move(r));
  }
  ASSERT_TRUE((*sink)->Write(batch, NeverAbandon()).ok());
  EXPECT_EQ(Select(uri, table, "count(*)"), 6000);
  EXPECT_EQ(Select(uri, table, "count(*)", "value_json->>'i' = \"offset\"::text"), 1200);
  EXPECT_EQ(Select(uri, table, "count(*)", "value = '\\x0001feff0a5c'::bytea"), 1200);
  EXPECT_EQ(Select(uri, table, "count(*)", "value = ''::bytea AND value_json IS NULL"), 1200);
  EXPECT_EQ(Select(uri, table, "count(*)", "value IS NULL"), 1200);
  EXPECT_EQ(Select(uri, table, "count(*)", "length(value) = 300 AND value_json IS NULL"), 1200);
  EXPECT_EQ(Select(uri, table, "count(*)", "key = convert_to('k' || \"offset\", 'UTF8')"), 3000);
  EXPECT_EQ(Select(uri, table, "count(*)",
                   "\"timestamp\" = to_timestamp((1700000000000 + \"offset\") / 1000.0)"),
            6000);
  EXPECT_EQ(Select(uri, table, "count(*)",
                   "headers->0->>'value' = 'v' || \"offset\" AND headers->1->'value' = "
                   "'null'::jsonb"),
            858);
}

// A batch of n rows over c connections: c contiguous parts, each loaded by COPY on its own
// connection; a redelivery conflicts only in the parts that meet loaded rows.
TEST(PostgresSinkTest, LargeBatchIsLoadedInPartsOverSeveralConnections) {
  KLAG_REQUIRE_POSTGRES(uri);
  const std::string table = UniqueTable();
  auto sink = PostgresSink::Create({.uri = uri, .table = table, .connections = 3});
  ASSERT_TRUE(sink.ok()) << sink.status();
  EXPECT_EQ((*sink)->stats().connections_used, 1);  // the others open at first use
  ASSERT_TRUE((*sink)->Write(Offsets(0, 1000), NeverAbandon()).ok());
  EXPECT_EQ((*sink)->stats().copied_batches, 3);
  EXPECT_EQ((*sink)->stats().connections_used, 3);
  EXPECT_EQ(Select(uri, table, "count(*)"), 1000);

  // Redelivered from 500 with 500 new records: parts [500, 833), [833, 1166) meet loaded rows
  // and are upserted; [1166, 1500) is copied.
  ASSERT_TRUE((*sink)->Write(Offsets(500, 1000), NeverAbandon()).ok());
  EXPECT_EQ((*sink)->stats().copy_conflicts, 2);
  EXPECT_EQ((*sink)->stats().upserted_batches, 2);
  EXPECT_EQ((*sink)->stats().copied_batches, 4);
  EXPECT_EQ(Select(uri, table, "count(*)"), 1500);
  EXPECT_EQ(Select(uri, table, "count(DISTINCT \"offset\")"), 1500);
  EXPECT_EQ(Select(uri, table, "count(*)", "(value_json->>'o')::bigint = \"offset\""), 1500);

  // Below 2 x kMinRowsPerConnection rows a batch takes one connection.
  const PostgresSink::Stats before = (*sink)->stats();
  ASSERT_TRUE(
      (*sink)
          ->Write(Offsets(1500, 2 * PostgresSink::kMinRowsPerConnection - 1), NeverAbandon())
          .ok());
  // (by upsert: the first connection met loaded rows within its last 8 parts)
  EXPECT_EQ((*sink)->stats().upserted_batches, before.upserted_batches + 1);
  EXPECT_EQ((*sink)->stats().copied_batches, before.copied_batches);

  auto none = PostgresSink::Create({.uri = uri, .table = table, .connections = 0});
  EXPECT_EQ(none.status().code(), absl::StatusCode::kInvalidArgument) << none.status();
  auto many = PostgresSink::Create(
      {.uri = uri, .table = table, .connections = PostgresSink::kMaxConnections + 1});
  EXPECT_EQ(many.status().code(), absl::StatusCode::kInvalidArgument) << many.status();
}

// A rejected record fails its part only: the batch fails as a rejection (Delivery may look for
// the record), the other part is loaded, and delivering the batch again leaves one row each.
TEST(PostgresSinkTest, RejectionInOnePartFailsTheBatchAndTheRedeliveryIsExact) {
  KLAG_REQUIRE_POSTGRES(uri);
  const std::string table = UniqueTable();
  auto sink = PostgresSink::Create({.uri = uri, .table = table, .connections = 2});
  ASSERT_TRUE(sink.ok()) << sink.status();
  std::vector<Record> batch = Offsets(0, 400);
  batch[350].timestamp_ms = INT64_MAX;
  absl::Status s = (*sink)->Write(batch, NeverAbandon());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_TRUE(IsRecordRejection(s));
  EXPECT_NE(s.message().find("prices[2]@350"), absl::string_view::npos) << s;
  EXPECT_EQ(Select(uri, table, "count(*)"), 200);
  EXPECT_EQ(Select(uri, table, "max(\"offset\")"), 199);

  batch[350].timestamp_ms = 1700000000000;
  ASSERT_TRUE((*sink)->Write(batch, NeverAbandon()).ok());
  EXPECT_EQ(Select(uri, table, "count(*)"), 400);
  EXPECT_EQ(Select(uri, table, "count(DISTINCT \"offset\")"), 400);
}

// Abandoning a batch stops every part: all are cancelled and rolled back.
TEST(PostgresSinkTest, BatchInPartsBlockedByALockIsAbandonedOnEveryConnection) {
  KLAG_REQUIRE_POSTGRES(uri);
  const std::string table = UniqueTable();
  auto sink = PostgresSink::Create({.uri = uri, .table = table, .connections = 2});
  ASSERT_TRUE(sink.ok()) << sink.status();
  PGconn* locker = nullptr;
  ASSERT_NO_FATAL_FAILURE(LockTable(uri, table, &locker));
  const std::vector<Record> batch = Offsets(0, 400);
  const absl::Time start = absl::Now();
  absl::Status s = (*sink)->Write(batch, AbandonAfter(absl::Milliseconds(300)));
  EXPECT_EQ(s.code(), absl::StatusCode::kCancelled) << s;
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  EXPECT_EQ((*sink)->stats().connections_used, 2);
  PQclear(PQexec(locker, "ROLLBACK"));
  PQfinish(locker);
  EXPECT_EQ(Select(uri, table, "count(*)"), 0);
  ASSERT_TRUE((*sink)->Write(batch, NeverAbandon()).ok());
  EXPECT_EQ(Select(uri, table, "count(*)"), 400);
}

TEST(PostgresSinkTest, TimestampOutsidePostgresRangeIsARecordRejection) {
  KLAG_REQUIRE_POSTGRES(uri);
  const std::string table = UniqueTable();
  auto sink = PostgresSink::Create({.uri = uri, .table = table});
  ASSERT_TRUE(sink.ok()) << sink.status();
  std::vector<Record> batch = Batch();
  batch[1].timestamp_ms = INT64_MAX;
  absl::Status s = (*sink)->Write(batch, NeverAbandon());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_TRUE(IsRecordRejection(s));
  EXPECT_EQ(Select(uri, table, "count(*)"), 0);
  batch[1].timestamp_ms = -62135596800000;  // 0001-01-01, inside the range
  ASSERT_TRUE((*sink)->Write(batch, NeverAbandon()).ok());
  EXPECT_EQ(Select(uri, table, "count(*)"), 3);
  EXPECT_EQ(Select(uri, table, "count(*)", "\"timestamp\" = '0001-01-01 00:00:00+00'"), 1);
}

TEST(PostgresSinkTest, BatchBlockedByALockIsAbandonedAndRolledBack) {
  KLAG_REQUIRE_POSTGRES(uri);
  const std::string table = UniqueTable();
  auto sink = PostgresSink::Create({.uri = uri, .table = table});
  ASSERT_TRUE(sink.ok()) << sink.status();
  PGconn* locker = nullptr;
  ASSERT_NO_FATAL_FAILURE(LockTable(uri, table, &locker));

  std::vector<Record> batch = Batch();
  const absl::Time start = absl::Now();
  absl::Status s = (*sink)->Write(batch, AbandonAfter(absl::Milliseconds(300)));
  EXPECT_EQ(s.code(), absl::StatusCode::kCancelled) << s;
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  PQclear(PQexec(locker, "ROLLBACK"));
  PQfinish(locker);
  EXPECT_EQ(Select(uri, table, "count(*)"), 0);
  // The sink is usable again.
  EXPECT_TRUE((*sink)->Write(batch, NeverAbandon()).ok());
  EXPECT_EQ(Select(uri, table, "count(*)"), 3);
}

TEST(PostgresSinkTest, StatementCanceledByTheServerIsRetryableAndTheRetryLoads) {
  KLAG_REQUIRE_POSTGRES(uri);
  const std::string table = UniqueTable();
  auto sink = PostgresSink::Create({.uri = uri, .table = table});
  ASSERT_TRUE(sink.ok()) << sink.status();
  PGconn* locker = nullptr;
  ASSERT_NO_FATAL_FAILURE(LockTable(uri, table, &locker));

  // The sink's statement waits for the lock; an administrator (or statement_timeout) cancels it.
  std::vector<Record> batch = Batch();
  absl::Status s;
  std::thread writer([&] { s = (*sink)->Write(batch, NeverAbandon()); });
  int64_t canceled = 0;
  for (int i = 0; i < 100 && canceled == 0; ++i) {
    absl::SleepFor(absl::Milliseconds(50));
    absl::StatusOr<int64_t> n = PostgresScalar(
        uri,
        "SELECT count(pg_cancel_backend(pid)) FROM pg_stat_activity WHERE application_name = "
        "'klag-job' AND wait_event_type = 'Lock'");
    ASSERT_TRUE(n.ok()) << n.status();
    canceled = *n;
  }
  writer.join();
  PQclear(PQexec(locker, "ROLLBACK"));
  PQfinish(locker);
  ASSERT_EQ(canceled, 1);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_NE(s.message().find("57014"), absl::string_view::npos) << s;
  EXPECT_FALSE(IsRecordRejection(s));
  // What Delivery does next: the same batch again, which loads.
  EXPECT_TRUE((*sink)->Write(batch, NeverAbandon()).ok());
  EXPECT_EQ(Select(uri, table, "count(*)"), 3);
}

// The sink's client-side check against the server's own jsonb input, on the documents where
// JSON parsers differ most.
TEST(PostgresSinkTest, JsonbCheckAgreesWithPostgres) {
  KLAG_REQUIRE_POSTGRES(uri);
  PGconn* conn = PQconnectdb(uri.c_str());
  ASSERT_EQ(PQstatus(conn), CONNECTION_OK) << PQerrorMessage(conn);
  PQsetNoticeProcessor(
      conn, [](void*, const char*) {}, nullptr);
  const auto postgres_takes = [conn](const std::string& text) {
    const char* values[] = {text.c_str()};
    const int lengths[] = {static_cast<int>(text.size())};
    const int formats[] = {1};  // bytes as they are: convert_from checks the encoding
    PGresult* r = PQexecParams(conn, "SELECT convert_from($1::bytea, 'UTF8')::jsonb IS NOT NULL", 1,
                               nullptr, values, lengths, formats, 0);
    const bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
    PQclear(r);
    return ok;
  };
  // The edge cases of json_check_test, each checked against this server: the expectation
  // there is PostgreSQL's answer.
  for (const JsonbCase& c : JsonbEdgeCases()) {
    EXPECT_EQ(postgres_takes(c.text), c.document) << c.text;
    EXPECT_EQ(IsJsonbDocument(c.text), c.document) << c.text;
  }
  // At the bounds the check still says yes, and so does the server.
  for (const std::string& text :
       {absl::StrCat("1e", kMaxNumberExponent), std::string(kMaxNumberDigits, '7'),
        absl::StrCat(std::string(kMaxDepth, '['), std::string(kMaxDepth, ']'))}) {
    EXPECT_TRUE(IsJsonbDocument(text)) << text;
    EXPECT_TRUE(postgres_takes(text)) << text;
  }
  // Beyond the bounds the check says no, though this server may still take the value: a batch
  // never fails over value_json.
  EXPECT_FALSE(IsJsonbDocument(absl::StrCat("1e", kMaxNumberExponent + 1)));
  EXPECT_FALSE(postgres_takes("1e131072"));  // numeric overflows: why a bound exists
  PQfinish(conn);
}

TEST(PostgresSinkTest, UnreachableServerIsUnavailable) {
  auto sink = PostgresSink::Create(
      {.uri = "postgresql://klag@127.0.0.1:1/klag", .connect_timeout = absl::Seconds(2)});
  EXPECT_EQ(sink.status().code(), absl::StatusCode::kUnavailable) << sink.status();
}

}  // namespace
}  // namespace klag::job
