#include "worker/model.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <map>
#include <unordered_set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/hash.h"
#include "common/status_macros.h"

namespace oubli::worker {
namespace {

// Parameters are named after their module path, e.g. "layers.0.lora_a",
// "blocks.3.attn.q.lora_b", "head.weight". These predicates classify them.
bool IsAdapterName(absl::string_view name) {
  return absl::EndsWith(name, ".lora_a") || absl::EndsWith(name, ".lora_b");
}
bool IsHeadName(absl::string_view name) {
  return absl::StartsWith(name, "head.");
}

// One generator per (purpose, module path): adding or removing a module
// never shifts the random stream of any other module. CPUGeneratorImpl seeds
// mt19937 from the low 32 bits only, so seeds must be well mixed (DeriveSeed
// output is).
at::Generator MakeGenerator(uint64_t seed, absl::string_view purpose,
                            absl::string_view module_name) {
  return at::make_generator<at::CPUGeneratorImpl>(
      DeriveSeed(seed, absl::StrCat(purpose, ":", module_name), {}));
}

// Only uniform_ is used for random init: ATen's CPU uniform kernel is a
// serial scalar loop, so its output does not depend on the CPU's vector
// capability (normal_ and bernoulli_ have vectorized/MKL paths that might).
// A tensor on a GPU is filled on the CPU and copied, so seeded values are
// the same on every device (and a CPU generator can fill it at all).
void FillUniform(torch::Tensor& tensor, double bound,
                 at::Generator& generator) {
  if (tensor.is_cpu()) {
    tensor.uniform_(-bound, bound, generator);
    return;
  }
  torch::Tensor values =
      torch::empty(tensor.sizes(), tensor.options().device(torch::kCPU));
  values.uniform_(-bound, bound, generator);
  tensor.copy_(values);
}

// Programming errors (not user input): fail loudly rather than train
// something silently wrong.
[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "oubli model invariant violated: %s\n", message.c_str());
  std::abort();
}

std::string ShapeString(const torch::Tensor& tensor) {
  return absl::StrCat("[", absl::StrJoin(tensor.sizes(), ", "), "]");
}

// A plain affine layer y = x W^T + b with the same init as torch::nn::Linear
// but without touching torch's global RNG at construction.
class DenseImpl : public torch::nn::Module {
 public:
  DenseImpl(int64_t in_features, int64_t out_features, bool trainable) {
    TORCH_CHECK(in_features > 0 && out_features > 0,
                "dense layer dimensions must be positive, got in=", in_features,
                " out=", out_features);
    weight = register_parameter(
        "weight", torch::zeros({out_features, in_features}), trainable);
    bias = register_parameter("bias", torch::zeros({out_features}), trainable);
  }
  torch::Tensor forward(const torch::Tensor& x) {
    return torch::linear(x, weight, bias);
  }
  void Init(at::Generator& generator) {
    torch::NoGradGuard no_grad;
    // kaiming_uniform(a = sqrt(5)) reduces to U(-1/sqrt(in), 1/sqrt(in)).
    const double bound = 1.0 / std::sqrt(static_cast<double>(weight.size(1)));
    FillUniform(weight, bound, generator);
    FillUniform(bias, bound, generator);
  }

  torch::Tensor weight, bias;
};
TORCH_MODULE(Dense);

class LayerNormImpl : public torch::nn::Module {
 public:
  explicit LayerNormImpl(int64_t dim) : dim_(dim) {
    weight = register_parameter("weight", torch::ones({dim}), false);
    bias = register_parameter("bias", torch::zeros({dim}), false);
  }
  torch::Tensor forward(const torch::Tensor& x) {
    return torch::layer_norm(x, {dim_}, weight, bias, 1e-5);
  }
  void Init() {
    torch::NoGradGuard no_grad;
    weight.fill_(1.0);
    bias.zero_();
  }

  torch::Tensor weight, bias;

 private:
  int64_t dim_;
};
TORCH_MODULE(LayerNorm);

// Seeds every base submodule of `root` from its own derived generator.
void InitBaseModules(torch::nn::Module& root, uint64_t seed) {
  for (const auto& item : root.named_modules("", /*include_self=*/false)) {
    const std::string& name = item.key();
    torch::nn::Module& module = *item.value();
    if (auto* lora = module.as<LoraLinearImpl>()) {
      at::Generator generator = MakeGenerator(seed, "base", name);
      lora->InitBase(generator);
    } else if (auto* dense = module.as<DenseImpl>()) {
      at::Generator generator = MakeGenerator(seed, "base", name);
      dense->Init(generator);
    } else if (auto* norm = module.as<LayerNormImpl>()) {
      norm->Init();
    }
  }
}

void InitAdapterModules(torch::nn::Module& root, uint64_t seed) {
  for (const auto& item : root.named_modules("", /*include_self=*/false)) {
    if (auto* lora = item.value()->as<LoraLinearImpl>()) {
      at::Generator generator = MakeGenerator(seed, "adapter", item.key());
      lora->InitAdapter(generator);
    }
  }
}

void SetDropoutGeneratorOnModules(torch::nn::Module& root,
                                  at::Generator* generator) {
  for (const auto& module : root.modules(/*include_self=*/false)) {
    if (auto* lora = module->as<LoraLinearImpl>()) {
      lora->set_dropout_generator(generator);
    }
  }
}

// Parameters whose name satisfies `keep`, detached copies, sorted by name.
template <typename Predicate>
NamedTensors CollectState(const torch::nn::Module& module, Predicate keep) {
  NamedTensors state;
  for (const auto& item : module.named_parameters(/*recurse=*/true)) {
    if (!keep(item.key())) continue;
    // A copy, not a view: a checkpoint must not change when training
    // continues in place.
    state.emplace_back(item.key(), item.value()
                                       .detach()
                                       .to(torch::kCPU)
                                       .clone(at::MemoryFormat::Contiguous));
  }
  std::sort(state.begin(), state.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  return state;
}

// All-or-nothing: validates names, shapes and dtypes of `state` against the
// parameters selected by `keep` before copying anything.
template <typename Predicate>
absl::Status LoadState(torch::nn::Module& module, Predicate keep,
                       const NamedTensors& state, absl::string_view what) {
  std::map<std::string, torch::Tensor> expected;
  for (const auto& item : module.named_parameters(/*recurse=*/true)) {
    if (keep(item.key())) expected.emplace(item.key(), item.value());
  }
  std::map<std::string, const torch::Tensor*> given;
  for (const auto& [name, tensor] : state) {
    if (!given.emplace(name, &tensor).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": duplicate tensor '", name, "'"));
    }
  }
  for (const auto& [name, tensor] : expected) {
    if (!given.contains(name)) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": missing tensor '", name, "' (expected shape ",
                       ShapeString(tensor), "); got ", given.size(),
                       " tensors, expected ", expected.size()));
    }
  }
  for (const auto& [name, tensor] : given) {
    if (!expected.contains(name)) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, ": unexpected tensor '", name, "'",
          tensor->defined() ? absl::StrCat(" with shape ", ShapeString(*tensor))
                            : std::string(" (undefined)")));
    }
  }
  for (const auto& [name, target] : expected) {
    const torch::Tensor& source = *given.at(name);
    if (!source.defined()) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": tensor '", name, "' is undefined"));
    }
    if (source.sizes() != target.sizes()) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, ": tensor '", name, "' has shape ", ShapeString(source),
          ", expected ", ShapeString(target)));
    }
    // Floating values convert exactly or by IEEE rounding (deterministic);
    // integer or bool data here means the wrong file.
    if (!torch::isFloatingType(source.scalar_type())) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": tensor '", name, "' has non-floating dtype ",
                       c10::toString(source.scalar_type())));
    }
  }
  try {
    torch::NoGradGuard no_grad;
    for (auto& [name, target] : expected) target.copy_(*given.at(name));
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat(what, ": copying tensors failed: ", e.what()));
  }
  return absl::OkStatus();
}

void CheckInput(const torch::Tensor& x, int64_t input_size) {
  TORCH_CHECK(x.defined() && x.dim() == 2 && x.size(1) == input_size,
              "classifier input must be [N, ", input_size, "], got ",
              x.defined() ? c10::str(x.sizes()) : std::string("undefined"));
}

// ---------------------------------------------------------------------------
// MLP: input -> hidden LoRA linears with ReLU -> head.

class MlpClassifier : public AdapterClassifier {
 public:
  explicit MlpClassifier(const BackboneConfig& config)
      : input_size_(config.InputSize()) {
    layer_list_ = register_module("layers", torch::nn::ModuleList());
    int64_t in_features = input_size_;
    for (int width : config.mlp_hidden) {
      layers_.push_back(LoraLinear(in_features, width, config.lora));
      layer_list_->push_back(layers_.back());
      in_features = width;
    }
    head_ =
        register_module("head", Dense(in_features, config.num_classes, true));
  }

  torch::Tensor forward(const torch::Tensor& x) override {
    CheckInput(x, input_size_);
    torch::Tensor h = x;
    for (auto& layer : layers_) h = torch::relu(layer->forward(h));
    return head_->forward(h);
  }

  int num_adapter_layers() const override {
    return static_cast<int>(layers_.size());
  }

  std::vector<torch::Tensor> AdapterParameters(int layer_from_top) override {
    const int n = num_adapter_layers();
    if (layer_from_top < 0 || layer_from_top >= n) {
      Die(absl::StrCat("AdapterParameters(", layer_from_top,
                       ") out of range for ", n, " MLP layers"));
    }
    LoraLinear& layer = layers_[n - 1 - layer_from_top];
    return {layer->lora_a, layer->lora_b};
  }

  std::vector<torch::Tensor> HeadParameters() override {
    return {head_->weight, head_->bias};
  }

  std::vector<torch::Tensor> BaseParameters() override {
    std::vector<torch::Tensor> params;
    for (auto& layer : layers_) {
      params.push_back(layer->weight);
      params.push_back(layer->bias);
    }
    params.push_back(head_->weight);
    params.push_back(head_->bias);
    return params;
  }

  void InitBase(uint64_t seed) override { InitBaseModules(*this, seed); }
  void InitAdapters(uint64_t seed) override { InitAdapterModules(*this, seed); }
  void SetDropoutGenerator(at::Generator* generator) override {
    SetDropoutGeneratorOnModules(*this, generator);
  }

 private:
  int64_t input_size_;
  torch::nn::ModuleList layer_list_{nullptr};
  std::vector<LoraLinear> layers_;
  Dense head_{nullptr};
};

// ---------------------------------------------------------------------------
// ViT-style encoder.

class AttentionImpl : public torch::nn::Module {
 public:
  AttentionImpl(int64_t dim, int64_t heads, const LoraConfig& lora)
      : heads_(heads), head_dim_(dim / heads) {
    q = register_module("q", LoraLinear(dim, dim, lora));
    k = register_module("k", Dense(dim, dim, false));
    v = register_module("v", LoraLinear(dim, dim, lora));
    o = register_module("o", Dense(dim, dim, false));
  }

  // Plain matmul/softmax attention: no fused kernels, so the arithmetic is
  // the same on every build.
  torch::Tensor forward(const torch::Tensor& x) {
    const int64_t n = x.size(0), t = x.size(1), d = x.size(2);
    auto split_heads = [&](const torch::Tensor& y) {
      return y.reshape({n, t, heads_, head_dim_}).transpose(1, 2);
    };
    torch::Tensor queries = split_heads(q->forward(x));
    torch::Tensor keys = split_heads(k->forward(x));
    torch::Tensor values = split_heads(v->forward(x));
    torch::Tensor scores = torch::matmul(queries, keys.transpose(-2, -1)) /
                           std::sqrt(static_cast<double>(head_dim_));
    torch::Tensor mixed = torch::matmul(torch::softmax(scores, -1), values);
    return o->forward(mixed.transpose(1, 2).reshape({n, t, d}));
  }

  LoraLinear q{nullptr}, v{nullptr};
  Dense k{nullptr}, o{nullptr};

 private:
  int64_t heads_, head_dim_;
};
TORCH_MODULE(Attention);

class FeedForwardImpl : public torch::nn::Module {
 public:
  FeedForwardImpl(int64_t dim, int64_t hidden) {
    fc1 = register_module("fc1", Dense(dim, hidden, false));
    fc2 = register_module("fc2", Dense(hidden, dim, false));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    return fc2->forward(torch::gelu(fc1->forward(x)));
  }
  Dense fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(FeedForward);

// Pre-LN transformer block.
class BlockImpl : public torch::nn::Module {
 public:
  BlockImpl(const BackboneConfig& config) {
    norm1 = register_module("norm1", LayerNorm(config.vit_dim));
    attn = register_module(
        "attn", Attention(config.vit_dim, config.vit_heads, config.lora));
    norm2 = register_module("norm2", LayerNorm(config.vit_dim));
    mlp =
        register_module("mlp", FeedForward(config.vit_dim, config.vit_mlp_dim));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    torch::Tensor h = x + attn->forward(norm1->forward(x));
    return h + mlp->forward(norm2->forward(h));
  }
  LayerNorm norm1{nullptr}, norm2{nullptr};
  Attention attn{nullptr};
  FeedForward mlp{nullptr};
};
TORCH_MODULE(Block);

class VitClassifier : public AdapterClassifier {
 public:
  explicit VitClassifier(const BackboneConfig& config)
      : channels_(config.input_channels),
        height_(config.input_height),
        width_(config.input_width),
        patch_(config.vit_patch),
        dim_(config.vit_dim) {
    const int64_t num_patches = (height_ / patch_) * (width_ / patch_);
    patch_embed_ = register_module(
        "patch_embed", Dense(channels_ * patch_ * patch_, dim_, false));
    cls_token_ =
        register_parameter("cls_token", torch::zeros({1, 1, dim_}), false);
    pos_embed_ = register_parameter(
        "pos_embed", torch::zeros({1, num_patches + 1, dim_}), false);
    block_list_ = register_module("blocks", torch::nn::ModuleList());
    for (int i = 0; i < config.vit_depth; ++i) {
      blocks_.push_back(Block(config));
      block_list_->push_back(blocks_.back());
    }
    norm_ = register_module("norm", LayerNorm(dim_));
    head_ = register_module("head", Dense(dim_, config.num_classes, true));
  }

  torch::Tensor forward(const torch::Tensor& x) override {
    CheckInput(x, channels_ * height_ * width_);
    const int64_t n = x.size(0);
    const int64_t rows = height_ / patch_, cols = width_ / patch_;
    // [N, C*H*W] -> [N, C, rows, p, cols, p] -> [N, rows*cols, C*p*p].
    torch::Tensor patches =
        x.reshape({n, channels_, rows, patch_, cols, patch_})
            .permute({0, 2, 4, 1, 3, 5})
            .reshape({n, rows * cols, channels_ * patch_ * patch_});
    torch::Tensor tokens = torch::cat(
        {cls_token_.expand({n, 1, dim_}), patch_embed_->forward(patches)}, 1);
    torch::Tensor h = tokens + pos_embed_;
    for (auto& block : blocks_) h = block->forward(h);
    return head_->forward(norm_->forward(h).select(1, 0));
  }

  int num_adapter_layers() const override {
    return static_cast<int>(blocks_.size());
  }

  std::vector<torch::Tensor> AdapterParameters(int layer_from_top) override {
    const int n = num_adapter_layers();
    if (layer_from_top < 0 || layer_from_top >= n) {
      Die(absl::StrCat("AdapterParameters(", layer_from_top,
                       ") out of range for ", n, " ViT blocks"));
    }
    Attention& attn = blocks_[n - 1 - layer_from_top]->attn;
    return {attn->q->lora_a, attn->q->lora_b, attn->v->lora_a, attn->v->lora_b};
  }

  std::vector<torch::Tensor> HeadParameters() override {
    return {head_->weight, head_->bias};
  }

  std::vector<torch::Tensor> BaseParameters() override {
    std::vector<torch::Tensor> params;
    for (const auto& item : named_parameters(/*recurse=*/true)) {
      if (!IsAdapterName(item.key())) params.push_back(item.value());
    }
    return params;
  }

  void InitBase(uint64_t seed) override {
    InitBaseModules(*this, seed);
    torch::NoGradGuard no_grad;
    at::Generator cls_generator = MakeGenerator(seed, "base", "cls_token");
    FillUniform(cls_token_, kEmbeddingInitBound, cls_generator);
    at::Generator pos_generator = MakeGenerator(seed, "base", "pos_embed");
    FillUniform(pos_embed_, kEmbeddingInitBound, pos_generator);
  }
  void InitAdapters(uint64_t seed) override { InitAdapterModules(*this, seed); }
  void SetDropoutGenerator(at::Generator* generator) override {
    SetDropoutGeneratorOnModules(*this, generator);
  }

 private:
  // Small embeddings (std ~0.02 as is usual for ViTs), drawn uniformly.
  static constexpr double kEmbeddingInitBound = 0.035;

  int64_t channels_, height_, width_, patch_, dim_;
  Dense patch_embed_{nullptr};
  torch::Tensor cls_token_, pos_embed_;
  torch::nn::ModuleList block_list_{nullptr};
  std::vector<Block> blocks_;
  LayerNorm norm_{nullptr};
  Dense head_{nullptr};
};

absl::Status ValidateBackbone(const BackboneConfig& config) {
  auto bad = [](auto... parts) {
    return absl::InvalidArgumentError(
        absl::StrCat("BuildClassifier: ", parts...));
  };
  if (config.kind != BackboneKind::kMlp && config.kind != BackboneKind::kVit) {
    return bad("unknown backbone kind ", static_cast<int>(config.kind));
  }
  if (config.input_channels < 1 || config.input_height < 1 ||
      config.input_width < 1) {
    return bad("input dimensions must be positive, got ", config.input_channels,
               "x", config.input_height, "x", config.input_width);
  }
  if (config.num_classes < 1) {
    return bad("num_classes must be positive, got ", config.num_classes);
  }
  const LoraConfig& lora = config.lora;
  if (lora.rank < 1) return bad("lora.rank must be positive, got ", lora.rank);
  if (!(lora.alpha > 0) || !std::isfinite(lora.alpha)) {
    return bad("lora.alpha must be positive and finite, got ", lora.alpha);
  }
  if (!(lora.dropout >= 0 && lora.dropout < 1)) {
    return bad("lora.dropout must be in [0, 1), got ", lora.dropout);
  }
  // Rough parameter count, in double to avoid overflow, so an absurd
  // config fails cleanly instead of in the allocator.
  double params = 0;
  const double classes = config.num_classes;
  if (config.kind == BackboneKind::kMlp) {
    if (config.mlp_hidden.empty()) return bad("mlp_hidden must not be empty");
    double in = static_cast<double>(config.InputSize());
    for (int width : config.mlp_hidden) {
      if (width < 1) return bad("mlp_hidden widths must be positive");
      params += (in + 1 + lora.rank) * width + lora.rank * in;
      in = width;
    }
    params += (in + 1) * classes;
  } else {
    if (config.vit_patch < 1 || config.input_height % config.vit_patch != 0 ||
        config.input_width % config.vit_patch != 0) {
      return bad("vit_patch ", config.vit_patch,
                 " must be positive and divide the input height ",
                 config.input_height, " and width ", config.input_width);
    }
    if (config.vit_dim < 1 || config.vit_heads < 1 ||
        config.vit_dim % config.vit_heads != 0) {
      return bad("vit_dim (", config.vit_dim,
                 ") must be a positive multiple of vit_heads (",
                 config.vit_heads, ")");
    }
    if (config.vit_depth < 1) {
      return bad("vit_depth must be positive, got ", config.vit_depth);
    }
    if (config.vit_mlp_dim < 1) {
      return bad("vit_mlp_dim must be positive, got ", config.vit_mlp_dim);
    }
    const double dim = config.vit_dim, patch = config.vit_patch;
    const double tokens = (config.input_height / config.vit_patch) *
                              (config.input_width / config.vit_patch) +
                          1.0;
    params += (config.input_channels * patch * patch + 1) * dim;
    params += tokens * dim;
    params += config.vit_depth * (4 * (dim + 1) * dim + 4 * lora.rank * dim +
                                  2 * dim * config.vit_mlp_dim + 4 * dim);
    params += (dim + 1) * classes;
  }
  constexpr double kMaxParameters = double{1 << 30};
  if (params > kMaxParameters) {
    return bad("backbone would have ~", params,
               " parameters, more than the supported ", kMaxParameters);
  }
  return absl::OkStatus();
}

}  // namespace

// ---------------------------------------------------------------------------
// LoraLinearImpl

LoraLinearImpl::LoraLinearImpl(int64_t in_features, int64_t out_features,
                               const LoraConfig& lora)
    : scaling_(lora.rslora ? lora.alpha / std::sqrt(double{1.0} * lora.rank)
                           : lora.alpha / lora.rank),
      dropout_(lora.dropout) {
  TORCH_CHECK(in_features > 0 && out_features > 0 && lora.rank > 0,
              "LoraLinear needs positive dimensions, got in=", in_features,
              " out=", out_features, " rank=", lora.rank);
  // Zeros (not empty) so an un-initialised module is still deterministic.
  weight = register_parameter("weight",
                              torch::zeros({out_features, in_features}), false);
  bias = register_parameter("bias", torch::zeros({out_features}), false);
  lora_a = register_parameter("lora_a", torch::zeros({lora.rank, in_features}));
  lora_b =
      register_parameter("lora_b", torch::zeros({out_features, lora.rank}));
}

torch::Tensor LoraLinearImpl::forward(const torch::Tensor& x) {
  torch::Tensor adapter_input = x;
  if (is_training() && dropout_ > 0 && dropout_generator_ != nullptr) {
    const double keep = 1.0 - dropout_;
    // Bernoulli(keep) mask from uniform_ (a serial kernel, identical on
    // every CPU) rather than bernoulli_, which may route through MKL. Drawn
    // on the CPU (the generator's device) for inputs on a GPU too.
    torch::Tensor uniform = torch::empty(
        x.sizes(), x.options().device(torch::kCPU).requires_grad(false));
    uniform.uniform_(0.0, 1.0, *dropout_generator_);
    torch::Tensor mask = uniform.lt(keep).to(x.device(), x.scalar_type());
    adapter_input = x * mask * (1.0 / keep);
  }
  torch::Tensor update =
      torch::linear(torch::linear(adapter_input, lora_a), lora_b);
  return torch::linear(x, weight, bias) + scaling_ * update;
}

void LoraLinearImpl::InitBase(at::Generator& generator) {
  torch::NoGradGuard no_grad;
  const double bound = 1.0 / std::sqrt(static_cast<double>(weight.size(1)));
  FillUniform(weight, bound, generator);
  FillUniform(bias, bound, generator);
}

void LoraLinearImpl::InitAdapter(at::Generator& generator) {
  torch::NoGradGuard no_grad;
  const double bound = 1.0 / std::sqrt(static_cast<double>(lora_a.size(1)));
  FillUniform(lora_a, bound, generator);
  lora_b.zero_();
}

// ---------------------------------------------------------------------------
// AdapterClassifier

NamedTensors AdapterClassifier::AdapterState() {
  return CollectState(*this, [](const std::string& name) {
    return IsAdapterName(name) || IsHeadName(name);
  });
}

absl::Status AdapterClassifier::LoadAdapterState(const NamedTensors& state) {
  return LoadState(
      *this,
      [](const std::string& name) {
        return IsAdapterName(name) || IsHeadName(name);
      },
      state, "LoadAdapterState");
}

NamedTensors AdapterClassifier::BaseState() {
  return CollectState(
      *this, [](const std::string& name) { return !IsAdapterName(name); });
}

absl::Status AdapterClassifier::LoadBaseState(const NamedTensors& state) {
  return LoadState(
      *this, [](const std::string& name) { return !IsAdapterName(name); },
      state, "LoadBaseState");
}

void AdapterClassifier::FreezeAllExcept(
    const std::vector<torch::Tensor>& params) {
  std::unordered_set<const c10::TensorImpl*> trainable;
  for (const torch::Tensor& p : params) {
    if (p.defined()) trainable.insert(p.unsafeGetTensorImpl());
  }
  for (torch::Tensor& p : parameters(/*recurse=*/true)) {
    p.set_requires_grad(trainable.contains(p.unsafeGetTensorImpl()));
  }
}

absl::StatusOr<std::shared_ptr<AdapterClassifier>> BuildClassifier(
    const BackboneConfig& config, uint64_t base_seed) {
  OUBLI_RETURN_IF_ERROR(ValidateBackbone(config));
  try {
    std::shared_ptr<AdapterClassifier> model;
    if (config.kind == BackboneKind::kMlp) {
      model = std::make_shared<MlpClassifier>(config);
    } else {
      model = std::make_shared<VitClassifier>(config);
    }
    model->InitBase(base_seed);
    model->InitAdapters(base_seed);
    return model;
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        "BuildClassifier: torch error: ", e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return absl::ResourceExhaustedError(
        absl::StrCat("BuildClassifier: ", e.what()));
  }
}

std::vector<std::vector<int>> AdapterGroups(int num_layers, int num_groups) {
  std::vector<std::vector<int>> groups;
  if (num_layers < 0 || num_groups <= 0) return groups;
  groups.resize(num_groups);
  const int base_size = num_layers / num_groups;
  const int larger = num_layers % num_groups;  // first `larger` get one more
  int next = 0;
  for (int g = 0; g < num_groups; ++g) {
    const int size = base_size + (g < larger ? 1 : 0);
    for (int i = 0; i < size; ++i) groups[g].push_back(next++);
  }
  return groups;
}

}  // namespace oubli::worker
