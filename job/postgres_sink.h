// PostgresSink: the seed's data load. Writes each batch in one transaction into a table (created
// if missing) with an upsert, so a batch delivered again after a crash leaves exactly one row
// per record.
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
  // Runs one statement, abandoning it when `context` asks.
  absl::Status Run(const std::string& sql, int n_params, const char* const* values,
                   const int* lengths, const int* formats, const WriteContext& context);
  absl::Status WriteChunk(absl::Span<const Record> records, const WriteContext& context);

  PostgresSinkOptions options_;
  std::string quoted_table_;
  pg_conn* conn_ = nullptr;
};

}  // namespace klag::job
