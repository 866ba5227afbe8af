// One S3T position's training rows and its training statistics. Only the
// tensor type of LibTorch (ATen/core/Tensor.h), so code that moves positions
// around without training them (the coordinator's engine) stays light.
#ifndef OUBLI_WORKER_POSITION_DATA_H_
#define OUBLI_WORKER_POSITION_DATA_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "common/types.h"
#include "storage/encoded_slice.h"

namespace oubli::worker {

// Training inputs of one prefix: all samples of its slices, rows in
// ascending sample-id order.
struct PositionData {
  at::Tensor features;  // [n, input_size] float32
  at::Tensor labels;    // [n] int64
  int64_t size() const { return features.defined() ? features.size(0) : 0; }
};

// Decodes samples (in the given order) into training tensors. Every sample
// must have `input_size` features (InvalidArgument otherwise).
absl::StatusOr<PositionData> MakePositionData(absl::Span<const Sample> samples,
                                              int64_t input_size);

// The union of `slices` decoded for training, rows in ascending sample-id
// order: what a worker trains a position on, and what the coordinator
// trains on when no worker can. InvalidArgument: a slice of another width,
// or a sample in two slices; ResourceExhausted: out of memory.
absl::StatusOr<PositionData> PositionDataFromSlices(
    absl::Span<const std::shared_ptr<const storage::EncodedSlice>> slices,
    int64_t input_size);

struct TrainStats {
  int64_t samples = 0;  // sample-visits (n * epochs)
  int64_t steps = 0;    // optimizer steps
  double last_loss = 0;
  absl::Duration elapsed;
};

}  // namespace oubli::worker

#endif  // OUBLI_WORKER_POSITION_DATA_H_
