// Status propagation helpers. Debian 12's Abseil (20220623) ships absl::Status but not the
// macros Google uses internally, so klag keeps this small pair.
//
//   absl::StatusOr<int> Parse(absl::string_view s);
//   absl::Status Use(absl::string_view s) {
//     ASSIGN_OR_RETURN(int n, Parse(s));
//     RETURN_IF_ERROR(Check(n));
//     return absl::OkStatus();
//   }
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define KLAG_STATUS_CONCAT_INNER_(a, b) a##b
#define KLAG_STATUS_CONCAT_(a, b) KLAG_STATUS_CONCAT_INNER_(a, b)

// Evaluates `expr` (an absl::Status) and returns it from the enclosing function unless it is OK.
#define RETURN_IF_ERROR(expr)                                     \
  do {                                                            \
    if (absl::Status klag_status_ = (expr); !klag_status_.ok()) { \
      return klag_status_;                                        \
    }                                                             \
  } while (false)

// Evaluates `rexpr` (an absl::StatusOr<T>); on error returns its status, otherwise moves the
// value into `lhs` (a declaration such as `auto x` or an existing variable).
#define ASSIGN_OR_RETURN(lhs, rexpr) \
  ASSIGN_OR_RETURN_IMPL_(KLAG_STATUS_CONCAT_(klag_statusor_, __LINE__), lhs, rexpr)

#define ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                           \
  if (!statusor.ok()) {                              \
    return std::move(statusor).status();             \
  }                                                  \
  lhs = *std::move(statusor)
