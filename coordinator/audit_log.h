// The audit log: one JSON line per mutating call of the public API and per
// refused call (who, what, which model, when, the outcome's code), never
// payloads, sample ids or error messages, which could carry them. Rotated
// by size: FILE becomes FILE.1, FILE.1 becomes FILE.2, ..., the oldest
// beyond `keep_files` is removed.
#ifndef OUBLI_COORDINATOR_AUDIT_LOG_H_
#define OUBLI_COORDINATOR_AUDIT_LOG_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace oubli::coordinator {

struct AuditEntry {
  absl::Time time;
  std::string caller;    // principal; "" when not authenticated
  std::string peer;      // transport address, e.g. "ipv4:10.0.0.7:51234"
  std::string rpc;       // e.g. "DeleteSamples"
  std::string model_id;  // "" when the call names none
  absl::StatusCode code = absl::StatusCode::kOk;
};

// The entry as one JSON object (no trailing newline).
std::string AuditEntryJson(const AuditEntry& entry);

class AuditLog {
 public:
  struct Options {
    std::string path;
    int64_t max_bytes = int64_t{64} << 20;  // rotate past this size
    int keep_files = 5;                     // rotated files kept
  };
  // Appends to an existing file. InvalidArgument for bad limits; the
  // errno's status naming the path when it cannot be opened.
  static absl::StatusOr<std::unique_ptr<AuditLog>> Open(const Options& options);
  ~AuditLog();

  // Appends one line (one write, so a crash leaves whole lines), rotating
  // first when the file has reached max_bytes. A failed write is reported
  // on stderr once per failure streak and never fails the call itself.
  void Record(const AuditEntry& entry);

 private:
  explicit AuditLog(Options options) : options_(std::move(options)) {}
  absl::Status RotateLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status OpenLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  absl::Mutex mu_;
  int fd_ ABSL_GUARDED_BY(mu_) = -1;
  int64_t size_ ABSL_GUARDED_BY(mu_) = 0;
  bool failing_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace oubli::coordinator

#endif  // OUBLI_COORDINATOR_AUDIT_LOG_H_
