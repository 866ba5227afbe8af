// Content-addressed checkpoint files on local disk.
//
// A checkpoint is named by the hex key its producer computes (a hash of
// config, prefix and sample ids), so Put is idempotent. Writes go to a temp
// file, are fsynced and renamed, and the directory is fsynced. Destroy
// overwrites the file with zeros and fsyncs before unlinking: a purged
// checkpoint must not survive in the data directory.
#ifndef OUBLI_STORAGE_CHECKPOINT_STORE_H_
#define OUBLI_STORAGE_CHECKPOINT_STORE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace oubli::storage {

class CheckpointStore {
 public:
  // Creates `dir` if needed and removes leftover temp files from a crash.
  static absl::StatusOr<std::unique_ptr<CheckpointStore>> Open(
      const std::string& dir);

  // Keys are 1..128 chars of [0-9a-f]; anything else is InvalidArgument.
  absl::Status Put(absl::string_view key, absl::string_view bytes);
  absl::StatusOr<std::string> Get(absl::string_view key) const;  // NotFound
  bool Contains(absl::string_view key) const;
  // NotFound is not an error here: destroying is idempotent.
  absl::Status Destroy(absl::string_view key);
  absl::StatusOr<std::vector<std::string>> List() const;  // sorted keys
  absl::StatusOr<int64_t> TotalBytes() const;
  const std::string& dir() const { return dir_; }

 private:
  explicit CheckpointStore(std::string dir) : dir_(std::move(dir)) {}
  std::string PathFor(absl::string_view key) const;

  const std::string dir_;
  // Serializes writers of the same key (temp-file names are per key).
  mutable absl::Mutex mu_;
};

}  // namespace oubli::storage

#endif  // OUBLI_STORAGE_CHECKPOINT_STORE_H_
