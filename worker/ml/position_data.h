// One S3T position's training rows and its training statistics. Only the
// tensor type of LibTorch (ATen/core/Tensor.h), so code that moves positions
// around without training them (the coordinator's engine) stays light.
#ifndef OUBLI_WORKER_ML_POSITION_DATA_H_
#define OUBLI_WORKER_ML_POSITION_DATA_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "common/config.h"
#include "common/types.h"
#include "storage/encoded_slice.h"

namespace oubli::ml {

// Training inputs of one prefix: all samples of its slices, rows in
// ascending sample-id order. Image classifiers read `features`; decoders
// read the token tensors (right-padded with token 0 to the longest row).
struct PositionData {
  at::Tensor features;  // [n, input_size] float32 (classifiers)
  at::Tensor labels;    // [n] int64 (classifiers, classifying decoders)
  at::Tensor tokens;          // [n, T] int64 (decoders)
  at::Tensor attention_mask;  // [n, T] int64, 1 = a real token
  at::Tensor loss_mask;       // [n, T] int64, 1 = an answer token to learn
  int64_t size() const {
    if (features.defined()) return features.size(0);
    return tokens.defined() ? tokens.size(0) : 0;
  }
};

// One token sample for a decoder: its token ids, how many of them are the
// prompt (context only; the causal LM loss counts the tokens after it), and
// its class for a classifying decoder.
struct TokenSequence {
  std::vector<int32_t> tokens;
  int32_t prompt_tokens = 0;
  int32_t label = 0;
};

// Token rows (in the given order) as decoder training tensors.
// InvalidArgument naming the row: empty, longer than the context, a token
// outside [0, vocab_size), prompt_tokens outside [0, length], or (for
// kClassify) a label outside [0, num_classes).
absl::StatusOr<PositionData> MakeTokenPositionData(
    absl::Span<const TokenSequence> rows, const BackboneConfig& backbone);

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
// The same for any backbone: a decoder's token slices become token rows
// (MakeTokenPositionData, whose refusals apply), other backbones' feature
// slices as above. InvalidArgument: slices of the other kind.
absl::StatusOr<PositionData> PositionDataFromSlices(
    absl::Span<const std::shared_ptr<const storage::EncodedSlice>> slices,
    const BackboneConfig& backbone);

struct TrainStats {
  int64_t samples = 0;  // sample-visits (n * epochs)
  int64_t tokens = 0;   // real token-visits (decoders only)
  int64_t steps = 0;    // optimizer steps
  double last_loss = 0;
  absl::Duration elapsed;
};

}  // namespace oubli::ml

#endif  // OUBLI_WORKER_ML_POSITION_DATA_H_
