// Status propagation macros. Abseil 20220623 ships none, so we define ours.
#ifndef OUBLI_COMMON_STATUS_MACROS_H_
#define OUBLI_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define OUBLI_STATUS_CONCAT_INNER_(a, b) a##b
#define OUBLI_STATUS_CONCAT_(a, b) OUBLI_STATUS_CONCAT_INNER_(a, b)

// Returns from the enclosing function if `expr` yields a non-OK status.
#define OUBLI_RETURN_IF_ERROR(expr)                   \
  do {                                                \
    ::absl::Status oubli_status_ = (expr);            \
    if (!oubli_status_.ok()) return oubli_status_;    \
  } while (0)

// `lhs = value of expr`, or returns its error status.
#define OUBLI_ASSIGN_OR_RETURN(lhs, expr)                                    \
  OUBLI_ASSIGN_OR_RETURN_IMPL_(OUBLI_STATUS_CONCAT_(oubli_or_, __LINE__), \
                               lhs, expr)
#define OUBLI_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                  \
  if (!tmp.ok()) return std::move(tmp).status();      \
  lhs = std::move(tmp).value()

#endif  // OUBLI_COMMON_STATUS_MACROS_H_
