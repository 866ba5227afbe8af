#include "coordinator/chunk_manifest.h"

#include <cstdint>
#include <optional>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace oubli::coordinator {

absl::StatusOr<storage::BlobLayout> ParseChunkManifest(
    absl::string_view key, absl::string_view bytes,
    internal::ChunkManifest* manifest) {
  if (!manifest->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::DataLossError(
        absl::StrCat("chunk manifest of ", key, " is unreadable"));
  }
  const auto inconsistent = [&](absl::string_view why) {
    return absl::DataLossError(
        absl::StrCat("chunk manifest of ", key, " is inconsistent: ", why));
  };
  // The counts are checked before any arithmetic on them: they come from
  // disk, and k + m of two large ints overflows.
  const int k = manifest->data_chunks();
  const int m = manifest->parity_chunks();
  if (k < 1 || m < 0 || m > storage::ReedSolomonCode::kMaxTotalChunks - k) {
    return inconsistent(absl::StrCat("RS(", k, ",", m, ") is not a code"));
  }
  if (manifest->holders_size() != k + m ||
      manifest->chunk_crc32c_size() != k + m) {
    return inconsistent(absl::StrCat(manifest->holders_size(), " holders and ",
                                     manifest->chunk_crc32c_size(),
                                     " CRCs for ", k + m, " chunks"));
  }
  // The encoder's chunk size, so that Restore fetches what DecodeBlob
  // accepts (and no size past 2^64 wraps around).
  const std::optional<uint64_t> chunk_size =
      storage::PaddedChunkSize(k, manifest->original_size());
  if (!chunk_size.has_value() || *chunk_size != manifest->chunk_size()) {
    return inconsistent(absl::StrCat("chunk size ", manifest->chunk_size(),
                                     " for ", manifest->original_size(),
                                     " bytes in ", k, " chunks"));
  }
  storage::BlobLayout layout;
  layout.data_chunks = k;
  layout.parity_chunks = m;
  layout.original_size = manifest->original_size();
  layout.chunk_size = manifest->chunk_size();
  layout.chunk_crc32c.assign(manifest->chunk_crc32c().begin(),
                             manifest->chunk_crc32c().end());
  return layout;
}

}  // namespace oubli::coordinator
