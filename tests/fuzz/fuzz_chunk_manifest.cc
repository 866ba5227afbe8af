// A stored chunk manifest (meta "chunks/<checkpoint key>" in a model's
// lineage DB) as WorkerChunks::Restore and Repair read it back. Beyond not
// crashing: refusals are DataLoss naming the checkpoint, and an accepted
// manifest is one the decoder can use and that reads the same written back.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "coordinator/chunk_manifest.h"
#include "google/protobuf/stubs/logging.h"
#include "oubli/internal/records.pb.h"
#include "storage/erasure_code.h"

namespace {

bool SameLayout(const oubli::storage::BlobLayout& a,
                const oubli::storage::BlobLayout& b) {
  return a.data_chunks == b.data_chunks && a.parity_chunks == b.parity_chunks &&
         a.original_size == b.original_size && a.chunk_size == b.chunk_size &&
         a.chunk_crc32c == b.chunk_crc32c;
}

}  // namespace

// Invalid UTF-8 in a string field is a parse failure, which protobuf also
// logs: quiet, or logging is most of each run.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  oubli::internal::ChunkManifest manifest;
  auto layout = oubli::coordinator::ParseChunkManifest("k", bytes, &manifest);
  if (!layout.ok()) {
    // Refused as the header says: DataLoss, naming the checkpoint.
    if (layout.status().code() != absl::StatusCode::kDataLoss ||
        !absl::StartsWith(layout.status().message(), "chunk manifest of k ")) {
      __builtin_trap();
    }
    return 0;
  }
  // The layout is the manifest's own record, not a reinterpretation.
  if (layout->data_chunks != manifest.data_chunks() ||
      layout->parity_chunks != manifest.parity_chunks() ||
      layout->original_size != manifest.original_size() ||
      layout->chunk_size != manifest.chunk_size() ||
      !std::equal(layout->chunk_crc32c.begin(), layout->chunk_crc32c.end(),
                  manifest.chunk_crc32c().begin(),
                  manifest.chunk_crc32c().end())) {
    __builtin_trap();
  }
  // An accepted manifest names a code Restore can build, one holder and
  // one CRC per chunk (64-bit sums: the check must not overflow itself).
  const int64_t k = layout->data_chunks;
  const int64_t m = layout->parity_chunks;
  if (k < 1 || m < 0 || k + m > 255) __builtin_trap();
  if (manifest.holders_size() != k + m ||
      static_cast<int64_t>(layout->chunk_crc32c.size()) != k + m) {
    __builtin_trap();
  }
  auto code = oubli::storage::ReedSolomonCode::Create(layout->data_chunks,
                                                      layout->parity_chunks);
  if (!code.ok()) __builtin_trap();
  // Its chunks are as the encoder cuts them and hold the whole blob, so
  // DecodeBlob accepts the layout and writes no byte past a chunk.
  if (layout->chunk_size != code->ChunkSizeFor(layout->original_size) ||
      layout->chunk_size % oubli::storage::AlignedBuffer::kAlignment != 0 ||
      static_cast<unsigned __int128>(layout->chunk_size) * k <
          layout->original_size) {
    __builtin_trap();
  }
  // Round trip: the manifest written back (Repair rewrites it) reads the
  // same.
  const std::string again = manifest.SerializeAsString();
  oubli::internal::ChunkManifest reparsed;
  auto relayout = oubli::coordinator::ParseChunkManifest("k", again, &reparsed);
  if (!relayout.ok() || !SameLayout(*layout, *relayout) ||
      reparsed.SerializeAsString() != again) {
    __builtin_trap();
  }
  return 0;
}
