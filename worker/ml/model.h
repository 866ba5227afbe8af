// Image classifiers over a frozen base with LoRA adapters: an MLP and a
// small ViT (worker/ml/adapter_model.h has what all adapter models share).
// The head is trainable at every position.
#ifndef OUBLI_WORKER_ML_MODEL_H_
#define OUBLI_WORKER_ML_MODEL_H_

#include <memory>

#include "absl/status/statusor.h"
#include "common/config.h"
#include "worker/ml/adapter_model.h"

namespace oubli::ml {

class AdapterClassifier : public AdapterModel {
 public:
  // x: [N, C*H*W] float32 -> logits [N, num_classes].
  virtual torch::Tensor forward(const torch::Tensor& x) = 0;
};

// Builds a classifier for the config (validated by ValidateConfig), with
// InitBase(base_seed) applied and adapters at InitAdapters(base_seed).
absl::StatusOr<std::shared_ptr<AdapterClassifier>> BuildClassifier(
    const BackboneConfig& config, uint64_t base_seed);

}  // namespace oubli::ml

#endif  // OUBLI_WORKER_ML_MODEL_H_
