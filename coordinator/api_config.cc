#include "coordinator/api_config.h"

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/types.h"

namespace oubli::coordinator {

namespace v1 = ::oubli::v1;

namespace {

// Unset fields keep the defaults in `*out`.
absl::Status DecoderFromProto(const v1::DecoderConfig& in, DecoderConfig* out) {
  switch (in.layout()) {
    case v1::DECODER_LAYOUT_UNSPECIFIED:
      break;
    case v1::DECODER_LAYOUT_GPT2:
      out->layout = DecoderLayout::kGpt2;
      break;
    case v1::DECODER_LAYOUT_LLAMA:
      out->layout = DecoderLayout::kLlama;
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("config.decoder.layout: unknown value ", in.layout()));
  }
  switch (in.objective()) {
    case v1::DECODER_OBJECTIVE_UNSPECIFIED:
      break;
    case v1::DECODER_OBJECTIVE_CAUSAL_LM:
      out->objective = DecoderObjective::kCausalLm;
      break;
    case v1::DECODER_OBJECTIVE_CLASSIFY:
      out->objective = DecoderObjective::kClassify;
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "config.decoder.objective: unknown value ", in.objective()));
  }
  if (in.has_vocab_size()) out->vocab_size = in.vocab_size();
  if (in.has_context_length()) out->context_length = in.context_length();
  if (in.has_dim()) out->dim = in.dim();
  if (in.has_layers()) out->layers = in.layers();
  if (in.has_heads()) out->heads = in.heads();
  // Unset: as many as heads (no grouped-query attention), as in Hugging
  // Face configs without num_key_value_heads; GPT-2 allows nothing else.
  out->kv_heads = in.has_kv_heads() ? in.kv_heads() : out->heads;
  if (in.has_mlp_dim()) out->mlp_dim = in.mlp_dim();
  if (in.has_norm_eps()) out->norm_eps = in.norm_eps();
  if (in.has_rope_theta()) out->rope_theta = in.rope_theta();
  if (in.has_tie_embeddings()) out->tie_embeddings = in.tie_embeddings();
  if (in.lora_targets_size() > 0) {
    out->lora_targets.clear();
    for (int i = 0; i < in.lora_targets_size(); ++i) {
      absl::StatusOr<LoraTarget> target = ParseLoraTarget(in.lora_targets(i));
      if (!target.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("config.decoder.lora_targets[", i,
                         "]: ", target.status().message()));
      }
      out->lora_targets.push_back(*target);
    }
  }
  return absl::OkStatus();
}

void DecoderToProto(const DecoderConfig& in, v1::DecoderConfig* out) {
  out->set_layout(in.layout == DecoderLayout::kGpt2 ? v1::DECODER_LAYOUT_GPT2
                                                    : v1::DECODER_LAYOUT_LLAMA);
  out->set_objective(in.objective == DecoderObjective::kCausalLm
                         ? v1::DECODER_OBJECTIVE_CAUSAL_LM
                         : v1::DECODER_OBJECTIVE_CLASSIFY);
  out->set_vocab_size(in.vocab_size);
  out->set_context_length(in.context_length);
  out->set_dim(in.dim);
  out->set_layers(in.layers);
  out->set_heads(in.heads);
  out->set_kv_heads(in.kv_heads);
  out->set_mlp_dim(in.mlp_dim);
  out->set_norm_eps(in.norm_eps);
  out->set_rope_theta(in.rope_theta);
  out->set_tie_embeddings(in.tie_embeddings);
  for (LoraTarget target : in.lora_targets) {
    out->add_lora_targets(LoraTargetName(target));
  }
}

}  // namespace

absl::StatusOr<ModelConfig> ConfigFromProto(const v1::ModelConfig& in) {
  ModelConfig c;
  BackboneConfig& b = c.backbone;
  switch (in.backbone()) {
    case v1::BACKBONE_KIND_UNSPECIFIED:
      break;
    case v1::BACKBONE_KIND_MLP:
      b.kind = BackboneKind::kMlp;
      break;
    case v1::BACKBONE_KIND_VIT:
      b.kind = BackboneKind::kVit;
      break;
    case v1::BACKBONE_KIND_DECODER:
      b.kind = BackboneKind::kDecoder;
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("config.backbone: unknown value ", in.backbone()));
  }
  if (in.has_decoder()) {
    if (b.kind != BackboneKind::kDecoder) {
      // It would be dropped from the stored config without a word.
      return absl::InvalidArgumentError(absl::StrCat(
          "config.decoder: set only for backbone BACKBONE_KIND_DECODER, not ",
          v1::BackboneKind_Name(in.backbone())));
    }
    if (absl::Status s = DecoderFromProto(in.decoder(), &b.decoder); !s.ok()) {
      return s;
    }
  }
  if (in.has_input_channels()) b.input_channels = in.input_channels();
  if (in.has_input_height()) b.input_height = in.input_height();
  if (in.has_input_width()) b.input_width = in.input_width();
  if (in.has_num_classes()) b.num_classes = in.num_classes();
  if (in.mlp_hidden_size() > 0) {
    b.mlp_hidden.assign(in.mlp_hidden().begin(), in.mlp_hidden().end());
  }
  if (in.has_vit_patch()) b.vit_patch = in.vit_patch();
  if (in.has_vit_dim()) b.vit_dim = in.vit_dim();
  if (in.has_vit_depth()) b.vit_depth = in.vit_depth();
  if (in.has_vit_heads()) b.vit_heads = in.vit_heads();
  if (in.has_vit_mlp_dim()) b.vit_mlp_dim = in.vit_mlp_dim();
  if (in.lora().has_rank()) b.lora.rank = in.lora().rank();
  if (in.lora().has_alpha()) b.lora.alpha = in.lora().alpha();
  if (in.lora().has_dropout()) b.lora.dropout = in.lora().dropout();
  if (in.lora().has_rslora()) b.lora.rslora = in.lora().rslora();
  if (in.has_shards()) c.shards = in.shards();
  if (in.has_slices()) c.slices = in.slices();
  if (in.has_sequences()) c.sequences = in.sequences();
  switch (in.placement().by()) {
    case v1::PLACEMENT_UNSPECIFIED:
      break;
    case v1::PLACEMENT_OWNER:
      c.placement.by = Placement::kOwner;
      break;
    case v1::PLACEMENT_SAMPLE:
      c.placement.by = Placement::kSample;
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "config.placement.by: unknown value ", in.placement().by()));
  }
  RiskProfile& risk = c.placement.risk;
  if (in.placement().has_risk_slices()) {
    risk.slices = in.placement().risk_slices();
  }
  if (in.placement().has_risk_threshold()) {
    risk.threshold = in.placement().risk_threshold();
  }
  if (in.placement().has_risk_deletion_share()) {
    risk.deletion_share = in.placement().risk_deletion_share();
  }
  if (in.placement().has_risk_shards()) {
    risk.shards = in.placement().risk_shards();
  }
  if (in.has_epochs_per_position()) {
    c.train.epochs_per_position = in.epochs_per_position();
  }
  if (in.has_batch_size()) c.train.batch_size = in.batch_size();
  if (in.has_learning_rate()) c.train.learning_rate = in.learning_rate();
  if (in.has_weight_decay()) c.train.weight_decay = in.weight_decay();
  if (in.has_seed()) c.seed = in.seed();
  if (in.has_torch_threads()) c.determinism.torch_threads = in.torch_threads();
  if (in.has_blas_threads()) c.determinism.blas_threads = in.blas_threads();
  if (in.has_base_source()) c.base.source = in.base_source();
  if (in.has_base_sha256()) c.base.sha256 = in.base_sha256();
  if (in.has_base_provenance()) c.base.provenance = in.base_provenance();
  switch (in.retrain().mode()) {
    case v1::RETRAIN_MODE_UNSPECIFIED:
      break;
    case v1::RETRAIN_MODE_IMMEDIATE:
      c.retrain.mode = RetrainMode::kImmediate;
      break;
    case v1::RETRAIN_MODE_BATCHED:
      c.retrain.mode = RetrainMode::kBatched;
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "config.retrain.mode: unknown value ", in.retrain().mode()));
  }
  if (in.retrain().has_window_ms()) {
    c.retrain.window = absl::Milliseconds(in.retrain().window_ms());
  }
  if (in.retrain().has_max_batch()) {
    c.retrain.max_batch = in.retrain().max_batch();
  }
  if (in.erasure().has_data_chunks() != in.erasure().has_parity_chunks()) {
    return absl::InvalidArgumentError(
        "config.erasure: set both data_chunks and parity_chunks, or neither");
  }
  c.erasure.data_chunks = in.erasure().data_chunks();
  c.erasure.parity_chunks = in.erasure().parity_chunks();
  if (in.has_base_fallback()) c.serving.base_fallback = in.base_fallback();
  return c;
}

v1::ModelConfig ConfigToProto(const ModelConfig& c) {
  v1::ModelConfig out;
  const BackboneConfig& b = c.backbone;
  switch (b.kind) {
    case BackboneKind::kMlp:
      out.set_backbone(v1::BACKBONE_KIND_MLP);
      break;
    case BackboneKind::kVit:
      out.set_backbone(v1::BACKBONE_KIND_VIT);
      break;
    case BackboneKind::kDecoder:
      out.set_backbone(v1::BACKBONE_KIND_DECODER);
      DecoderToProto(b.decoder, out.mutable_decoder());
      break;
  }
  out.set_input_channels(b.input_channels);
  out.set_input_height(b.input_height);
  out.set_input_width(b.input_width);
  out.set_num_classes(b.num_classes);
  for (int width : b.mlp_hidden) out.add_mlp_hidden(width);
  out.set_vit_patch(b.vit_patch);
  out.set_vit_dim(b.vit_dim);
  out.set_vit_depth(b.vit_depth);
  out.set_vit_heads(b.vit_heads);
  out.set_vit_mlp_dim(b.vit_mlp_dim);
  out.mutable_lora()->set_rank(b.lora.rank);
  out.mutable_lora()->set_alpha(b.lora.alpha);
  out.mutable_lora()->set_dropout(b.lora.dropout);
  out.mutable_lora()->set_rslora(b.lora.rslora);
  out.set_shards(c.shards);
  out.set_slices(c.slices);
  out.set_sequences(c.sequences);
  v1::PlacementConfig* placement = out.mutable_placement();
  placement->set_by(c.placement.by == Placement::kOwner ? v1::PLACEMENT_OWNER
                                                        : v1::PLACEMENT_SAMPLE);
  placement->set_risk_slices(c.placement.risk.slices);
  placement->set_risk_threshold(c.placement.risk.threshold);
  placement->set_risk_deletion_share(c.placement.risk.deletion_share);
  placement->set_risk_shards(c.placement.risk.shards);
  out.set_epochs_per_position(c.train.epochs_per_position);
  out.set_batch_size(c.train.batch_size);
  out.set_learning_rate(c.train.learning_rate);
  out.set_weight_decay(c.train.weight_decay);
  out.set_seed(c.seed);
  out.set_torch_threads(c.determinism.torch_threads);
  out.set_blas_threads(c.determinism.blas_threads);
  out.set_base_source(SanitizeUtf8(c.base.source));
  out.set_base_sha256(SanitizeUtf8(c.base.sha256));
  out.set_base_provenance(SanitizeUtf8(c.base.provenance));
  out.mutable_retrain()->set_mode(c.retrain.mode == RetrainMode::kImmediate
                                      ? v1::RETRAIN_MODE_IMMEDIATE
                                      : v1::RETRAIN_MODE_BATCHED);
  out.mutable_retrain()->set_window_ms(
      absl::ToInt64Milliseconds(c.retrain.window));
  out.mutable_retrain()->set_max_batch(c.retrain.max_batch);
  if (!c.erasure.automatic()) {
    out.mutable_erasure()->set_data_chunks(c.erasure.data_chunks);
    out.mutable_erasure()->set_parity_chunks(c.erasure.parity_chunks);
  }
  out.set_base_fallback(c.serving.base_fallback);
  return out;
}

}  // namespace oubli::coordinator
