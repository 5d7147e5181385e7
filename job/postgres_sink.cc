#include "job/postgres_sink.h"

#include <libpq-fe.h>
#include <poll.h>

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "job/json_check.h"
#include "job/record_json.h"
#include "spdlog/spdlog.h"

namespace klag::job {
namespace {

// The session's staging table: each batch is COPYed into it and upserted from it in one
// statement. A temporary table is not WAL-logged and not visible to other sessions.
constexpr const char* kStageTable = "klag_stage";

// The columns klag writes, in COPY's field order: every statement (CREATE TABLE, the staging
// table, COPY, the upsert, CopyEligible's check) is made from this one list. `type` is spelled
// as format_type() prints it, which CopyEligible compares with; `create` is what CREATE TABLE adds.
struct Column {
  const char* name;
  const char* type;
  const char* create;
};
constexpr Column kColumns[] = {
    {"topic", "text", " NOT NULL"},
    {"partition", "integer", " NOT NULL"},
    {"offset", "bigint", " NOT NULL"},
    {"timestamp", "timestamp with time zone", ""},
    {"key", "bytea", ""},
    {"value", "bytea", ""},
    {"value_json", "jsonb", ""},
    {"headers", "jsonb", " NOT NULL DEFAULT '[]'"},
};
constexpr int16_t kStageColumns = static_cast<int16_t>(std::size(kColumns));

// "topic", "partition", ...: the column list of COPY and INSERT.
std::string ColumnNames() {
  return absl::StrJoin(kColumns, ", ", [](std::string* out, const Column& c) {
    absl::StrAppend(out, "\"", c.name, "\"");
  });
}

// "topic" text<create>, ...: column definitions, with CREATE TABLE's additions or without.
std::string ColumnDefinitions(bool with_create) {
  return absl::StrJoin(kColumns, ", ", [with_create](std::string* out, const Column& c) {
    absl::StrAppend(out, "\"", c.name, "\" ", c.type, with_create ? c.create : "");
  });
}
// COPY ... (FORMAT binary): the 11-byte signature, then flags and header extension length.
constexpr char kCopySignature[] = "PGCOPY\n\377\r\n";  // 11 bytes with the NUL
// Bytes per PQputCopyData call, so an abandoned batch stops between calls.
constexpr size_t kCopyChunkBytes = 1 << 20;
// PostgreSQL's timestamp epoch (2000-01-01 00:00 UTC) and the range of timestamptz (4713 BC to
// 294276 AD, src/include/datatype/timestamp.h: MIN_TIMESTAMP, END_TIMESTAMP), in Unix ms.
constexpr int64_t kPostgresEpochUnixMs = 946684800000;
constexpr int64_t kMinTimestampUnixMs = -211813488000000 + kPostgresEpochUnixMs;
constexpr int64_t kEndTimestampUnixMs = 9223371331200000 + kPostgresEpochUnixMs;
// jsonb's binary input: a version byte, then the text.
constexpr char kJsonbVersion = 1;

void PutInt16(int16_t v, std::string* out) {
  const auto u = static_cast<uint16_t>(v);
  const char b[2] = {static_cast<char>(u >> 8), static_cast<char>(u)};
  out->append(b, 2);
}

void PutInt32(int32_t v, std::string* out) {
  const auto u = static_cast<uint32_t>(v);
  const char b[4] = {static_cast<char>(u >> 24), static_cast<char>(u >> 16),
                     static_cast<char>(u >> 8), static_cast<char>(u)};
  out->append(b, 4);
}

void PutInt64(uint64_t u, std::string* out) {
  PutInt32(static_cast<int32_t>(u >> 32), out);
  PutInt32(static_cast<int32_t>(u & 0xFFFFFFFFu), out);
}

// A COPY binary field: its length, then its bytes.
void PutField(absl::string_view bytes, std::string* out) {
  PutInt32(static_cast<int32_t>(bytes.size()), out);
  out->append(bytes.data(), bytes.size());
}

void PutOptionalField(const std::optional<std::string>& bytes, std::string* out) {
  if (bytes.has_value()) {
    PutField(*bytes, out);
  } else {
    PutInt32(-1, out);  // NULL
  }
}

void PutJsonb(absl::string_view json, std::string* out) {
  PutInt32(static_cast<int32_t>(json.size() + 1), out);
  out->push_back(kJsonbVersion);
  out->append(json.data(), json.size());
}

struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using ResultPtr = std::unique_ptr<PGresult, ResultDeleter>;

absl::StatusCode CodeForSqlState(absl::string_view state) {
  if (state.empty()) return absl::StatusCode::kUnavailable;  // no server answer: connection
  // 57014 query_canceled: statement_timeout, an administrator's pg_cancel_backend, or klag's own
  // cancel when the Job stops (Run tells them apart). Class 57 is retried below.
  if (state == "28P01") return absl::StatusCode::kUnauthenticated;
  if (state == "42501") return absl::StatusCode::kPermissionDenied;
  const absl::string_view cls = state.substr(0, 2);
  if (cls == "08" || cls == "57") return absl::StatusCode::kUnavailable;
  if (cls == "21" || cls == "22" || cls == "23") return absl::StatusCode::kInvalidArgument;
  if (cls == "40") return absl::StatusCode::kAborted;
  if (cls == "53") return absl::StatusCode::kResourceExhausted;
  if (cls == "28") return absl::StatusCode::kPermissionDenied;
  if (cls == "3D") return absl::StatusCode::kNotFound;
  if (cls == "42") return absl::StatusCode::kFailedPrecondition;
  return absl::StatusCode::kInternal;
}

std::string Trimmed(const char* message) {
  return std::string(absl::StripTrailingAsciiWhitespace(message == nullptr ? "" : message));
}

}  // namespace

// One connection: connects, creates the table and this session's staging table, and loads one
// part of a batch per Write, by COPY or by upsert.
class PostgresSink::Connection {
 public:
  explicit Connection(const PostgresSinkOptions& options);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  absl::Status Connect();
  // Loads `rows` in one transaction (connecting first when not connected); on failure rolls
  // back, or drops a lost connection so the next Write reconnects.
  absl::Status Write(absl::Span<const Record* const> rows, const WriteContext& context);
  bool copy_eligible() const { return copy_eligible_; }
  bool opened() const { return opened_; }
  const Stats& stats() const { return stats_; }

 private:
  absl::Status EnsureTable();
  // Whether the table takes the copy path (see the top of postgres_sink.h).
  absl::StatusOr<bool> CopyEligible();
  // Runs `sql` (several statements when n_params is 0), abandoning it when `context` asks. With
  // `copy_in`, stops when a COPY FROM STDIN starts and sets *copy_in.
  absl::Status Run(const std::string& sql, int n_params, const char* const* values,
                   const int* lengths, const int* formats, const WriteContext& context,
                   bool* copy_in = nullptr);
  // Collects the results of what was sent; the first error wins.
  absl::Status Await(const WriteContext& context, bool* copy_in);
  // Fills copy_buffer_ with `rows` in COPY's binary format; kInvalidArgument for a timestamp
  // outside timestamptz's range.
  absl::Status EncodeCopyData(absl::Span<const Record* const> rows);
  // Sends `copy_sql` (ending in a COPY FROM STDIN), then copy_buffer_, and collects the results.
  absl::Status Copy(const std::string& copy_sql, const WriteContext& context);
  // The copy path when the table takes it and no conflict is recent, else the upsert path.
  absl::Status Load(absl::Span<const Record* const> rows, const WriteContext& context);

  const PostgresSinkOptions& options_;
  std::string quoted_table_;
  std::string upsert_sql_;     // INSERT ... SELECT FROM the staging table ... ; COMMIT
  std::string copy_sql_;       // COPY the table (columns) FROM STDIN (FORMAT binary)
  std::string last_sqlstate_;  // of the last error Await returned; empty without server answer
  bool copy_eligible_ = false;
  bool opened_ = false;  // connected at least once
  int upsert_batches_left_ = 0;
  Stats stats_;
  std::string copy_buffer_;  // reused between batches
  PGconn* conn_ = nullptr;
};

PostgresSink::Connection::Connection(const PostgresSinkOptions& options) : options_(options) {
  std::vector<std::string> parts;
  for (absl::string_view p : absl::StrSplit(options_.table, '.')) {
    parts.push_back(absl::StrCat("\"", p, "\""));
  }
  quoted_table_ = absl::StrJoin(parts, ".");
  const std::string columns = ColumnNames();
  upsert_sql_ = absl::StrCat("INSERT INTO ", quoted_table_, " AS t (", columns, ") SELECT ",
                             columns, " FROM pg_temp.", kStageTable);
  if (options_.conflict_on_key) {
    // A redelivered older record of the same partition does not overwrite a newer one.
    absl::StrAppend(
        &upsert_sql_,
        " ON CONFLICT (topic, key) DO UPDATE SET \"partition\" = EXCLUDED.\"partition\","
        " \"offset\" = EXCLUDED.\"offset\", \"timestamp\" = EXCLUDED.\"timestamp\","
        " value = EXCLUDED.value, value_json = EXCLUDED.value_json,"
        " headers = EXCLUDED.headers, loaded_at = now()"
        " WHERE t.\"partition\" <> EXCLUDED.\"partition\""
        " OR t.\"offset\" <= EXCLUDED.\"offset\"");
  } else {
    absl::StrAppend(&upsert_sql_,
                    " ON CONFLICT (topic, \"partition\", \"offset\") DO UPDATE SET"
                    " \"timestamp\" = EXCLUDED.\"timestamp\", key = EXCLUDED.key,"
                    " value = EXCLUDED.value, value_json = EXCLUDED.value_json,"
                    " headers = EXCLUDED.headers, loaded_at = now()");
  }
  absl::StrAppend(&upsert_sql_, "; COMMIT");
  copy_sql_ = absl::StrCat("COPY ", quoted_table_, " (", columns, ") FROM STDIN (FORMAT binary)");
}

PostgresSink::Connection::~Connection() {
  if (conn_ != nullptr) PQfinish(conn_);
}

absl::Status PostgresSink::Connection::Connect() {
  if (conn_ != nullptr) PQfinish(conn_);
  const std::string timeout =
      absl::StrCat(std::max<int64_t>(1, absl::ToInt64Seconds(options_.connect_timeout)));
  // Settings after "dbname" would override the URI's; these come first so the URI wins.
  const char* keys[] = {"connect_timeout", "application_name", "dbname", nullptr};
  const char* values[] = {timeout.c_str(), "klag-job", options_.uri.c_str(), nullptr};
  conn_ = PQconnectdbParams(keys, values, /*expand_dbname=*/1);
  if (conn_ == nullptr || PQstatus(conn_) != CONNECTION_OK) {
    // libpq's message names host and user, never the password.
    std::string message =
        absl::StrCat("postgres sink: cannot connect: ",
                     Trimmed(conn_ == nullptr ? "out of memory" : PQerrorMessage(conn_)));
    if (conn_ != nullptr) PQfinish(conn_);
    conn_ = nullptr;
    if (absl::StrContains(message, "password authentication failed")) {
      return absl::UnauthenticatedError(message);
    }
    if (absl::StrContains(message, "does not exist")) return absl::NotFoundError(message);
    return absl::UnavailableError(message);
  }
  // Server notices (CREATE TABLE IF NOT EXISTS's "already exists, skipping") go to the debug
  // log, not to stderr.
  PQsetNoticeProcessor(
      conn_,
      [](void*, const char* message) {
        spdlog::debug("postgres sink: server notice: {}", Trimmed(message));
      },
      nullptr);
  opened_ = true;
  if (absl::Status s = EnsureTable(); !s.ok()) {
    // Not usable without its staging table: the next Write connects again.
    PQfinish(conn_);
    conn_ = nullptr;
    return s;
  }
  return absl::OkStatus();
}

absl::Status PostgresSink::Connection::EnsureTable() {
  const std::string primary_key =
      options_.conflict_on_key ? "topic, key" : "topic, \"partition\", \"offset\"";
  const std::string sql = absl::StrCat(
      "CREATE TABLE IF NOT EXISTS ", quoted_table_, " (", ColumnDefinitions(/*with_create=*/true),
      ", loaded_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (", primary_key, "))");
  NeverAbandon never;
  absl::Status s = Run(sql, 0, nullptr, nullptr, nullptr, never);
  if (s.code() == absl::StatusCode::kInvalidArgument ||
      s.code() == absl::StatusCode::kFailedPrecondition) {
    // Jobs starting together race in CREATE TABLE IF NOT EXISTS (a unique violation on the
    // catalog); the loser finds the table on a second try.
    s = Run(sql, 0, nullptr, nullptr, nullptr, never);
  }
  if (!s.ok()) {
    return absl::Status(
        s.code() == absl::StatusCode::kInvalidArgument ? absl::StatusCode::kFailedPrecondition
                                                       : s.code(),
        absl::StrCat("postgres sink: creating table ", options_.table, ": ", s.message()));
  }
  // Same columns as the table, no constraints; one per connection.
  s = Run(absl::StrCat("CREATE TEMPORARY TABLE IF NOT EXISTS ", kStageTable, " (",
                       ColumnDefinitions(/*with_create=*/false), ") ON COMMIT DELETE ROWS"),
          0, nullptr, nullptr, nullptr, never);
  if (!s.ok()) {
    return absl::Status(s.code(),
                        absl::StrCat("postgres sink: creating the staging table: ", s.message()));
  }
  absl::StatusOr<bool> eligible = CopyEligible();
  if (!eligible.ok()) return eligible.status();
  copy_eligible_ = *eligible;
  return absl::OkStatus();
}

absl::StatusOr<bool> PostgresSink::Connection::CopyEligible() {
  if (options_.conflict_on_key) return false;  // later records of a key conflict by design
  // The columns COPY writes must have the types EnsureTable gives them: with any other type the
  // INSERT's assignment casts (bytea into text, say) would store something else than COPY. The
  // table, the names and the expected "name type,..." text are bound parameters.
  const std::string names = absl::StrCat(
      "{",
      absl::StrJoin(kColumns, ",", [](std::string* out, const Column& c) { out->append(c.name); }),
      "}");
  const std::string expected = absl::StrJoin(kColumns, ",", [](std::string* out, const Column& c) {
    absl::StrAppend(out, c.name, " ", c.type);
  });
  constexpr const char* kSql =
      "SELECT c.relkind IN ('r', 'p') AND NOT c.relhasrules AND NOT c.relrowsecurity AND"
      " (SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod), ','"
      "   ORDER BY array_position($2::name[], a.attname))"
      "  FROM pg_attribute a WHERE a.attrelid = c.oid AND NOT a.attisdropped"
      "  AND a.attname = ANY($2::name[])) = $3"
      " FROM pg_class c WHERE c.oid = to_regclass($1)";
  const char* values[] = {quoted_table_.c_str(), names.c_str(), expected.c_str()};
  if (PQsendQueryParams(conn_, kSql, 3, nullptr, values, nullptr, nullptr, 0) != 1) {
    return absl::UnavailableError(
        absl::StrCat("postgres sink: sending a statement: ", Trimmed(PQerrorMessage(conn_))));
  }
  // One row, one boolean; read here rather than through Await, which keeps no results.
  bool eligible = false;
  std::string error;
  while (ResultPtr result{PQgetResult(conn_)}) {
    const ExecStatusType status = PQresultStatus(result.get());
    if (status == PGRES_TUPLES_OK) {
      eligible = PQntuples(result.get()) == 1 && PQgetvalue(result.get(), 0, 0)[0] == 't';
    } else if (error.empty()) {
      error = Trimmed(PQresultErrorMessage(result.get()));
    }
  }
  if (!error.empty()) {
    return absl::UnavailableError(
        absl::StrCat("postgres sink: reading the columns of ", options_.table, ": ", error));
  }
  spdlog::debug("postgres sink: table {} takes {}", options_.table,
                eligible ? "COPY for new records" : "the upsert for every batch");
  return eligible;
}

absl::Status PostgresSink::Connection::Run(const std::string& sql, int n_params,
                                           const char* const* values, const int* lengths,
                                           const int* formats, const WriteContext& context,
                                           bool* copy_in) {
  // Without parameters the simple query protocol, which takes several statements at once.
  const int sent = n_params == 0 ? PQsendQuery(conn_, sql.c_str())
                                 : PQsendQueryParams(conn_, sql.c_str(), n_params, nullptr, values,
                                                     lengths, formats, 0);
  if (sent != 1) {
    return absl::UnavailableError(
        absl::StrCat("postgres sink: sending a statement: ", Trimmed(PQerrorMessage(conn_))));
  }
  return Await(context, copy_in);
}

absl::Status PostgresSink::Connection::Await(const WriteContext& context, bool* copy_in) {
  last_sqlstate_.clear();
  bool cancel_sent = false;
  ResultPtr first_error;
  while (true) {
    if (PQconsumeInput(conn_) != 1) {
      return absl::UnavailableError(
          absl::StrCat("postgres sink: connection lost: ", Trimmed(PQerrorMessage(conn_))));
    }
    while (PQisBusy(conn_) == 0) {
      ResultPtr result(PQgetResult(conn_));
      if (result == nullptr) {
        if (first_error == nullptr) return absl::OkStatus();
        const char* state = PQresultErrorField(first_error.get(), PG_DIAG_SQLSTATE);
        last_sqlstate_ = state == nullptr ? "" : state;
        absl::StatusCode code = CodeForSqlState(state == nullptr ? "" : state);
        std::string message =
            absl::StrCat("postgres sink: ", Trimmed(PQresultErrorMessage(first_error.get())));
        if (state != nullptr) absl::StrAppend(&message, " (SQLSTATE ", state, ")");
        if (cancel_sent && state != nullptr && absl::string_view(state) == "57014") {
          return absl::CancelledError("postgres sink: batch abandoned, the Job is stopping");
        }
        return absl::Status(code, message);
      }
      ExecStatusType status = PQresultStatus(result.get());
      if (status == PGRES_COPY_IN && copy_in != nullptr && first_error == nullptr) {
        *copy_in = true;  // the caller sends the data now
        return absl::OkStatus();
      }
      if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK && first_error == nullptr) {
        first_error = std::move(result);
      }
    }
    if (!cancel_sent && context.ShouldAbandon()) {
      if (PGcancel* cancel = PQgetCancel(conn_); cancel != nullptr) {
        char errbuf[256];
        PQcancel(cancel, errbuf, sizeof(errbuf));
        PQfreeCancel(cancel);
      }
      cancel_sent = true;
    }
    pollfd p{PQsocket(conn_), POLLIN, 0};
    ::poll(&p, 1, 50);
  }
}

absl::StatusOr<std::vector<const Record*>> PostgresSink::RowsToLoad(
    absl::Span<const Record> records) const {
  // One upsert may not touch a row twice (SQLSTATE 21000), so the batch keeps the last record
  // per conflict key: under conflict_on_key the latest record of each key; under the offset key
  // a record that appears twice in one batch (the same record, delivered again) once.
  std::vector<const Record*> rows;
  rows.reserve(records.size());
  if (options_.conflict_on_key) {
    absl::flat_hash_map<std::pair<absl::string_view, absl::string_view>, size_t> last;
    last.reserve(records.size());
    for (size_t i = 0; i < records.size(); ++i) {
      if (!records[i].key.has_value()) {
        return absl::InvalidArgumentError(
            absl::StrCat("postgres sink: ", records[i].topic, "[", records[i].partition, "]@",
                         records[i].offset, " has no key, but --postgres-conflict-key is key"));
      }
      last[{records[i].topic, *records[i].key}] = i;
    }
    for (size_t i = 0; i < records.size(); ++i) {
      if (last[{records[i].topic, *records[i].key}] == i) rows.push_back(&records[i]);
    }
    return rows;
  }
  absl::flat_hash_map<std::tuple<absl::string_view, int32_t, int64_t>, size_t> last;
  last.reserve(records.size());
  for (size_t i = 0; i < records.size(); ++i) {
    last[{records[i].topic, records[i].partition, records[i].offset}] = i;
  }
  for (size_t i = 0; i < records.size(); ++i) {
    if (last[{records[i].topic, records[i].partition, records[i].offset}] == i) {
      rows.push_back(&records[i]);
    }
  }
  return rows;
}

absl::Status PostgresSink::Connection::EncodeCopyData(absl::Span<const Record* const> rows) {
  copy_buffer_.clear();
  copy_buffer_.append(kCopySignature, sizeof(kCopySignature));  // with its NUL
  PutInt32(0, &copy_buffer_);                                   // flags: no OIDs
  PutInt32(0, &copy_buffer_);                                   // header extension length
  std::string headers;
  for (const Record* r : rows) {
    PutInt16(kStageColumns, &copy_buffer_);
    PutField(r->topic, &copy_buffer_);
    PutInt32(4, &copy_buffer_);
    PutInt32(static_cast<uint32_t>(r->partition), &copy_buffer_);
    PutInt32(8, &copy_buffer_);
    PutInt64(static_cast<uint64_t>(r->offset), &copy_buffer_);
    if (r->timestamp_ms.has_value()) {
      const int64_t ms = *r->timestamp_ms;
      if (ms < kMinTimestampUnixMs || ms >= kEndTimestampUnixMs) {
        return absl::InvalidArgumentError(
            absl::StrCat("postgres sink: ", r->topic, "[", r->partition, "]@", r->offset,
                         " has timestamp ", ms, " ms, outside PostgreSQL's timestamptz range"));
      }
      // timestamptz in binary: microseconds since 2000-01-01 00:00 UTC.
      PutInt32(8, &copy_buffer_);
      PutInt64(static_cast<uint64_t>((ms - kPostgresEpochUnixMs) * 1000), &copy_buffer_);
    } else {
      PutInt32(-1, &copy_buffer_);
    }
    PutOptionalField(r->key, &copy_buffer_);
    PutOptionalField(r->value, &copy_buffer_);
    if (r->value.has_value() && IsJsonbDocument(*r->value)) {
      PutJsonb(*r->value, &copy_buffer_);
    } else {
      PutInt32(-1, &copy_buffer_);
    }
    headers.clear();
    AppendHeadersJson(r->headers, &headers);
    PutJsonb(headers, &copy_buffer_);
  }
  PutInt16(-1, &copy_buffer_);  // file trailer
  return absl::OkStatus();
}

absl::Status PostgresSink::Connection::Copy(const std::string& copy_sql,
                                            const WriteContext& context) {
  bool copy_in = false;
  if (absl::Status s = Run(copy_sql, 0, nullptr, nullptr, nullptr, context, &copy_in); !s.ok()) {
    return s;
  }
  if (!copy_in) return absl::InternalError("postgres sink: COPY did not start");
  for (size_t done = 0; done < copy_buffer_.size();) {
    if (context.ShouldAbandon()) {
      PQputCopyEnd(conn_, "klag-job is stopping");
      (void)Await(NeverAbandon(), nullptr);
      return absl::CancelledError("postgres sink: batch abandoned, the Job is stopping");
    }
    const size_t n = std::min(kCopyChunkBytes, copy_buffer_.size() - done);
    if (PQputCopyData(conn_, copy_buffer_.data() + done, static_cast<int>(n)) != 1) {
      return absl::UnavailableError(
          absl::StrCat("postgres sink: sending COPY data: ", Trimmed(PQerrorMessage(conn_))));
    }
    done += n;
  }
  if (PQputCopyEnd(conn_, nullptr) != 1) {
    return absl::UnavailableError(
        absl::StrCat("postgres sink: ending COPY: ", Trimmed(PQerrorMessage(conn_))));
  }
  return Await(context, nullptr);
}

absl::Status PostgresSink::Connection::Load(absl::Span<const Record* const> rows,
                                            const WriteContext& context) {
  if (absl::Status s = EncodeCopyData(rows); !s.ok()) return s;
  if (copy_eligible_ && upsert_batches_left_ == 0) {
    // One round trip: COPY outside a transaction block is its own transaction, so a failed one
    // leaves nothing behind and the connection idle.
    absl::Status s = Copy(copy_sql_, context);
    if (s.ok()) {
      ++stats_.copied_batches;
      return s;
    }
    if (last_sqlstate_ != "23505") return s;  // anything but unique_violation: the error
    ++stats_.copy_conflicts;
    upsert_batches_left_ = kUpsertBatchesAfterConflict;
    spdlog::info(
        "postgres sink: a batch meets rows already in {} (records delivered again): loading "
        "it and the next {} batches by upsert",
        options_.table, kUpsertBatchesAfterConflict);
  } else if (upsert_batches_left_ > 0) {
    --upsert_batches_left_;
  }
  // Round trip 1: BEGIN and COPY into this session's staging table (emptied at every commit and
  // rollback: ON COMMIT DELETE ROWS, and a rolled-back COPY leaves nothing).
  if (absl::Status s =
          Copy(absl::StrCat("BEGIN; COPY pg_temp.", kStageTable, " FROM STDIN (FORMAT binary)"),
               context);
      !s.ok()) {
    return s;
  }
  // Round trip 2: one upsert from the staging table, and the commit. A failing INSERT skips the
  // COMMIT of the same query string; Write rolls back.
  absl::Status s = Run(upsert_sql_, 0, nullptr, nullptr, nullptr, context);
  if (s.ok()) ++stats_.upserted_batches;
  return s;
}

absl::Status PostgresSink::Connection::Write(absl::Span<const Record* const> rows,
                                             const WriteContext& context) {
  if (conn_ == nullptr || PQstatus(conn_) != CONNECTION_OK) {
    if (absl::Status s = Connect(); !s.ok()) return s;
  }
  absl::Status s = Load(rows, context);
  if (s.ok()) return s;
  if (PQstatus(conn_) != CONNECTION_OK) {
    PQfinish(conn_);
    conn_ = nullptr;
  } else if (PQtransactionStatus(conn_) != PQTRANS_IDLE) {
    // Idle: nothing was sent, or a COPY outside a transaction block rolled itself back.
    NeverAbandon never;
    if (absl::Status r = Run("ROLLBACK", 0, nullptr, nullptr, nullptr, never); !r.ok()) {
      spdlog::warn("postgres sink: rollback failed: {}", std::string(r.message()));
      PQfinish(conn_);
      conn_ = nullptr;
    }
  }
  return s;
}

// A Connection of its own loading one part at a time on its own thread: Start hands a part over
// (the helper must be idle), Wait returns its status.
class PostgresSink::Helper {
 public:
  explicit Helper(const PostgresSinkOptions& options)
      : connection_(options), thread_([this] { Loop(); }) {}

  ~Helper() {
    {
      absl::MutexLock lock(&mu_);
      quit_ = true;
    }
    thread_.join();
  }

  void Start(absl::Span<const Record* const> rows, const WriteContext& context) {
    absl::MutexLock lock(&mu_);
    rows_ = rows;
    context_ = &context;
    state_ = State::kQueued;
  }

  absl::Status Wait() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](State* state) { return *state == State::kDone; }, &state_));
    state_ = State::kIdle;
    return std::move(status_);
  }

  // Only while idle (between a Wait and the next Start).
  const Connection& connection() const { return connection_; }

 private:
  enum class State { kIdle, kQueued, kLoading, kDone };

  void Loop() {
    absl::MutexLock lock(&mu_);
    while (true) {
      mu_.Await(absl::Condition(this, &Helper::HasWork));
      if (quit_) return;
      state_ = State::kLoading;
      const absl::Span<const Record* const> rows = rows_;
      const WriteContext& context = *context_;
      mu_.Unlock();
      absl::Status status = connection_.Write(rows, context);
      mu_.Lock();
      status_ = std::move(status);
      state_ = State::kDone;
    }
  }

  bool HasWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return quit_ || state_ == State::kQueued;
  }

  Connection connection_;  // used by the thread only, except while idle
  absl::Mutex mu_;
  State state_ ABSL_GUARDED_BY(mu_) = State::kIdle;
  bool quit_ ABSL_GUARDED_BY(mu_) = false;
  absl::Span<const Record* const> rows_ ABSL_GUARDED_BY(mu_);
  const WriteContext* context_ ABSL_GUARDED_BY(mu_) = nullptr;
  absl::Status status_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;  // last: started once the rest is built
};

PostgresSink::PostgresSink(PostgresSinkOptions options)
    : options_(std::move(options)), first_(std::make_unique<Connection>(options_)) {}

PostgresSink::~PostgresSink() {
  const Stats s = stats();
  if (s.copied_batches + s.upserted_batches > 0) {
    spdlog::info(
        "postgres sink: {} parts loaded by COPY into {}, {} by upsert ({} COPYs met rows already "
        "loaded), over {} connections",
        s.copied_batches, options_.table, s.upserted_batches, s.copy_conflicts, s.connections_used);
  }
}

absl::StatusOr<std::unique_ptr<PostgresSink>> PostgresSink::Create(PostgresSinkOptions options) {
  if (options.connections < 1 || options.connections > kMaxConnections) {
    return absl::InvalidArgumentError(absl::StrCat("postgres sink: connections: expected 1 to ",
                                                   kMaxConnections, ", got ", options.connections));
  }
  std::unique_ptr<PostgresSink> sink(new PostgresSink(std::move(options)));
  if (absl::Status s = sink->first_->Connect(); !s.ok()) return s;
  return sink;
}

bool PostgresSink::copy_eligible() const { return first_->copy_eligible(); }

PostgresSink::Stats PostgresSink::stats() const {
  Stats total;
  const auto add = [&total](const Connection& c) {
    total.copied_batches += c.stats().copied_batches;
    total.upserted_batches += c.stats().upserted_batches;
    total.copy_conflicts += c.stats().copy_conflicts;
    total.connections_used += c.opened() ? 1 : 0;
  };
  add(*first_);
  for (const std::unique_ptr<Helper>& h : helpers_) add(h->connection());
  return total;
}

absl::Status PostgresSink::Write(absl::Span<const Record> records, const WriteContext& context) {
  absl::StatusOr<std::vector<const Record*>> rows = RowsToLoad(records);
  if (!rows.ok()) return rows.status();
  const size_t parts = std::clamp<size_t>(rows->size() / kMinRowsPerConnection, 1,
                                          static_cast<size_t>(options_.connections));
  if (parts == 1) return first_->Write(*rows, context);
  while (helpers_.size() < parts - 1) helpers_.push_back(std::make_unique<Helper>(options_));
  // Contiguous parts of nearly equal size; the first (on this thread) is started last.
  const absl::Span<const Record* const> all(*rows);
  const auto part = [&](size_t i) {
    const size_t begin = all.size() * i / parts;
    return all.subspan(begin, all.size() * (i + 1) / parts - begin);
  };
  for (size_t i = 1; i < parts; ++i) helpers_[i - 1]->Start(part(i), context);
  std::vector<absl::Status> statuses;
  statuses.reserve(parts);
  statuses.push_back(first_->Write(part(0), context));
  for (size_t i = 1; i < parts; ++i) statuses.push_back(helpers_[i - 1]->Wait());
  // One status for the batch: a stop first, then what blames the sink (Delivery retries it and
  // never bisects), then a rejection of the data (Delivery may look for the poison record).
  absl::Status result;
  const auto rank = [](const absl::Status& s) {
    if (s.ok()) return 0;
    if (s.code() == absl::StatusCode::kCancelled) return 3;
    return IsRecordRejection(s) ? 1 : 2;
  };
  for (absl::Status& s : statuses) {
    if (rank(s) > rank(result)) result = std::move(s);
  }
  return result;
}

}  // namespace klag::job
