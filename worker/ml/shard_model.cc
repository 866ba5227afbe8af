#include "worker/ml/shard_model.h"

#include "absl/strings/str_cat.h"
#include "common/hash.h"
#include "common/status_macros.h"
#include "worker/ml/determinism.h"
#include "worker/ml/model_factory.h"
#include "worker/ml/safetensors.h"
#include "worker/ml/torch_device.h"

namespace oubli::ml {

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
  OUBLI_ASSIGN_OR_RETURN(std::shared_ptr<AdapterModel> model,
                         BuildModelOnBase(config, base_state));
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
  auto classifier = std::dynamic_pointer_cast<AdapterClassifier>(model);
  auto decoder = std::dynamic_pointer_cast<DecoderLm>(model);
  if (classifier == nullptr && decoder == nullptr) {
    return absl::InternalError("a model that is neither classifier nor decoder");
  }
  return std::shared_ptr<const ShardModel>(new ShardModel(
      config.determinism, std::move(classifier), std::move(decoder)));
}

absl::StatusOr<torch::Tensor> ShardModel::Probabilities(
    const torch::Tensor& x) const {
  absl::MutexLock lock(&mu_);
  if (classifier_ == nullptr) {
    return absl::FailedPreconditionError(
        "a decoder takes token rows, not features");
  }
  try {
    PinThreads(determinism_);
    torch::NoGradGuard no_grad;
    // Inputs and answers are CPU tensors whatever the compute device.
    return torch::softmax(classifier_->forward(x.to(TorchDevice())), /*dim=*/1)
        .to(torch::kCPU);
  } catch (const c10::Error& e) {
    // Inputs are shape-checked by the caller, so this is ours, not theirs.
    return absl::InternalError(
        absl::StrCat("predict: ", e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return absl::ResourceExhaustedError(absl::StrCat("predict: ", e.what()));
  }
}

absl::StatusOr<torch::Tensor> ShardModel::DecoderForward(
    const PositionData& rows, absl::string_view what) const {
  try {
    PinThreads(determinism_);
    torch::NoGradGuard no_grad;
    return decoder_->forward(rows.tokens, rows.attention_mask);
  } catch (const c10::Error& e) {
    // Rows are checked by the caller (MakeTokenPositionData).
    return absl::InternalError(
        absl::StrCat(what, ": ", e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return absl::ResourceExhaustedError(absl::StrCat(what, ": ", e.what()));
  }
}

absl::StatusOr<torch::Tensor> ShardModel::TokenClassProbabilities(
    const PositionData& rows) const {
  absl::MutexLock lock(&mu_);
  if (decoder_ == nullptr ||
      decoder_->config().objective != DecoderObjective::kClassify) {
    return absl::FailedPreconditionError(
        "class probabilities of token rows need a classifying decoder");
  }
  OUBLI_ASSIGN_OR_RETURN(torch::Tensor logits,
                         DecoderForward(rows, "predict"));
  try {
    return torch::softmax(logits, /*dim=*/1).to(torch::kCPU);
  } catch (const std::exception& e) {
    return absl::ResourceExhaustedError(absl::StrCat("predict: ", e.what()));
  }
}

absl::StatusOr<torch::Tensor> ShardModel::TokenLogProbs(
    const PositionData& rows) const {
  absl::MutexLock lock(&mu_);
  if (decoder_ == nullptr ||
      decoder_->config().objective != DecoderObjective::kCausalLm) {
    return absl::FailedPreconditionError(
        "token log-probabilities need a causal language model");
  }
  OUBLI_ASSIGN_OR_RETURN(torch::Tensor logits, DecoderForward(rows, "score"));
  try {
    torch::NoGradGuard no_grad;
    return NextTokenLogProbs(logits, rows.tokens.to(logits.device()),
                             rows.attention_mask.to(logits.device()))
        .to(torch::kCPU);
  } catch (const std::exception& e) {
    return absl::ResourceExhaustedError(absl::StrCat("score: ", e.what()));
  }
}

absl::StatusOr<torch::Tensor> ShardModel::NextTokenProbabilities(
    const PositionData& rows) const {
  absl::MutexLock lock(&mu_);
  if (decoder_ == nullptr ||
      decoder_->config().objective != DecoderObjective::kCausalLm) {
    return absl::FailedPreconditionError(
        "next-token probabilities need a causal language model");
  }
  OUBLI_ASSIGN_OR_RETURN(torch::Tensor logits,
                         DecoderForward(rows, "generate"));
  try {
    torch::NoGradGuard no_grad;
    torch::Tensor last =
        rows.attention_mask.sum(1).to(logits.device()) - 1;  // [n]
    torch::Tensor index = torch::arange(
        logits.size(0),
        torch::TensorOptions().dtype(torch::kInt64).device(logits.device()));
    return torch::softmax(logits.index({index, last}), /*dim=*/1)
        .to(torch::kCPU);
  } catch (const std::exception& e) {
    return absl::ResourceExhaustedError(absl::StrCat("generate: ", e.what()));
  }
}

}  // namespace oubli::ml
