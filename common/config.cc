#include "common/config.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <set>
#include <charconv>
#include <functional>
#include <map>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/hash.h"
#include "common/status_macros.h"

namespace oubli {
namespace {

// Keys that do not affect weights; excluded from the fingerprint.
bool IsWeightNeutral(absl::string_view key) {
  return key == "model_id" || key.substr(0, 8) == "retrain." ||
         key.substr(0, 8) == "erasure." || key.substr(0, 8) == "serving.";
}

// Keys a model made before placement existed did not have: left out of its
// fingerprint (and so of its checkpoint keys) while they hold the values
// such a model behaves by.
bool IsLegacyDefault(const ModelConfig& c, absl::string_view key) {
  // Risk-aware models made before risk_shards existed spread high-risk
  // samples over every shard: 0.
  if (key == "placement.risk_shards") {
    return !c.placement.risk.enabled() || c.placement.risk.shards == 0;
  }
  if (key.substr(0, 10) == "placement.") return !c.placement.risk.enabled();
  if (key == "placement") {
    return c.placement.by == Placement::kSample && !c.placement.risk.enabled();
  }
  return false;
}

// Shortest text that parses back to the same double.
std::string Num(double v) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, end);
}

const char* BackboneKindName(BackboneKind kind) {
  switch (kind) {
    case BackboneKind::kMlp: return "mlp";
    case BackboneKind::kVit: return "vit";
    case BackboneKind::kDecoder: return "decoder";
  }
  return "?";
}

std::string LoraTargetList(const std::vector<LoraTarget>& targets) {
  std::vector<std::string> names;
  for (LoraTarget target : targets) names.push_back(LoraTargetName(target));
  return absl::StrJoin(names, ",");
}

// Only a decoder's config carries these keys, so the configs (and the
// fingerprints) of image models are what they were before decoders.
std::vector<std::pair<std::string, std::string>> DecoderPairs(
    const DecoderConfig& d) {
  return {
      {"decoder.layout", DecoderLayoutName(d.layout)},
      {"decoder.objective",
       d.objective == DecoderObjective::kCausalLm ? "causal_lm" : "classify"},
      {"decoder.vocab_size", absl::StrCat(d.vocab_size)},
      {"decoder.context_length", absl::StrCat(d.context_length)},
      {"decoder.dim", absl::StrCat(d.dim)},
      {"decoder.layers", absl::StrCat(d.layers)},
      {"decoder.heads", absl::StrCat(d.heads)},
      {"decoder.kv_heads", absl::StrCat(d.kv_heads)},
      {"decoder.mlp_dim", absl::StrCat(d.mlp_dim)},
      {"decoder.norm_eps", Num(d.norm_eps)},
      {"decoder.rope_theta", Num(d.rope_theta)},
      {"decoder.tie_embeddings", d.tie_embeddings ? "true" : "false"},
      {"decoder.lora_targets", LoraTargetList(d.lora_targets)},
  };
}

std::vector<std::pair<std::string, std::string>> ToPairs(const ModelConfig& c) {
  const BackboneConfig& b = c.backbone;
  std::vector<std::pair<std::string, std::string>> pairs = {
      {"model_id", c.model_id},
      {"backbone.kind", BackboneKindName(b.kind)},
      {"backbone.input_channels", absl::StrCat(b.input_channels)},
      {"backbone.input_height", absl::StrCat(b.input_height)},
      {"backbone.input_width", absl::StrCat(b.input_width)},
      {"backbone.num_classes", absl::StrCat(b.num_classes)},
      {"backbone.mlp_hidden", absl::StrJoin(b.mlp_hidden, ",")},
      {"backbone.vit_patch", absl::StrCat(b.vit_patch)},
      {"backbone.vit_dim", absl::StrCat(b.vit_dim)},
      {"backbone.vit_depth", absl::StrCat(b.vit_depth)},
      {"backbone.vit_heads", absl::StrCat(b.vit_heads)},
      {"backbone.vit_mlp_dim", absl::StrCat(b.vit_mlp_dim)},
      {"lora.rank", absl::StrCat(b.lora.rank)},
      {"lora.alpha", Num(b.lora.alpha)},
      {"lora.dropout", Num(b.lora.dropout)},
      {"lora.rslora", b.lora.rslora ? "true" : "false"},
      {"shards", absl::StrCat(c.shards)},
      {"slices", absl::StrCat(c.slices)},
      {"sequences", absl::StrCat(c.sequences)},
      {"seed", absl::StrCat(c.seed)},
      {"placement", PlacementName(c.placement.by)},
      {"placement.risk_slices", absl::StrCat(c.placement.risk.slices)},
      {"placement.risk_threshold", Num(c.placement.risk.threshold)},
      {"placement.risk_deletion_share", Num(c.placement.risk.deletion_share)},
      {"placement.risk_shards", absl::StrCat(c.placement.risk.shards)},
      {"train.epochs_per_position", absl::StrCat(c.train.epochs_per_position)},
      {"train.batch_size", absl::StrCat(c.train.batch_size)},
      {"train.learning_rate", Num(c.train.learning_rate)},
      {"train.weight_decay", Num(c.train.weight_decay)},
      {"determinism.torch_threads", absl::StrCat(c.determinism.torch_threads)},
      {"determinism.blas_threads", absl::StrCat(c.determinism.blas_threads)},
      {"base.source", c.base.source},
      {"base.sha256", c.base.sha256},
      {"base.provenance", c.base.provenance},
      {"retrain.mode",
       c.retrain.mode == RetrainMode::kImmediate ? "immediate" : "batched"},
      {"retrain.window_ms",
       absl::StrCat(absl::ToInt64Milliseconds(c.retrain.window))},
      {"retrain.max_batch", absl::StrCat(c.retrain.max_batch)},
      {"erasure.data_chunks", absl::StrCat(c.erasure.data_chunks)},
      {"erasure.parity_chunks", absl::StrCat(c.erasure.parity_chunks)},
      {"serving.base_fallback", c.serving.base_fallback ? "true" : "false"},
  };
  if (b.kind == BackboneKind::kDecoder) {
    auto decoder = DecoderPairs(b.decoder);
    auto lora = std::find_if(pairs.begin(), pairs.end(), [](const auto& p) {
      return p.first == "lora.rank";
    });
    pairs.insert(lora, decoder.begin(), decoder.end());
  }
  return pairs;
}

template <typename T>
absl::Status ParseNumber(absl::string_view key, absl::string_view value,
                         T* out) {
  bool ok;
  if constexpr (std::is_same_v<T, double>) {
    ok = absl::SimpleAtod(value, out);
  } else {
    ok = absl::SimpleAtoi(value, out);
  }
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrCat("config key '", key, "': '", value, "' is not a number"));
  }
  return absl::OkStatus();
}

absl::Status ParseBool(absl::string_view key, absl::string_view value,
                       bool* out) {
  if (value == "true") {
    *out = true;
  } else if (value == "false") {
    *out = false;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "config key '", key, "': expected true or false, got '", value, "'"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateModelId(absl::string_view model_id) {
  if (model_id.empty() || model_id.size() > 128) {
    return absl::InvalidArgumentError("model_id must be 1..128 bytes");
  }
  for (char ch : model_id) {
    if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' ||
          ch == '_' || ch == '.')) {
      return absl::InvalidArgumentError(
          absl::StrCat("model_id '", model_id,
                       "' may only contain letters, digits, '-', '_' and '.'"));
    }
  }
  return absl::OkStatus();
}

const char* LoraTargetName(LoraTarget target) {
  switch (target) {
    case LoraTarget::kQ: return "q";
    case LoraTarget::kK: return "k";
    case LoraTarget::kV: return "v";
    case LoraTarget::kO: return "o";
    case LoraTarget::kGate: return "gate";
    case LoraTarget::kUp: return "up";
    case LoraTarget::kDown: return "down";
  }
  return "?";
}

absl::StatusOr<LoraTarget> ParseLoraTarget(absl::string_view name) {
  for (LoraTarget target :
       {LoraTarget::kQ, LoraTarget::kK, LoraTarget::kV, LoraTarget::kO,
        LoraTarget::kGate, LoraTarget::kUp, LoraTarget::kDown}) {
    if (name == LoraTargetName(target)) return target;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown LoRA target '", name,
                   "'; expected q, k, v, o, gate, up or down"));
}

const char* DecoderLayoutName(DecoderLayout layout) {
  return layout == DecoderLayout::kGpt2 ? "gpt2" : "llama";
}

absl::Status ValidateDecoderBackbone(const BackboneConfig& backbone) {
  auto bad = [](auto... parts) {
    return absl::InvalidArgumentError(absl::StrCat("decoder: ", parts...));
  };
  const DecoderConfig& config = backbone.decoder;
  if (config.layout != DecoderLayout::kGpt2 &&
      config.layout != DecoderLayout::kLlama) {
    return bad("unknown layout ", static_cast<int>(config.layout));
  }
  const bool gpt2 = config.layout == DecoderLayout::kGpt2;
  struct Positive {
    const char* name;
    int value;
  };
  for (const Positive& field :
       {Positive{"vocab_size", config.vocab_size},
        Positive{"context_length", config.context_length},
        Positive{"dim", config.dim}, Positive{"layers", config.layers},
        Positive{"heads", config.heads}, Positive{"kv_heads", config.kv_heads},
        Positive{"mlp_dim", config.mlp_dim}}) {
    if (field.value < 1) {
      return bad(field.name, " must be positive, got ", field.value);
    }
  }
  // The API's documented bounds (oubli.v1.DecoderConfig): a context must
  // hold a token and its successor, and ids stay far below 2^31.
  if (config.vocab_size < 2 || config.vocab_size > kMaxDecoderVocabSize) {
    return bad("vocab_size must be 2..", kMaxDecoderVocabSize, ", got ",
               config.vocab_size);
  }
  if (config.context_length < 2 ||
      config.context_length > kMaxDecoderContextLength) {
    return bad("context_length must be 2..", kMaxDecoderContextLength,
               ", got ", config.context_length);
  }
  if (config.dim % config.heads != 0) {
    return bad("dim (", config.dim, ") must be a multiple of heads (",
               config.heads, ")");
  }
  if (config.heads % config.kv_heads != 0) {
    return bad("heads (", config.heads, ") must be a multiple of kv_heads (",
               config.kv_heads, ")");
  }
  if (gpt2 && config.kv_heads != config.heads) {
    return bad("GPT-2 has no grouped-query attention: kv_heads (",
               config.kv_heads, ") must equal heads (", config.heads, ")");
  }
  if (gpt2 && !config.tie_embeddings) {
    return bad("GPT-2 ties its LM head to the token embedding");
  }
  if (!gpt2 && config.head_dim() % 2 != 0) {
    return bad("rotary positions need an even head_dim, got ",
               config.head_dim());
  }
  if (!(config.norm_eps > 0) || !std::isfinite(config.norm_eps)) {
    return bad("norm_eps must be positive, got ", config.norm_eps);
  }
  if (!gpt2 &&
      (!(config.rope_theta > 1) || !std::isfinite(config.rope_theta))) {
    return bad("rope_theta must be greater than 1, got ", config.rope_theta);
  }
  if (config.lora_targets.empty()) {
    return bad("lora_targets must name at least one projection");
  }
  std::set<LoraTarget> seen;
  for (LoraTarget target : config.lora_targets) {
    if (!seen.insert(target).second) {
      return bad("LoRA target '", LoraTargetName(target), "' named twice");
    }
    if (gpt2 && target == LoraTarget::kGate) {
      return bad("GPT-2 has no gate projection to adapt");
    }
  }
  const LoraConfig& lora = backbone.lora;
  if (lora.rank < 1) return bad("lora.rank must be positive, got ", lora.rank);
  if (!(lora.alpha > 0) || !std::isfinite(lora.alpha)) {
    return bad("lora.alpha must be positive and finite, got ", lora.alpha);
  }
  if (!(lora.dropout >= 0 && lora.dropout < 1)) {
    return bad("lora.dropout must be in [0, 1), got ", lora.dropout);
  }
  // Rough parameter count in double, so an absurd config fails here rather
  // than in the allocator.
  const double d = config.dim, f = config.mlp_dim, v = config.vocab_size;
  const double kv = static_cast<double>(config.kv_heads) * config.head_dim();
  double per_block = 2 * d * d + 2 * d * kv + (gpt2 ? 2 : 3) * d * f;
  per_block += config.lora_targets.size() * lora.rank * (d + f);
  double params = v * d + config.layers * per_block;
  if (gpt2) params += config.context_length * d;
  if (!config.tie_embeddings) params += v * d;
  constexpr double kMaxParameters = double{1 << 30};
  if (params > kMaxParameters) {
    return bad("the model would have ~", params,
               " parameters, more than the supported ", kMaxParameters);
  }
  return absl::OkStatus();
}

absl::Status ValidateConfig(const ModelConfig& c) {
  auto bad = [](auto... parts) {
    return absl::InvalidArgumentError(absl::StrCat(parts...));
  };
  const BackboneConfig& b = c.backbone;
  if (absl::Status id = ValidateModelId(c.model_id); !id.ok()) return id;
  if (c.shards < 1 || c.shards > 1024) return bad("shards must be 1..1024");
  if (c.slices < 1 || c.slices > 64) return bad("slices must be 1..64");
  if (c.sequences < 1 || c.sequences > 64) {
    return bad("sequences must be 1..64");
  }
  if (b.input_channels < 1 || b.input_height < 1 || b.input_width < 1) {
    return bad("input dimensions must be positive");
  }
  const bool classifies = b.kind != BackboneKind::kDecoder ||
                          b.decoder.objective == DecoderObjective::kClassify;
  if (classifies && (b.num_classes < 2 || b.num_classes > 100000)) {
    return bad("num_classes must be 2..100000");
  }
  int adapter_layers = 0;
  if (b.kind == BackboneKind::kDecoder) {
    OUBLI_RETURN_IF_ERROR(ValidateDecoderBackbone(b));
    adapter_layers = b.decoder.layers;
  } else if (b.kind == BackboneKind::kMlp) {
    if (b.mlp_hidden.empty()) return bad("mlp_hidden must not be empty");
    for (int w : b.mlp_hidden) {
      if (w < 1 || w > 65536) return bad("mlp_hidden widths must be 1..65536");
    }
    adapter_layers = static_cast<int>(b.mlp_hidden.size());
  } else {
    if (b.vit_patch < 1 || b.input_height % b.vit_patch != 0 ||
        b.input_width % b.vit_patch != 0) {
      return bad("vit_patch ", b.vit_patch,
                 " must divide the input height and width");
    }
    if (b.vit_heads < 1 || b.vit_dim % b.vit_heads != 0) {
      return bad("vit_dim must be a positive multiple of vit_heads");
    }
    if (b.vit_depth < 1 || b.vit_mlp_dim < 1) {
      return bad("vit_depth and vit_mlp_dim must be positive");
    }
    adapter_layers = b.vit_depth;
  }
  if (c.slices > adapter_layers) {
    return bad("slices (", c.slices, ") must not exceed the backbone's ",
               adapter_layers,
               " adapter layers: S3T trains one layer group per slice");
  }
  if (b.lora.rank < 1 || b.lora.rank > 1024) {
    return bad("lora.rank must be 1..1024");
  }
  if (!(b.lora.alpha > 0)) return bad("lora.alpha must be positive");
  if (b.lora.dropout < 0 || b.lora.dropout >= 1) {
    return bad("lora.dropout must be in [0, 1)");
  }
  const RiskProfile& risk = c.placement.risk;
  if (risk.slices < 0 || risk.slices >= c.slices) {
    return bad("placement.risk_slices must be 0 (off) to slices - 1 (",
               c.slices - 1,
               "): at least one slice must hold the samples "
               "without a high deletion risk");
  }
  if (!(risk.threshold > 0 && risk.threshold <= 1)) {
    return bad("placement.risk_threshold must be in (0, 1]");
  }
  if (!(risk.deletion_share >= 0 && risk.deletion_share <= 1)) {
    return bad("placement.risk_deletion_share must be in [0, 1]");
  }
  if (risk.shards < 0 || risk.shards >= c.shards) {
    return bad("placement.risk_shards must be 0 (every shard) to shards - 1 (",
               c.shards - 1, ")");
  }
  if (risk.shards > 0 && !risk.enabled()) {
    return bad("placement.risk_shards needs placement.risk_slices > 0: "
               "without risk slices no sample is placed by its risk");
  }
  if (c.train.epochs_per_position < 1 || c.train.epochs_per_position > 1000) {
    return bad("train.epochs_per_position must be 1..1000");
  }
  if (c.train.batch_size < 1 || c.train.batch_size > 65536) {
    return bad("train.batch_size must be 1..65536");
  }
  if (!(c.train.learning_rate > 0)) {
    return bad("train.learning_rate must be positive");
  }
  if (c.train.weight_decay < 0) return bad("train.weight_decay must be >= 0");
  if (c.determinism.torch_threads < 1 || c.determinism.blas_threads < 1) {
    return bad("determinism thread counts must be >= 1");
  }
  if (c.retrain.max_batch < 1) return bad("retrain.max_batch must be >= 1");
  if (c.retrain.window < absl::ZeroDuration()) {
    return bad("retrain.window must be >= 0");
  }
  // Both 0 (automatic), or k >= 1 and m >= 1 within one chunk per worker
  // of a large cluster (the GF(2^8) limit is 255).
  if (!c.erasure.automatic() &&
      (c.erasure.data_chunks < 1 || c.erasure.parity_chunks < 1 ||
       c.erasure.data_chunks + c.erasure.parity_chunks > 64)) {
    return bad(
        "erasure code needs data_chunks >= 1 and parity_chunks >= 1 with "
        "data_chunks + parity_chunks <= 64 (or both 0: automatic)");
  }
  return absl::OkStatus();
}

std::vector<std::string> ConfigDifferences(const ModelConfig& existing,
                                           const ModelConfig& requested) {
  // By key: a decoder's config has keys an image model's lacks.
  const auto a = ToPairs(existing);
  const auto b = ToPairs(requested);
  std::map<std::string, std::string> a_values(a.begin(), a.end());
  std::map<std::string, std::string> b_values(b.begin(), b.end());
  std::vector<std::string> out;
  auto add = [&](const std::string& key) {
    auto x = a_values.find(key);
    auto y = b_values.find(key);
    const std::string before = x == a_values.end() ? "(none)" : x->second;
    const std::string after = y == b_values.end() ? "(none)" : y->second;
    if (before != after) {
      out.push_back(absl::StrCat(key, ": '", before, "', requested '", after,
                                 "'"));
    }
  };
  for (const auto& [key, value] : a) add(key);
  for (const auto& [key, value] : b) {
    if (!a_values.contains(key)) add(key);
  }
  return out;
}

const char* PlacementName(Placement placement) {
  return placement == Placement::kOwner ? "owner" : "sample";
}

std::string ConfigToText(const ModelConfig& config) {
  std::string out;
  for (const auto& [key, value] : ToPairs(config)) {
    absl::StrAppend(&out, key, "=", value, "\n");
  }
  return out;
}

namespace {

// Keys absent from `text` keep their values in `defaults`.
absl::StatusOr<ModelConfig> ParseOver(absl::string_view text,
                                      ModelConfig defaults) {
  ModelConfig c = std::move(defaults);
  BackboneConfig& b = c.backbone;
  int64_t window_ms = absl::ToInt64Milliseconds(c.retrain.window);
  std::map<std::string, std::function<absl::Status(absl::string_view)>,
           std::less<>>
      setters;
  auto num = [&](const char* key, auto* field) {
    setters[key] = [key, field](absl::string_view v) {
      return ParseNumber(key, v, field);
    };
  };
  setters["model_id"] = [&](absl::string_view v) {
    c.model_id = std::string(v);
    return absl::OkStatus();
  };
  setters["backbone.kind"] = [&](absl::string_view v) {
    if (v == "mlp") {
      b.kind = BackboneKind::kMlp;
    } else if (v == "vit") {
      b.kind = BackboneKind::kVit;
    } else if (v == "decoder") {
      b.kind = BackboneKind::kDecoder;
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "backbone.kind must be mlp, vit or decoder, got '", v, "'"));
    }
    return absl::OkStatus();
  };
  num("backbone.input_channels", &b.input_channels);
  num("backbone.input_height", &b.input_height);
  num("backbone.input_width", &b.input_width);
  num("backbone.num_classes", &b.num_classes);
  setters["backbone.mlp_hidden"] = [&](absl::string_view v) {
    b.mlp_hidden.clear();
    for (absl::string_view part : absl::StrSplit(v, ',', absl::SkipEmpty())) {
      int w;
      OUBLI_RETURN_IF_ERROR(ParseNumber("backbone.mlp_hidden", part, &w));
      b.mlp_hidden.push_back(w);
    }
    return absl::OkStatus();
  };
  num("backbone.vit_patch", &b.vit_patch);
  num("backbone.vit_dim", &b.vit_dim);
  num("backbone.vit_depth", &b.vit_depth);
  num("backbone.vit_heads", &b.vit_heads);
  num("backbone.vit_mlp_dim", &b.vit_mlp_dim);
  DecoderConfig& d = b.decoder;
  setters["decoder.layout"] = [&](absl::string_view v) {
    if (v == "gpt2") {
      d.layout = DecoderLayout::kGpt2;
    } else if (v == "llama") {
      d.layout = DecoderLayout::kLlama;
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "decoder.layout must be gpt2 or llama, got '", v, "'"));
    }
    return absl::OkStatus();
  };
  setters["decoder.objective"] = [&](absl::string_view v) {
    if (v == "causal_lm") {
      d.objective = DecoderObjective::kCausalLm;
    } else if (v == "classify") {
      d.objective = DecoderObjective::kClassify;
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "decoder.objective must be causal_lm or classify, got '", v, "'"));
    }
    return absl::OkStatus();
  };
  num("decoder.vocab_size", &d.vocab_size);
  num("decoder.context_length", &d.context_length);
  num("decoder.dim", &d.dim);
  num("decoder.layers", &d.layers);
  num("decoder.heads", &d.heads);
  num("decoder.kv_heads", &d.kv_heads);
  num("decoder.mlp_dim", &d.mlp_dim);
  num("decoder.norm_eps", &d.norm_eps);
  num("decoder.rope_theta", &d.rope_theta);
  setters["decoder.tie_embeddings"] = [&](absl::string_view v) {
    return ParseBool("decoder.tie_embeddings", v, &d.tie_embeddings);
  };
  setters["decoder.lora_targets"] = [&](absl::string_view v) {
    d.lora_targets.clear();
    for (absl::string_view part : absl::StrSplit(v, ',', absl::SkipEmpty())) {
      absl::StatusOr<LoraTarget> target = ParseLoraTarget(part);
      if (!target.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "config key 'decoder.lora_targets': ", target.status().message()));
      }
      d.lora_targets.push_back(*target);
    }
    return absl::OkStatus();
  };
  num("lora.rank", &b.lora.rank);
  num("lora.alpha", &b.lora.alpha);
  num("lora.dropout", &b.lora.dropout);
  setters["lora.rslora"] = [&](absl::string_view v) {
    return ParseBool("lora.rslora", v, &b.lora.rslora);
  };
  num("shards", &c.shards);
  num("slices", &c.slices);
  num("sequences", &c.sequences);
  num("seed", &c.seed);
  setters["placement"] = [&](absl::string_view v) {
    if (v == "owner") {
      c.placement.by = Placement::kOwner;
    } else if (v == "sample") {
      c.placement.by = Placement::kSample;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("placement must be owner or sample, got '", v, "'"));
    }
    return absl::OkStatus();
  };
  num("placement.risk_slices", &c.placement.risk.slices);
  num("placement.risk_threshold", &c.placement.risk.threshold);
  num("placement.risk_deletion_share", &c.placement.risk.deletion_share);
  num("placement.risk_shards", &c.placement.risk.shards);
  num("train.epochs_per_position", &c.train.epochs_per_position);
  num("train.batch_size", &c.train.batch_size);
  num("train.learning_rate", &c.train.learning_rate);
  num("train.weight_decay", &c.train.weight_decay);
  num("determinism.torch_threads", &c.determinism.torch_threads);
  num("determinism.blas_threads", &c.determinism.blas_threads);
  auto str = [&](const char* key, std::string* field) {
    setters[key] = [field](absl::string_view v) {
      *field = std::string(v);
      return absl::OkStatus();
    };
  };
  str("base.source", &c.base.source);
  str("base.sha256", &c.base.sha256);
  str("base.provenance", &c.base.provenance);
  setters["retrain.mode"] = [&](absl::string_view v) {
    if (v == "immediate") {
      c.retrain.mode = RetrainMode::kImmediate;
    } else if (v == "batched") {
      c.retrain.mode = RetrainMode::kBatched;
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "retrain.mode must be immediate or batched, got '", v, "'"));
    }
    return absl::OkStatus();
  };
  num("retrain.window_ms", &window_ms);
  num("retrain.max_batch", &c.retrain.max_batch);
  num("erasure.data_chunks", &c.erasure.data_chunks);
  num("erasure.parity_chunks", &c.erasure.parity_chunks);
  setters["serving.base_fallback"] = [&](absl::string_view v) {
    return ParseBool("serving.base_fallback", v, &c.serving.base_fallback);
  };

  bool decoder_keys = false;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    if (line.empty() || line[0] == '#') continue;
    const size_t eq = line.find('=');
    if (eq == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("config line ", line_no, ": expected key=value"));
    }
    const absl::string_view key = line.substr(0, eq);
    auto it = setters.find(key);
    if (it == setters.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("config line ", line_no, ": unknown key '", key, "'"));
    }
    OUBLI_RETURN_IF_ERROR(it->second(line.substr(eq + 1)));
    decoder_keys = decoder_keys || absl::StartsWith(key, "decoder.");
  }
  if (decoder_keys && b.kind != BackboneKind::kDecoder) {
    // They would be dropped from the stored config without a word.
    return absl::InvalidArgumentError(
        "decoder.* keys apply only to backbone.kind=decoder");
  }
  c.retrain.window = absl::Milliseconds(window_ms);
  return c;
}

}  // namespace

absl::StatusOr<ModelConfig> ParseConfig(absl::string_view text) {
  return ParseOver(text, ModelConfig());
}

absl::StatusOr<ModelConfig> ParseStoredConfig(absl::string_view text) {
  // Stored before placement existed: that model placed by sample id.
  ModelConfig legacy;
  legacy.placement.by = Placement::kSample;
  return ParseOver(text, std::move(legacy));
}

std::string ConfigFingerprint(const ModelConfig& config) {
  Sha256 h;
  h.AddField("oubli.config.v1");
  for (const auto& [key, value] : ToPairs(config)) {
    if (IsWeightNeutral(key) || IsLegacyDefault(config, key)) continue;
    h.AddField(key).AddField(value);
  }
  return h.FinishHex();
}

}  // namespace oubli
