// A shard's served model: the frozen base plus one prefix checkpoint,
// immutable once built so the serving path can swap it atomically.
#ifndef OUBLI_WORKER_SHARD_MODEL_H_
#define OUBLI_WORKER_SHARD_MODEL_H_

#include <torch/torch.h>

#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "common/config.h"
#include "worker/model.h"

namespace oubli::worker {

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
  absl::StatusOr<torch::Tensor> Probabilities(const torch::Tensor& x) const;

 private:
  // `adapters`: a checkpoint's tensors, or nullptr for the base alone.
  static absl::StatusOr<std::shared_ptr<const ShardModel>> Build(
      const ModelConfig& config, const NamedTensors& base_state,
      const NamedTensors* adapters);
  ShardModel(DeterminismConfig determinism,
             std::shared_ptr<AdapterClassifier> model)
      : determinism_(determinism), model_(std::move(model)) {}

  const DeterminismConfig determinism_;
  // Module forward is not documented thread-safe; serialize per shard.
  mutable absl::Mutex mu_;
  const std::shared_ptr<AdapterClassifier> model_ ABSL_PT_GUARDED_BY(mu_);
};

}  // namespace oubli::worker

#endif  // OUBLI_WORKER_SHARD_MODEL_H_
