#include "worker/shard_model.h"

#include "absl/strings/str_cat.h"
#include "common/hash.h"
#include "common/status_macros.h"
#include "worker/determinism.h"
#include "worker/model_factory.h"
#include "worker/safetensors.h"
#include "worker/torch_device.h"

namespace oubli::worker {

absl::StatusOr<std::shared_ptr<const ShardModel>> ShardModel::Create(
    const ModelConfig& config, const NamedTensors& base_state,
    absl::string_view checkpoint) {
  OUBLI_ASSIGN_OR_RETURN(NamedTensors adapters, ParseSafetensors(checkpoint));
  return Build(config, base_state, &adapters);
}

absl::StatusOr<std::shared_ptr<const ShardModel>> ShardModel::CreateBase(
    const ModelConfig& config, const NamedTensors& base_state) {
  return Build(config, base_state, nullptr);
}

absl::StatusOr<std::shared_ptr<const ShardModel>> ShardModel::Build(
    const ModelConfig& config, const NamedTensors& base_state,
    const NamedTensors* adapters) {
  PinThreads(config.determinism);
  // Adapters start with a zero update (LoRA B = 0): without a checkpoint
  // this is the base model.
  OUBLI_ASSIGN_OR_RETURN(std::shared_ptr<AdapterModel> built,
                         BuildModelOnBase(config, base_state));
  std::shared_ptr<AdapterClassifier> model =
      std::dynamic_pointer_cast<AdapterClassifier>(std::move(built));
  if (model == nullptr) {
    return absl::InvalidArgumentError(
        "decoder language models are not served as classifiers");
  }
  if (adapters != nullptr) {
    OUBLI_RETURN_IF_ERROR(model->LoadAdapterState(*adapters));
  }
  try {
    model->to(TorchDevice());
  } catch (const std::exception& e) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "moving the shard model to ", TorchDevice().str(), ": ", e.what()));
  }
  model->eval();
  return std::shared_ptr<const ShardModel>(
      new ShardModel(config.determinism, std::move(model)));
}

absl::StatusOr<torch::Tensor> ShardModel::Probabilities(
    const torch::Tensor& x) const {
  absl::MutexLock lock(&mu_);
  try {
    PinThreads(determinism_);
    torch::NoGradGuard no_grad;
    // Inputs and answers are CPU tensors whatever the compute device.
    return torch::softmax(model_->forward(x.to(TorchDevice())), /*dim=*/1)
        .to(torch::kCPU);
  } catch (const c10::Error& e) {
    // Inputs are shape-checked by the caller, so this is ours, not theirs.
    return absl::InternalError(
        absl::StrCat("predict: ", e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return absl::ResourceExhaustedError(absl::StrCat("predict: ", e.what()));
  }
}

}  // namespace oubli::worker
