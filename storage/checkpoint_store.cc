#include "storage/checkpoint_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace oubli::storage {
namespace {

constexpr absl::string_view kTempSuffix = ".tmp";

// Converts an errno value into a status whose message names the operation
// and path.
absl::Status ErrnoStatus(int error_number, absl::string_view operation,
                         absl::string_view path) {
  std::string message =
      absl::StrCat(operation, " ", path, ": ", std::strerror(error_number));
  switch (error_number) {
    case ENOENT:
      return absl::NotFoundError(message);
    case EEXIST:
      return absl::AlreadyExistsError(message);
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(message);
    case ENOSPC:
    case EDQUOT:
      return absl::ResourceExhaustedError(message);
    default:
      return absl::InternalError(message);
  }
}

// Closes the descriptor on scope exit; Close() reports the error instead.
class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  ~FileDescriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;

  int get() const { return fd_; }
  absl::Status Close(absl::string_view path) {
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) return ErrnoStatus(errno, "close", path);
    return absl::OkStatus();
  }

 private:
  int fd_;
};

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

absl::Status WriteAll(int fd, const char* data, size_t size,
                      absl::string_view path) {
  while (size > 0) {
    const ssize_t written = ::write(fd, data, size);
    if (written < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "write", path);
    }
    data += written;
    size -= static_cast<size_t>(written);
  }
  return absl::OkStatus();
}

absl::Status FsyncFd(int fd, absl::string_view path) {
  if (::fsync(fd) != 0) return ErrnoStatus(errno, "fsync", path);
  return absl::OkStatus();
}

// Makes renames and unlinks in `dir` durable.
absl::Status FsyncDirectory(const std::string& dir) {
  FileDescriptor fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) return ErrnoStatus(errno, "open directory", dir);
  OUBLI_RETURN_IF_ERROR(FsyncFd(fd.get(), dir));
  return fd.Close(dir);
}

// Reads the whole file; NotFound if it does not exist.
absl::StatusOr<std::string> ReadFile(const std::string& path) {
  FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return ErrnoStatus(errno, "open", path);
  struct stat info;
  if (::fstat(fd.get(), &info) != 0) return ErrnoStatus(errno, "stat", path);
  std::string bytes;
  bytes.reserve(static_cast<size_t>(info.st_size));
  char buffer[1 << 16];
  while (true) {
    const ssize_t n = ::read(fd.get(), buffer, sizeof(buffer));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "read", path);
    }
    if (n == 0) break;
    bytes.append(buffer, static_cast<size_t>(n));
  }
  OUBLI_RETURN_IF_ERROR(fd.Close(path));
  return bytes;
}

// Overwrites the file's contents with zeros and fsyncs before unlinking, so
// the bytes do not survive in the freed blocks. (On copy-on-write file
// systems the old blocks may still linger; this is the best a plain file
// API can do.) Missing files are fine. Does not fsync the directory.
absl::Status ShredFile(const std::string& path) {
  FileDescriptor fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return ErrnoStatus(errno, "open for shredding", path);
  }
  struct stat info;
  if (::fstat(fd.get(), &info) != 0) return ErrnoStatus(errno, "stat", path);
  const std::string zeros(1 << 20, '\0');
  off_t remaining = info.st_size;
  while (remaining > 0) {
    const size_t chunk =
        static_cast<size_t>(std::min<off_t>(remaining, zeros.size()));
    OUBLI_RETURN_IF_ERROR(WriteAll(fd.get(), zeros.data(), chunk, path));
    remaining -= static_cast<off_t>(chunk);
  }
  OUBLI_RETURN_IF_ERROR(FsyncFd(fd.get(), path));
  OUBLI_RETURN_IF_ERROR(fd.Close(path));
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return ErrnoStatus(errno, "unlink", path);
  }
  return absl::OkStatus();
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

  const std::string temp_path = absl::StrCat(path, kTempSuffix);
  FileDescriptor fd(::open(temp_path.c_str(),
                           O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (fd.get() < 0) return ErrnoStatus(errno, "create", temp_path);
  absl::Status status =
      WriteAll(fd.get(), bytes.data(), bytes.size(), temp_path);
  if (status.ok()) status = FsyncFd(fd.get(), temp_path);
  if (status.ok()) status = fd.Close(temp_path);
  if (status.ok() && ::rename(temp_path.c_str(), path.c_str()) != 0) {
    status = ErrnoStatus(errno, absl::StrCat("rename to ", path), temp_path);
  }
  if (!status.ok()) {
    // Best effort: do not leave partial checkpoint bytes behind.
    ShredFile(temp_path).IgnoreError();
    return status;
  }
  return FsyncDirectory(dir_);
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
