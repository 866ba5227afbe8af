#include "storage/chunk_store.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "storage/erasure_code.h"

namespace oubli::storage {
namespace {

constexpr size_t kIndexDigits = 2;

absl::StatusOr<std::string> FileKey(absl::string_view checkpoint_key,
                                    int index) {
  const bool hex =
      !checkpoint_key.empty() && checkpoint_key.size() <= 128 - kIndexDigits &&
      std::all_of(checkpoint_key.begin(), checkpoint_key.end(), [](char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
      });
  if (!hex) {
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoint key '", checkpoint_key,
                     "' is not 1..126 lowercase hex characters"));
  }
  if (index < 0 || index >= ChunkStore::kMaxChunks) {
    return absl::InvalidArgumentError(absl::StrCat(
        "chunk index ", index, " outside [0, ", ChunkStore::kMaxChunks, ")"));
  }
  return absl::StrFormat("%s%02x", checkpoint_key, index);
}

}  // namespace

absl::StatusOr<std::unique_ptr<ChunkStore>> ChunkStore::Open(
    const std::string& dir) {
  OUBLI_ASSIGN_OR_RETURN(std::unique_ptr<CheckpointStore> files,
                         CheckpointStore::Open(dir));
  return std::unique_ptr<ChunkStore>(new ChunkStore(std::move(files)));
}

absl::Status ChunkStore::Put(absl::string_view checkpoint_key, int index,
                             absl::string_view data, uint32_t crc32c) {
  OUBLI_ASSIGN_OR_RETURN(std::string key, FileKey(checkpoint_key, index));
  if (Crc32c(data) != crc32c) {
    return absl::DataLossError(absl::StrCat(
        "chunk ", index, " of ", checkpoint_key, ": CRC32C mismatch"));
  }
  return files_->Put(key, data);
}

absl::StatusOr<std::string> ChunkStore::Get(absl::string_view checkpoint_key,
                                            int index) const {
  OUBLI_ASSIGN_OR_RETURN(std::string key, FileKey(checkpoint_key, index));
  return files_->Get(key);
}

absl::StatusOr<int> ChunkStore::DestroyAll(absl::string_view checkpoint_key) {
  OUBLI_ASSIGN_OR_RETURN(std::string first, FileKey(checkpoint_key, 0));
  OUBLI_ASSIGN_OR_RETURN(std::vector<std::string> keys, files_->List());
  int destroyed = 0;
  for (const std::string& key : keys) {
    if (key.size() == first.size() && absl::StartsWith(key, checkpoint_key)) {
      OUBLI_RETURN_IF_ERROR(files_->Destroy(key));
      ++destroyed;
    }
  }
  return destroyed;
}

absl::StatusOr<std::vector<std::string>> ChunkStore::ListCheckpoints() const {
  OUBLI_ASSIGN_OR_RETURN(std::vector<std::string> keys, files_->List());
  std::vector<std::string> out;
  for (const std::string& key : keys) {
    if (key.size() <= kIndexDigits) continue;
    std::string checkpoint = key.substr(0, key.size() - kIndexDigits);
    if (out.empty() || out.back() != checkpoint) {
      out.push_back(std::move(checkpoint));
    }
  }
  return out;
}

}  // namespace oubli::storage
