#include "coordinator/chunk_manifest.h"

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
  storage::BlobLayout layout;
  layout.data_chunks = manifest->data_chunks();
  layout.parity_chunks = manifest->parity_chunks();
  layout.original_size = manifest->original_size();
  layout.chunk_size = manifest->chunk_size();
  layout.chunk_crc32c.assign(manifest->chunk_crc32c().begin(),
                             manifest->chunk_crc32c().end());
  const int total = layout.total_chunks();
  if (total < 1 || manifest->holders_size() != total ||
      static_cast<int>(layout.chunk_crc32c.size()) != total) {
    return absl::DataLossError(
        absl::StrCat("chunk manifest of ", key, " is inconsistent"));
  }
  return layout;
}

}  // namespace oubli::coordinator
