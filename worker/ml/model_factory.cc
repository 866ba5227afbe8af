#include "worker/ml/model_factory.h"

#include <algorithm>

#include "common/hash.h"
#include "common/status_macros.h"
#include "worker/ml/decoder_lm.h"
#include "worker/ml/hf_decoder_weights.h"
#include "worker/ml/model.h"

namespace oubli::ml {

absl::StatusOr<std::shared_ptr<AdapterModel>> BuildAdapterModel(
    const BackboneConfig& backbone, uint64_t base_seed) {
  if (backbone.kind == BackboneKind::kDecoder) {
    OUBLI_ASSIGN_OR_RETURN(std::shared_ptr<DecoderLm> model,
                           BuildDecoderLm(backbone, base_seed));
    return std::shared_ptr<AdapterModel>(std::move(model));
  }
  OUBLI_ASSIGN_OR_RETURN(std::shared_ptr<AdapterClassifier> model,
                         BuildClassifier(backbone, base_seed));
  return std::shared_ptr<AdapterModel>(std::move(model));
}

absl::StatusOr<std::shared_ptr<AdapterModel>> BuildModelOnBase(
    const ModelConfig& config, const NamedTensors& base_state) {
  OUBLI_ASSIGN_OR_RETURN(
      std::shared_ptr<AdapterModel> model,
      BuildAdapterModel(config.backbone, DeriveSeed(config.seed, "base", {})));
  OUBLI_RETURN_IF_ERROR(model->LoadBaseState(base_state));
  return model;
}

absl::Status LoadBaseWeights(AdapterModel& model, const NamedTensors& file) {
  auto* decoder = dynamic_cast<DecoderLm*>(&model);
  const bool ours = std::any_of(file.begin(), file.end(), [](const auto& item) {
    return item.first == "embed.weight";
  });
  if (decoder != nullptr && !ours) {
    return LoadHuggingFaceDecoder(*decoder, file);
  }
  // Every tensor to float32, as base files have always been read (a
  // model whose file held integer tensors must still reopen).
  NamedTensors converted;
  converted.reserve(file.size());
  for (const auto& [name, tensor] : file) {
    converted.emplace_back(name, tensor.to(torch::kFloat32));
  }
  return model.LoadBaseState(converted);
}

}  // namespace oubli::ml
