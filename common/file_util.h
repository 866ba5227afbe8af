// POSIX file helpers shared by the checkpoint store and safetensors I/O:
// errno-to-status mapping, whole-file reads and durable atomic writes.
#ifndef OUBLI_COMMON_FILE_UTIL_H_
#define OUBLI_COMMON_FILE_UTIL_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace oubli {

// Maps an errno value to a status with the message
// "<operation> '<path>': <strerror>". ENOENT/ENOTDIR are NotFound, EEXIST
// AlreadyExists, EACCES/EPERM PermissionDenied, ENOSPC/EDQUOT
// ResourceExhausted, anything else Internal.
absl::Status ErrnoStatus(int error_number, absl::string_view operation,
                         absl::string_view path);

// The whole file; NotFound if it does not exist.
absl::StatusOr<std::string> ReadFile(const std::string& path);

// Makes renames and unlinks in `dir` durable.
absl::Status FsyncDirectory(const std::string& dir);

// Durably replaces `path` with `bytes`: writes `temp_path`, fsyncs it,
// renames it onto `path` and fsyncs the parent directory. Readers see the
// old contents or the new, never a partial file. `temp_path` must be in the
// same directory as `path`. On failure `temp_path` may be left behind; the
// caller disposes of it (CheckpointStore shreds it).
absl::Status WriteFileAtomically(const std::string& path,
                                 absl::string_view bytes,
                                 const std::string& temp_path);

// As above with the temp file "<path>.tmp.<pid>.<n>", unique per call so
// concurrent writers of one path do not collide; it is unlinked on failure.
absl::Status WriteFileAtomically(const std::string& path,
                                 absl::string_view bytes);

// Overwrites the file's contents with zeros and fsyncs before unlinking, so
// the bytes do not survive in the freed blocks. (On copy-on-write file
// systems the old blocks may still linger; this is the best a plain file
// API can do.) A missing file is fine. Does not fsync the directory.
absl::Status ShredFile(const std::string& path);

}  // namespace oubli

#endif  // OUBLI_COMMON_FILE_UTIL_H_
