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
// A batch of at least 2 * kMinRowsPerConnection rows is split into contiguous parts loaded at
// the same time over up to `connections` connections (one PostgreSQL backend each; the calling
// thread drives the first, one helper thread each the others, opened at first use): one backend
// on one core is what limits a load (docs/benchmarks.md). Each part is its own transaction, so a
// batch that fails may leave some of its parts loaded; Write then fails, the batch is delivered
// again and the upsert makes that exactly one row per record. Parts never share a conflict key
// (the rows are deduplicated first), so their transactions never wait for each other.
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

namespace klag::job {

struct PostgresSinkOptions {
  std::string uri;  // libpq URI or key=value string; libpq's PG* variables apply too
  std::string table = "klag_records";  // [schema.]name
  bool conflict_on_key = false;        // true: PRIMARY KEY (topic, key), latest offset wins
  absl::Duration connect_timeout = absl::Seconds(10);  // unless the URI sets connect_timeout
  int connections = 2;  // 1..kMaxConnections: the most a batch is loaded over at once
};

class PostgresSink final : public Sink {
 public:
  static constexpr int kMaxConnections = 16;
  // Records per batch unless --batch-size says otherwise: parts of 2,500 over the default two
  // connections (bench/README.md: at 500 a second connection did not help).
  static constexpr int kDefaultBatchSize = 5000;
  // Rows per part at least: smaller batches go through one connection.
  static constexpr size_t kMinRowsPerConnection = 128;

  // Connects (the first connection) and creates the table when missing. Errors: kUnavailable
  // (cannot connect), kPermissionDenied/kUnauthenticated, kNotFound (no such database),
  // kFailedPrecondition (the table cannot be created), kInvalidArgument (connections out of
  // range); messages never hold the password.
  static absl::StatusOr<std::unique_ptr<PostgresSink>> Create(PostgresSinkOptions options);
  ~PostgresSink() override;

  // One transaction per part (one part unless the batch is large). Errors: kInvalidArgument for
  // data PostgreSQL rejects (SQLSTATE classes 21, 22, 23) or a record without key under
  // conflict_on_key; kUnavailable when a connection is lost (reconnected at the next Write);
  // kCancelled when abandoned (the queries are cancelled and rolled back); kFailedPrecondition
  // for schema problems (class 42); kAborted for serialization failures and deadlocks (class
  // 40). When parts fail differently: kCancelled first, then an error that blames the sink, then
  // a rejection of the data.
  absl::Status Write(absl::Span<const Record> records, const WriteContext& context) override;

  // Whether the table takes the copy path at all (checked at every connect).
  bool copy_eligible() const;

  // How the parts were loaded, over every connection (tests, and a log line when the sink is
  // destroyed).
  struct Stats {
    int64_t copied_batches = 0;  // parts: a batch split over n connections counts n
    int64_t upserted_batches = 0;
    int64_t copy_conflicts = 0;  // copies that met loaded rows and were upserted instead
    int connections_used = 0;    // connections opened so far
  };
  Stats stats() const;

  // Batches loaded by upsert after a copy met rows already loaded (per connection): a
  // redelivery spans the batches after the last commit, so the next few are likely to conflict.
  static constexpr int kUpsertBatchesAfterConflict = 8;

 private:
  class Connection;  // one libpq connection: connect, create, load a part
  class Helper;      // a Connection driven by a thread of its own

  explicit PostgresSink(PostgresSinkOptions options);
  // The records the upsert writes: the last one per conflict key; kInvalidArgument for a record
  // without key under conflict_on_key.
  absl::StatusOr<std::vector<const Record*>> RowsToLoad(absl::Span<const Record> records) const;

  PostgresSinkOptions options_;
  std::unique_ptr<Connection> first_;             // driven by the caller's thread
  std::vector<std::unique_ptr<Helper>> helpers_;  // up to connections - 1, opened when needed
};

}  // namespace klag::job
