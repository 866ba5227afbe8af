// A shard's served model: the frozen base plus one prefix checkpoint,
// immutable once built so the serving path can swap it atomically. Image
// classifiers answer Probabilities; decoders answer for token rows
// (PositionData's tokens and attention_mask, as MakeTokenPositionData builds
// them): class probabilities (classifying decoders), or next-token
// log-probabilities (causal language models).
#ifndef OUBLI_WORKER_ML_SHARD_MODEL_H_
#define OUBLI_WORKER_ML_SHARD_MODEL_H_

#include <torch/torch.h>

#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "common/config.h"
#include "worker/ml/decoder_lm.h"
#include "worker/ml/model.h"
#include "worker/ml/position_data.h"

namespace oubli::ml {

class ShardModel {
 public:
  static absl::StatusOr<std::shared_ptr<const ShardModel>> Create(
      const ModelConfig& config, const NamedTensors& base_state,
      absl::string_view checkpoint);
  // The public base model alone (frozen base and its head, adapters at
  // their zero update): holds no user data, so answering from it is exact.
  static absl::StatusOr<std::shared_ptr<const ShardModel>> CreateBase(
      const ModelConfig& config, const NamedTensors& base_state);

  // Class probabilities [n, classes] for inputs [n, input_size].
  // FailedPrecondition: not an image classifier.
  absl::StatusOr<torch::Tensor> Probabilities(const torch::Tensor& x) const;

  // Classifying decoders: class probabilities [n, classes] of token rows.
  // FailedPrecondition: not a classifying decoder.
  absl::StatusOr<torch::Tensor> TokenClassProbabilities(
      const PositionData& rows) const;
  // Causal language models: log p(token t | tokens < t) for t >= 1, [n,
  // T-1] float32 (0 where the token is padding). FailedPrecondition: not a
  // causal language model.
  absl::StatusOr<torch::Tensor> TokenLogProbs(const PositionData& rows) const;
  // Causal language models: the next-token distribution after each row's
  // last real token, [n, vocab] float32 probabilities. FailedPrecondition:
  // not a causal language model.
  absl::StatusOr<torch::Tensor> NextTokenProbabilities(
      const PositionData& rows) const;

 private:
  // `adapters`: a checkpoint's tensors, or nullptr for the base alone.
  static absl::StatusOr<std::shared_ptr<const ShardModel>> Build(
      const ModelConfig& config, const NamedTensors& base_state,
      const NamedTensors* adapters);
  ShardModel(DeterminismConfig determinism,
             std::shared_ptr<AdapterClassifier> classifier,
             std::shared_ptr<DecoderLm> decoder)
      : determinism_(determinism),
        classifier_(std::move(classifier)),
        decoder_(std::move(decoder)) {}

  // The decoder's logits for `rows` ([n, T, vocab] or [n, classes]), with
  // errors as statuses. Requires mu_.
  absl::StatusOr<torch::Tensor> DecoderForward(const PositionData& rows,
                                               absl::string_view what) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const DeterminismConfig determinism_;
  // Module forward is not documented thread-safe; serialize per shard.
  mutable absl::Mutex mu_;
  // Exactly one is set.
  const std::shared_ptr<AdapterClassifier> classifier_ ABSL_PT_GUARDED_BY(mu_);
  const std::shared_ptr<DecoderLm> decoder_ ABSL_PT_GUARDED_BY(mu_);
};

}  // namespace oubli::ml

#endif  // OUBLI_WORKER_ML_SHARD_MODEL_H_
