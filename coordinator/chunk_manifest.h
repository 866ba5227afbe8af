// Reading back a stored chunk manifest (internal::ChunkManifest): the
// record of where a checkpoint's erasure-coded chunks live. Its own file,
// free of gRPC and torch, so the parser can be fuzzed (tests/fuzz).
#ifndef OUBLI_COORDINATOR_CHUNK_MANIFEST_H_
#define OUBLI_COORDINATOR_CHUNK_MANIFEST_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "oubli/internal/records.pb.h"
#include "storage/erasure_code.h"

namespace oubli::coordinator {

// Parses `bytes` (the manifest of checkpoint `key`) into `*manifest` and
// returns the layout it records. DataLoss if it is unreadable or
// inconsistent: not a Reed-Solomon code ReedSolomonCode::Create accepts, a
// holder and a CRC short of one per chunk, or a chunk size other than the
// encoder's for the blob's size.
absl::StatusOr<storage::BlobLayout> ParseChunkManifest(
    absl::string_view key, absl::string_view bytes,
    internal::ChunkManifest* manifest);

}  // namespace oubli::coordinator

#endif  // OUBLI_COORDINATOR_CHUNK_MANIFEST_H_
