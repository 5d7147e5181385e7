#include "job/postgres_sink.h"

#include <libpq-fe.h>
#include <poll.h>

#include <algorithm>
#include <map>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "job/record_json.h"
#include "nlohmann/json.hpp"
#include "spdlog/spdlog.h"

namespace klag::job {
namespace {

// Parameters per row and rows per INSERT (PostgreSQL allows 65535 parameters per statement).
constexpr int kParamsPerRow = 8;
constexpr size_t kRowsPerStatement = 4000;

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

// A JSON document PostgreSQL's jsonb accepts (it refuses \u0000), else nullopt.
bool IsJsonDocument(const std::string& value) {
  if (!IsValidUtf8(value) || absl::StrContains(value, "\\u0000")) return false;
  return nlohmann::json::accept(value);
}

}  // namespace

PostgresSink::PostgresSink(PostgresSinkOptions options) : options_(std::move(options)) {
  std::vector<std::string> parts;
  for (absl::string_view p : absl::StrSplit(options_.table, '.')) {
    parts.push_back(absl::StrCat("\"", p, "\""));
  }
  quoted_table_ = absl::StrJoin(parts, ".");
}

PostgresSink::~PostgresSink() {
  if (conn_ != nullptr) PQfinish(conn_);
}

absl::StatusOr<std::unique_ptr<PostgresSink>> PostgresSink::Create(PostgresSinkOptions options) {
  std::unique_ptr<PostgresSink> sink(new PostgresSink(std::move(options)));
  if (absl::Status s = sink->Connect(); !s.ok()) return s;
  return sink;
}

absl::Status PostgresSink::Connect() {
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
  return EnsureTable();
}

absl::Status PostgresSink::EnsureTable() {
  const std::string primary_key =
      options_.conflict_on_key ? "topic, key" : "topic, \"partition\", \"offset\"";
  const std::string sql = absl::StrCat(
      "CREATE TABLE IF NOT EXISTS ", quoted_table_,
      " (topic text NOT NULL, \"partition\" integer NOT NULL, \"offset\" bigint NOT NULL,"
      " \"timestamp\" timestamptz, key bytea, value bytea, value_json jsonb,"
      " headers jsonb NOT NULL DEFAULT '[]', loaded_at timestamptz NOT NULL DEFAULT now(),"
      " PRIMARY KEY (",
      primary_key, "))");
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
  return absl::OkStatus();
}

absl::Status PostgresSink::Run(const std::string& sql, int n_params, const char* const* values,
                               const int* lengths, const int* formats,
                               const WriteContext& context) {
  if (PQsendQueryParams(conn_, sql.c_str(), n_params, nullptr, values, lengths, formats, 0) != 1) {
    return absl::UnavailableError(
        absl::StrCat("postgres sink: sending a statement: ", Trimmed(PQerrorMessage(conn_))));
  }
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

absl::Status PostgresSink::WriteChunk(absl::Span<const Record> records,
                                      const WriteContext& context) {
  // Under conflict_on_key one statement may not touch a row twice: keep the last record per key.
  std::vector<const Record*> rows;
  if (options_.conflict_on_key) {
    std::map<std::pair<absl::string_view, absl::string_view>, size_t> last;
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
  } else {
    for (const Record& r : records) rows.push_back(&r);
  }

  std::vector<std::string> text;  // owned text parameters, kParamsPerRow slots per row
  text.resize(rows.size() * kParamsPerRow);
  std::vector<const char*> values(rows.size() * kParamsPerRow, nullptr);
  std::vector<int> lengths(rows.size() * kParamsPerRow, 0);
  std::vector<int> formats(rows.size() * kParamsPerRow, 0);
  std::string sql = absl::StrCat(
      "INSERT INTO ", quoted_table_,
      " AS t (topic, \"partition\", \"offset\", \"timestamp\", key, value, value_json, headers)"
      " VALUES ");
  for (size_t row = 0; row < rows.size(); ++row) {
    const Record& r = *rows[row];
    const size_t base = row * kParamsPerRow;
    auto set_text = [&](size_t slot, std::string v) {
      text[base + slot] = std::move(v);
      values[base + slot] = text[base + slot].c_str();
    };
    auto set_bytes = [&](size_t slot, const std::optional<std::string>& v) {
      if (!v.has_value()) return;  // NULL
      values[base + slot] = v->data();
      lengths[base + slot] = static_cast<int>(v->size());
      formats[base + slot] = 1;  // binary bytea
    };
    set_text(0, r.topic);
    set_text(1, absl::StrCat(r.partition));
    set_text(2, absl::StrCat(r.offset));
    if (r.timestamp_ms.has_value()) set_text(3, absl::StrCat(*r.timestamp_ms));
    set_bytes(4, r.key);
    set_bytes(5, r.value);
    if (r.value.has_value() && IsJsonDocument(*r.value)) set_text(6, *r.value);
    std::string headers;
    AppendHeadersJson(r.headers, &headers);
    set_text(7, std::move(headers));
    const size_t p = base + 1;
    absl::StrAppend(&sql, row == 0 ? "" : ",", "($", p, ", $", p + 1, "::integer, $", p + 2,
                    "::bigint, to_timestamp($", p + 3, "::bigint / 1000.0), $", p + 4, "::bytea, $",
                    p + 5, "::bytea, $", p + 6, "::jsonb, $", p + 7, "::jsonb)");
  }
  if (options_.conflict_on_key) {
    // A redelivered older record of the same partition does not overwrite a newer one.
    absl::StrAppend(
        &sql,
        " ON CONFLICT (topic, key) DO UPDATE SET \"partition\" = EXCLUDED.\"partition\","
        " \"offset\" = EXCLUDED.\"offset\", \"timestamp\" = EXCLUDED.\"timestamp\","
        " value = EXCLUDED.value, value_json = EXCLUDED.value_json,"
        " headers = EXCLUDED.headers, loaded_at = now()"
        " WHERE t.\"partition\" <> EXCLUDED.\"partition\""
        " OR t.\"offset\" <= EXCLUDED.\"offset\"");
  } else {
    absl::StrAppend(&sql,
                    " ON CONFLICT (topic, \"partition\", \"offset\") DO UPDATE SET"
                    " \"timestamp\" = EXCLUDED.\"timestamp\", key = EXCLUDED.key,"
                    " value = EXCLUDED.value, value_json = EXCLUDED.value_json,"
                    " headers = EXCLUDED.headers, loaded_at = now()");
  }
  return Run(sql, static_cast<int>(values.size()), values.data(), lengths.data(), formats.data(),
             context);
}

absl::Status PostgresSink::Write(absl::Span<const Record> records, const WriteContext& context) {
  if (conn_ == nullptr || PQstatus(conn_) != CONNECTION_OK) {
    if (absl::Status s = Connect(); !s.ok()) return s;
  }
  absl::Status s = Run("BEGIN", 0, nullptr, nullptr, nullptr, context);
  for (size_t i = 0; s.ok() && i < records.size(); i += kRowsPerStatement) {
    s = WriteChunk(records.subspan(i, kRowsPerStatement), context);
  }
  if (s.ok()) s = Run("COMMIT", 0, nullptr, nullptr, nullptr, context);
  if (s.ok()) return s;
  if (PQstatus(conn_) == CONNECTION_OK) {
    NeverAbandon never;
    if (absl::Status r = Run("ROLLBACK", 0, nullptr, nullptr, nullptr, never); !r.ok()) {
      spdlog::warn("postgres sink: rollback failed: {}", std::string(r.message()));
      PQfinish(conn_);
      conn_ = nullptr;
    }
  } else {
    PQfinish(conn_);
    conn_ = nullptr;
  }
  return s;
}

}  // namespace klag::job
