#include "tools/lm/decoder_scorer.h"

#include <utility>

#include "common/status_macros.h"
#include "coordinator/lm_ensemble.h"
#include "worker/ml/shard_model.h"

namespace oubli::lm {

DecoderScorer::DecoderScorer(
    ModelConfig config,
    std::vector<std::shared_ptr<const ml::ShardModel>> models)
    : config_(std::move(config)), models_(std::move(models)) {}

DecoderScorer::~DecoderScorer() = default;

absl::StatusOr<std::unique_ptr<DecoderScorer>> DecoderScorer::Create(
    const ModelConfig& config, const ml::NamedTensors& base_state,
    const std::vector<std::string>& checkpoints) {
  if (config.backbone.kind != BackboneKind::kDecoder ||
      config.backbone.decoder.objective != DecoderObjective::kCausalLm) {
    return absl::InvalidArgumentError("DecoderScorer needs a causal LM");
  }
  std::vector<std::shared_ptr<const ml::ShardModel>> models;
  if (checkpoints.empty()) {
    OUBLI_ASSIGN_OR_RETURN(models.emplace_back(),
                           ml::ShardModel::CreateBase(config, base_state));
  }
  for (const std::string& checkpoint : checkpoints) {
    OUBLI_ASSIGN_OR_RETURN(
        models.emplace_back(),
        ml::ShardModel::Create(config, base_state, checkpoint));
  }
  return std::unique_ptr<DecoderScorer>(
      new DecoderScorer(config, std::move(models)));
}

absl::StatusOr<std::vector<std::vector<float>>> DecoderScorer::Score(
    absl::Span<const std::vector<int32_t>> sequences) {
  if (sequences.empty()) return std::vector<std::vector<float>>{};
  return coordinator::EnsembleTokenLogProbs(models_, config_.backbone,
                                            sequences);
}

absl::StatusOr<std::vector<int32_t>> DecoderScorer::Generate(
    absl::Span<const int32_t> prompt, int max_tokens, int32_t stop_token) {
  coordinator::GenerateOptions options;
  options.prompt.assign(prompt.begin(), prompt.end());
  options.max_tokens = max_tokens;
  if (stop_token >= 0) options.stop_tokens = {stop_token};
  OUBLI_ASSIGN_OR_RETURN(
      coordinator::Generation generated,
      coordinator::EnsembleGenerate(models_, config_.backbone, options));
  // The LmScorer contract leaves the stop token out.
  if (generated.finish_reason == coordinator::FinishReason::kStopToken) {
    generated.tokens.pop_back();
  }
  return generated.tokens;
}

}  // namespace oubli::lm
