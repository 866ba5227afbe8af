#include "coordinator/audit_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace oubli::coordinator {
namespace {

// A JSON string literal: quotes, backslashes and control characters
// escaped; other bytes as they are (names and model ids are validated
// ASCII; peers and principal names come from gRPC and certificates).
std::string JsonString(absl::string_view text) {
  // Fields are names, ids and addresses: a longer one is cut, so no caller
  // can make lines (and rotations) arbitrarily large.
  constexpr size_t kMaxField = 256;
  const bool cut = text.size() > kMaxField;
  if (cut) text = text.substr(0, kMaxField);
  std::string out = "\"";
  for (unsigned char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f || c >= 0x80) {
      // Non-ASCII is escaped byte-wise so the line stays valid UTF-8 even
      // when a certificate name is not.
      char escaped[8];
      std::snprintf(escaped, sizeof(escaped), "\\u%04x", c);
      out += escaped;
    } else {
      out += static_cast<char>(c);
    }
  }
  if (cut) out += "...";
  out += '"';
  return out;
}

}  // namespace

std::string AuditEntryJson(const AuditEntry& entry) {
  return absl::StrCat(
      "{\"time\":",
      JsonString(absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", entry.time,
                                  absl::UTCTimeZone())),
      ",\"caller\":", JsonString(entry.caller),
      ",\"peer\":", JsonString(entry.peer), ",\"rpc\":", JsonString(entry.rpc),
      ",\"model_id\":", JsonString(entry.model_id),
      ",\"code\":", JsonString(absl::StatusCodeToString(entry.code)), "}");
}

absl::StatusOr<std::unique_ptr<AuditLog>> AuditLog::Open(
    const Options& options) {
  if (options.path.empty()) {
    return absl::InvalidArgumentError("audit log: no path");
  }
  if (options.max_bytes < 1024) {
    return absl::InvalidArgumentError(
        "audit log: max_bytes must be at least 1024");
  }
  if (options.keep_files < 1) {
    return absl::InvalidArgumentError(
        "audit log: keep_files must be at least 1");
  }
  std::unique_ptr<AuditLog> log(new AuditLog(options));
  absl::MutexLock lock(&log->mu_);
  if (absl::Status s = log->OpenLocked(); !s.ok()) return s;
  return log;
}

AuditLog::~AuditLog() {
  absl::MutexLock lock(&mu_);
  if (fd_ >= 0) ::close(fd_);
}

absl::Status AuditLog::OpenLocked() {
  fd_ = ::open(options_.path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
               0600);
  if (fd_ < 0) {
    return absl::ErrnoToStatus(errno,
                               absl::StrCat("audit log ", options_.path));
  }
  struct stat info;
  size_ = ::fstat(fd_, &info) == 0 ? info.st_size : 0;
  return absl::OkStatus();
}

absl::Status AuditLog::RotateLocked() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  const std::string& path = options_.path;
  ::unlink(absl::StrCat(path, ".", options_.keep_files).c_str());
  for (int i = options_.keep_files - 1; i >= 1; --i) {
    ::rename(absl::StrCat(path, ".", i).c_str(),
             absl::StrCat(path, ".", i + 1).c_str());
  }
  if (::rename(path.c_str(), absl::StrCat(path, ".1").c_str()) != 0 &&
      errno != ENOENT) {
    const int error = errno;
    (void)OpenLocked();  // keep appending to the unrotated file
    return absl::ErrnoToStatus(error, absl::StrCat("rotating ", path));
  }
  return OpenLocked();
}

void AuditLog::Record(const AuditEntry& entry) {
  const std::string line = AuditEntryJson(entry) + "\n";
  absl::MutexLock lock(&mu_);
  absl::Status status;
  if (fd_ < 0) {
    status = OpenLocked();
  } else if (size_ > 0 &&
             size_ + static_cast<int64_t>(line.size()) > options_.max_bytes) {
    status = RotateLocked();
  }
  if (fd_ >= 0) {
    const ssize_t written = ::write(fd_, line.data(), line.size());
    if (written == static_cast<ssize_t>(line.size())) {
      size_ += written;
    } else if (status.ok()) {
      status = absl::ErrnoToStatus(written < 0 ? errno : EIO,
                                   absl::StrCat("audit log ", options_.path));
    }
  }
  if (!status.ok() && !failing_) {
    std::fprintf(stderr, "oubli-coordinator: %s\n", status.ToString().c_str());
  }
  failing_ = !status.ok();
}

}  // namespace oubli::coordinator
