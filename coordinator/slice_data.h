// A slice's active samples decoded for training, and the operations on
// them that exactness depends on: rows of a prefix in ascending id order
// (training order depends only on which samples survive, never on slice
// layout), removal of deleted samples, and training a prefix from scratch
// (what Verify compares the served checkpoint with).
#ifndef OUBLI_COORDINATOR_SLICE_DATA_H_
#define OUBLI_COORDINATOR_SLICE_DATA_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/types.h"
#include "storage/lineage_store.h"
#include "worker/position_data.h"

namespace oubli::worker {
class S3tTrainer;
}  // namespace oubli::worker

namespace oubli::coordinator {

struct SliceData {
  std::vector<std::string> ids;  // ascending
  at::Tensor features;           // [n, input_size] float32
  at::Tensor labels;             // [n] int64
  std::string digest;            // SliceDigest(ids)
};

// The active samples of `where`, decoded. DataLoss: a stored sample does
// not fit a model of `input_size` features; other codes: storage failures.
absl::StatusOr<SliceData> LoadSliceData(storage::LineageStore& store,
                                        SliceRef where, int64_t input_size);

// A slice without samples.
SliceData EmptySlice(int64_t input_size);

// Drops the samples in `gone` from `slice`, all or nothing; returns how
// many it held. ResourceExhausted: out of memory (the slice is unchanged).
absl::StatusOr<int64_t> RemoveSamples(
    SliceData& slice, const absl::flat_hash_set<std::string>& gone);

// The union of `slices` with rows in ascending id order. May throw
// (torch) when out of memory.
worker::PositionData UnionInIdOrder(const std::vector<const SliceData*>& slices);

// The state bytes of `prefix` (slice order) trained from nothing, position
// by position, on `slices` (indexed by slice; those outside the prefix are
// not read). Errors: the trainer's.
absl::StatusOr<std::string> TrainPrefixFromScratch(
    worker::S3tTrainer& trainer, int shard, absl::Span<const int> prefix,
    const std::vector<SliceData>& slices);

}  // namespace oubli::coordinator

#endif  // OUBLI_COORDINATOR_SLICE_DATA_H_
