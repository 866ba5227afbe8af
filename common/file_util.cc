#include "common/file_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace oubli {
namespace {

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

absl::Status WriteAll(int fd, absl::string_view bytes, absl::string_view path) {
  while (!bytes.empty()) {
    const ssize_t written = ::write(fd, bytes.data(), bytes.size());
    if (written < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "write", path);
    }
    bytes.remove_prefix(static_cast<size_t>(written));
  }
  return absl::OkStatus();
}

absl::Status FsyncFd(int fd, absl::string_view path) {
  if (::fsync(fd) != 0) return ErrnoStatus(errno, "fsync", path);
  return absl::OkStatus();
}

std::string ParentDirectory(const std::string& path) {
  const std::string parent = std::filesystem::path(path).parent_path().string();
  return parent.empty() ? "." : parent;
}

}  // namespace

absl::Status ErrnoStatus(int error_number, absl::string_view operation,
                         absl::string_view path) {
  std::string message =
      absl::StrCat(operation, " '", path, "': ", std::strerror(error_number));
  switch (error_number) {
    case ENOENT:
    case ENOTDIR:
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

absl::Status FsyncDirectory(const std::string& dir) {
  FileDescriptor fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) return ErrnoStatus(errno, "open directory", dir);
  OUBLI_RETURN_IF_ERROR(FsyncFd(fd.get(), dir));
  return fd.Close(dir);
}

absl::Status WriteFileAtomically(const std::string& path,
                                 absl::string_view bytes,
                                 const std::string& temp_path) {
  FileDescriptor fd(::open(temp_path.c_str(),
                           O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (fd.get() < 0) return ErrnoStatus(errno, "create", temp_path);
  OUBLI_RETURN_IF_ERROR(WriteAll(fd.get(), bytes, temp_path));
  OUBLI_RETURN_IF_ERROR(FsyncFd(fd.get(), temp_path));
  OUBLI_RETURN_IF_ERROR(fd.Close(temp_path));
  if (::rename(temp_path.c_str(), path.c_str()) != 0) {
    return ErrnoStatus(errno, absl::StrCat("rename '", temp_path, "' onto"),
                       path);
  }
  return FsyncDirectory(ParentDirectory(path));
}

absl::Status WriteFileAtomically(const std::string& path,
                                 absl::string_view bytes) {
  static std::atomic<uint64_t> counter{0};
  const std::string temp_path =
      absl::StrCat(path, ".tmp.", ::getpid(), ".", counter++);
  absl::Status status = WriteFileAtomically(path, bytes, temp_path);
  if (!status.ok()) ::unlink(temp_path.c_str());
  return status;
}

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
    OUBLI_RETURN_IF_ERROR(
        WriteAll(fd.get(), absl::string_view(zeros.data(), chunk), path));
    remaining -= static_cast<off_t>(chunk);
  }
  OUBLI_RETURN_IF_ERROR(FsyncFd(fd.get(), path));
  OUBLI_RETURN_IF_ERROR(fd.Close(path));
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return ErrnoStatus(errno, "unlink", path);
  }
  return absl::OkStatus();
}

}  // namespace oubli
