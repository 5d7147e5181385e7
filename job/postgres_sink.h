// PostgresSink: the seed's data load. Writes each batch in one transaction into a table (created
// if missing) with an upsert, so a batch delivered again after a crash leaves exactly one row
// per record. Each batch is COPYed (binary) into a per-connection temporary staging table and
// upserted from it with one INSERT ... SELECT ... ON CONFLICT, then committed: two round trips
// per batch whatever its size.
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

 private:
  explicit PostgresSink(PostgresSinkOptions options);
  absl::Status Connect();
  absl::Status EnsureTable();
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
  // BEGIN, COPY into the staging table, one upsert from it, COMMIT: two round trips.
  absl::Status Load(const std::vector<const Record*>& rows, const WriteContext& context);

  PostgresSinkOptions options_;
  std::string quoted_table_;
  std::string upsert_sql_;   // INSERT ... SELECT FROM the staging table ... ; COMMIT
  std::string copy_buffer_;  // reused between batches
  pg_conn* conn_ = nullptr;
};

}  // namespace klag::job
