// PostgresSink: the seed's data load. Writes each batch in one transaction into a table (created
// if missing) with an upsert, so a batch delivered again after a crash leaves exactly one row
// per record. Two ways to load a batch, same result:
//  - upsert: COPY (binary) into a per-connection temporary staging table, one INSERT ... SELECT
//    ... ON CONFLICT from it, COMMIT: two round trips per batch whatever its size.
//  - copy: one COPY (binary) straight into the table, its own transaction: one round trip and
//    about 2.4x less server work (docs/benchmarks.md). Used under the offset conflict key when
//    the table is the one klag creates (same column types, a plain or partitioned table, no
//    rules, no row-level security), so COPY stores exactly what the INSERT would. A batch that
//    meets rows already loaded (a redelivery: unique violation, nothing written) is loaded
//    again by upsert, and so are the next kUpsertBatchesAfterConflict batches.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<PostgresSink> sink,
//                    PostgresSink::Create({.uri = "postgresql://klag@db/prices",
//                                          .table = "listed_stock_price"}));
//   RETURN_IF_ERROR(sink->Write(batch, context));  // committed in PostgreSQL when OK
//
// Table (conflict key `offset`, the default; `key` makes the primary key (topic, key) instead,
// keeping the latest record per key):
//   topic text, partition integer, offset bigint, timestamp timestamptz, key bytea, value bytea,
//   value_json jsonb (the value when it is a JSON document, else NULL), headers jsonb,
//   loaded_at timestamptz default now(), PRIMARY KEY (topic, partition, offset)
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "job/sink.h"

struct pg_conn;

namespace klag::job {

struct PostgresSinkOptions {
  std::string uri;  // libpq URI or key=value string; libpq's PG* variables apply too
  std::string table = "klag_records";  // [schema.]name
  bool conflict_on_key = false;        // true: PRIMARY KEY (topic, key), latest offset wins
  absl::Duration connect_timeout = absl::Seconds(10);  // unless the URI sets connect_timeout
};

class PostgresSink final : public Sink {
 public:
  // Connects and creates the table when missing. Errors: kUnavailable (cannot connect),
  // kPermissionDenied/kUnauthenticated, kNotFound (no such database), kFailedPrecondition (the
  // table cannot be created); messages never hold the password.
  static absl::StatusOr<std::unique_ptr<PostgresSink>> Create(PostgresSinkOptions options);
  ~PostgresSink() override;

  // One transaction per batch. Errors: kInvalidArgument for data PostgreSQL rejects (SQLSTATE
  // classes 21, 22, 23) or a record without key under conflict_on_key; kUnavailable when the
  // connection is lost (reconnected at the next Write); kCancelled when abandoned (the query is
  // cancelled and rolled back); kFailedPrecondition for schema problems (class 42);
  // kAborted for serialization failures and deadlocks (class 40).
  absl::Status Write(absl::Span<const Record> records, const WriteContext& context) override;

  // Whether the table takes the copy path at all (checked at every connect).
  bool copy_eligible() const { return copy_eligible_; }

  // How the batches were loaded (tests, and a log line when the sink is destroyed).
  struct Stats {
    int64_t copied_batches = 0;
    int64_t upserted_batches = 0;
    int64_t copy_conflicts = 0;  // copies that met loaded rows and were upserted instead
  };
  const Stats& stats() const { return stats_; }

  // Batches loaded by upsert after a copy met rows already loaded: a redelivery spans the
  // batches after the last commit, so the next few are likely to conflict too.
  static constexpr int kUpsertBatchesAfterConflict = 8;

 private:
  explicit PostgresSink(PostgresSinkOptions options);
  absl::Status Connect();
  absl::Status EnsureTable();
  // Whether the table takes the copy path (see the top of this file).
  absl::StatusOr<bool> CopyEligible();
  // Runs `sql` (several statements when n_params is 0), abandoning it when `context` asks. With
  // `copy_in`, stops when a COPY FROM STDIN starts and sets *copy_in.
  absl::Status Run(const std::string& sql, int n_params, const char* const* values,
                   const int* lengths, const int* formats, const WriteContext& context,
                   bool* copy_in = nullptr);
  // Collects the results of what was sent; the first error wins.
  absl::Status Await(const WriteContext& context, bool* copy_in);
  // The records the upsert writes: the last one per conflict key; kInvalidArgument for a record
  // without key under conflict_on_key.
  absl::StatusOr<std::vector<const Record*>> RowsToLoad(absl::Span<const Record> records) const;
  // Fills copy_buffer_ with `rows` in COPY's binary format; kInvalidArgument for a timestamp
  // outside timestamptz's range.
  absl::Status EncodeCopyData(const std::vector<const Record*>& rows);
  // Sends `copy_sql` (ending in a COPY FROM STDIN), then copy_buffer_, and collects the results.
  absl::Status Copy(const std::string& copy_sql, const WriteContext& context);
  // The copy path when the table takes it and no conflict is recent, else the upsert path.
  absl::Status Load(const std::vector<const Record*>& rows, const WriteContext& context);

  PostgresSinkOptions options_;
  std::string quoted_table_;
  std::string upsert_sql_;     // INSERT ... SELECT FROM the staging table ... ; COMMIT
  std::string copy_sql_;       // COPY the table (columns) FROM STDIN (FORMAT binary)
  std::string last_sqlstate_;  // of the last error Await returned; empty without server answer
  bool copy_eligible_ = false;
  int upsert_batches_left_ = 0;
  Stats stats_;
  std::string copy_buffer_;  // reused between batches
  pg_conn* conn_ = nullptr;
};

}  // namespace klag::job
