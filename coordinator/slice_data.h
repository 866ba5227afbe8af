// A slice as the engine keeps it in memory, small and per-sample constant
// (its sorted ids and their digest, which names it in prefix keys), and
// the operations on it that exactness depends on: removal of deleted
// samples, reading its bytes back from the lineage store (in the encoding
// workers receive), and training a prefix from scratch (what Verify
// compares the served checkpoint with; rows of a prefix in ascending id
// order, see ml::PositionDataFromSlices). The bytes themselves are read
// when a position needs them, through the coordinator's EncodedSliceCache.
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

namespace oubli::ml {
class S3tTrainer;
}  // namespace oubli::ml

namespace oubli::coordinator {

struct SliceData {
  std::vector<std::string> ids;  // ascending
  std::string digest;  // SliceDigest(ids): names the slice in prefix keys
  // Bytes of its encoding: exact when read from the store, then grown by
  // each ingested sample's EncodedSampleBytes and shrunk by each removed
  // one's EncodedSampleMinBytes, so it is never below the truth for slices
  // of one encoding (ShardSet::SliceBytes takes the exact size once the
  // slice is read again). Ingest refuses a sample that would take it past
  // the limit.
  int64_t bytes = 0;
};

// Encoded bytes a sample adds to a slice at most, as SliceData::bytes
// counts them.
int64_t EncodedSampleBytes(const Sample& sample);
// Encoded bytes a sample takes in its slice at least: its id and features
// as stored.
int64_t EncodedSampleMinBytes(const Sample& sample);

// A slice read from the store: what the engine keeps, and its bytes.
struct LoadedSlice {
  SliceData data;
  std::shared_ptr<const storage::EncodedSlice> encoded;  // never null
};

// The active samples of `where`, encoded. `input_size`: features per
// sample, 0 for token samples (BackboneConfig::InputSize). DataLoss: a
// stored sample does not fit; ResourceExhausted: over
// EncodedSlice::kMaxBytes or out of memory; other codes: storage failures.
absl::StatusOr<LoadedSlice> LoadSlice(storage::LineageStore& store,
                                      SliceRef where, int64_t input_size);

// The slice `where` as encoded bytes, if its active members in the store
// are still those whose SliceDigest is `expected_digest`. Aborted when they
// are not (a deletion or ingest is being committed: whatever asked is
// stale); otherwise as LoadSlice.
absl::StatusOr<std::shared_ptr<const storage::EncodedSlice>> ReadSliceAsOf(
    storage::LineageStore& store, SliceRef where, int64_t input_size,
    const std::string& expected_digest);

// A slice without samples.
SliceData EmptySlice();

// Zeroes the features of `samples` (before they are freed).
void ScrubSamples(std::vector<Sample>& samples);

// Adds newly ingested samples (ids not in the slice, each once).
void AddSamples(SliceData& slice, absl::Span<const Sample* const> added);

// Drops the samples in `gone` from `slice`, all or nothing, taking
// `gone_min_bytes` (their EncodedSampleMinBytes) off its size; returns how
// many it held. ResourceExhausted: out of memory (the slice is unchanged).
absl::StatusOr<int64_t> RemoveSamples(
    SliceData& slice, const absl::flat_hash_set<std::string>& gone,
    int64_t gone_min_bytes);

// The state bytes of `prefix` (slice order) trained from nothing, position
// by position, on `slices` (indexed by slice; those outside the prefix are
// not read). Errors: the trainer's.
absl::StatusOr<std::string> TrainPrefixFromScratch(
    ml::S3tTrainer& trainer, int shard, absl::Span<const int> prefix,
    const std::vector<std::shared_ptr<const storage::EncodedSlice>>& slices);

}  // namespace oubli::coordinator

#endif  // OUBLI_COORDINATOR_SLICE_DATA_H_
