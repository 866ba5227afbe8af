// What every model S3T trains has in common: a frozen base carrying LoRA
// adapters, an optional trainable head, seeded initialisation, and its
// state as sorted named tensors (a checkpoint holds the adapters and the
// head; the base is loaded from seeded init or from a weights file).
//
// Adapter layers are ordered from the TOP (index 0 is the layer closest to
// the output), because S3T position i trains layer group i counted from
// the top. The building blocks here (LoraLinear, Dense, LayerNorm) are
// shared by the image classifiers (worker/ml/model.h) and the decoder
// language model (worker/ml/decoder_lm.h).
#ifndef OUBLI_WORKER_ML_ADAPTER_MODEL_H_
#define OUBLI_WORKER_ML_ADAPTER_MODEL_H_

#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "common/config.h"

namespace oubli::ml {

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

// y = x W^T + b + (alpha / r) * dropout(x) A^T B^T, with W, b frozen.
// A: [r, in] initialised kaiming-uniform (a = sqrt(5)) from a generator,
// B: [out, r] zeros, so a fresh adapter is the identity on the base.
// rsLoRA scales by alpha / sqrt(r) instead. Without `has_bias` there is no
// bias parameter at all (Llama's projections have none).
class LoraLinearImpl : public torch::nn::Module {
 public:
  LoraLinearImpl(int64_t in_features, int64_t out_features,
                 const LoraConfig& lora, bool has_bias = true);
  torch::Tensor forward(const torch::Tensor& x);

  // Seeded init of the frozen base (kaiming-uniform like torch::nn::Linear).
  void InitBase(at::Generator& generator);
  void InitAdapter(at::Generator& generator);
  // Dropout randomness comes only from this generator (nullptr: no dropout
  // even in training mode), never from torch's global RNG.
  void set_dropout_generator(at::Generator* generator) {
    dropout_generator_ = generator;
  }

  torch::Tensor weight, bias;   // frozen base; bias undefined without one
  torch::Tensor lora_a, lora_b; // adapter

 private:
  double scaling_;
  double dropout_;
  at::Generator* dropout_generator_ = nullptr;
};
TORCH_MODULE(LoraLinear);

// A plain affine layer y = x W^T + b with the same init as torch::nn::Linear
// but without touching torch's global RNG at construction.
class DenseImpl : public torch::nn::Module {
 public:
  DenseImpl(int64_t in_features, int64_t out_features, bool trainable,
            bool has_bias = true);
  torch::Tensor forward(const torch::Tensor& x) {
    return torch::linear(x, weight, bias);
  }
  void Init(at::Generator& generator);

  torch::Tensor weight, bias;  // bias undefined without one
};
TORCH_MODULE(Dense);

class LayerNormImpl : public torch::nn::Module {
 public:
  explicit LayerNormImpl(int64_t dim, double eps = 1e-5);
  torch::Tensor forward(const torch::Tensor& x) {
    return torch::layer_norm(x, {dim_}, weight, bias, eps_);
  }
  void Init();

  torch::Tensor weight, bias;

 private:
  int64_t dim_;
  double eps_;
};
TORCH_MODULE(LayerNorm);

// Base models with adapters. Subclasses register their modules under stable
// names ("layers.0.lora_a", "head.weight", ...): the names are what
// checkpoints and fingerprints hold. Parameters named "*.lora_a"/"*.lora_b"
// are adapters and those under "head." the trainable head; everything else
// is base.
class AdapterModel : public torch::nn::Module {
 public:
  // Number of adapter layers (MLP: hidden linears; transformers: blocks).
  virtual int num_adapter_layers() const = 0;
  // Adapter tensors of one layer, counted from the top.
  virtual std::vector<torch::Tensor> AdapterParameters(int layer_from_top) = 0;
  // The trainable head (empty when the model has none, e.g. a causal LM).
  virtual std::vector<torch::Tensor> HeadParameters() = 0;
  // Everything that is not an adapter (frozen base and the head), for
  // pretraining on a public split.
  std::vector<torch::Tensor> BaseParameters();

  // Adapter tensors of all layers plus the head, sorted by name. This is a
  // checkpoint's content and what fingerprints hash.
  NamedTensors AdapterState();
  // Exact names and shapes required; copies values in, all or nothing.
  // InvalidArgument naming the first missing, unexpected, mis-shaped or
  // non-floating tensor.
  absl::Status LoadAdapterState(const NamedTensors& state);
  // All non-adapter tensors (base + head), sorted by name.
  NamedTensors BaseState();
  absl::Status LoadBaseState(const NamedTensors& state);

  // Seeded inits. Base (and head) from `seed`: every LoraLinear, Dense and
  // LayerNorm from its own generator named by its module path, then
  // InitExtraBase for parameters outside those modules (embeddings).
  // Adapters: A from `seed`, B = 0.
  void InitBase(uint64_t seed);
  void InitAdapters(uint64_t seed);
  // Routes LoRA dropout randomness to `generator` (see LoraLinearImpl).
  void SetDropoutGenerator(at::Generator* generator);

  // Marks only `params` as requiring grad.
  void FreezeAllExcept(const std::vector<torch::Tensor>& params);

 protected:
  virtual void InitExtraBase(uint64_t seed) { (void)seed; }
};

// One generator per (purpose, module path): adding or removing a module
// never shifts the random stream of any other module.
at::Generator MakeModuleGenerator(uint64_t seed, absl::string_view purpose,
                                  absl::string_view module_name);
// U(-bound, bound) drawn on the CPU with `generator` (a serial kernel, the
// same on every CPU) and copied to the tensor's device.
void FillUniform(torch::Tensor& tensor, double bound,
                 at::Generator& generator);
// "[2, 3]".
std::string ShapeString(const torch::Tensor& tensor);

// Splits `num_layers` adapter layers into `num_groups` contiguous groups from
// the top, sizes differing by at most one (larger groups first). Returns,
// for each group, its layer indices (from the top).
std::vector<std::vector<int>> AdapterGroups(int num_layers, int num_groups);

}  // namespace oubli::ml

#endif  // OUBLI_WORKER_ML_ADAPTER_MODEL_H_
