// A slice's active samples as the engine holds them (encoded, as workers
// receive them), and the operations on them that exactness depends on:
// removal of deleted samples, and training a prefix from scratch (what
// Verify compares the served checkpoint with; rows of a prefix in
// ascending id order, see worker::PositionDataFromSlices).
#ifndef OUBLI_COORDINATOR_SLICE_DATA_H_
#define OUBLI_COORDINATOR_SLICE_DATA_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/types.h"
#include "storage/encoded_slice.h"
#include "storage/lineage_store.h"

namespace oubli::worker {
class S3tTrainer;
}  // namespace oubli::worker

namespace oubli::coordinator {

struct SliceData {
  std::vector<std::string> ids;  // ascending, `pending` included
  // The samples as workers receive them (never null once loaded), without
  // `pending`: use Encoded().
  std::shared_ptr<const storage::EncodedSlice> encoded;
  // Ingested since `encoded` was made; merged into it when first needed,
  // so a stream of ingest batches does not re-encode the slice each time.
  std::vector<Sample> pending;
  int64_t pending_bytes = 0;  // features of `pending`
  // Deleted since `encoded` was made (none of them in `pending`); dropped
  // from it when first needed: by the purge pass at the latest.
  absl::flat_hash_set<std::string> removed;
  std::string digest;  // SliceDigest(ids): names the slice in prefix keys
};

// `slice`'s samples encoded, `removed` dropped and `pending` merged in
// first. ResourceExhausted: out of memory (the slice keeps what is left
// to do).
absl::StatusOr<std::shared_ptr<const storage::EncodedSlice>> Encoded(
    SliceData& slice);

// Drops `removed` from `slice`'s encoding (not merging `pending`): what a
// purge needs, and possible even when the merged slice would not encode.
// ResourceExhausted: out of memory.
absl::Status DropRemoved(SliceData& slice);

// Zeroes the features of `samples` (before they are freed).
void ScrubSamples(std::vector<Sample>& samples);

// Adds newly ingested samples (ids not in the slice, each once). Merges
// them into the encoding once they are more than half its size (at least
// 1 MiB), so memory stays near the encoded size and each byte is copied a
// bounded number of times however many batches arrive; a failed merge is
// left for the next need.
void AddSamples(SliceData& slice, std::vector<Sample> added);

// The active samples of `where`, encoded. `input_size`: features per
// sample, 0 for token samples (BackboneConfig::InputSize). DataLoss: a
// stored sample does not fit; other codes: storage failures.
absl::StatusOr<SliceData> LoadSliceData(storage::LineageStore& store,
                                        SliceRef where, int64_t input_size);

// A slice without samples (of token rows when `input_size` is 0).
SliceData EmptySlice(int64_t input_size);

// Drops the samples in `gone` from `slice`'s ids at once and from its
// encoding when next needed, all or nothing; returns how many it held.
// ResourceExhausted: out of memory (the slice is unchanged).
absl::StatusOr<int64_t> RemoveSamples(
    SliceData& slice, const absl::flat_hash_set<std::string>& gone);

// The state bytes of `prefix` (slice order) trained from nothing, position
// by position, on `slices` (indexed by slice; those outside the prefix are
// not read). Errors: the trainer's.
absl::StatusOr<std::string> TrainPrefixFromScratch(
    worker::S3tTrainer& trainer, int shard, absl::Span<const int> prefix,
    const std::vector<SliceData>& slices);

}  // namespace oubli::coordinator

#endif  // OUBLI_COORDINATOR_SLICE_DATA_H_
