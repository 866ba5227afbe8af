// Classifiers over a frozen base with LoRA adapters: the models S3T trains.
//
// Every backbone exposes its adapter layers ordered from the TOP (index 0 is
// the layer closest to the head), because S3T position i trains layer group
// i counted from the top. The head is trainable at every position.
#ifndef OUBLI_WORKER_MODEL_H_
#define OUBLI_WORKER_MODEL_H_

#include <torch/torch.h>

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/config.h"

namespace oubli::worker {

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

// y = x W^T + b + (alpha / r) * dropout(x) A^T B^T, with W, b frozen.
// A: [r, in] initialised kaiming-uniform (a = sqrt(5)) from a generator,
// B: [out, r] zeros, so a fresh adapter is the identity on the base.
// rsLoRA scales by alpha / sqrt(r) instead.
class LoraLinearImpl : public torch::nn::Module {
 public:
  LoraLinearImpl(int64_t in_features, int64_t out_features,
                 const LoraConfig& lora);
  torch::Tensor forward(const torch::Tensor& x);

  // Seeded init of the frozen base (kaiming-uniform like torch::nn::Linear).
  void InitBase(at::Generator& generator);
  void InitAdapter(at::Generator& generator);
  // Dropout randomness comes only from this generator (nullptr: no dropout
  // even in training mode), never from torch's global RNG.
  void set_dropout_generator(at::Generator* generator) {
    dropout_generator_ = generator;
  }

  torch::Tensor weight, bias;   // frozen base
  torch::Tensor lora_a, lora_b; // adapter

 private:
  double scaling_;
  double dropout_;
  at::Generator* dropout_generator_ = nullptr;
};
TORCH_MODULE(LoraLinear);

class AdapterClassifier : public torch::nn::Module {
 public:
  // x: [N, C*H*W] float32 -> logits [N, num_classes].
  virtual torch::Tensor forward(const torch::Tensor& x) = 0;

  // Number of adapter layers (MLP: hidden linears; ViT: blocks).
  virtual int num_adapter_layers() const = 0;
  // Adapter tensors (lora_a, lora_b of every LoRA linear) of one layer,
  // counted from the top.
  virtual std::vector<torch::Tensor> AdapterParameters(
      int layer_from_top) = 0;
  virtual std::vector<torch::Tensor> HeadParameters() = 0;
  // Everything that is not an adapter (frozen base and the head), for
  // pretraining on a public split.
  virtual std::vector<torch::Tensor> BaseParameters() = 0;

  // Adapter tensors of all layers plus the head, sorted by name. This is a
  // checkpoint's content and what fingerprints hash.
  NamedTensors AdapterState();
  // Exact names and shapes required; copies values in.
  absl::Status LoadAdapterState(const NamedTensors& state);
  // All non-adapter tensors (base + head), sorted by name.
  NamedTensors BaseState();
  absl::Status LoadBaseState(const NamedTensors& state);

  // Seeded inits. Base (and head) from `seed`; adapters A from `seed`, B = 0.
  virtual void InitBase(uint64_t seed) = 0;
  virtual void InitAdapters(uint64_t seed) = 0;
  // Routes LoRA dropout randomness to `generator` (see LoraLinearImpl).
  virtual void SetDropoutGenerator(at::Generator* generator) = 0;

  // Marks only `params` as requiring grad.
  void FreezeAllExcept(const std::vector<torch::Tensor>& params);
};

// Builds a classifier for the config (validated by ValidateConfig), with
// InitBase(base_seed) applied and adapters at InitAdapters(base_seed).
absl::StatusOr<std::shared_ptr<AdapterClassifier>> BuildClassifier(
    const BackboneConfig& config, uint64_t base_seed);

// Splits `num_layers` adapter layers into `num_groups` contiguous groups from
// the top, sizes differing by at most one (larger groups first). Returns,
// for each group, its layer indices (from the top).
std::vector<std::vector<int>> AdapterGroups(int num_layers, int num_groups);

}  // namespace oubli::worker

#endif  // OUBLI_WORKER_MODEL_H_
