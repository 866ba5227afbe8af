#include "worker/ml/decoder_lm.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <limits>
#include <optional>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace oubli::ml {
namespace {

// Embeddings start small (std ~0.02, as GPT-2's do), drawn uniformly.
constexpr double kEmbeddingInitBound = 0.035;

bool IsTarget(const BackboneConfig& backbone, LoraTarget target) {
  const std::vector<LoraTarget>& targets = backbone.decoder.lora_targets;
  return std::find(targets.begin(), targets.end(), target) != targets.end();
}

// A projection is a LoRA linear when it is a target and a frozen dense
// layer otherwise; either is registered under the projection's own name,
// so the parameter names do not depend on the wrapper.
class Projection {
 public:
  Projection() = default;
  Projection(torch::nn::Module& parent, const std::string& name,
             int64_t in_features, int64_t out_features, bool has_bias,
             bool adapted, const LoraConfig& lora) {
    if (adapted) {
      lora_ = parent.register_module(
          name, LoraLinear(in_features, out_features, lora, has_bias));
    } else {
      dense_ = parent.register_module(
          name, Dense(in_features, out_features, /*trainable=*/false,
                      has_bias));
    }
  }
  torch::Tensor operator()(const torch::Tensor& x) {
    return lora_ ? lora_->forward(x) : dense_->forward(x);
  }
  void AppendAdapters(std::vector<torch::Tensor>& out) const {
    if (lora_) {
      out.push_back(lora_->lora_a);
      out.push_back(lora_->lora_b);
    }
  }

 private:
  LoraLinear lora_{nullptr};
  Dense dense_{nullptr};
};

// A frozen [rows, dim] table: token embeddings, GPT-2's positions, an untied
// LM head.
class TableImpl : public torch::nn::Module {
 public:
  TableImpl(int64_t rows, int64_t dim) {
    weight = register_parameter("weight", torch::zeros({rows, dim}), false);
  }
  torch::Tensor weight;
};
TORCH_MODULE(Table);

// x * rsqrt(mean(x^2) + eps) * weight, as Llama's RMSNorm.
class RmsNormImpl : public torch::nn::Module {
 public:
  RmsNormImpl(int64_t dim, double eps) : eps_(eps) {
    weight = register_parameter("weight", torch::ones({dim}), false);
  }
  torch::Tensor forward(const torch::Tensor& x) {
    return x * torch::rsqrt(x.pow(2).mean(-1, /*keepdim=*/true) + eps_) *
           weight;
  }
  torch::Tensor weight;

 private:
  double eps_;
};
TORCH_MODULE(RmsNorm);

// The norm of the layout: LayerNorm (GPT-2) or RMSNorm (Llama).
class Norm {
 public:
  Norm() = default;
  Norm(torch::nn::Module& parent, const std::string& name,
       const DecoderConfig& config) {
    if (config.layout == DecoderLayout::kGpt2) {
      layer_norm_ = parent.register_module(
          name, LayerNorm(config.dim, config.norm_eps));
    } else {
      rms_norm_ =
          parent.register_module(name, RmsNorm(config.dim, config.norm_eps));
    }
  }
  torch::Tensor operator()(const torch::Tensor& x) {
    return layer_norm_ ? layer_norm_->forward(x) : rms_norm_->forward(x);
  }

 private:
  LayerNorm layer_norm_{nullptr};
  RmsNorm rms_norm_{nullptr};
};

// Rotary position tables for positions 0..T-1, as Llama computes them:
// inv_freq_j = theta^(-2j / head_dim), angles repeated for both halves.
struct Rotary {
  torch::Tensor cos, sin;  // [T, head_dim]
};

Rotary MakeRotary(int64_t length, int64_t head_dim, double theta,
                  const torch::Device& device) {
  torch::Tensor exponents =
      torch::arange(0, head_dim, 2, torch::kInt64).to(torch::kFloat32) /
      static_cast<double>(head_dim);
  torch::Tensor inv_freq =
      1.0 / torch::pow(torch::scalar_tensor(theta, torch::kFloat32), exponents);
  torch::Tensor positions = torch::arange(length, torch::kInt64)
                                .to(torch::kFloat32);
  torch::Tensor freqs = torch::outer(positions, inv_freq);
  torch::Tensor angles = torch::cat({freqs, freqs}, -1).to(device);
  return {angles.cos(), angles.sin()};
}

// x * cos + rotate_half(x) * sin, rotate_half(x) = [-x2, x1].
torch::Tensor ApplyRotary(const torch::Tensor& x, const Rotary& rotary) {
  const int64_t half = x.size(-1) / 2;
  torch::Tensor x1 = x.narrow(-1, 0, half);
  torch::Tensor x2 = x.narrow(-1, half, half);
  torch::Tensor rotated = torch::cat({-x2, x1}, -1);
  return x * rotary.cos + rotated * rotary.sin;
}

class AttentionImpl : public torch::nn::Module {
 public:
  explicit AttentionImpl(const BackboneConfig& backbone)
      : heads_(backbone.decoder.heads),
        kv_heads_(backbone.decoder.kv_heads),
        head_dim_(backbone.decoder.head_dim()) {
    const bool bias = backbone.decoder.layout == DecoderLayout::kGpt2;
    const int64_t dim = backbone.decoder.dim, kv_dim = kv_heads_ * head_dim_;
    const LoraConfig& lora = backbone.lora;
    q_ = Projection(*this, "q", dim, dim, bias,
                    IsTarget(backbone, LoraTarget::kQ), lora);
    k_ = Projection(*this, "k", dim, kv_dim, bias,
                    IsTarget(backbone, LoraTarget::kK), lora);
    v_ = Projection(*this, "v", dim, kv_dim, bias,
                    IsTarget(backbone, LoraTarget::kV), lora);
    o_ = Projection(*this, "o", dim, dim, bias,
                    IsTarget(backbone, LoraTarget::kO), lora);
  }

  // x: [N, T, D]; allowed: [N, 1, T, T] bool (causal and not padding).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& allowed,
                        const Rotary* rotary) {
    const int64_t n = x.size(0), t = x.size(1), d = x.size(2);
    auto split = [&](const torch::Tensor& y, int64_t heads) {
      return y.reshape({n, t, heads, head_dim_}).transpose(1, 2);
    };
    torch::Tensor queries = split(q_(x), heads_);
    torch::Tensor keys = split(k_(x), kv_heads_);
    torch::Tensor values = split(v_(x), kv_heads_);
    if (rotary != nullptr) {
      queries = ApplyRotary(queries, *rotary);
      keys = ApplyRotary(keys, *rotary);
    }
    if (kv_heads_ != heads_) {
      // Query head h reads key/value head h / (heads / kv_heads).
      keys = keys.repeat_interleave(heads_ / kv_heads_, 1);
      values = values.repeat_interleave(heads_ / kv_heads_, 1);
    }
    torch::Tensor scores = torch::matmul(queries, keys.transpose(-2, -1)) /
                           std::sqrt(static_cast<double>(head_dim_));
    scores = scores.masked_fill(allowed.logical_not(),
                                -std::numeric_limits<float>::infinity());
    torch::Tensor mixed = torch::matmul(torch::softmax(scores, -1), values);
    return o_(mixed.transpose(1, 2).reshape({n, t, d}));
  }

  void AppendAdapters(std::vector<torch::Tensor>& out) const {
    q_.AppendAdapters(out);
    k_.AppendAdapters(out);
    v_.AppendAdapters(out);
    o_.AppendAdapters(out);
  }

 private:
  int64_t heads_, kv_heads_, head_dim_;
  Projection q_, k_, v_, o_;
};
TORCH_MODULE(Attention);

// GPT-2: down(gelu_tanh(up(x))). Llama: down(silu(gate(x)) * up(x)).
class MlpImpl : public torch::nn::Module {
 public:
  explicit MlpImpl(const BackboneConfig& backbone)
      : gated_(backbone.decoder.layout == DecoderLayout::kLlama) {
    const bool bias = !gated_;
    const int64_t dim = backbone.decoder.dim;
    const int64_t hidden = backbone.decoder.mlp_dim;
    const LoraConfig& lora = backbone.lora;
    if (gated_) {
      gate_ = Projection(*this, "gate", dim, hidden, bias,
                         IsTarget(backbone, LoraTarget::kGate), lora);
    }
    up_ = Projection(*this, "up", dim, hidden, bias,
                     IsTarget(backbone, LoraTarget::kUp), lora);
    down_ = Projection(*this, "down", hidden, dim, bias,
                       IsTarget(backbone, LoraTarget::kDown), lora);
  }
  torch::Tensor forward(const torch::Tensor& x) {
    if (gated_) return down_(torch::silu(gate_(x)) * up_(x));
    return down_(torch::gelu(up_(x), "tanh"));
  }
  void AppendAdapters(std::vector<torch::Tensor>& out) const {
    if (gated_) gate_.AppendAdapters(out);
    up_.AppendAdapters(out);
    down_.AppendAdapters(out);
  }

 private:
  bool gated_;
  Projection gate_, up_, down_;
};
TORCH_MODULE(Mlp);

// Pre-norm block, the same shape in both layouts.
class BlockImpl : public torch::nn::Module {
 public:
  explicit BlockImpl(const BackboneConfig& backbone) {
    attn_norm_ = Norm(*this, "attn_norm", backbone.decoder);
    attn_ = register_module("attn", Attention(backbone));
    mlp_norm_ = Norm(*this, "mlp_norm", backbone.decoder);
    mlp_ = register_module("mlp", Mlp(backbone));
  }
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& allowed,
                        const Rotary* rotary) {
    torch::Tensor h = x + attn_->forward(attn_norm_(x), allowed, rotary);
    return h + mlp_->forward(mlp_norm_(h));
  }
  std::vector<torch::Tensor> Adapters() const {
    std::vector<torch::Tensor> out;
    attn_->AppendAdapters(out);
    mlp_->AppendAdapters(out);
    return out;
  }

 private:
  Norm attn_norm_, mlp_norm_;
  Attention attn_{nullptr};
  Mlp mlp_{nullptr};
};
TORCH_MODULE(Block);

void CheckInputs(const DecoderConfig& config, const torch::Tensor& tokens,
                 const torch::Tensor& mask) {
  TORCH_CHECK(tokens.defined() && tokens.dim() == 2 &&
                  tokens.scalar_type() == torch::kInt64,
              "tokens must be [N, T] int64, got ",
              tokens.defined() ? c10::str(tokens.sizes(), " ",
                                          tokens.scalar_type())
                               : std::string("undefined"));
  TORCH_CHECK(tokens.size(0) > 0 && tokens.size(1) > 0,
              "tokens must hold at least one row and one position, got ",
              tokens.sizes());
  TORCH_CHECK(tokens.size(1) <= config.context_length, "sequence length ",
              tokens.size(1), " exceeds the context length ",
              config.context_length);
  TORCH_CHECK(mask.defined() && mask.sizes() == tokens.sizes(),
              "attention_mask must have the tokens' shape ", tokens.sizes());
  TORCH_CHECK(tokens.min().item<int64_t>() >= 0 &&
                  tokens.max().item<int64_t>() < config.vocab_size,
              "token ids must be in [0, ", config.vocab_size, ")");
  torch::Tensor real = mask.to(torch::kInt64);
  TORCH_CHECK(real.eq(0).logical_or(real.eq(1)).all().item<bool>(),
              "attention_mask must hold only 0 and 1");
  TORCH_CHECK(real.select(1, 0).eq(1).all().item<bool>(),
              "every row needs a real first token (right padding)");
  if (real.size(1) > 1) {
    TORCH_CHECK(real.narrow(1, 1, real.size(1) - 1)
                    .le(real.narrow(1, 0, real.size(1) - 1))
                    .all()
                    .item<bool>(),
                "attention_mask must be right-padded: no real token after "
                "padding");
  }
}

class DecoderLmImpl : public DecoderLm {
 public:
  explicit DecoderLmImpl(const BackboneConfig& backbone)
      : DecoderLm(backbone) {
    const DecoderConfig& config = backbone.decoder;
    embed_ = register_module("embed", Table(config.vocab_size, config.dim))
                 ->weight;
    if (config.layout == DecoderLayout::kGpt2) {
      pos_embed_ =
          register_module("pos_embed", Table(config.context_length, config.dim))
              ->weight;
    }
    block_list_ = register_module("blocks", torch::nn::ModuleList());
    for (int i = 0; i < config.layers; ++i) {
      blocks_.push_back(Block(backbone));
      block_list_->push_back(blocks_.back());
    }
    norm_ = Norm(*this, "norm", config);
    if (config.objective == DecoderObjective::kClassify) {
      head_ = register_module(
          "head", Dense(config.dim, backbone.num_classes, /*trainable=*/true));
    } else if (!config.tie_embeddings) {
      lm_head_ =
          register_module("lm_head", Table(config.vocab_size, config.dim))
              ->weight;
    }
  }

  torch::Tensor forward(const torch::Tensor& tokens,
                        const torch::Tensor& attention_mask) override {
    const DecoderConfig& decoder = config();
    CheckInputs(decoder, tokens, attention_mask);
    const int64_t t = tokens.size(1);
    const torch::Device device = embed_.device();
    torch::Tensor ids = tokens.to(device);
    torch::Tensor real = attention_mask.to(device).to(torch::kBool);
    torch::Tensor h = embed_.index_select(0, ids.reshape({-1}))
                          .reshape({ids.size(0), t, decoder.dim});
    std::optional<Rotary> rotary;
    if (decoder.layout == DecoderLayout::kGpt2) {
      h = h + pos_embed_.narrow(0, 0, t);
    } else {
      rotary = MakeRotary(t, decoder.head_dim(), decoder.rope_theta, device);
    }
    torch::Tensor causal = torch::ones(
        {t, t}, torch::TensorOptions().dtype(torch::kBool).device(device))
                               .tril();
    torch::Tensor allowed =
        causal.unsqueeze(0).unsqueeze(0).logical_and(
            real.unsqueeze(1).unsqueeze(2));
    for (auto& block : blocks_) {
      h = block->forward(h, allowed, rotary ? &*rotary : nullptr);
    }
    h = norm_(h);
    if (head_) {
      torch::Tensor last = real.to(torch::kInt64).sum(1) - 1;
      torch::Tensor rows = torch::arange(
          ids.size(0), torch::TensorOptions().dtype(torch::kInt64)
                           .device(device));
      return head_->forward(h.index({rows, last}));
    }
    return torch::matmul(h, (lm_head_.defined() ? lm_head_ : embed_).t());
  }

  int num_adapter_layers() const override {
    return static_cast<int>(blocks_.size());
  }

  std::vector<torch::Tensor> AdapterParameters(int layer_from_top) override {
    const int n = num_adapter_layers();
    TORCH_CHECK(layer_from_top >= 0 && layer_from_top < n,
                "AdapterParameters(", layer_from_top, ") out of range for ", n,
                " blocks");
    return blocks_[n - 1 - layer_from_top]->Adapters();
  }

  std::vector<torch::Tensor> HeadParameters() override {
    if (!head_) return {};
    return {head_->weight, head_->bias};
  }

 protected:
  void InitExtraBase(uint64_t seed) override {
    torch::NoGradGuard no_grad;
    at::Generator embed_generator = MakeModuleGenerator(seed, "base", "embed");
    FillUniform(embed_, kEmbeddingInitBound, embed_generator);
    if (pos_embed_.defined()) {
      at::Generator generator = MakeModuleGenerator(seed, "base", "pos_embed");
      FillUniform(pos_embed_, kEmbeddingInitBound, generator);
    }
    if (lm_head_.defined()) {
      at::Generator generator = MakeModuleGenerator(seed, "base", "lm_head");
      FillUniform(lm_head_, kEmbeddingInitBound, generator);
    }
    for (const auto& module : modules(/*include_self=*/false)) {
      if (auto* rms = module->as<RmsNormImpl>()) rms->weight.fill_(1.0);
    }
  }

 private:
  torch::Tensor embed_, pos_embed_, lm_head_;
  torch::nn::ModuleList block_list_{nullptr};
  std::vector<Block> blocks_;
  Norm norm_;
  Dense head_{nullptr};
};

}  // namespace

absl::StatusOr<std::shared_ptr<DecoderLm>> BuildDecoderLm(
    const BackboneConfig& backbone, uint64_t base_seed) {
  if (backbone.kind != BackboneKind::kDecoder) {
    return absl::InvalidArgumentError(
        "BuildDecoderLm: the backbone is not a decoder");
  }
  OUBLI_RETURN_IF_ERROR(ValidateDecoderBackbone(backbone));
  try {
    auto model = std::make_shared<DecoderLmImpl>(backbone);
    model->InitBase(base_seed);
    model->InitAdapters(base_seed);
    return std::shared_ptr<DecoderLm>(std::move(model));
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        "BuildDecoderLm: torch error: ", e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return absl::ResourceExhaustedError(
        absl::StrCat("BuildDecoderLm: ", e.what()));
  }
}

namespace {

// Log-probabilities of each next token [N, T-1] and which of them count.
torch::Tensor TargetLogProbs(const torch::Tensor& logits,
                             const torch::Tensor& tokens) {
  const int64_t t = tokens.size(1);
  torch::Tensor predicted = logits.narrow(1, 0, t - 1);
  torch::Tensor targets = tokens.narrow(1, 1, t - 1).to(logits.device());
  return torch::log_softmax(predicted, -1)
      .gather(-1, targets.unsqueeze(-1))
      .squeeze(-1);
}

}  // namespace

torch::Tensor CausalLmLoss(const torch::Tensor& logits,
                           const torch::Tensor& tokens,
                           const torch::Tensor& attention_mask,
                           const torch::Tensor& loss_mask) {
  const int64_t t = tokens.size(1);
  if (t < 2) return logits.sum() * 0.0;
  torch::Tensor weights = attention_mask.narrow(1, 1, t - 1)
                              .to(logits.device(), torch::kFloat32);
  if (loss_mask.defined()) {
    weights = weights * loss_mask.narrow(1, 1, t - 1)
                            .to(logits.device(), torch::kFloat32);
  }
  torch::Tensor log_probs = TargetLogProbs(logits, tokens);
  return -(log_probs * weights).sum() / weights.sum().clamp_min(1.0);
}

torch::Tensor NextTokenLogProbs(const torch::Tensor& logits,
                                const torch::Tensor& tokens,
                                const torch::Tensor& attention_mask) {
  const int64_t t = tokens.size(1);
  if (t < 2) {
    return torch::zeros({tokens.size(0), 0},
                        logits.options().dtype(torch::kFloat32));
  }
  torch::Tensor real = attention_mask.narrow(1, 1, t - 1)
                           .to(logits.device(), torch::kFloat32);
  return TargetLogProbs(logits, tokens) * real;
}

}  // namespace oubli::ml
