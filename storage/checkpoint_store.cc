#include "storage/checkpoint_store.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <system_error>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status_macros.h"

namespace oubli::storage {
namespace {

constexpr absl::string_view kTempSuffix = ".tmp";

bool IsValidKey(absl::string_view key) {
  if (key.empty() || key.size() > 128) return false;
  return std::all_of(key.begin(), key.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
  });
}

absl::Status CheckKey(absl::string_view key) {
  if (IsValidKey(key)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "checkpoint key '", key, "' is not 1..128 lowercase hex characters"));
}

// Names of the regular entries in `dir`.
absl::StatusOr<std::vector<std::string>> ListDirectory(const std::string& dir) {
  DIR* handle = ::opendir(dir.c_str());
  if (handle == nullptr) return ErrnoStatus(errno, "list directory", dir);
  std::vector<std::string> names;
  errno = 0;
  while (const dirent* entry = ::readdir(handle)) {
    const absl::string_view name(entry->d_name);
    if (name != "." && name != "..") names.emplace_back(name);
  }
  const int read_error = errno;
  ::closedir(handle);
  if (read_error != 0) return ErrnoStatus(read_error, "read directory", dir);
  return names;
}

}  // namespace

absl::StatusOr<std::unique_ptr<CheckpointStore>> CheckpointStore::Open(
    const std::string& dir) {
  if (dir.empty()) {
    return absl::InvalidArgumentError("checkpoint directory is empty");
  }
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) {
    return absl::InternalError(absl::StrCat("create checkpoint directory ", dir,
                                            ": ", error.message()));
  }
  // A temp file is a Put interrupted by a crash. Its bytes may belong to a
  // checkpoint that has since been purged, so shred rather than just unlink.
  OUBLI_ASSIGN_OR_RETURN(std::vector<std::string> names, ListDirectory(dir));
  bool removed_any = false;
  for (const std::string& name : names) {
    if (!absl::EndsWith(name, kTempSuffix)) continue;
    OUBLI_RETURN_IF_ERROR(ShredFile(absl::StrCat(dir, "/", name)));
    removed_any = true;
  }
  if (removed_any) OUBLI_RETURN_IF_ERROR(FsyncDirectory(dir));
  return std::unique_ptr<CheckpointStore>(new CheckpointStore(dir));
}

std::string CheckpointStore::PathFor(absl::string_view key) const {
  return absl::StrCat(dir_, "/", key);
}

absl::Status CheckpointStore::Put(absl::string_view key,
                                  absl::string_view bytes) {
  OUBLI_RETURN_IF_ERROR(CheckKey(key));
  absl::WriterMutexLock lock(&mu_);
  const std::string path = PathFor(key);
  // Keys are content addresses: an identical file already present means the
  // work is done. Anything else (e.g. a corrupted file) is replaced.
  absl::StatusOr<std::string> existing = ReadFile(path);
  if (existing.ok() && *existing == bytes) return absl::OkStatus();
  if (!existing.ok() && !absl::IsNotFound(existing.status())) {
    return existing.status();
  }

  // A fixed temp name per key: Open recognizes leftovers by kTempSuffix.
  const std::string temp_path = absl::StrCat(path, kTempSuffix);
  absl::Status status = WriteFileAtomically(path, bytes, temp_path);
  if (!status.ok()) {
    // Best effort: do not leave partial checkpoint bytes behind.
    ShredFile(temp_path).IgnoreError();
  }
  return status;
}

absl::StatusOr<std::string> CheckpointStore::Get(absl::string_view key) const {
  OUBLI_RETURN_IF_ERROR(CheckKey(key));
  // Shared lock: Destroy zeroes files in place, so a read must not overlap.
  absl::ReaderMutexLock lock(&mu_);
  absl::StatusOr<std::string> bytes = ReadFile(PathFor(key));
  if (absl::IsNotFound(bytes.status())) {
    return absl::NotFoundError(
        absl::StrCat("checkpoint ", key, " not found in ", dir_));
  }
  return bytes;
}

bool CheckpointStore::Contains(absl::string_view key) const {
  if (!IsValidKey(key)) return false;
  absl::ReaderMutexLock lock(&mu_);
  struct stat info;
  return ::stat(PathFor(key).c_str(), &info) == 0 && S_ISREG(info.st_mode);
}

absl::Status CheckpointStore::Destroy(absl::string_view key) {
  OUBLI_RETURN_IF_ERROR(CheckKey(key));
  absl::WriterMutexLock lock(&mu_);
  const std::string path = PathFor(key);
  OUBLI_RETURN_IF_ERROR(ShredFile(path));
  OUBLI_RETURN_IF_ERROR(ShredFile(absl::StrCat(path, kTempSuffix)));
  return FsyncDirectory(dir_);
}

absl::StatusOr<std::vector<std::string>> CheckpointStore::List() const {
  absl::ReaderMutexLock lock(&mu_);
  OUBLI_ASSIGN_OR_RETURN(std::vector<std::string> names, ListDirectory(dir_));
  std::vector<std::string> keys;
  for (std::string& name : names) {
    if (IsValidKey(name)) keys.push_back(std::move(name));
  }
  std::sort(keys.begin(), keys.end());
  return keys;
}

absl::StatusOr<int64_t> CheckpointStore::TotalBytes() const {
  absl::ReaderMutexLock lock(&mu_);
  OUBLI_ASSIGN_OR_RETURN(std::vector<std::string> names, ListDirectory(dir_));
  int64_t total = 0;
  for (const std::string& name : names) {
    if (!IsValidKey(name)) continue;
    const std::string path = PathFor(name);
    struct stat info;
    if (::stat(path.c_str(), &info) != 0)
      return ErrnoStatus(errno, "stat", path);
    if (S_ISREG(info.st_mode)) total += static_cast<int64_t>(info.st_size);
  }
  return total;
}

}  // namespace oubli::storage
