#include "worker/ml/hf_decoder_weights.h"

#include <algorithm>
#include <exception>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"

namespace oubli::ml {
namespace {

using Shape = std::vector<int64_t>;

std::string ShapeText(const Shape& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

// One tensor of the checkpoint: its expected shape and how it becomes ours
// (a rename, a transpose, or a split into several).
struct Rule {
  Shape shape;
  std::function<void(const torch::Tensor&, NamedTensors&)> emit;
};

using Rules = std::map<std::string, Rule>;

Rule Copy(Shape shape, std::string ours) {
  return {std::move(shape), [ours](const torch::Tensor& t, NamedTensors& out) {
            out.emplace_back(ours, t);
          }};
}

// Conv1D stores [in, out]; our linears hold [out, in].
Rule Transposed(Shape shape, std::string ours) {
  return {std::move(shape), [ours](const torch::Tensor& t, NamedTensors& out) {
            out.emplace_back(ours, t.t().contiguous());
          }};
}

// GPT-2's c_attn: q, k and v side by side along the last axis.
Rule SplitQkv(Shape shape, std::string prefix, std::string suffix,
              bool transpose) {
  return {std::move(shape),
          [prefix, suffix, transpose](const torch::Tensor& t,
                                      NamedTensors& out) {
            std::vector<torch::Tensor> parts = t.chunk(3, -1);
            const char* names[] = {"q", "k", "v"};
            for (int i = 0; i < 3; ++i) {
              torch::Tensor part = transpose ? parts[i].t() : parts[i];
              out.emplace_back(absl::StrCat(prefix, names[i], suffix),
                               part.contiguous());
            }
          }};
}

Rules Gpt2Rules(const DecoderConfig& c) {
  const int64_t d = c.dim, f = c.mlp_dim, v = c.vocab_size;
  Rules rules;
  rules["wte.weight"] = Copy({v, d}, "embed.weight");
  // Rows beyond the context are never used; the shape check below allows
  // a longer table and the first context_length rows are kept.
  rules["wpe.weight"] = {
      {-1, d}, [n = int64_t{c.context_length}](const torch::Tensor& t,
                                                NamedTensors& out) {
        out.emplace_back("pos_embed.weight", t.narrow(0, 0, n).contiguous());
      }};
  for (int i = 0; i < c.layers; ++i) {
    const std::string hf = absl::StrCat("h.", i, ".");
    const std::string ours = absl::StrCat("blocks.", i, ".");
    rules[hf + "ln_1.weight"] = Copy({d}, ours + "attn_norm.weight");
    rules[hf + "ln_1.bias"] = Copy({d}, ours + "attn_norm.bias");
    rules[hf + "attn.c_attn.weight"] =
        SplitQkv({d, 3 * d}, ours + "attn.", ".weight", /*transpose=*/true);
    rules[hf + "attn.c_attn.bias"] =
        SplitQkv({3 * d}, ours + "attn.", ".bias", /*transpose=*/false);
    rules[hf + "attn.c_proj.weight"] =
        Transposed({d, d}, ours + "attn.o.weight");
    rules[hf + "attn.c_proj.bias"] = Copy({d}, ours + "attn.o.bias");
    rules[hf + "ln_2.weight"] = Copy({d}, ours + "mlp_norm.weight");
    rules[hf + "ln_2.bias"] = Copy({d}, ours + "mlp_norm.bias");
    rules[hf + "mlp.c_fc.weight"] = Transposed({d, f}, ours + "mlp.up.weight");
    rules[hf + "mlp.c_fc.bias"] = Copy({f}, ours + "mlp.up.bias");
    rules[hf + "mlp.c_proj.weight"] =
        Transposed({f, d}, ours + "mlp.down.weight");
    rules[hf + "mlp.c_proj.bias"] = Copy({d}, ours + "mlp.down.bias");
  }
  rules["ln_f.weight"] = Copy({d}, "norm.weight");
  rules["ln_f.bias"] = Copy({d}, "norm.bias");
  return rules;
}

Rules LlamaRules(const DecoderConfig& c) {
  const int64_t d = c.dim, f = c.mlp_dim, v = c.vocab_size;
  const int64_t kv = int64_t{c.kv_heads} * c.head_dim();
  Rules rules;
  rules["model.embed_tokens.weight"] = Copy({v, d}, "embed.weight");
  for (int i = 0; i < c.layers; ++i) {
    const std::string hf = absl::StrCat("model.layers.", i, ".");
    const std::string ours = absl::StrCat("blocks.", i, ".");
    rules[hf + "input_layernorm.weight"] = Copy({d}, ours + "attn_norm.weight");
    rules[hf + "self_attn.q_proj.weight"] =
        Copy({d, d}, ours + "attn.q.weight");
    rules[hf + "self_attn.k_proj.weight"] =
        Copy({kv, d}, ours + "attn.k.weight");
    rules[hf + "self_attn.v_proj.weight"] =
        Copy({kv, d}, ours + "attn.v.weight");
    rules[hf + "self_attn.o_proj.weight"] =
        Copy({d, d}, ours + "attn.o.weight");
    rules[hf + "post_attention_layernorm.weight"] =
        Copy({d}, ours + "mlp_norm.weight");
    rules[hf + "mlp.gate_proj.weight"] = Copy({f, d}, ours + "mlp.gate.weight");
    rules[hf + "mlp.up_proj.weight"] = Copy({f, d}, ours + "mlp.up.weight");
    rules[hf + "mlp.down_proj.weight"] =
        Copy({d, f}, ours + "mlp.down.weight");
  }
  rules["model.norm.weight"] = Copy({d}, "norm.weight");
  if (!c.tie_embeddings && c.objective == DecoderObjective::kCausalLm) {
    rules["lm_head.weight"] = Copy({v, d}, "lm_head.weight");
  }
  return rules;
}

// Buffers some exports carry that hold no weights: GPT-2's causal mask
// ("h.3.attn.bias", "h.3.attn.masked_bias") and Llama's rotary frequencies.
bool IsIgnoredBuffer(const DecoderConfig& config, absl::string_view name) {
  if (config.layout == DecoderLayout::kGpt2) {
    return absl::StartsWith(name, "h.") &&
           (absl::EndsWith(name, ".attn.bias") ||
            absl::EndsWith(name, ".attn.masked_bias"));
  }
  return absl::EndsWith(name, ".self_attn.rotary_emb.inv_freq");
}

bool MatchesShape(const torch::Tensor& tensor, const Shape& shape,
                  int64_t min_rows) {
  if (tensor.dim() != static_cast<int64_t>(shape.size())) return false;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      if (tensor.size(i) < min_rows) return false;
    } else if (tensor.size(i) != shape[i]) {
      return false;
    }
  }
  return true;
}

}  // namespace

absl::StatusOr<NamedTensors> ImportHuggingFaceDecoder(
    const BackboneConfig& backbone, const NamedTensors& checkpoint) {
  OUBLI_RETURN_IF_ERROR(ValidateDecoderBackbone(backbone));
  const DecoderConfig& config = backbone.decoder;
  const bool gpt2 = config.layout == DecoderLayout::kGpt2;
  const std::string layout = absl::StrCat(
      gpt2 ? "GPT-2" : "Llama", " layout with ", config.layers, " layers");
  auto bad = [&](auto... parts) {
    return absl::InvalidArgumentError(
        absl::StrCat("hugging face weights (", layout, "): ", parts...));
  };

  // By name, with GPT-2's optional "transformer." prefix removed.
  std::map<std::string, const torch::Tensor*> given;
  const torch::Tensor* lm_head = nullptr;
  for (const auto& [raw_name, tensor] : checkpoint) {
    std::string name = raw_name;
    if (gpt2 && absl::StartsWith(name, "transformer.")) {
      name = name.substr(std::string("transformer.").size());
    }
    if (!given.emplace(name, &tensor).second) {
      return bad("tensor '", name, "' appears twice");
    }
    if (name == "lm_head.weight") lm_head = &tensor;
  }

  Rules rules = gpt2 ? Gpt2Rules(config) : LlamaRules(config);
  for (const auto& [name, rule] : rules) {
    if (!given.contains(name)) {
      return bad("missing tensor '", name, "' (shape ",
                 ShapeText(rule.shape), ")");
    }
  }
  for (const auto& [name, tensor] : given) {
    if (rules.contains(name) || IsIgnoredBuffer(config, name)) continue;
    // A classifier reads the last hidden state, not the LM head.
    if (name == "lm_head.weight" &&
        (config.tie_embeddings ||
         config.objective == DecoderObjective::kClassify)) {
      continue;
    }
    return bad("unexpected tensor '", name,
               "'; check the layout, layers and vocabulary of the config");
  }
  for (const auto& [name, rule] : rules) {
    const torch::Tensor& tensor = *given.at(name);
    if (!tensor.defined()) return bad("tensor '", name, "' is undefined");
    if (!MatchesShape(tensor, rule.shape, config.context_length)) {
      Shape expected = rule.shape;
      std::string note;
      if (!expected.empty() && expected[0] == -1) {
        note = absl::StrCat(" (at least ", config.context_length,
                            " rows, the context length)");
      }
      return bad("tensor '", name, "' has shape ", ShapeString(tensor),
                 ", expected ", ShapeText(expected), note);
    }
    if (!torch::isFloatingType(tensor.scalar_type())) {
      return bad("tensor '", name, "' has non-floating dtype ",
                 c10::toString(tensor.scalar_type()));
    }
  }

  NamedTensors ours;
  try {
    torch::NoGradGuard no_grad;
    for (const auto& [name, rule] : rules) {
      rule.emit(given.at(name)->to(torch::kCPU, torch::kFloat32), ours);
    }
    if (lm_head != nullptr && config.tie_embeddings &&
        config.objective == DecoderObjective::kCausalLm) {
      // A tied head may be exported too; it must then be the embedding.
      const torch::Tensor& embed =
          *given.at(gpt2 ? "wte.weight" : "model.embed_tokens.weight");
      if (!lm_head->defined() || lm_head->sizes() != embed.sizes() ||
          !torch::equal(lm_head->to(torch::kFloat32),
                        embed.to(torch::kFloat32))) {
        return bad("lm_head.weight differs from the token embedding, but "
                   "the config ties them",
                   gpt2 ? "" : "; set tie_embeddings to false");
      }
    }
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat("hugging face weights: converting tensors failed: ",
                     e.what()));
  }
  std::sort(ours.begin(), ours.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  return ours;
}

absl::Status LoadHuggingFaceDecoder(DecoderLm& model,
                                    const NamedTensors& checkpoint) {
  OUBLI_ASSIGN_OR_RETURN(NamedTensors base,
                         ImportHuggingFaceDecoder(model.backbone(), checkpoint));
  // The classifier head is seeded, not pretrained: keep the model's own.
  for (auto& [name, tensor] : model.BaseState()) {
    if (absl::StartsWith(name, "head.")) base.emplace_back(name, tensor);
  }
  return model.LoadBaseState(base);
}

}  // namespace oubli::ml
