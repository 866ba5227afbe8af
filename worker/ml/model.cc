#include "worker/ml/model.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace oubli::ml {
namespace {

// Programming errors (not user input): fail loudly rather than train
// something silently wrong.
[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "oubli model invariant violated: %s\n", message.c_str());
  std::abort();
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

  void InitExtraBase(uint64_t seed) override {
    torch::NoGradGuard no_grad;
    at::Generator cls_generator =
        MakeModuleGenerator(seed, "base", "cls_token");
    FillUniform(cls_token_, kEmbeddingInitBound, cls_generator);
    at::Generator pos_generator =
        MakeModuleGenerator(seed, "base", "pos_embed");
    FillUniform(pos_embed_, kEmbeddingInitBound, pos_generator);
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

}  // namespace oubli::ml
