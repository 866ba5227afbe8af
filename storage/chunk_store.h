// Erasure-coded checkpoint chunks on a worker's disk: a CheckpointStore
// whose file names are the checkpoint key plus a two-hex-digit chunk index,
// so writes are fsynced and atomic and Destroy overwrites before unlinking.
#ifndef OUBLI_STORAGE_CHUNK_STORE_H_
#define OUBLI_STORAGE_CHUNK_STORE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "storage/checkpoint_store.h"

namespace oubli::storage {

class ChunkStore {
 public:
  static constexpr int kMaxChunks = 256;

  static absl::StatusOr<std::unique_ptr<ChunkStore>> Open(
      const std::string& dir);

  // DataLoss if `crc32c` is not the CRC32C of `data` (nothing is written).
  // InvalidArgument for a key that is not 1..126 lowercase hex characters
  // or an index outside [0, kMaxChunks).
  absl::Status Put(absl::string_view checkpoint_key, int index,
                   absl::string_view data, uint32_t crc32c);
  absl::StatusOr<std::string> Get(absl::string_view checkpoint_key,
                                  int index) const;  // NotFound
  // Destroys every chunk of `checkpoint_key`; returns how many there were.
  absl::StatusOr<int> DestroyAll(absl::string_view checkpoint_key);
  // Checkpoint keys with at least one chunk, sorted.
  absl::StatusOr<std::vector<std::string>> ListCheckpoints() const;

 private:
  explicit ChunkStore(std::unique_ptr<CheckpointStore> files)
      : files_(std::move(files)) {}
  std::unique_ptr<CheckpointStore> files_;
};

}  // namespace oubli::storage

#endif  // OUBLI_STORAGE_CHUNK_STORE_H_
